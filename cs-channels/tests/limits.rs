//! Parsers that cannot be pushed over: every adapter checks size, then signature (where the
//! provider signs the raw body), then structure, then parses; each limit is a typed error that
//! the router answers with a JSON reason. The widget socket closes with 1009 on a frame over its
//! limit and refuses a long message with an error frame naming it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{StoreHandler, assert_unauthenticated, clock, raw, router_for, through_router};
use cs_channels::{Channel, Error};
use cs_core::ChannelId;
use http::Method;

/// 2026-11-11T10:00:00Z, the test clock's start.
const NOW: i64 = 1_794_391_200;

/// JSON nested `depth` levels deep, with a valid object at the bottom.
fn nested_json(depth: usize) -> String {
    format!("{}{{}}{}", "[".repeat(depth - 1), "]".repeat(depth - 1))
}

fn assert_too_complex<T: std::fmt::Debug>(r: cs_channels::Result<T>) {
    match r {
        Err(Error::TooComplex { .. }) => {}
        other => panic!("expected TooComplex, got {other:?}"),
    }
}

fn whatsapp() -> Arc<cs_channels::whatsapp::WhatsApp> {
    Arc::new(
        cs_channels::whatsapp::WhatsApp::builder(ChannelId::new("wa").unwrap())
            .with_app_secret("meta-app-secret")
            .with_verify_token("verify-me")
            .with_access_token("token")
            .with_phone_number_id("100")
            .with_clock(clock())
            .build()
            .unwrap(),
    )
}

#[tokio::test]
async fn whatsapp_checks_the_signature_before_the_nesting_and_the_nesting_before_serde() {
    use cs_channels::whatsapp::{SIGNATURE_HEADER, sign};
    let wa = whatsapp();
    // Deep enough to make serde_json give up at its own recursion limit (128) only after work;
    // the scan refuses it first, and says why.
    let deep = nested_json(10_000);
    let signed = sign(b"meta-app-secret", deep.as_bytes());
    let request = raw(
        Method::POST,
        "/webhooks/wa",
        &[(SIGNATURE_HEADER, &signed)],
        deep.clone(),
    );
    assert_too_complex(wa.parse_inbound(request.clone()).await);
    let (status, body) =
        through_router(&router_for(wa.clone(), StoreHandler::new()), &request).await;
    assert_eq!(status, 413);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"], "too_complex");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("JSON nesting depth")
    );
    // Unsigned, the same body is not even scanned: the answer is 401, not 413.
    let forged = raw(
        Method::POST,
        "/webhooks/wa",
        &[(SIGNATURE_HEADER, "sha256=00")],
        deep,
    );
    assert_unauthenticated(wa.parse_inbound(forged).await);
    // A real notification is far below the limit.
    let ok = r#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"messages":[{"from":"1","id":"wamid.1","timestamp":"1794391200","type":"text","text":{"body":"hi"}}]}}]}]}"#;
    let request = raw(
        Method::POST,
        "/webhooks/wa",
        &[(SIGNATURE_HEADER, &sign(b"meta-app-secret", ok.as_bytes()))],
        ok,
    );
    assert_eq!(wa.parse_inbound(request).await.unwrap().messages.len(), 1);
}

#[tokio::test]
async fn telegram_refuses_an_oversized_body_before_anything_else() {
    use cs_channels::telegram::{SECRET_HEADER, Telegram};
    let tg = Telegram::builder(ChannelId::new("tg").unwrap())
        .with_bot_token("1:A")
        .with_secret_token("s3cret")
        .with_max_body_bytes(1024)
        .build()
        .unwrap();
    // No secret header at all: the size is still the first answer (no body over the limit is
    // kept in memory for any later step).
    let big = raw(Method::POST, "/webhooks/tg", &[], vec![b' '; 2048]);
    assert!(matches!(
        tg.parse_inbound(big).await,
        Err(Error::PayloadTooLarge {
            size: 2048,
            limit: 1024
        })
    ));
    let deep = raw(
        Method::POST,
        "/webhooks/tg",
        &[(SECRET_HEADER, "s3cret")],
        nested_json(100),
    );
    assert_too_complex(tg.parse_inbound(deep).await);
}

#[tokio::test]
async fn the_generic_webhook_refuses_deep_json_after_its_signature() {
    use cs_channels::webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, Webhook, sign};
    let hook = Webhook::builder(ChannelId::new("jd").unwrap())
        .with_secret(*b"0123456789abcdef")
        .with_clock(clock())
        .build()
        .unwrap();
    let deep = nested_json(cs_channels::limits::MAX_JSON_DEPTH + 1);
    let sig = sign(b"0123456789abcdef", NOW, deep.as_bytes());
    let request = raw(
        Method::POST,
        "/webhooks/jd",
        &[
            (TIMESTAMP_HEADER, &NOW.to_string()),
            (SIGNATURE_HEADER, &sig),
        ],
        deep.clone(),
    );
    assert_too_complex(hook.parse_inbound(request).await);
    let forged = raw(
        Method::POST,
        "/webhooks/jd",
        &[
            (TIMESTAMP_HEADER, &NOW.to_string()),
            (SIGNATURE_HEADER, "sha256=00"),
        ],
        deep,
    );
    assert_unauthenticated(hook.parse_inbound(forged).await);
}

#[tokio::test]
async fn sms_forms_are_bounded_in_fields_and_field_size_before_decoding() {
    use cs_channels::limits::{MAX_FORM_FIELD_BYTES, MAX_FORM_FIELDS};
    use cs_channels::sms::{SIGNATURE_HEADER, Sms, signature};
    const URL: &str = "https://shop.example/webhooks/sms";
    let sms = Sms::builder(ChannelId::new("sms").unwrap())
        .with_account_sid("AC1")
        .with_auth_token("token")
        .with_webhook_url(URL)
        .with_from("+15550001111")
        .build()
        .unwrap();
    // Twilio signs the decoded parameters, so the form must be decoded before the signature can
    // be checked: its shape is bounded first, whoever sent it.
    let many: String = (0..=MAX_FORM_FIELDS)
        .map(|i| format!("F{i}=x"))
        .collect::<Vec<_>>()
        .join("&");
    let params: Vec<(String, String)> = form_urlencoded::parse(many.as_bytes())
        .into_owned()
        .collect();
    let sig = signature("token", URL, &params);
    let request = raw(
        Method::POST,
        "/webhooks/sms",
        &[(SIGNATURE_HEADER, &sig)],
        many,
    );
    assert_too_complex(sms.parse_inbound(request).await);
    let long = format!(
        "MessageSid=SM1&From=%2B1&Body={}",
        "x".repeat(MAX_FORM_FIELD_BYTES)
    );
    let request = raw(Method::POST, "/webhooks/sms", &[], long);
    assert_too_complex(sms.parse_inbound(request).await);
}

#[cfg(feature = "voice")]
#[tokio::test]
async fn voice_forms_are_bounded_too() {
    use cs_channels::voice::{IvrTree, Voice};
    let tree = IvrTree::from_toml(
        "start = \"main\"\n[menus.main]\nprompt = \"Press 0.\"\noptions = [{ digit = \"0\", action = { type = \"route\", queue = \"general\" } }]\n",
    )
    .unwrap();
    let voice = Voice::builder(ChannelId::new("voice").unwrap())
        .with_tree(tree)
        .with_auth_token("token")
        .with_webhook_url("https://shop.example/webhooks/voice")
        .with_clock(clock())
        .build()
        .unwrap();
    let many = "CallSid=CA1&".repeat(cs_channels::limits::MAX_FORM_FIELDS + 1);
    let request = raw(Method::POST, "/webhooks/voice", &[], many);
    assert_too_complex(voice.parse_inbound(request).await);
}

#[cfg(feature = "voice")]
#[test]
fn ivr_menu_files_are_bounded_before_parsing() {
    use cs_channels::voice::IvrTree;
    let deep = format!(
        "start = \"main\"\nx = {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert_too_complex(IvrTree::from_toml(&deep));
    let big = format!(
        "start = \"main\"\n{}",
        "# padding\n".repeat(cs_channels::limits::MAX_TOML_BYTES / 10 + 1)
    );
    assert!(matches!(
        IvrTree::from_toml(&big),
        Err(Error::PayloadTooLarge { .. })
    ));
}

#[cfg(feature = "email")]
mod email {
    use super::*;
    use cs_channels::email::{
        EmailChannel, MAX_MIME_DELIMITERS, MAX_MIME_MULTIPARTS, MAX_PARENTS, SmtpConfig, ThreadKey,
        check_mime,
    };

    fn channel() -> EmailChannel {
        EmailChannel::builder(ChannelId::new("email").unwrap(), "support@shop.test")
            .with_smtp(SmtpConfig::new("127.0.0.1", 1))
            .with_thread_secret("a thread secret of 16+ bytes")
            .build()
            .unwrap()
    }

    #[test]
    fn deeply_nested_multipart_is_refused_before_mail_parser_sees_it() {
        let mut raw = String::from("From: a@example.com\r\nSubject: nest\r\n");
        for i in 0..=MAX_MIME_MULTIPARTS {
            raw.push_str(&format!(
                "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
            ));
        }
        raw.push_str("\r\nbottom\r\n");
        assert_too_complex(check_mime(raw.as_bytes()));
        let many_parts = format!(
            "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n{}",
            "--b\r\n\r\nx\r\n".repeat(MAX_MIME_DELIMITERS + 1)
        );
        assert_too_complex(check_mime(many_parts.as_bytes()));
        let headers = "X-A: 1\r\n".repeat(cs_channels::email::MAX_HEADER_LINES + 1);
        assert_too_complex(check_mime(headers.as_bytes()));
    }

    #[tokio::test]
    async fn a_mail_with_thousands_of_references_keeps_the_newest_few() {
        let refs: Vec<String> = (0..20_000).map(|i| format!("<r{i}@example.com>")).collect();
        let raw = format!(
            "From: a@example.com\r\nTo: support@shop.test\r\nSubject: hi\r\nMessage-ID: <m@example.com>\r\nIn-Reply-To: <r19999@example.com>\r\nReferences: {}\r\n\r\nbody\r\n",
            refs.join(" ")
        );
        let started = Instant::now();
        let mail = channel().parse(raw.as_bytes()).await.unwrap();
        // Linear: 20,000 ids used to be compared with each other (200 million comparisons).
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(mail.message_id, "m@example.com");
        let _ = MAX_PARENTS;
    }

    #[test]
    fn subject_tags_are_found_in_linear_time() {
        // 300 KB of unclosed tags: each `[#` used to search to the end of the subject for `]`.
        let subject = format!("{} [#a1b2c3d4]", "[#".repeat(150_000));
        let started = Instant::now();
        assert_eq!(
            ThreadKey::from_subject(&subject).map(|k| k.as_str().to_owned()),
            Some("a1b2c3d4".to_owned())
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_subject_of_many_tags_and_prefixes_threads_in_linear_time() {
        let subject = format!("{}{}", "Re: ".repeat(50_000), "[#x] ".repeat(50_000));
        let raw =
            format!("From: a@example.com\r\nTo: support@shop.test\r\nSubject: {subject}\r\n\r\n");
        let started = Instant::now();
        let parsed = channel().parse(raw.as_bytes()).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Nothing but prefixes and tags: no text is made up from the subject.
        assert!(
            matches!(parsed, Err(Error::InvalidInput { .. })),
            "{parsed:?}"
        );
    }
}
