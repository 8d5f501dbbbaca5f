//! Twilio-style voice webhooks: any form body, signed over its parameters, driving the IVR
//! engine (digits, speech, time-outs, hang-ups) of a real menu tree.
#![no_main]

use std::sync::LazyLock;

use cs_channels::Channel;
use cs_channels::sms::{SIGNATURE_HEADER, signature};
use cs_channels::voice::{IvrTree, Voice};
use cs_core::ChannelId;
use http::Method;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{block_on, check, clock, raw};

const TOKEN: &str = "fuzz-auth-token";
const URL: &str = "https://shop.example/webhooks/voice";
const TREE: &str = include_str!("../corpus/ivr_menu/seed-shop.toml");

static CHANNEL: LazyLock<Voice> = LazyLock::new(|| {
    Voice::builder(ChannelId::new("voice").unwrap())
        .with_tree(IvrTree::from_toml(TREE).unwrap())
        .with_auth_token(TOKEN)
        .with_webhook_url(URL)
        .with_clock(clock())
        .build()
        .unwrap()
});

fuzz_target!(|body: &[u8]| {
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let sig = signature(TOKEN, URL, &params);
    check(block_on(CHANNEL.parse_inbound(raw(
        Method::POST,
        "/webhooks/voice",
        &[(SIGNATURE_HEADER, &sig)],
        body,
    ))));
});
