//! Telegram Bot API updates: any body with the right secret-token header.
#![no_main]

use std::sync::LazyLock;

use cs_channels::Channel;
use cs_channels::telegram::{SECRET_HEADER, Telegram};
use cs_core::ChannelId;
use http::Method;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{block_on, check, raw};

static CHANNEL: LazyLock<Telegram> = LazyLock::new(|| {
    Telegram::builder(ChannelId::new("tg").unwrap())
        .with_bot_token("1:FUZZ")
        .with_secret_token("fuzz-secret")
        .build()
        .unwrap()
});

fuzz_target!(|body: &[u8]| {
    check(block_on(CHANNEL.parse_inbound(raw(
        Method::POST,
        "/webhooks/tg",
        &[(SECRET_HEADER, "fuzz-secret")],
        body,
    ))));
});
