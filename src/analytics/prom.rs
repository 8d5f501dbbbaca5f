//! Prometheus: the data path's counters, histograms and gauges through the `metrics` facade,
//! rendered in the Prometheus text format by `metrics-exporter-prometheus` (its recorder and
//! renderer only; the service serves the text at `/metrics`).
//!
//! | metric | type | labels | what |
//! | --- | --- | --- | --- |
//! | `omnidesk_events_total` | counter | `type` | domain events seen |
//! | `omnidesk_messages_in_total` | counter | `channel` | customer messages stored |
//! | `omnidesk_messages_out_total` | counter | `channel`, `author` | bot, agent and system messages queued for delivery |
//! | `omnidesk_routing_decisions_total` | counter | `decision` | `queued`, `offered`, `assigned`, `offer_rejected`, `offer_expired`, `abandoned` |
//! | `omnidesk_routing_latency_seconds` | histogram | | time inside the router to queue a conversation (engine) |
//! | `omnidesk_bot_latency_seconds` | histogram | | time the bot takes to answer (engine) |
//! | `omnidesk_outbox_retries_total` | counter | | deliveries that failed for now and will be retried (engine) |
//! | `omnidesk_dead_letters_total` | counter | | deliveries given up |
//! | `omnidesk_handoffs_total` | counter | `reason` | hand-overs to humans |
//! | `omnidesk_queue_depth` | gauge | | conversations waiting |
//! | `omnidesk_queue_longest_wait_seconds` | gauge | | how long the first in line has waited |
//! | `omnidesk_agents` | gauge | `presence` | agents online, away, offline |
//! | `omnidesk_agents_busy` | gauge | | agents holding at least one conversation |
//! | `omnidesk_console_sockets` | gauge | | open agent console sockets (service) |
//! | `omnidesk_tcp_accepted_total` | counter | `nodelay` | connections accepted, by whether `TCP_NODELAY` is set on them (read back from the socket) |
//! | `omnidesk_analytics_lagged_events_total` | counter | | events the analytics subscriber missed (fell behind) |
//! | `omnidesk_analytics_flush_errors_total` | counter | | rollup flushes that failed (retried) |

use cs_core::{Author, Direction, DomainEvent, Event};

/// Histogram buckets for latencies, seconds.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The process's Prometheus handle: installed as the global `metrics` recorder on first use.
/// When the application installed another recorder first, the handle renders nothing of the
/// data path (the metrics go to that recorder) and `None` is returned.
#[cfg(feature = "server")]
pub fn handle() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(_) => {
                    tracing::warn!("another metrics recorder is installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// The data path in Prometheus text format (empty without the recorder).
#[cfg(feature = "server")]
pub fn render() -> String {
    handle().map(|h| h.render()).unwrap_or_default()
}

#[cfg(feature = "server")]
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!("omnidesk_events_total", "Domain events seen, by type.");
    describe_counter!(
        "omnidesk_messages_in_total",
        "Customer messages stored, by channel."
    );
    describe_counter!(
        "omnidesk_messages_out_total",
        "Bot, agent and system messages queued for delivery, by channel and author."
    );
    describe_counter!(
        "omnidesk_routing_decisions_total",
        "Routing outcomes, by decision."
    );
    describe_histogram!(
        "omnidesk_routing_latency_seconds",
        metrics::Unit::Seconds,
        "Time inside the router to queue a conversation."
    );
    describe_histogram!(
        "omnidesk_bot_latency_seconds",
        metrics::Unit::Seconds,
        "Time the bot takes to answer a message."
    );
    describe_counter!(
        "omnidesk_outbox_retries_total",
        "Deliveries that failed for now and will be retried."
    );
    describe_counter!("omnidesk_dead_letters_total", "Deliveries given up.");
    describe_counter!(
        "omnidesk_tcp_accepted_total",
        "Connections accepted, by whether TCP_NODELAY is set on them."
    );
    describe_counter!(
        "omnidesk_handoffs_total",
        "Hand-overs to humans, by reason."
    );
    describe_gauge!(
        "omnidesk_queue_depth",
        "Conversations waiting for an agent."
    );
    describe_gauge!(
        "omnidesk_queue_longest_wait_seconds",
        metrics::Unit::Seconds,
        "How long the first conversation in line has waited."
    );
    describe_gauge!("omnidesk_agents", "Agents by presence.");
    describe_gauge!(
        "omnidesk_agents_busy",
        "Agents holding at least one conversation."
    );
    describe_gauge!("omnidesk_console_sockets", "Open agent console sockets.");
    describe_counter!(
        "omnidesk_analytics_lagged_events_total",
        "Events the analytics subscriber missed because it fell behind."
    );
    describe_counter!(
        "omnidesk_analytics_flush_errors_total",
        "Rollup flushes that failed (they are retried)."
    );
}

fn event_type(kind: &DomainEvent) -> &'static str {
    use DomainEvent as E;
    match kind {
        E::CustomerCreated { .. } => "customer_created",
        E::IdentityLinked { .. } => "identity_linked",
        E::ConversationOpened { .. } => "conversation_opened",
        E::MessageReceived { .. } => "message_received",
        E::DuplicateIgnored { .. } => "duplicate_ignored",
        E::MessageSent { .. } => "message_sent",
        E::DeliveryFailed { .. } => "delivery_failed",
        E::StateChanged { .. } => "state_changed",
        E::BotAnswered { .. } => "bot_answered",
        E::HandoffRequested { .. } => "handoff_requested",
        E::Queued { .. } => "queued",
        E::QueueAbandoned { .. } => "queue_abandoned",
        E::PriorityChanged { .. } => "priority_changed",
        E::Offered { .. } => "offered",
        E::OfferClosed { .. } => "offer_closed",
        E::SentimentScored { .. } => "sentiment_scored",
        E::AgentAssigned { .. } => "agent_assigned",
        E::AgentPresenceChanged { .. } => "agent_presence_changed",
        E::CustomersMerged { .. } => "customers_merged",
        E::CustomersUnmerged { .. } => "customers_unmerged",
        E::TicketUpdated { .. } => "ticket_updated",
        E::TicketOpened { .. } => "ticket_opened",
        E::SurveyAnswered { .. } => "survey_answered",
        E::AlertRaised { .. } => "alert_raised",
        E::ComplianceHit { .. } => "compliance_hit",
        _ => "other",
    }
}

/// Counts one event on the Prometheus counters (a no-op without a recorder).
pub fn record(event: &Event) {
    use DomainEvent as E;
    metrics::counter!("omnidesk_events_total", "type" => event_type(&event.kind)).increment(1);
    match &event.kind {
        E::MessageReceived { message } => {
            metrics::counter!("omnidesk_messages_in_total", "channel" => message.channel_kind.as_str())
                .increment(1);
        }
        E::MessageSent { message } if message.direction != Direction::Internal => {
            let author = match message.author {
                Author::Bot => "bot",
                Author::Agent { .. } => "agent",
                _ => "system",
            };
            metrics::counter!(
                "omnidesk_messages_out_total",
                "channel" => message.channel_kind.as_str(),
                "author" => author
            )
            .increment(1);
        }
        E::Queued { .. } => decision("queued"),
        E::Offered { .. } => decision("offered"),
        E::AgentAssigned { .. } => decision("assigned"),
        E::QueueAbandoned { .. } => decision("abandoned"),
        E::OfferClosed { outcome, .. } => decision(if outcome == "rejected" {
            "offer_rejected"
        } else {
            "offer_expired"
        }),
        E::HandoffRequested { reason, .. } => {
            metrics::counter!("omnidesk_handoffs_total", "reason" => reason.clone()).increment(1);
        }
        E::DeliveryFailed { .. } => {
            metrics::counter!("omnidesk_dead_letters_total").increment(1);
        }
        _ => {}
    }
}

fn decision(d: &'static str) {
    metrics::counter!("omnidesk_routing_decisions_total", "decision" => d).increment(1);
}

/// Sets the live gauges from a router snapshot.
pub fn gauges(snapshot: &cs_routing::Snapshot, now: chrono::DateTime<chrono::Utc>) {
    metrics::gauge!("omnidesk_queue_depth").set(snapshot.queued.len() as f64);
    let longest = snapshot
        .queued
        .iter()
        .map(|q| (now - q.task.enqueued_at).num_milliseconds().max(0))
        .max()
        .unwrap_or(0);
    metrics::gauge!("omnidesk_queue_longest_wait_seconds").set(longest as f64 / 1000.0);
    use cs_core::Presence;
    for (presence, name) in [
        (Presence::Online, "online"),
        (Presence::Away, "away"),
        (Presence::Offline, "offline"),
    ] {
        let n = snapshot
            .agents
            .iter()
            .filter(|a| a.presence == presence)
            .count();
        metrics::gauge!("omnidesk_agents", "presence" => name).set(n as f64);
    }
    let busy = snapshot
        .agents
        .iter()
        .filter(|a| !a.tasks.is_empty())
        .count();
    metrics::gauge!("omnidesk_agents_busy").set(busy as f64);
}
