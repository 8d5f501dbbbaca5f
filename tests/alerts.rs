//! Alerts fire once per episode, keep quiet through the cool-down, reach a real HTTP webhook
//! (a wiremock server) and the engine's event stream.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use omnidesk::Engine;
use omnidesk::analytics::{AlertRule, Analytics, AnalyticsConfig, MemoryRollupStore};
use omnidesk::bot::FaqBot;
use omnidesk::channels::WebChat;
use omnidesk::core::store::MemoryStore;
use omnidesk::core::{
    AgentId, ChannelId, ConversationId, DomainEvent, Event, Priority, Survey, TenantId,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 2, 0, 0).unwrap()
}

fn ev(minutes: i64, secs: i64, kind: DomainEvent) -> Event {
    Event::new(
        TenantId::default(),
        t0() + Duration::minutes(minutes) + Duration::seconds(secs),
        kind,
    )
}

/// A conversation that waits `wait` seconds in the queue, starting at `minutes`.
fn slow_pickup(minutes: i64, wait: i64) -> Vec<Event> {
    let c = ConversationId::new();
    vec![
        ev(
            minutes,
            0,
            DomainEvent::Queued {
                conversation: c,
                priority: Priority::Normal,
                skills: vec![],
            },
        ),
        ev(
            minutes,
            wait,
            DomainEvent::AgentAssigned {
                conversation: c,
                agent: AgentId::new(),
            },
        ),
    ]
}

async fn engine() -> Engine {
    let webchat = Arc::new(
        WebChat::builder(ChannelId::new("webchat").unwrap())
            .with_secret(*b"alert test secret, 16+ bytes")
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

#[tokio::test]
async fn an_alert_fires_once_per_episode_after_its_cool_down() {
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/alerts"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&hook)
        .await;
    let config = AnalyticsConfig {
        webhook: Some(format!("{}/alerts", hook.uri())),
        cooldown: std::time::Duration::from_secs(30 * 60),
        alerts: vec![AlertRule::QueueWaitAbove {
            name: "queue slow".into(),
            seconds: 60.0,
            window_minutes: 15,
        }],
        ..AnalyticsConfig::default()
    };
    let a = Analytics::builder(Arc::new(MemoryRollupStore::new()))
        .with_config(config)
        .build()
        .await
        .unwrap();
    let engine = engine().await;
    let mut stream = engine.subscribe();
    let at = |m: i64| t0() + Duration::minutes(m);

    // Minute 0: a 2-minute wait. Minute 3: the episode starts, the alert fires.
    a.replay(&slow_pickup(0, 120));
    a.flush().await.unwrap();
    let fired = a.evaluate_alerts(Some(&engine), at(3)).await.unwrap();
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].rule, "queue slow");
    assert_eq!(fired[0].value, 120.0);
    assert!(fired[0].message.contains("120 s"), "{}", fired[0].message);
    // Still slow at minute 4: the same episode, no second alert.
    assert!(
        a.evaluate_alerts(Some(&engine), at(4))
            .await
            .unwrap()
            .is_empty()
    );
    // Minute 20: the wait fell out of the window: the episode ends quietly.
    assert!(
        a.evaluate_alerts(Some(&engine), at(20))
            .await
            .unwrap()
            .is_empty()
    );
    // Minute 22: slow again, a new episode, but within 30 minutes of the last alert.
    a.replay(&slow_pickup(21, 90));
    a.flush().await.unwrap();
    assert!(
        a.evaluate_alerts(Some(&engine), at(22))
            .await
            .unwrap()
            .is_empty()
    );
    // Minute 40 quiet; minute 45 slow again, past the cool-down: it fires.
    assert!(
        a.evaluate_alerts(Some(&engine), at(40))
            .await
            .unwrap()
            .is_empty()
    );
    a.replay(&slow_pickup(44, 100));
    a.flush().await.unwrap();
    assert_eq!(
        a.evaluate_alerts(Some(&engine), at(45))
            .await
            .unwrap()
            .len(),
        1
    );

    // Two POSTs with the alert as JSON.
    let posts = hook.received_requests().await.unwrap();
    assert_eq!(posts.len(), 2);
    let body: serde_json::Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(body["rule"], "queue slow");
    assert_eq!(body["threshold"], 60.0);
    assert_eq!(body["tenant"], "default");
    // And two events on the engine's stream.
    let mut raised = 0;
    while let Ok(e) = stream.try_recv() {
        if let DomainEvent::AlertRaised { rule, .. } = e.kind {
            assert_eq!(rule, "queue slow");
            raised += 1;
        }
    }
    assert_eq!(raised, 2);
    assert_eq!(a.recent_alerts().len(), 2);
}

#[tokio::test]
async fn intent_surges_sla_breaches_and_falling_csat() {
    let config = AnalyticsConfig {
        alerts: vec![
            AlertRule::IntentSurge {
                name: "surge".into(),
                intent: None,
                rise_pct: 50.0,
                min_volume: 10,
                window_minutes: 60,
                require_containment_drop: true,
            },
            AlertRule::AgentCsatBelow {
                name: "csat".into(),
                share: 0.7,
                min_responses: 3,
                window_minutes: 1440,
            },
            AlertRule::SlaBreachesAbove {
                name: "breaches".into(),
                count: 1,
            },
        ],
        ..AnalyticsConfig::default()
    };
    let a = Analytics::builder(Arc::new(MemoryRollupStore::new()))
        .with_config(config)
        .build()
        .await
        .unwrap();
    let mut events = Vec::new();
    let answer = |m: i64, intent: &str, c: ConversationId| {
        ev(
            m,
            0,
            DomainEvent::BotAnswered {
                conversation: c,
                intent: Some(intent.into()),
                confidence: 0.9,
            },
        )
    };
    // The hour before: 10 refund questions, all contained (closed without a hand-over).
    for i in 0..10 {
        let c = ConversationId::new();
        events.push(answer(i, "refund", c));
        events.push(ev(
            i,
            30,
            DomainEvent::StateChanged {
                conversation: c,
                from: omnidesk::core::ConversationState::Bot,
                to: omnidesk::core::ConversationState::Closed,
            },
        ));
    }
    // This hour: 20, half of them handed over; 4 order questions, steady.
    for i in 0..20 {
        let c = ConversationId::new();
        events.push(answer(61 + i, "refund", c));
        events.push(ev(
            61 + i,
            30,
            if i % 2 == 0 {
                DomainEvent::HandoffRequested {
                    conversation: c,
                    reason: "complaint".into(),
                    summary: String::new(),
                }
            } else {
                DomainEvent::StateChanged {
                    conversation: c,
                    from: omnidesk::core::ConversationState::Bot,
                    to: omnidesk::core::ConversationState::Closed,
                }
            },
        ));
    }
    for i in 0..4 {
        events.push(answer(61 + i, "order_status", ConversationId::new()));
    }
    // An agent rated 2, 3 and 5: 33% satisfied.
    let agent = AgentId::new();
    for (i, score) in [2u8, 3, 5].into_iter().enumerate() {
        events.push(ev(
            70 + i as i64,
            0,
            DomainEvent::SurveyAnswered {
                conversation: ConversationId::new(),
                agent: Some(agent),
                survey: Survey::Csat,
                score,
                comment: None,
            },
        ));
    }
    // Two ticket SLA breaches this hour.
    for i in 0..2 {
        events.push(ev(
            90 + i,
            0,
            DomainEvent::TicketUpdated {
                ticket: omnidesk::core::TicketId::new(),
                number: 1000 + i as u64,
                change: "sla_breached".into(),
                detail: serde_json::json!({"type": "sla_breached", "metric": "first_response"}),
            },
        ));
    }
    a.replay(&events);
    a.flush().await.unwrap();
    let now = t0() + Duration::minutes(119);
    let mut fired = a.evaluate_alerts(None, now).await.unwrap();
    fired.sort_by(|x, y| x.rule.cmp(&y.rule));
    let summary: Vec<(&str, &str)> = fired
        .iter()
        .map(|f| (f.rule.as_str(), f.subject.as_str()))
        .collect();
    let agent_id = agent.to_string();
    assert_eq!(
        summary,
        [
            ("breaches", ""),
            ("csat", agent_id.as_str()),
            ("surge", "refund")
        ]
    );
    let surge = &fired[2];
    assert_eq!(surge.value, 100.0, "10 -> 20");
    assert!(
        surge.message.contains("fell from 100% to 50%"),
        "{}",
        surge.message
    );
    assert!((fired[1].value - 1.0 / 3.0).abs() < 1e-9);
}
