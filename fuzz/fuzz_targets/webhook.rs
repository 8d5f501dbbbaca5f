//! The generic signed JSON webhook: any body, signed with the timestamp and HMAC headers.
#![no_main]

use std::sync::LazyLock;

use cs_channels::Channel;
use cs_channels::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Webhook, sign};
use cs_core::ChannelId;
use http::Method;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{NOW, block_on, check, clock, raw};

const SECRET: &[u8] = b"0123456789abcdef";

static CHANNEL: LazyLock<Webhook> = LazyLock::new(|| {
    Webhook::builder(ChannelId::new("jd").unwrap())
        .with_secret(SECRET)
        .with_clock(clock())
        .build()
        .unwrap()
});

fuzz_target!(|body: &[u8]| {
    let sig = sign(SECRET, NOW, body);
    check(block_on(CHANNEL.parse_inbound(raw(
        Method::POST,
        "/webhooks/jd",
        &[
            (TIMESTAMP_HEADER, &NOW.to_string()),
            (SIGNATURE_HEADER, &sig),
        ],
        body,
    ))));
});
