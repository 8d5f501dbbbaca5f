//! The engine's side of analytics: a customer leaving the queue, survey answers, and the
//! subscriber counting a live engine.

use std::sync::Arc;

use omnidesk::Engine;
use omnidesk::analytics::{Analytics, Dim, Grain, MemoryRollupStore, Metric, RollupQuery};
use omnidesk::bot::FaqBot;
use omnidesk::channels::{InboundMessage, WebChat};
use omnidesk::core::store::MemoryStore;
use omnidesk::core::{
    ChannelId, ChannelKind, Content, ConversationState, DomainEvent, Identity, Survey,
};

async fn engine() -> Engine {
    let webchat = Arc::new(
        WebChat::builder(ChannelId::new("webchat").unwrap())
            .with_secret(*b"engine test secret, 16+ bytes")
            .build()
            .unwrap(),
    );
    Engine::builder()
        .with_store(Arc::new(MemoryStore::new()))
        .with_bot(Arc::new(
            FaqBot::from_text(omnidesk::bot::ECOMMERCE_FAQ).unwrap(),
        ))
        .with_channel(webchat)
        .build()
        .await
        .unwrap()
}

async fn say(engine: &Engine, who: &str, text: &str) -> omnidesk::core::ConversationId {
    engine
        .handle_inbound_and_wait(InboundMessage {
            channel: ChannelId::new("webchat").unwrap(),
            from: Identity::new(ChannelKind::WebChat, who),
            provider_message_id: None,
            content: Content::text(text),
            display_name: None,
            language: None,
            sent_at: None,
        })
        .await
        .unwrap()
        .message
        .conversation
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_leaves_the_queue_and_answers_a_survey() {
    let engine = engine().await;
    let analytics = Analytics::builder(Arc::new(MemoryRollupStore::new()))
        .build()
        .await
        .unwrap();
    let running = analytics.start(&engine);
    let mut events = engine.subscribe();

    let conv = say(&engine, "leaver", "I want to talk to a human").await;
    assert_eq!(
        engine.conversation(conv).await.unwrap().state,
        ConversationState::Queued,
        "nobody is online: it waits"
    );
    assert!(engine.customer_left(conv, "customer_left").await.unwrap());
    assert_eq!(
        engine.conversation(conv).await.unwrap().state,
        ConversationState::Closed
    );
    assert!(engine.queue().await.unwrap().queued.is_empty());
    assert!(
        !engine.customer_left(conv, "customer_left").await.unwrap(),
        "not waiting any more: nothing changes"
    );
    assert!(matches!(
        engine.record_survey(conv, Survey::Nps, 11, None).await,
        Err(omnidesk::Error::InvalidInput { .. })
    ));
    engine
        .record_survey(conv, Survey::Nps, 9, Some("quick".into()))
        .await
        .unwrap();

    let mut seen = (false, false);
    while let Ok(e) = events.try_recv() {
        match e.kind {
            DomainEvent::QueueAbandoned { conversation, .. } => seen.0 = conversation == conv,
            DomainEvent::SurveyAnswered {
                conversation,
                score,
                ..
            } => seen.1 = conversation == conv && score == 9,
            _ => {}
        }
    }
    assert_eq!(seen, (true, true));

    // The subscriber counted it.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        analytics.flush().await.unwrap();
        let rows = analytics
            .query(&RollupQuery {
                tenant: "default".into(),
                grain: Grain::Day,
                from: chrono::Utc::now() - chrono::Duration::days(2),
                to: chrono::Utc::now() + chrono::Duration::days(2),
                dim: Dim::All,
                metrics: vec![Metric::Abandoned, Metric::NpsPromoters, Metric::Queued],
            })
            .await
            .unwrap();
        let count = |m: Metric| {
            rows.iter()
                .filter(|r| r.metric == m)
                .map(|r| r.stat.count)
                .sum::<i64>()
        };
        if count(Metric::Abandoned) == 1 && count(Metric::NpsPromoters) == 1 {
            assert_eq!(count(Metric::Queued), 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    running.stop();
}
