//! The conformance suite of the cross-node services in [`crate::bus`]: every [`EventBus`],
//! [`CommandQueue`], [`LeaseStore`] and [`PresenceStore`] implementation runs it. Each check is its
//! own public function; [`run`] calls them all.
//!
//! Time is real: the checks wait out ack waits and TTLs, so give them short ones (a second) and
//! the suite runs in seconds. Every check uses its own random tenant, subscription, queue and
//! lease names, and deletes the durable subscriptions it created, so runs sharing a backend never
//! see each other. The checks panic with a message naming the rule that broke.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use tokio::time::{sleep, timeout};

use super::tenant;
use crate::agent::Presence;
use crate::bus::{
    Acquired, Command, CommandQueue, Delivery, EventBus, LeaseStore, PresenceEntry, PresenceStore,
    SubscribeOptions, Subscription, event_key,
};
use crate::error::Error;
use crate::event::{DomainEvent, Event};
use crate::id::{AgentId, ConversationId, TenantId};

/// How long the checks wait for a delivery that must come, at most.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs every check. `ack_wait` is the ack wait the bus checks subscribe with; the lease and
/// presence checks wait out their stores' own TTLs.
pub async fn run(
    bus: &dyn EventBus,
    queue: &dyn CommandQueue,
    leases: &dyn LeaseStore,
    presence: &dyn PresenceStore,
    ack_wait: Duration,
) {
    events_fan_out_to_every_durable_subscription(bus, ack_wait).await;
    events_keep_publish_order_per_key(bus, ack_wait).await;
    durable_subscriptions_keep_events_while_away(bus, ack_wait).await;
    unacked_events_are_redelivered_to_the_next_subscriber(bus, ack_wait).await;
    redeliveries_keep_their_sequence_for_idempotence(bus, ack_wait).await;
    nak_redelivers_at_once(bus, ack_wait).await;
    a_deleted_subscription_says_so(bus, ack_wait).await;
    bad_bus_input_is_refused(bus, queue).await;
    work_queue_delivers_each_command_to_one_consumer(queue, ack_wait).await;
    commands_wait_for_a_consumer_and_queues_are_separate(queue, ack_wait).await;
    unacked_commands_go_to_another_consumer(queue, ack_wait).await;
    lease_is_exclusive(leases).await;
    lease_renew_refuses_a_stale_revision(leases).await;
    lease_expires_after_its_ttl(leases).await;
    lease_release_frees_it(leases).await;
    presence_lists_live_entries_and_expires(presence).await;
}

/// A fresh name of 1-64 characters for a subscription, queue, lease or holder.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// An event of conversation `conversation` in `tenant`, telling `n` in its reason.
pub fn numbered_event(tenant: &TenantId, conversation: ConversationId, n: usize) -> Event {
    Event::new(
        tenant.clone(),
        chrono::Utc::now(),
        DomainEvent::QueueAbandoned {
            conversation,
            reason: n.to_string(),
        },
    )
}

fn number(event: &Event) -> usize {
    match &event.kind {
        DomainEvent::QueueAbandoned { reason, .. } => reason.parse().expect("a numbered event"),
        other => panic!("not a numbered event: {other:?}"),
    }
}

fn options(ack_wait: Duration) -> SubscribeOptions {
    SubscribeOptions::default().with_ack_wait(ack_wait)
}

/// The next delivery of `tenant`'s events (others are acknowledged and skipped), or a panic
/// naming `what` after [`PATIENCE`].
async fn recv(
    sub: &mut Box<dyn Subscription<Event>>,
    tenant: &TenantId,
    what: &str,
) -> Delivery<Event> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let d = tokio::time::timeout_at(deadline, sub.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: nothing delivered within {PATIENCE:?}"))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if &d.payload.tenant == tenant {
            return d;
        }
        d.ack().await.expect("ack");
    }
}

/// Panics when `tenant` gets a delivery within `within`.
async fn quiet(
    sub: &mut Box<dyn Subscription<Event>>,
    tenant: &TenantId,
    within: Duration,
    what: &str,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, sub.next()).await {
            Err(_) => return,
            Ok(Err(e)) => panic!("{what}: {e}"),
            Ok(Ok(d)) if &d.payload.tenant == tenant => {
                panic!("{what}: unexpected delivery {d:?}")
            }
            Ok(Ok(d)) => d.ack().await.expect("ack"),
        }
    }
}

async fn recv_command(sub: &mut Box<dyn Subscription<Command>>, what: &str) -> Delivery<Command> {
    timeout(PATIENCE, sub.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: no command within {PATIENCE:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

async fn delete(bus: &dyn EventBus, durable: &str) {
    assert!(
        bus.delete_subscription(durable)
            .await
            .expect("delete_subscription"),
        "the durable subscription {durable} existed"
    );
}

/// Every durable subscription receives every event published after it was created, in order;
/// acknowledged deliveries do not come again.
pub async fn events_fan_out_to_every_durable_subscription(bus: &dyn EventBus, ack_wait: Duration) {
    let t = tenant();
    let (a, b) = (unique_name("node-a"), unique_name("node-b"));
    let mut sa = bus
        .subscribe(&a, &options(ack_wait))
        .await
        .expect("subscribe a");
    let mut sb = bus
        .subscribe(&b, &options(ack_wait))
        .await
        .expect("subscribe b");
    let conv = ConversationId::new();
    let mut sequences = Vec::new();
    for n in 0..3 {
        sequences.push(
            bus.publish(&numbered_event(&t, conv, n))
                .await
                .expect("publish"),
        );
    }
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "sequences grow in publish order: {sequences:?}"
    );
    for (name, sub) in [(&a, &mut sa), (&b, &mut sb)] {
        for (n, &seq) in sequences.iter().enumerate() {
            let d = recv(sub, &t, "fan-out").await;
            assert_eq!(number(&d.payload), n, "{name} gets every event in order");
            assert_eq!(d.sequence, seq, "the delivery carries the publish sequence");
            assert_eq!(d.attempt, 1, "first delivery");
            assert!(!d.is_redelivery());
            assert_eq!(
                d.key,
                format!("conversation:{conv}"),
                "the key is the conversation"
            );
            d.ack().await.expect("ack");
        }
    }
    quiet(
        &mut sa,
        &t,
        ack_wait + ack_wait / 2,
        "acknowledged events are not redelivered",
    )
    .await;
    quiet(
        &mut sb,
        &t,
        Duration::from_millis(50),
        "acknowledged events are not redelivered",
    )
    .await;
    delete(bus, &a).await;
    delete(bus, &b).await;
    assert!(
        !bus.delete_subscription(&a).await.expect("delete again"),
        "a deleted subscription is gone"
    );
}

/// Events of one key arrive in publish order, however keys interleave.
pub async fn events_keep_publish_order_per_key(bus: &dyn EventBus, ack_wait: Duration) {
    let t = tenant();
    let durable = unique_name("order");
    let mut sub = bus
        .subscribe(&durable, &options(ack_wait))
        .await
        .expect("subscribe");
    let convs = [
        ConversationId::new(),
        ConversationId::new(),
        ConversationId::new(),
    ];
    let mut published: HashMap<String, Vec<usize>> = HashMap::new();
    // A customer-keyed and a tenant-keyed event too.
    let customer = crate::id::CustomerId::new();
    let merged = Event::new(
        t.clone(),
        chrono::Utc::now(),
        DomainEvent::CustomersMerged {
            merge: crate::id::MergeId::new(),
            into: customer,
            from: crate::id::CustomerId::new(),
        },
    );
    assert_eq!(event_key(&merged), format!("customer:{customer}"));
    let alert = Event::new(
        t.clone(),
        chrono::Utc::now(),
        DomainEvent::AlertRaised {
            rule: "r".into(),
            message: "m".into(),
            value: 1.0,
            threshold: 0.5,
        },
    );
    assert_eq!(event_key(&alert), format!("tenant:{t}"));
    let total = 30;
    for n in 0..total {
        let e = numbered_event(&t, convs[n * 7 % 3], n);
        published.entry(event_key(&e)).or_default().push(n);
        bus.publish(&e).await.expect("publish");
    }
    bus.publish(&merged).await.expect("publish");
    bus.publish(&alert).await.expect("publish");
    let mut received: HashMap<String, Vec<usize>> = HashMap::new();
    let mut last_seq: BTreeMap<String, u64> = BTreeMap::new();
    let mut others = Vec::new();
    while received.values().map(Vec::len).sum::<usize>() < total || others.len() < 2 {
        let d = recv(&mut sub, &t, "ordering").await;
        let prev = last_seq.insert(d.key.clone(), d.sequence).unwrap_or(0);
        assert!(d.sequence > prev, "sequences grow per key");
        if matches!(d.payload.kind, DomainEvent::QueueAbandoned { .. }) {
            received
                .entry(d.key.clone())
                .or_default()
                .push(number(&d.payload));
        } else {
            others.push(d.key.clone());
        }
        d.ack().await.expect("ack");
    }
    assert_eq!(received, published, "per-key publish order");
    assert_eq!(others, [event_key(&merged), event_key(&alert)]);
    delete(bus, &durable).await;
}

/// A durable subscription keeps what is published while no one reads it (a node restarting).
pub async fn durable_subscriptions_keep_events_while_away(bus: &dyn EventBus, ack_wait: Duration) {
    let t = tenant();
    let durable = unique_name("away");
    drop(
        bus.subscribe(&durable, &options(ack_wait))
            .await
            .expect("subscribe"),
    );
    let seq = bus
        .publish(&numbered_event(&t, ConversationId::new(), 7))
        .await
        .expect("publish");
    let mut sub = bus
        // Coming back with other options (an update of the durable) keeps what it had.
        .subscribe(&durable, &options(ack_wait * 2).with_max_in_flight(10))
        .await
        .expect("subscribe again");
    let d = recv(&mut sub, &t, "kept while away").await;
    assert_eq!((number(&d.payload), d.sequence), (7, seq));
    d.ack().await.expect("ack");
    delete(bus, &durable).await;
}

/// A delivery not acknowledged comes again after the ack wait, also to the next subscriber of the
/// same name after the first one is gone, and not before the ack wait.
pub async fn unacked_events_are_redelivered_to_the_next_subscriber(
    bus: &dyn EventBus,
    ack_wait: Duration,
) {
    let t = tenant();
    let durable = unique_name("redeliver");
    let mut first = bus
        .subscribe(&durable, &options(ack_wait))
        .await
        .expect("subscribe");
    let event = numbered_event(&t, ConversationId::new(), 1);
    let seq = bus.publish(&event).await.expect("publish");
    let d = recv(&mut first, &t, "first delivery").await;
    assert_eq!((d.sequence, d.attempt), (seq, 1));
    // The node dies before acknowledging.
    drop(d);
    drop(first);
    let mut second = bus
        .subscribe(&durable, &options(ack_wait))
        .await
        .expect("resubscribe");
    quiet(
        &mut second,
        &t,
        ack_wait / 4,
        "no redelivery before the ack wait",
    )
    .await;
    let again = recv(&mut second, &t, "redelivery after the ack wait").await;
    assert_eq!(again.sequence, seq, "the same sequence");
    assert_eq!(again.payload, event, "the same event");
    assert_eq!(again.attempt, 2, "the second delivery");
    assert!(again.is_redelivery());
    again.ack().await.expect("ack");
    quiet(
        &mut second,
        &t,
        ack_wait + ack_wait / 2,
        "acknowledged at last",
    )
    .await;
    delete(bus, &durable).await;
}

/// A consumer that remembers the sequences it applied applies each event once, although it sees
/// an event again when it crashed between applying and acknowledging.
pub async fn redeliveries_keep_their_sequence_for_idempotence(
    bus: &dyn EventBus,
    ack_wait: Duration,
) {
    let t = tenant();
    let durable = unique_name("idem");
    let mut sub = bus
        .subscribe(&durable, &options(ack_wait))
        .await
        .expect("subscribe");
    let conv = ConversationId::new();
    for n in 0..3 {
        bus.publish(&numbered_event(&t, conv, n))
            .await
            .expect("publish");
    }
    let mut applied: HashSet<u64> = HashSet::new();
    let mut effects = Vec::new();
    let mut seen = 0;
    // Apply all three, acknowledge only the first and the third.
    while seen < 3 {
        let d = recv(&mut sub, &t, "first pass").await;
        seen += 1;
        if applied.insert(d.sequence) {
            effects.push(number(&d.payload));
        }
        if number(&d.payload) != 1 {
            d.ack().await.expect("ack");
        }
    }
    let d = recv(&mut sub, &t, "the unacknowledged one again").await;
    assert_eq!(
        number(&d.payload),
        1,
        "only the unacknowledged event comes again"
    );
    assert!(!applied.insert(d.sequence), "recognised by its sequence");
    d.ack().await.expect("ack");
    assert_eq!(effects, [0, 1, 2], "each applied once");
    delete(bus, &durable).await;
}

/// `nak` asks for a delivery again without waiting for the ack wait.
pub async fn nak_redelivers_at_once(bus: &dyn EventBus, ack_wait: Duration) {
    let t = tenant();
    let durable = unique_name("nak");
    // A long ack wait: only the nak can bring it back in time.
    let mut sub = bus
        .subscribe(&durable, &options(ack_wait * 20))
        .await
        .expect("subscribe");
    let seq = bus
        .publish(&numbered_event(&t, ConversationId::new(), 0))
        .await
        .expect("publish");
    let d = recv(&mut sub, &t, "first").await;
    d.nak(Duration::ZERO).await.expect("nak");
    let again = timeout(ack_wait * 5, recv(&mut sub, &t, "after nak"))
        .await
        .expect("a nak redelivers well before the ack wait");
    assert_eq!((again.sequence, again.attempt), (seq, 2));
    again.ack().await.expect("ack");
    delete(bus, &durable).await;
}

/// A subscription whose durable is deleted under it ends with [`Error::NotFound`] instead of
/// waiting for ever.
pub async fn a_deleted_subscription_says_so(bus: &dyn EventBus, ack_wait: Duration) {
    let durable = unique_name("gone");
    let mut sub = bus
        .subscribe(&durable, &options(ack_wait))
        .await
        .expect("subscribe");
    delete(bus, &durable).await;
    loop {
        match timeout(PATIENCE, sub.next()).await {
            Err(_) => panic!("a deleted subscription still waits after {PATIENCE:?}"),
            Ok(Err(Error::NotFound { .. })) => break,
            Ok(Err(Error::Unavailable { .. })) => continue,
            Ok(other) => panic!("a deleted subscription: {other:?}"),
        }
    }
}

/// Bad names and options are typed errors, not panics.
pub async fn bad_bus_input_is_refused(bus: &dyn EventBus, queue: &dyn CommandQueue) {
    for bad in ["", "a.b", "a b", "*", ">", "a=b", &"x".repeat(65)] {
        assert!(
            matches!(
                bus.subscribe(bad, &SubscribeOptions::default()).await,
                Err(Error::InvalidInput { .. })
            ),
            "durable name {bad:?} is refused"
        );
    }
    for bad in ["", "a b", "*", ">", "a=b", "a/b", &"x".repeat(65)] {
        assert!(
            matches!(
                queue
                    .send(bad, &Command::new("k", serde_json::json!(1)))
                    .await,
                Err(Error::InvalidInput { .. })
            ),
            "queue name {bad:?} is refused"
        );
    }
    let zero = SubscribeOptions::default().with_ack_wait(Duration::ZERO);
    assert!(matches!(
        bus.subscribe("fine", &zero).await,
        Err(Error::InvalidInput { .. })
    ));
    let none = SubscribeOptions::default().with_max_in_flight(0);
    assert!(matches!(
        queue.consume("fine", &none).await,
        Err(Error::InvalidInput { .. })
    ));
}

/// Two consumers of one queue share its commands: each goes to exactly one of them.
pub async fn work_queue_delivers_each_command_to_one_consumer(
    queue: &dyn CommandQueue,
    ack_wait: Duration,
) {
    let name = format!("router.{}", unique_name("q"));
    let mut a = queue
        .consume(&name, &options(ack_wait))
        .await
        .expect("consume a");
    let mut b = queue
        .consume(&name, &options(ack_wait))
        .await
        .expect("consume b");
    let total = 20;
    for n in 0..total {
        let sent = queue
            .send(
                &name,
                &Command::new("tenant-1", serde_json::json!({ "n": n })),
            )
            .await
            .expect("send");
        assert!(sent > 0);
    }
    let mut got: Vec<(char, i64)> = Vec::new();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while got.len() < total {
        let (who, d) = tokio::select! {
            d = a.next() => ('a', d),
            d = b.next() => ('b', d),
            () = tokio::time::sleep_until(deadline) => panic!("only {} of {total} commands", got.len()),
        };
        let d = d.expect("next");
        assert_eq!(d.key, "tenant-1");
        got.push((who, d.payload.body["n"].as_i64().expect("n")));
        d.ack().await.expect("ack");
    }
    let mut ns: Vec<i64> = got.iter().map(|&(_, n)| n).collect();
    ns.sort_unstable();
    assert_eq!(
        ns,
        (0..total as i64).collect::<Vec<_>>(),
        "each command once"
    );
    for sub in [&mut a, &mut b] {
        assert!(
            timeout(ack_wait + ack_wait / 2, sub.next()).await.is_err(),
            "acknowledged commands are gone"
        );
    }
}

/// Commands sent before anyone consumes wait for the first consumer, in send order; a queue
/// delivers only its own commands.
pub async fn commands_wait_for_a_consumer_and_queues_are_separate(
    queue: &dyn CommandQueue,
    ack_wait: Duration,
) {
    // Names with dots (a tenant's router queue) are fine, and stay distinct from similar ones.
    let (q1, q2) = (format!("r.{}", unique_name("q")), unique_name("r"));
    for n in 0..3 {
        queue
            .send(&q1, &Command::new("k", serde_json::json!(n)))
            .await
            .expect("send");
    }
    queue
        .send(&q2, &Command::new("k", serde_json::json!("other")))
        .await
        .expect("send");
    let mut sub = queue
        .consume(&q1, &options(ack_wait))
        .await
        .expect("consume");
    for n in 0..3 {
        let d = recv_command(&mut sub, "waiting commands").await;
        assert_eq!(d.payload.body, serde_json::json!(n), "send order");
        d.ack().await.expect("ack");
    }
    assert!(
        timeout(ack_wait / 2, sub.next()).await.is_err(),
        "the other queue's command stays there"
    );
    let mut other = queue
        .consume(&q2, &options(ack_wait))
        .await
        .expect("consume");
    let d = recv_command(&mut other, "the other queue").await;
    assert_eq!(d.payload.body, serde_json::json!("other"));
    d.ack().await.expect("ack");
}

/// A command whose consumer dies before acknowledging goes to another consumer after the ack
/// wait, with the same sequence.
pub async fn unacked_commands_go_to_another_consumer(queue: &dyn CommandQueue, ack_wait: Duration) {
    let name = unique_name("qdead");
    let mut dying = queue
        .consume(&name, &options(ack_wait))
        .await
        .expect("consume");
    let seq = queue
        .send(&name, &Command::new("k", serde_json::json!("route")))
        .await
        .expect("send");
    let d = recv_command(&mut dying, "first delivery").await;
    assert_eq!((d.sequence, d.attempt), (seq, 1));
    drop(d);
    drop(dying);
    let mut heir = queue
        .consume(&name, &options(ack_wait))
        .await
        .expect("consume");
    let d = recv_command(&mut heir, "redelivery").await;
    assert_eq!((d.sequence, d.attempt), (seq, 2), "the same command again");
    assert_eq!(d.payload.body, serde_json::json!("route"));
    d.ack().await.expect("ack");
    assert!(
        timeout(ack_wait + ack_wait / 2, heir.next()).await.is_err(),
        "acknowledged at last"
    );
}

/// Of many holders asking at once, exactly one gets the lease; the others learn who has it.
pub async fn lease_is_exclusive(leases: &dyn LeaseStore) {
    let name = format!("router.{}", unique_name("t"));
    let holders: Vec<String> = (0..5).map(|i| format!("node-{i}")).collect();
    let answers = super::all_at_once(holders.iter().map(|h| leases.acquire(&name, h))).await;
    let held: Vec<_> = answers
        .iter()
        .filter_map(|a| match a.as_ref().expect("acquire") {
            Acquired::Held(l) => Some(l.clone()),
            Acquired::HeldBy { .. } => None,
        })
        .collect();
    assert_eq!(held.len(), 1, "exactly one holder: {answers:?}");
    let lease = &held[0];
    assert_eq!(lease.name, name);
    assert!(lease.epoch > 0 && lease.revision >= lease.epoch);
    for a in &answers {
        if let Ok(Acquired::HeldBy { holder, epoch }) = a {
            assert_eq!(
                (holder, *epoch),
                (&lease.holder, lease.epoch),
                "the others see the holder"
            );
        }
    }
    let again = leases
        .acquire(&name, &lease.holder)
        .await
        .expect("acquire again")
        .held()
        .expect("the holder asking again holds it");
    assert_eq!(again.epoch, lease.epoch, "and keeps its epoch");
    assert!(again.revision > lease.revision, "renewed");
    assert!(again.is_valid() && again.valid_until >= lease.valid_until);
    let lease = &again;
    let record = leases.holder(&name).await.expect("holder").expect("held");
    assert_eq!(
        (record.holder, record.epoch),
        (lease.holder.clone(), lease.epoch)
    );
    assert!(matches!(
        leases.acquire("bad name", "n").await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        leases.acquire("fine", "bad.holder").await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(leases.release(lease).await.expect("release"));
}

/// Renewing moves the revision on and keeps the epoch; a renew naming an old revision is a
/// conflict.
pub async fn lease_renew_refuses_a_stale_revision(leases: &dyn LeaseStore) {
    let name = unique_name("renew");
    let first = leases
        .acquire(&name, "node-a")
        .await
        .expect("acquire")
        .held()
        .expect("free");
    assert!(first.is_valid(), "valid for the TTL");
    let renewed = leases.renew(&first).await.expect("renew");
    assert!(renewed.revision > first.revision, "a new revision");
    assert!(renewed.valid_until >= first.valid_until, "valid longer");
    assert_eq!(renewed.epoch, first.epoch, "the same epoch");
    assert!(
        matches!(leases.renew(&first).await, Err(Error::Conflict { .. })),
        "a stale revision is refused"
    );
    let forged = crate::bus::Lease {
        holder: "node-b".into(),
        ..renewed.clone()
    };
    assert!(
        matches!(leases.renew(&forged).await, Err(Error::Conflict { .. })),
        "another holder cannot renew it"
    );
    let again = leases
        .renew(&renewed)
        .await
        .expect("renew the current revision");
    assert!(again.revision > renewed.revision);
    assert!(leases.release(&again).await.expect("release"));
}

/// A lease not renewed for its TTL goes to the next holder, with a greater epoch; the old holder
/// can no longer renew it. A lease renewed in time is kept past its first TTL.
pub async fn lease_expires_after_its_ttl(leases: &dyn LeaseStore) {
    let ttl = leases.ttl();
    let name = unique_name("expiry");
    let mut a = leases
        .acquire(&name, "node-a")
        .await
        .expect("acquire")
        .held()
        .expect("free");
    // Renewed at a third of the TTL, it outlives the first TTL.
    for _ in 0..4 {
        sleep(ttl / 3).await;
        a = leases.renew(&a).await.expect("renewed in time");
    }
    assert!(
        matches!(
            leases.acquire(&name, "node-b").await.expect("acquire"),
            Acquired::HeldBy { .. }
        ),
        "kept while renewed"
    );
    // Then the holder stops renewing.
    sleep(ttl + ttl / 2).await;
    assert!(!a.is_valid(), "the holder knows it may no longer act on it");
    assert!(
        leases.holder(&name).await.expect("holder").is_none(),
        "nobody holds an expired lease"
    );
    let b = leases
        .acquire(&name, "node-b")
        .await
        .expect("acquire")
        .held()
        .expect("free once the TTL passed");
    assert!(
        b.epoch > a.epoch,
        "the epoch grows across holders (fencing)"
    );
    assert!(
        matches!(leases.renew(&a).await, Err(Error::Conflict { .. })),
        "the old holder lost it"
    );
    assert!(
        !leases.release(&a).await.expect("release"),
        "nor can it release it"
    );
    assert!(leases.release(&b).await.expect("release"));
}

/// Releasing frees the lease at once; releasing it again does nothing.
pub async fn lease_release_frees_it(leases: &dyn LeaseStore) {
    let name = unique_name("release");
    let a = leases
        .acquire(&name, "node-a")
        .await
        .expect("acquire")
        .held()
        .expect("free");
    assert!(leases.release(&a).await.expect("release"));
    assert!(
        !leases.release(&a).await.expect("release again"),
        "already released"
    );
    let b = leases
        .acquire(&name, "node-b")
        .await
        .expect("acquire")
        .held()
        .expect("free at once after a release");
    assert!(b.epoch > a.epoch);
    assert!(matches!(
        leases.renew(&a).await,
        Err(Error::Conflict { .. })
    ));
    assert!(leases.release(&b).await.expect("release"));
}

/// Presence entries are listed while refreshed within the TTL, per tenant, and vanish when
/// removed or no longer refreshed.
pub async fn presence_lists_live_entries_and_expires(presence: &dyn PresenceStore) {
    let ttl = presence.ttl();
    let (t1, t2) = (tenant(), tenant());
    let (ann, bob) = (AgentId::new(), AgentId::new());
    let now = chrono::Utc::now();
    let a1 = PresenceEntry::new(t1.clone(), ann, "node-a", Presence::Online, now)
        .with_data(serde_json::json!({ "active": 2 }));
    let b1 = PresenceEntry::new(t1.clone(), ann, "node-b", Presence::Away, now);
    let c2 = PresenceEntry::new(t2.clone(), bob, "node-a", Presence::Online, now);
    for e in [&a1, &b1, &c2] {
        presence.put(e).await.expect("put");
    }
    let mine = |all: Vec<PresenceEntry>| -> Vec<PresenceEntry> {
        all.into_iter()
            .filter(|e| e.tenant == t1 || e.tenant == t2)
            .collect()
    };
    let listed = presence.list(Some(&t1)).await.expect("list");
    assert_eq!(listed.len(), 2, "one entry per node: {listed:?}");
    assert!(
        listed.contains(&a1) && listed.contains(&b1),
        "stored as put"
    );
    assert_eq!(mine(presence.list(None).await.expect("list all")).len(), 3);
    // Put again: replaces, not adds.
    let a1 = PresenceEntry::new(t1.clone(), ann, "node-a", Presence::Away, now);
    presence.put(&a1).await.expect("refresh");
    presence.remove(&t1, ann, "node-b").await.expect("remove");
    assert_eq!(
        presence.list(Some(&t1)).await.expect("list"),
        std::slice::from_ref(&a1)
    );
    // Keep a1 fresh, let c2 expire.
    for _ in 0..4 {
        sleep(ttl / 3).await;
        presence.put(&a1).await.expect("refresh");
    }
    assert_eq!(
        mine(presence.list(None).await.expect("list")),
        std::slice::from_ref(&a1),
        "the entry not refreshed expired"
    );
    sleep(ttl + ttl / 2).await;
    assert!(
        mine(presence.list(None).await.expect("list")).is_empty(),
        "all expired"
    );
    presence
        .remove(&t2, bob, "node-a")
        .await
        .expect("removing a gone entry is fine");
    let bad = PresenceEntry::new(t1, ann, "bad node", Presence::Online, now);
    assert!(matches!(
        presence.put(&bad).await,
        Err(Error::InvalidInput { .. })
    ));
}
