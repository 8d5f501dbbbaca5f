//! Webhook ingest cost per request: signature check, decryption and parsing of each adapter,
//! against the naive baseline of parsing the same body without checking anything. WeChat
//! wants an answer within 5 s; these run in microseconds.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use cs_channels::wechat::{MsgCrypt, WeChat, signature};
use cs_channels::whatsapp::{WhatsApp, sign};
use cs_channels::{Channel, RawInbound};
use cs_core::{ChannelId, ManualClock};
use http::{HeaderMap, Method};

const NOW: i64 = 1_794_391_200;
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn raw(method: Method, uri: &str, headers: HeaderMap, body: impl Into<Bytes>) -> RawInbound {
    RawInbound {
        method,
        uri: uri.parse().unwrap(),
        headers,
        body: body.into(),
        received_at: Utc.timestamp_opt(NOW, 0).unwrap(),
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc.timestamp_opt(NOW, 0).unwrap()))
}

fn whatsapp_request() -> (WhatsApp, RawInbound) {
    let c = WhatsApp::builder(ChannelId::new("wa").unwrap())
        .with_app_secret("secret")
        .with_verify_token("v")
        .with_access_token("t")
        .with_phone_number_id("1")
        .with_clock(clock())
        .build()
        .unwrap();
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"changes": [{
        "field": "messages", "value": {
            "contacts": [{"profile": {"name": "Mei"}, "wa_id": "8613800138000"}],
            "messages": [{"from": "8613800138000", "id": "wamid.1", "timestamp": NOW.to_string(),
                          "type": "text", "text": {"body": "我的快递到哪了？订单号 20261111-0042"}}]}}]}]})
    .to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        sign(b"secret", body.as_bytes()).parse().unwrap(),
    );
    (c, raw(Method::POST, "/webhooks/wa", headers, body))
}

fn wechat_request() -> (WeChat, RawInbound) {
    let c = WeChat::builder(ChannelId::new("wx").unwrap())
        .with_token("tok")
        .with_app_id("wx1")
        .with_app_secret("s")
        .with_encoding_aes_key(AES_KEY)
        .with_clock(clock())
        .build()
        .unwrap();
    let crypt = MsgCrypt::new("tok", AES_KEY, "wx1").unwrap();
    let inner = format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o-1]]></FromUserName>\
         <CreateTime>{NOW}</CreateTime><MsgType><![CDATA[text]]></MsgType>\
         <Content><![CDATA[我的快递到哪了？订单号 20261111-0042]]></Content><MsgId>1</MsgId></xml>"
    );
    let enc = crypt.encrypt(&inner);
    let ts = NOW.to_string();
    let uri = format!(
        "/webhooks/wx?signature={}&timestamp={ts}&nonce=n&encrypt_type=aes&msg_signature={}",
        signature(&["tok", &ts, "n"]),
        crypt.msg_signature(&ts, "n", &enc)
    );
    let body = format!(
        "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><Encrypt><![CDATA[{enc}]]></Encrypt></xml>"
    );
    (c, raw(Method::POST, &uri, HeaderMap::new(), body))
}

fn ingest(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let (wa, wa_req) = whatsapp_request();
    let (wx, wx_req) = wechat_request();
    let mut g = c.benchmark_group("webhook_ingest");
    g.bench_function("baseline_json_parse_unchecked", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&wa_req.body)).unwrap())
    });
    g.bench_function("whatsapp_verify_and_parse", |b| {
        b.iter(|| {
            rt.block_on(wa.parse_inbound(black_box(wa_req.clone())))
                .unwrap()
        })
    });
    g.bench_function("wechat_safe_mode_verify_decrypt_parse", |b| {
        b.iter(|| {
            rt.block_on(wx.parse_inbound(black_box(wx_req.clone())))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = ingest
}
criterion_main!(benches);
