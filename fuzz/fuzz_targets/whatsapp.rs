//! WhatsApp Cloud API notifications: any body, correctly signed with `X-Hub-Signature-256`, so
//! the depth check and the JSON mapping see it.
#![no_main]

use std::sync::LazyLock;

use cs_channels::Channel;
use cs_channels::whatsapp::{SIGNATURE_HEADER, WhatsApp, sign};
use cs_core::ChannelId;
use http::Method;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{block_on, check, clock, raw};

const SECRET: &str = "fuzz-app-secret";

static CHANNEL: LazyLock<WhatsApp> = LazyLock::new(|| {
    WhatsApp::builder(ChannelId::new("wa").unwrap())
        .with_app_secret(SECRET)
        .with_verify_token("fuzz-verify")
        .with_access_token("fuzz-access")
        .with_phone_number_id("100")
        .with_clock(clock())
        .build()
        .unwrap()
});

fuzz_target!(|body: &[u8]| {
    let sig = sign(SECRET.as_bytes(), body);
    check(block_on(CHANNEL.parse_inbound(raw(
        Method::POST,
        "/webhooks/wa",
        &[(SIGNATURE_HEADER, &sig)],
        body,
    ))));
});
