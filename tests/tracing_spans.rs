//! Tracing spans carry the conversation id along the data path (a test binary of its own: a
//! thread's default subscriber sees only callsites no other thread registered first).

use std::io::Write;
use std::sync::{Arc, Mutex};

use omnidesk::Engine;
use omnidesk::bot::FaqBot;
use omnidesk::channels::{InboundMessage, WebChat};
use omnidesk::core::store::MemoryStore;
use omnidesk::core::{ChannelId, ChannelKind, Content, Identity};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn spans_carry_the_conversation_id_along_the_data_path() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let webchat = Arc::new(
        WebChat::builder(ChannelId::new("webchat").unwrap())
            .with_secret(*b"tracing test secret, 16+ bytes")
            .build()
            .unwrap(),
    );
    let engine = Engine::builder()
        .with_store(Arc::new(MemoryStore::new()))
        .with_bot(Arc::new(
            FaqBot::from_text(omnidesk::bot::ECOMMERCE_FAQ).unwrap(),
        ))
        .with_channel(webchat)
        .build()
        .await
        .unwrap();
    let conv = engine
        .handle_inbound_and_wait(InboundMessage {
            channel: ChannelId::new("webchat").unwrap(),
            from: Identity::new(ChannelKind::WebChat, "traced"),
            provider_message_id: None,
            content: Content::text("When will my order ship?"),
            display_name: None,
            language: None,
            sent_at: None,
        })
        .await
        .unwrap()
        .message
        .conversation;
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let tagged = format!("conversation={conv}");
    // The bot's answer is stored inside the dispatch, bot and outbox spans, all tagged.
    let answer = text
        .lines()
        .find(|l| l.contains("MessageSent") && l.contains("author: Bot"))
        .unwrap_or_else(|| panic!("no bot answer logged in:\n{text}"));
    for span in ["ingest{", "dispatch{", "run_bot{", "send_to_customer{"] {
        assert!(answer.contains(span), "{span} missing: {answer}");
    }
    assert!(answer.matches(&tagged).count() >= 3, "{answer}");
}
