//! Behaviour every [`ThreadStore`] and [`AttachmentSink`] must show. A new backend's tests call
//! these functions once each; they panic with a message on the first broken rule.

use cs_core::ConversationId;

use super::attachment::AttachmentSink;
use super::thread::{ThreadKey, ThreadState, ThreadStore};

/// Checks a [`ThreadStore`]: Message-IDs keep their first thread, states round-trip, and the
/// conversation index follows the latest save.
///
/// # Panics
/// On the first rule the store breaks.
pub async fn thread_store(store: &dyn ThreadStore) {
    let a = ThreadKey::new("conformancea").expect("valid token");
    let b = ThreadKey::new("conformanceb").expect("valid token");
    let id = format!("{}@conformance.test", uuid::Uuid::new_v4());

    assert_eq!(store.thread_of(&id).await.expect("thread_of"), None);
    assert!(
        store.record(&id, &a).await.expect("record"),
        "a new id is new"
    );
    assert!(
        !store.record(&id, &b).await.expect("record again"),
        "a recorded id is not new"
    );
    assert_eq!(
        store.thread_of(&id).await.expect("thread_of"),
        Some(a.clone()),
        "an id keeps its first thread"
    );

    assert_eq!(store.load(&b).await.expect("load"), None);
    let conversation = ConversationId::new();
    let mut state = ThreadState::new(a.clone());
    state.subject = Some("Where is my order?".into());
    state.conversation = Some(conversation);
    state.message_ids = vec![id.clone()];
    store.save(&state).await.expect("save");
    assert_eq!(store.load(&a).await.expect("load"), Some(state.clone()));
    assert_eq!(
        store
            .thread_of_conversation(conversation)
            .await
            .expect("by conversation"),
        Some(a.clone())
    );

    let mut other = ThreadState::new(b.clone());
    other.conversation = Some(conversation);
    store.save(&other).await.expect("save other");
    assert_eq!(
        store
            .thread_of_conversation(conversation)
            .await
            .expect("by conversation"),
        Some(b),
        "the latest thread saved with a conversation wins"
    );
    assert_eq!(
        store.load(&a).await.expect("load"),
        Some(state),
        "saving one thread leaves another alone"
    );
    assert_eq!(
        store
            .thread_of_conversation(ConversationId::new())
            .await
            .expect("unknown conversation"),
        None
    );
}

/// Checks an [`AttachmentSink`]: stored bytes load back by URL, equal content gives equal URLs,
/// different content different ones, and hostile names stay harmless.
///
/// # Panics
/// On the first rule the sink breaks.
pub async fn attachment_sink(sink: &dyn AttachmentSink) {
    let bytes = b"%PDF-1.4 invoice".to_vec();
    let url = sink
        .store("invoice.pdf", "application/pdf", &bytes)
        .await
        .expect("store");
    assert!(
        url.ends_with("invoice.pdf"),
        "the URL keeps the name: {url}"
    );
    assert_eq!(sink.load(&url).await.expect("load"), Some(bytes.clone()));
    let again = sink
        .store("invoice.pdf", "application/pdf", &bytes)
        .await
        .expect("store again");
    assert_eq!(
        url, again,
        "the same content under the same name has one URL"
    );
    let other = sink
        .store("invoice.pdf", "application/pdf", b"%PDF-1.4 another")
        .await
        .expect("store other");
    assert_ne!(url, other, "different content has its own URL");
    assert_eq!(
        sink.load(&other).await.expect("load other"),
        Some(b"%PDF-1.4 another".to_vec())
    );

    let hostile = sink
        .store("../../etc/passwd", "text/plain", b"root")
        .await
        .expect("store hostile name");
    assert!(
        !hostile.contains(".."),
        "path segments are stripped: {hostile}"
    );
    assert_eq!(
        sink.load(&hostile).await.expect("load"),
        Some(b"root".to_vec())
    );
    assert_eq!(
        sink.load("memory://attachments/none")
            .await
            .expect("load unknown"),
        None
    );
}
