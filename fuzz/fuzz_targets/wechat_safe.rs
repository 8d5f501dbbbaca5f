//! WeChat safe mode. The first byte picks what is fuzzed: even, the outer envelope as sent (the
//! bounded reader must find `<Encrypt>` or refuse, and a wrong `msg_signature` is refused
//! before decryption); odd, the inner message, encrypted and signed as WeChat would, so the
//! decryption and the inner XML reader see it.
#![no_main]

use std::sync::LazyLock;

use cs_channels::Channel;
use cs_channels::wechat::{MsgCrypt, WeChat, signature};
use cs_core::ChannelId;
use http::Method;
use libfuzzer_sys::fuzz_target;
use omnidesk_fuzz::{NOW, block_on, check, clock, fresh_nonce, raw};

const TOKEN: &str = "fuzz-token";
const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
const APP_ID: &str = "wx0000000000000001";

static CHANNEL: LazyLock<WeChat> = LazyLock::new(|| {
    WeChat::builder(ChannelId::new("wx").unwrap())
        .with_token(TOKEN)
        .with_app_id(APP_ID)
        .with_app_secret("fuzz-app-secret")
        .with_encoding_aes_key(KEY)
        .with_clock(clock())
        .build()
        .unwrap()
});
static CRYPT: LazyLock<MsgCrypt> = LazyLock::new(|| MsgCrypt::new(TOKEN, KEY, APP_ID).unwrap());

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ts = NOW.to_string();
    let nonce = fresh_nonce();
    let sig = signature(&[TOKEN, &ts, &nonce]);
    let (body, msg_signature) = if mode % 2 == 0 {
        (rest.to_vec(), "0".repeat(40))
    } else {
        let encrypted = CRYPT.encrypt(&String::from_utf8_lossy(rest));
        let envelope = format!(
            "<xml><ToUserName><![CDATA[gh_fuzz]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        );
        (
            envelope.into_bytes(),
            CRYPT.msg_signature(&ts, &nonce, &encrypted),
        )
    };
    let uri = format!(
        "/webhooks/wx?signature={sig}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_signature}"
    );
    check(block_on(CHANNEL.parse_inbound(raw(
        Method::POST,
        &uri,
        &[],
        &body,
    ))));
});
