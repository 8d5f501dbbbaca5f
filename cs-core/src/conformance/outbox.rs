//! Checks of [`crate::store::Outbox`].

use chrono::Duration;

use super::{claim, conversation, customer, outbound, status_of, t0, tenant, web};
use crate::error::Error;
use crate::id::{ChannelId, MessageId, TenantId};
use crate::message::{DeliveryStatus, Message};
use crate::store::{
    ClaimOutbound, ConversationStore, DeadLetterQuery, FinishOutbound, MessageQuery, MessageScope,
    Outcome, Receipt, ReleaseClaims,
};

/// The outbox hands out one message per conversation in order, retries, dead-letters and never queues a duplicate.
pub async fn outbox_orders_retries_and_dead_letters(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let bob = customer(store, &t, "bob").await;
    let ca = conversation(store, &t, &ann).await;
    let cb = conversation(store, &t, &bob).await;
    let a1 = outbound(&ca, "a1", t0());
    let a2 = outbound(&ca, "a2", t0());
    let b1 = outbound(&cb, "b1", t0());
    for m in [&a1, &a2, &b1] {
        assert!(
            !store
                .append_outbound(m, &web("v1"))
                .await
                .unwrap()
                .is_duplicate()
        );
    }
    let stored = store
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Conversation(ca.id),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        2,
        "outbound messages are stored before any send"
    );

    // One head per conversation, oldest first; claimed messages are not handed out twice.
    let first = store.claim_outbound(&claim(&t, t0())).await.unwrap();
    let ids: Vec<MessageId> = first.iter().map(|c| c.message.id).collect();
    assert_eq!(ids, [a1.id, b1.id], "a2 waits behind a1");
    assert_eq!(first[0].attempts, 0);
    assert_eq!(
        first[0].to,
        web("v1"),
        "the recipient is kept with the entry"
    );
    assert!(
        store
            .claim_outbound(&claim(&t, t0()))
            .await
            .unwrap()
            .is_empty(),
        "leased messages are not claimed again"
    );

    // a1 fails temporarily: it stays at the head, a2 still waits.
    store
        .finish_outbound(&finish(
            &t,
            a1.id,
            Outcome::Retry {
                at: t0() + Duration::seconds(10),
                error: "503".into(),
            },
        ))
        .await
        .unwrap();
    store
        .finish_outbound(&finish(
            &t,
            b1.id,
            Outcome::Sent {
                status: DeliveryStatus::Sent,
                provider_id: Some("prov-b1".into()),
            },
        ))
        .await
        .unwrap();
    assert!(
        store
            .claim_outbound(&claim(&t, t0() + Duration::seconds(5)))
            .await
            .unwrap()
            .is_empty(),
        "nothing is due before the retry time"
    );
    let retry = store
        .claim_outbound(&claim(&t, t0() + Duration::seconds(10)))
        .await
        .unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].message.id, a1.id);
    assert_eq!(retry[0].attempts, 1, "the failed attempt was counted");

    // a1 fails for good: it becomes a dead letter and a2 moves up.
    store
        .finish_outbound(&finish(
            &t,
            a1.id,
            Outcome::Dead {
                error: "400 invalid recipient".into(),
            },
        ))
        .await
        .unwrap();
    let next = store
        .claim_outbound(&claim(&t, t0() + Duration::seconds(10)))
        .await
        .unwrap();
    assert_eq!(
        next.iter().map(|c| c.message.id).collect::<Vec<_>>(),
        [a2.id]
    );
    let dead = store
        .dead_letters(&DeadLetterQuery::new(t.clone(), 10))
        .await
        .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].message.id, a1.id);
    assert_eq!(dead[0].message.status, DeliveryStatus::Failed);
    assert_eq!(dead[0].attempts, 2);
    assert!(dead[0].error.contains("invalid recipient"));
    assert!(matches!(
        store
            .finish_outbound(&finish(
                &t,
                a1.id,
                Outcome::Dead {
                    error: "again".into()
                }
            ))
            .await,
        Err(Error::NotFound { .. })
    ));

    // A retried send of the same outbound message (same provider id) is not queued twice.
    let mut keyed = outbound(&cb, "keyed", t0());
    keyed.provider_message_id = Some("agent:x1".into());
    assert!(
        !store
            .append_outbound(&keyed, &web("v1"))
            .await
            .unwrap()
            .is_duplicate()
    );
    let mut again = outbound(&cb, "keyed", t0());
    again.provider_message_id = Some("agent:x1".into());
    assert!(
        store
            .append_outbound(&again, &web("v1"))
            .await
            .unwrap()
            .is_duplicate()
    );
    let due: Vec<MessageId> = store
        .claim_outbound(&ClaimOutbound {
            conversation: Some(cb.id),
            ..claim(&t, t0() + Duration::minutes(1))
        })
        .await
        .unwrap()
        .iter()
        .map(|c| c.message.id)
        .collect();
    assert_eq!(
        due,
        [keyed.id],
        "one outbox entry, filtered by conversation"
    );
}

/// Provider receipts move a message's status forward only.
pub async fn receipts_move_status_forward(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let c = conversation(store, &t, &ann).await;
    let m = outbound(&c, "hello", t0());
    store.append_outbound(&m, &web("v1")).await.unwrap();
    store.claim_outbound(&claim(&t, t0())).await.unwrap();
    store
        .finish_outbound(&finish(
            &t,
            m.id,
            Outcome::Sent {
                status: DeliveryStatus::Sent,
                provider_id: Some("wamid.1".into()),
            },
        ))
        .await
        .unwrap();
    let receipt = |provider_id: &str, status| Receipt {
        tenant: t.clone(),
        channel: ChannelId::new("webchat").unwrap(),
        provider_id: provider_id.into(),
        status,
    };
    assert_eq!(status_of(store, &t, c.id).await, DeliveryStatus::Sent);
    let hit = store
        .apply_receipt(&receipt("wamid.1", DeliveryStatus::Read))
        .await
        .unwrap();
    assert_eq!(hit, Some(m.id));
    assert_eq!(status_of(store, &t, c.id).await, DeliveryStatus::Read);
    store
        .apply_receipt(&receipt("wamid.1", DeliveryStatus::Delivered))
        .await
        .unwrap();
    assert_eq!(
        status_of(store, &t, c.id).await,
        DeliveryStatus::Read,
        "a late receipt does not go back"
    );
    assert_eq!(
        store
            .apply_receipt(&receipt("unknown", DeliveryStatus::Read))
            .await
            .unwrap(),
        None
    );
}

fn finish(t: &TenantId, message: MessageId, outcome: Outcome) -> FinishOutbound {
    FinishOutbound {
        tenant: t.clone(),
        message,
        outcome,
    }
}

/// Claims carry their node: releasing a node's claims makes its messages due at once (a node
/// restarted after a crash does not wait for its dead predecessor's leases); another node's
/// claims, another tenant's and a retry's wait are untouched.
pub async fn claims_of_a_dead_node_are_released(store: &dyn ConversationStore) {
    let t = tenant();
    let other_tenant = tenant();
    let ann = customer(store, &t, "ann").await;
    let bob = customer(store, &t, "bob").await;
    let cid = customer(store, &t, "cid").await;
    let zed = customer(store, &other_tenant, "zed").await;
    let (ca, cb, cc) = (
        conversation(store, &t, &ann).await,
        conversation(store, &t, &bob).await,
        conversation(store, &t, &cid).await,
    );
    let cz = conversation(store, &other_tenant, &zed).await;
    let (a1, b1, c1, z1) = (
        outbound(&ca, "a1", t0()),
        outbound(&cb, "b1", t0()),
        outbound(&cc, "c1", t0()),
        outbound(&cz, "z1", t0()),
    );
    for m in [&a1, &b1, &c1, &z1] {
        store.append_outbound(m, &web("v1")).await.unwrap();
    }
    let by = |node: &str, tenant: &TenantId, c| ClaimOutbound {
        conversation: Some(c),
        owner: Some(node.to_owned()),
        lease_until: t0() + Duration::minutes(10),
        ..claim(tenant, t0())
    };
    for (node, tenant, c) in [
        ("node-1", &t, ca.id),
        ("node-2", &t, cb.id),
        ("node-1", &t, cc.id),
        ("node-1", &other_tenant, cz.id),
    ] {
        assert_eq!(
            store
                .claim_outbound(&by(node, tenant, c))
                .await
                .unwrap()
                .len(),
            1
        );
    }
    // node-1 fails c1's attempt: a retry in five minutes, no longer its claim.
    store
        .finish_outbound(&FinishOutbound {
            tenant: t.clone(),
            message: c1.id,
            outcome: Outcome::Retry {
                at: t0() + Duration::minutes(5),
                error: "timeout".into(),
            },
        })
        .await
        .unwrap();
    let now = t0() + Duration::seconds(1);
    assert!(
        store
            .claim_outbound(&claim(&t, now))
            .await
            .unwrap()
            .is_empty(),
        "claims hold until their lease ends"
    );

    // node-1 restarts: its predecessor's claim in this tenant is released, nothing else.
    let released = store
        .release_claims(&ReleaseClaims {
            tenant: t.clone(),
            owner: "node-1".into(),
            now,
        })
        .await
        .unwrap();
    assert_eq!(released, 1, "only node-1's open claim in this tenant");
    let due: Vec<MessageId> = store
        .claim_outbound(&claim(&t, now))
        .await
        .unwrap()
        .iter()
        .map(|c| c.message.id)
        .collect();
    assert_eq!(
        due,
        [a1.id],
        "a1 is due at once; b1 stays node-2's, c1 waits for its retry"
    );
    assert!(
        store
            .claim_outbound(&claim(&other_tenant, now))
            .await
            .unwrap()
            .is_empty(),
        "another tenant's claims are untouched"
    );
    assert_eq!(
        store
            .release_claims(&ReleaseClaims {
                tenant: t.clone(),
                owner: "node-3".into(),
                now,
            })
            .await
            .unwrap(),
        0,
        "a node with no claims releases nothing"
    );
}

/// Storing-and-claiming and finishing-and-claiming behave as the two calls they stand for: a
/// fresh message with nothing older waiting is claimed as it is stored, a later one waits
/// behind it, a duplicate claims nothing, the claim never leaves the message's conversation,
/// and a finish that fails claims nothing.
pub async fn outbox_claims_in_one_write(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let bob = customer(store, &t, "bob").await;
    let ca = conversation(store, &t, &ann).await;
    let cb = conversation(store, &t, &bob).await;
    let b1 = outbound(&cb, "b1", t0());
    store.append_outbound(&b1, &web("vb")).await.unwrap();

    // Any conversation the caller names, the claim stays in the message's own.
    let elsewhere = ClaimOutbound {
        conversation: Some(cb.id),
        ..claim(&t, t0())
    };
    let a1 = outbound(&ca, "a1", t0()).with_provider_id(Some("client-a1".into()));
    let (appended, claimed) = store
        .append_and_claim(&a1, &web("va"), &elsewhere)
        .await
        .unwrap();
    assert!(!appended.is_duplicate());
    let ids: Vec<MessageId> = claimed.iter().map(|c| c.message.id).collect();
    assert_eq!(ids, [a1.id], "a fresh message is claimed as it is stored");
    assert_eq!(claimed[0].to, web("va"));
    assert_eq!(claimed[0].attempts, 0);
    assert_eq!(claimed[0].message.content, a1.content);

    let a2 = outbound(&ca, "a2", t0());
    let (appended, claimed) = store
        .append_and_claim(&a2, &web("va"), &claim(&t, t0()))
        .await
        .unwrap();
    assert!(!appended.is_duplicate());
    assert!(claimed.is_empty(), "a2 waits behind a1's claim");

    let retry = Message {
        id: MessageId::new(),
        ..a1.clone()
    };
    let (appended, claimed) = store
        .append_and_claim(&retry, &web("va"), &claim(&t, t0()))
        .await
        .unwrap();
    assert!(appended.is_duplicate(), "the same client id is stored once");
    assert_eq!(appended.message().id, a1.id);
    assert!(claimed.is_empty(), "a duplicate claims nothing");

    // Finishing a1 hands out a2 in the same write.
    let delivered = |message| FinishOutbound {
        tenant: t.clone(),
        message,
        outcome: Outcome::Sent {
            status: DeliveryStatus::Delivered,
            provider_id: None,
        },
    };
    let next = ClaimOutbound {
        conversation: Some(ca.id),
        ..claim(&t, t0())
    };
    let claimed = store
        .finish_and_claim(&delivered(a1.id), Some(&next))
        .await
        .unwrap();
    let ids: Vec<MessageId> = claimed.iter().map(|c| c.message.id).collect();
    assert_eq!(ids, [a2.id], "the next message of the conversation, not b1");

    // A finish of something not in the outbox fails and claims nothing.
    let err = store
        .finish_and_claim(&delivered(a1.id), Some(&claim(&t, t0())))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let due: Vec<MessageId> = store
        .claim_outbound(&claim(&t, t0()))
        .await
        .unwrap()
        .iter()
        .map(|c| c.message.id)
        .collect();
    assert_eq!(due, [b1.id], "the failed finish left b1 unclaimed");

    // A retry finishes a2 and nothing is due yet.
    let claimed = store
        .finish_and_claim(
            &FinishOutbound {
                tenant: t.clone(),
                message: a2.id,
                outcome: Outcome::Retry {
                    at: t0() + Duration::minutes(5),
                    error: "timeout".into(),
                },
            },
            Some(&next),
        )
        .await
        .unwrap();
    assert!(claimed.is_empty(), "a2 waits for its retry");
    let messages = store
        .messages(&MessageQuery::new(
            t.clone(),
            MessageScope::Conversation(ca.id),
            10,
        ))
        .await
        .unwrap();
    let a1_status = messages.iter().find(|m| m.id == a1.id).unwrap().status;
    assert_eq!(a1_status, DeliveryStatus::Delivered);
}
