//! WeChat plain mode: any body under a valid query signature (which covers no body) goes
//! through the bounded XML stream reader and the message mapping.
#![no_main]

use std::sync::LazyLock;

use cs_channels::Channel;
use cs_channels::wechat::{WeChat, signature};
use cs_core::ChannelId;
use http::Method;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{NOW, block_on, check, clock, fresh_nonce, raw};

const TOKEN: &str = "fuzz-token";

static CHANNEL: LazyLock<WeChat> = LazyLock::new(|| {
    WeChat::builder(ChannelId::new("wx").unwrap())
        .with_token(TOKEN)
        .with_app_id("wx0000000000000001")
        .with_app_secret("fuzz-app-secret")
        .with_clock(clock())
        .build()
        .unwrap()
});

fuzz_target!(|body: &[u8]| {
    let ts = NOW.to_string();
    let nonce = fresh_nonce();
    let sig = signature(&[TOKEN, &ts, &nonce]);
    let uri = format!("/webhooks/wx?signature={sig}&timestamp={ts}&nonce={nonce}");
    check(block_on(CHANNEL.parse_inbound(raw(
        Method::POST,
        &uri,
        &[],
        body,
    ))));
});
