//! Twilio-style SMS webhooks: any form body, signed over its parameters as the provider would,
//! so the form limits and the message mapping see it.
#![no_main]

use std::sync::LazyLock;

use cs_channels::Channel;
use cs_channels::sms::{SIGNATURE_HEADER, Sms, signature};
use cs_core::ChannelId;
use http::Method;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{block_on, check, raw};

const TOKEN: &str = "fuzz-auth-token";
const URL: &str = "https://shop.example/webhooks/sms";

static CHANNEL: LazyLock<Sms> = LazyLock::new(|| {
    Sms::builder(ChannelId::new("sms").unwrap())
        .with_account_sid("AC0000")
        .with_auth_token(TOKEN)
        .with_webhook_url(URL)
        .with_from("+15550001111")
        .build()
        .unwrap()
});

fuzz_target!(|body: &[u8]| {
    let params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let sig = signature(TOKEN, URL, &params);
    check(block_on(CHANNEL.parse_inbound(raw(
        Method::POST,
        "/webhooks/sms",
        &[(SIGNATURE_HEADER, &sig)],
        body,
    ))));
});
