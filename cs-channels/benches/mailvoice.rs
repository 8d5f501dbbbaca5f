//! Email and voice ingest cost per item, each against a naive baseline in the same run:
//! - email: parsing a reply with mail-parser alone (baseline) vs the channel's whole parse
//!   (MIME, quoted-text cut, thread resolution by plus address / references / subject tag);
//! - voice: checking the Twilio signature and reading the form alone (baseline) vs the whole
//!   webhook (signature, IVR step, TwiML answer).
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use cs_channels::email::{EmailChannel, SmtpConfig};
use cs_channels::sms::signature;
use cs_channels::voice::{IvrTree, Voice};
use cs_channels::{Channel, RawInbound};
use cs_core::{ChannelId, ManualClock};
use http::{HeaderMap, Method};

const REPLY: &[u8] = b"From: Li Lei <lilei@customer.test>\r\n\
To: support+a1b2c3d4e5f60718@shop.test\r\n\
Subject: Re: Where is my parcel? [#a1b2c3d4e5f60718]\r\n\
Message-ID: <reply-1@customer.test>\r\n\
In-Reply-To: <out-1@shop.test>\r\n\
References: <first@customer.test> <out-1@shop.test>\r\n\
Date: Mon, 23 Nov 2026 03:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Still not here. Order 1234.\r\n\
\r\n\
On Sun, 22 Nov 2026, Shop Support wrote:\r\n\
> It ships tomorrow.\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>Still not here. Order 1234.</p><blockquote>It ships tomorrow.</blockquote>\r\n\
--b--\r\n";

const TREE: &str = r#"
start = "main"
[menus.main]
prompt = "Press 1 for orders, 2 for refunds."
options = [
  { digit = "1", keywords = ["order"], action = { type = "route", queue = "orders", skills = ["logistics"] } },
  { digit = "2", keywords = ["refund"], action = { type = "route", queue = "refunds" } },
]
"#;

fn email(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let channel = EmailChannel::builder(ChannelId::new("email").unwrap(), "support@shop.test")
        .with_smtp(SmtpConfig::new("127.0.0.1", 25))
        .with_thread_secret(b"bench thread secret".to_vec())
        .build()
        .unwrap();
    let mut g = c.benchmark_group("email_inbound");
    g.bench_function("baseline_mail_parser_only", |b| {
        b.iter(|| {
            black_box(
                mail_parser::MessageParser::default()
                    .parse(black_box(REPLY))
                    .unwrap()
                    .body_text(0)
                    .map(|t| t.len()),
            )
        })
    });
    g.bench_function("channel_parse_and_thread", |b| {
        b.iter(|| black_box(rt.block_on(channel.parse(black_box(REPLY))).unwrap()))
    });
    g.finish();
}

fn voice(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let clock = Arc::new(ManualClock::new(
        Utc.timestamp_opt(1_794_391_200, 0).unwrap(),
    ));
    let url = "https://shop.example/webhooks/voice";
    let voice = Voice::builder(ChannelId::new("voice").unwrap())
        .with_tree(IvrTree::from_toml(TREE).unwrap())
        .with_auth_token("token")
        .with_webhook_url(url)
        .with_clock(clock)
        .build()
        .unwrap();
    // A new call per iteration (then forgotten), signed as the provider would.
    let request_for = |n: u64| {
        let sid = format!("CA{n:032x}");
        let params = [
            ("CallSid", sid.as_str()),
            ("From", "+8613800138000"),
            ("To", "+14155550100"),
            ("CallStatus", "ringing"),
        ];
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-twilio-signature",
            signature("token", url, &params).parse().unwrap(),
        );
        (
            sid,
            RawInbound {
                method: Method::POST,
                uri: "/webhooks/voice".parse().unwrap(),
                headers,
                body: Bytes::from(body),
                received_at: Utc.timestamp_opt(1_794_391_200, 0).unwrap(),
            },
        )
    };
    let mut g = c.benchmark_group("voice_webhook");
    let mut n = 0u64;
    g.bench_function("baseline_signature_and_form_only", |b| {
        b.iter(|| {
            n += 1;
            let (_, request) = request_for(n);
            let pairs: Vec<(String, String)> =
                form_urlencoded::parse(&request.body).into_owned().collect();
            let given = request.headers["x-twilio-signature"].to_str().unwrap();
            black_box(signature("token", url, &pairs) == given)
        })
    });
    g.bench_function("webhook_ivr_step_and_twiml", |b| {
        b.iter(|| {
            n += 1;
            let (sid, request) = request_for(n);
            let parsed = rt.block_on(voice.parse_inbound(request)).unwrap();
            voice.ivr().end(&sid);
            black_box(parsed.response.body.len())
        })
    });
    g.finish();
}

criterion_group!(benches, email, voice);
criterion_main!(benches);
