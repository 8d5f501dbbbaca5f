//! Checks of [`crate::store::CustomerStore`]: resolution, shared keys, links, merges.

use chrono::{DateTime, Duration, Utc};

use super::{all_at_once, conversation, customer, message, resolve_req, t0, tenant, texts, web};
use crate::channel::{ChannelKind, Identity, LinkOrigin, SharedKey};
use crate::conversation::ConversationState;
use crate::customer::{Customer, CustomerTier};
use crate::error::Error;
use crate::id::{AgentId, MergeId, TenantId};
use crate::store::{
    ConversationQuery, ConversationStore, CustomerStoreExt, LinkIdentity, LinkSuggestion,
    MergeCustomers, ResolveCustomer, Resolved, Unmerge,
};

fn unmerge(t: &TenantId, merge: MergeId, at: DateTime<Utc>) -> Unmerge {
    Unmerge {
        tenant: t.clone(),
        merge,
        at,
    }
}

/// `identity` resolved at `t0() + seconds` with `key`.
fn keyed(t: &TenantId, identity: &Identity, key: SharedKey, seconds: i64) -> ResolveCustomer {
    ResolveCustomer {
        at: t0() + Duration::seconds(seconds),
        ..resolve_req(t, identity.clone()).with_shared_key(key)
    }
}

async fn resolve(store: &dyn ConversationStore, req: &ResolveCustomer) -> Resolved {
    store.resolve_customer(req).await.expect("resolve_customer")
}

/// Resolving an identity creates its customer once, finds it afterwards, never from `find_customer`; concurrent first contacts agree on one customer.
pub async fn customers_resolve_once(store: &dyn ConversationStore) {
    let t = tenant();
    let first = store
        .resolve_customer(&resolve_req(&t, web("a")))
        .await
        .unwrap();
    assert!(first.created, "first resolve creates the customer");
    assert_eq!(first.customer.display_name.as_deref(), Some("Ann"));
    assert_eq!(first.customer.tier, CustomerTier::Standard);
    let again = store
        .resolve_customer(&resolve_req(&t, web("a")))
        .await
        .unwrap();
    assert!(!again.created, "second resolve finds the customer");
    assert_eq!(
        first.customer, again.customer,
        "resolve returns the stored customer"
    );
    let other = store
        .resolve_customer(&resolve_req(&t, web("b")))
        .await
        .unwrap();
    assert_ne!(
        first.customer.id, other.customer.id,
        "another identity is another customer"
    );
    assert_eq!(
        store.customer(&t, first.customer.id).await.unwrap(),
        first.customer
    );
    assert_eq!(
        store.find_customer(&t, &web("a")).await.unwrap(),
        Some(first.customer.clone()),
        "find_customer finds the owner"
    );
    assert_eq!(
        store.find_customer(&t, &web("nobody")).await.unwrap(),
        None,
        "find_customer never creates"
    );
    assert!(
        store
            .resolve_customer(&resolve_req(&t, web("nobody")))
            .await
            .unwrap()
            .created,
        "find_customer left nothing behind"
    );

    // Concurrent first contacts from one identity agree on one customer.
    let req = resolve_req(&t, web("racer"));
    let results = all_at_once((0..16).map(|_| store.resolve_customer(&req))).await;
    let mut ids = Vec::new();
    let mut created = 0;
    for r in results {
        let r = r.unwrap();
        created += usize::from(r.created);
        ids.push(r.customer.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "concurrent resolves agree on one customer");
    assert_eq!(created, 1, "exactly one concurrent resolve creates");
}

/// Links record their origin, linking twice is a no-op, another customer's identity is a conflict, an unknown customer is not found.
pub async fn identities_link_and_conflict(store: &dyn ConversationStore) {
    let t = tenant();
    let ann = customer(store, &t, "ann").await;
    let bob = customer(store, &t, "bob").await;
    let email = Identity::new(ChannelKind::Email, "ann@example.com");
    let agent = AgentId::new();
    let link = |c: &Customer, identity: &Identity, origin: LinkOrigin| {
        LinkIdentity::new(t.clone(), c.id, identity.clone(), origin, t0())
    };
    store
        .link_identity(&link(&ann, &email, LinkOrigin::Agent { agent }))
        .await
        .unwrap();
    store
        .link_identity(&link(&ann, &email, LinkOrigin::Api))
        .await
        .expect("linking an identity twice to its owner is a no-op");
    let err = store
        .link_identity(&link(&bob, &email, LinkOrigin::Api))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }),
        "identity owned by another: {err:?}"
    );
    assert_eq!(
        store.identities(&t, ann.id).await.unwrap(),
        vec![web("ann"), email.clone()]
    );
    let links = store.identity_links(&t, ann.id).await.unwrap();
    assert_eq!(links.len(), 2);
    assert_eq!(
        links[0].origin,
        LinkOrigin::FirstContact,
        "first contact is recorded"
    );
    assert_eq!(
        links[1].origin,
        LinkOrigin::Agent { agent },
        "the first link's origin is kept"
    );
    let found = store
        .resolve_customer(&resolve_req(&t, email))
        .await
        .unwrap();
    assert_eq!(
        found.customer.id, ann.id,
        "a linked identity resolves to its customer"
    );
    let ghost = Customer {
        id: crate::CustomerId::new(),
        ..ann.clone()
    };
    let err = store
        .link_identity(&link(&ghost, &web("x"), LinkOrigin::Api))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }),
        "unknown customer: {err:?}"
    );
}

/// Profile changes are saved; an unknown customer is not found.
pub async fn customer_profile_updates(store: &dyn ConversationStore) {
    let t = tenant();
    let mut ann = customer(store, &t, "ann").await;
    ann.tier = CustomerTier::Vip;
    ann.display_name = Some("Ann Li".into());
    store.update_customer(&ann).await.unwrap();
    assert_eq!(store.customer(&t, ann.id).await.unwrap(), ann);
    let mut ghost = ann.clone();
    ghost.id = crate::CustomerId::new();
    assert!(matches!(
        store.update_customer(&ghost).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        store.customer(&t, ghost.id).await,
        Err(Error::NotFound { .. })
    ));
}

/// A merge moves identities, conversations and history, resolves a second active conversation, and can be undone.
pub async fn merges_carry_history_and_can_be_undone(store: &dyn ConversationStore) {
    let t = tenant();
    // Ann wrote on WeChat, then (as "another" customer) by email; both are mid-conversation.
    let wechat = Identity::new(ChannelKind::WeChat, "openid-ann");
    let email = Identity::new(ChannelKind::Email, "ann@example.com");
    let ann = store
        .resolve_customer(&resolve_req(&t, wechat.clone()))
        .await
        .unwrap()
        .customer;
    let ann2 = store
        .resolve_customer(&resolve_req(&t, email.clone()))
        .await
        .unwrap()
        .customer;
    let c1 = conversation(store, &t, &ann).await;
    let c2 = conversation(store, &t, &ann2).await;
    store
        .append_message(&message(&c1, "wechat", Some("w1"), "在吗"))
        .await
        .unwrap();
    store
        .append_message(&message(&c2, "mail", Some("e1"), "order 1024?"))
        .await
        .unwrap();

    let by = LinkOrigin::Agent {
        agent: AgentId::new(),
    };
    let merge = store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: ann.id,
            from: ann2.id,
            by: by.clone(),
            at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(merge.identities.len(), 1);
    assert_eq!(merge.identities[0].identity, email);
    assert_eq!(merge.identities[0].origin, LinkOrigin::FirstContact);
    assert_eq!(merge.conversations, [c2.id]);
    assert_eq!(
        merge.resolved,
        Some(c2.id),
        "two active conversations cannot stay active"
    );
    assert_eq!(
        store
            .resolve_customer(&resolve_req(&t, email.clone()))
            .await
            .unwrap()
            .customer
            .id,
        ann.id,
        "the email now resolves to Ann"
    );
    assert_eq!(
        texts(store, &t, ann.id).await,
        ["在吗", "order 1024?"],
        "one history"
    );
    assert!(texts(store, &t, ann2.id).await.is_empty());
    let links = store.identity_links(&t, ann.id).await.unwrap();
    assert!(
        links
            .iter()
            .any(|l| l.identity == email && l.origin == LinkOrigin::Merge { merge: merge.id })
    );
    let c2_now = store.conversation(&t, c2.id).await.unwrap();
    assert_eq!(c2_now.state, ConversationState::Resolved);
    assert_eq!(c2_now.customer, ann.id);
    let active = store
        .conversations(&ConversationQuery {
            tenant: t.clone(),
            states: vec![
                ConversationState::Bot,
                ConversationState::Queued,
                ConversationState::Assigned,
            ],
            customer: Some(ann.id),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 1, "Ann keeps exactly one active conversation");

    // Rules: no self-merge, no merging a merged-away customer, nothing changes on refusal.
    let err = store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: ann.id,
            from: ann.id,
            by: by.clone(),
            at: t0(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let err = store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: ann2.id,
            from: ann.id,
            by: by.clone(),
            at: t0(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");

    // Written after the merge, in the moved conversation's successor (Ann's active one).
    store
        .append_message(&message(&c1, "wechat", Some("w2"), "还在吗"))
        .await
        .unwrap();

    // Undo: both are separate again and nothing is lost.
    let undone = store
        .unmerge(&unmerge(&t, merge.id, t0() + Duration::hours(1)))
        .await
        .unwrap();
    assert!(undone.undone_at.is_some());
    assert_eq!(texts(store, &t, ann.id).await, ["在吗", "还在吗"]);
    assert_eq!(texts(store, &t, ann2.id).await, ["order 1024?"]);
    assert_eq!(store.identities(&t, ann2.id).await.unwrap(), [email]);
    assert_eq!(
        store.identity_links(&t, ann2.id).await.unwrap()[0].origin,
        LinkOrigin::FirstContact,
        "the original origin comes back"
    );
    assert_eq!(store.identities(&t, ann.id).await.unwrap(), [wechat]);
    assert_eq!(
        store.conversation(&t, c2.id).await.unwrap().customer,
        ann2.id
    );
    assert!(matches!(
        store.unmerge(&unmerge(&t, merge.id, t0())).await,
        Err(Error::Conflict { .. })
    ));
    assert!(matches!(
        store
            .unmerge(&unmerge(&t, crate::MergeId::new(), t0()))
            .await,
        Err(Error::NotFound { .. })
    ));
    let history = store.merges(&t, ann2.id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].by, by);
    assert!(history[0].undone_at.is_some());

    // After the undo they can be merged again.
    store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: ann.id,
            from: ann2.id,
            by,
            at: t0(),
        })
        .await
        .expect("a merge can be redone after an undo");
}

/// A new identity joins another identity's customer by a shared key only when both prove it
/// (WeChat openids of one unionid); an identity that only claims the key (an SMS sender, a caller
/// ID) gets a customer of its own and the others as suggestions. Concurrent joins agree.
pub async fn shared_keys_join_only_when_both_prove(store: &dyn ConversationStore) {
    let t = tenant();
    let digits = "8613800138000";
    let number = format!("+{digits}");
    let phone = |proven| SharedKey::phone(digits, proven).unwrap();
    let wa = Identity::new(ChannelKind::WhatsApp, digits);
    let sms = Identity::new(ChannelKind::Sms, &number);
    let call = Identity::new(ChannelKind::Voice, &number);

    let by_wa = resolve(store, &keyed(&t, &wa, phone(true), 0)).await;
    assert!(by_wa.created && !by_wa.joined && by_wa.suggestions.is_empty());
    let by_sms = resolve(store, &keyed(&t, &sms, phone(false), 1)).await;
    assert!(by_sms.created, "a key the identity only claims never joins");
    assert_ne!(by_sms.customer.id, by_wa.customer.id);
    assert_eq!(
        by_sms.suggestions,
        [LinkSuggestion {
            key: phone(false).key,
            customer: by_sms.customer.id,
            identity: sms.clone(),
            proven: false,
            candidate: by_wa.customer.id,
            candidate_identity: wa.clone(),
            candidate_proven: true,
        }],
        "the WhatsApp customer is suggested"
    );
    let by_call = resolve(store, &keyed(&t, &call, phone(false), 2)).await;
    assert!(by_call.created, "a caller ID never joins");
    assert_eq!(
        by_call
            .suggestions
            .iter()
            .map(|s| (s.candidate, s.candidate_proven))
            .collect::<Vec<_>>(),
        [(by_wa.customer.id, true), (by_sms.customer.id, false)],
        "every customer sharing the key, oldest link first"
    );
    let again = resolve(store, &keyed(&t, &sms, phone(false), 3)).await;
    assert_eq!(again.customer.id, by_sms.customer.id);
    assert!(
        !again.created && !again.joined && again.suggestions.is_empty(),
        "a known identity resolves to its own customer"
    );

    // Proven on both sides: the second openid joins the first one's customer.
    let union = SharedKey::proven("unionid:o6_ann");
    let a = Identity::new(ChannelKind::WeChat, "openid-a");
    let b = Identity::new(ChannelKind::WeChat, "openid-b");
    let first = resolve(store, &keyed(&t, &a, union.clone(), 4)).await;
    let second = resolve(store, &keyed(&t, &b, union.clone(), 5)).await;
    assert!(
        !second.created && second.joined,
        "both prove the key: joined"
    );
    assert_eq!(second.customer.id, first.customer.id);
    assert!(second.suggestions.is_empty());
    let links = store.identity_links(&t, first.customer.id).await.unwrap();
    let joined = links.iter().find(|l| l.identity == b).unwrap();
    assert_eq!(
        joined.origin,
        LinkOrigin::SharedKey {
            key: union.key.clone()
        }
    );
    assert_eq!(joined.shared_key, Some(union.clone()));
    assert!(joined.verified, "a link both sides prove is verified");
    let first_link = links.iter().find(|l| l.identity == a).unwrap();
    assert_eq!(first_link.origin, LinkOrigin::FirstContact);
    assert_eq!(
        first_link.shared_key,
        Some(union.clone()),
        "the key is kept"
    );

    // Claiming a proven key is not enough.
    let claimer = Identity::new(ChannelKind::WebChat, "visitor-claims-union");
    let claimed = resolve(
        store,
        &keyed(&t, &claimer, SharedKey::claimed(&union.key), 6),
    )
    .await;
    assert!(claimed.created);
    assert_eq!(claimed.suggestions.len(), 1, "one candidate customer");
    assert_eq!(claimed.suggestions[0].candidate, first.customer.id);

    // Many new openids of the same unionid at once all join the one customer.
    let racers: Vec<ResolveCustomer> = (0..8)
        .map(|i| {
            let openid = Identity::new(ChannelKind::WeChat, format!("openid-race-{i}"));
            keyed(&t, &openid, union.clone(), 7)
        })
        .collect();
    for r in all_at_once(racers.iter().map(|r| store.resolve_customer(r))).await {
        let r = r.unwrap();
        assert!(r.joined, "a concurrent join joins");
        assert_eq!(r.customer.id, first.customer.id, "concurrent joins agree");
    }
}

/// A known identity first seen without a key gets the key recorded when it comes with one (and
/// can be joined by it afterwards); `link_identity` records a key and confirms the link.
pub async fn known_identities_record_their_key(store: &dyn ConversationStore) {
    let t = tenant();
    let wa = Identity::new(ChannelKind::WhatsApp, "4915112345678");
    let key = SharedKey::phone("4915112345678", true).unwrap();
    let first = resolve(store, &resolve_req(&t, wa.clone())).await;
    let again = resolve(store, &keyed(&t, &wa, key.clone(), 1)).await;
    assert!(!again.created && !again.joined);
    assert_eq!(again.customer.id, first.customer.id);
    let links = store.identity_links(&t, first.customer.id).await.unwrap();
    assert_eq!(
        links[0].shared_key,
        Some(key.clone()),
        "the key is recorded"
    );
    assert_eq!(links[0].origin, LinkOrigin::FirstContact);
    assert!(links[0].verified);

    // The same number written with a `+` proves the same key: it joins.
    let plus = Identity::new(ChannelKind::WhatsApp, "+4915112345678");
    let joined = resolve(store, &keyed(&t, &plus, key, 2)).await;
    assert!(joined.joined);
    assert_eq!(joined.customer.id, first.customer.id);

    let email = Identity::new(ChannelKind::Email, "ann@example.com");
    let mail_key = SharedKey::claimed("email:ann@example.com");
    store
        .link_identity(
            &LinkIdentity::new(
                t.clone(),
                first.customer.id,
                email.clone(),
                LinkOrigin::Api,
                t0(),
            )
            .with_shared_key(mail_key.clone()),
        )
        .await
        .unwrap();
    let links = store.identity_links(&t, first.customer.id).await.unwrap();
    let link = links.iter().find(|l| l.identity == email).unwrap();
    assert_eq!(link.shared_key, Some(mail_key));
    assert!(link.verified, "an explicit link is verified");
    assert_eq!(
        store.identities(&t, first.customer.id).await.unwrap().len(),
        3
    );
}

/// Suggestions are listed for both customers, go away when an agent merges them, and come back
/// when the merge is undone.
pub async fn link_suggestions_follow_merges(store: &dyn ConversationStore) {
    let t = tenant();
    let digits = "8613900139000";
    let wa = Identity::new(ChannelKind::WhatsApp, digits);
    let sms = Identity::new(ChannelKind::Sms, format!("+{digits}"));
    let by_wa = resolve(
        store,
        &keyed(&t, &wa, SharedKey::phone(digits, true).unwrap(), 0),
    )
    .await;
    let by_sms = resolve(
        store,
        &keyed(&t, &sms, SharedKey::phone(digits, false).unwrap(), 1),
    )
    .await;
    let (w, s) = (by_wa.customer.id, by_sms.customer.id);
    let for_sms = store.link_suggestions(&t, s).await.unwrap();
    assert_eq!(
        for_sms, by_sms.suggestions,
        "listed as resolution returned it"
    );
    let for_wa = store.link_suggestions(&t, w).await.unwrap();
    assert_eq!(
        for_wa,
        [LinkSuggestion {
            key: format!("phone:+{digits}"),
            customer: w,
            identity: wa.clone(),
            proven: true,
            candidate: s,
            candidate_identity: sms.clone(),
            candidate_proven: false,
        }],
        "the other side sees it too"
    );
    assert!(
        store
            .link_suggestions(&t, customer(store, &t, "x").await.id)
            .await
            .unwrap()
            .is_empty()
    );

    let merge = store
        .merge_customers(&MergeCustomers {
            tenant: t.clone(),
            into: w,
            from: s,
            by: LinkOrigin::Agent {
                agent: AgentId::new(),
            },
            at: t0(),
        })
        .await
        .unwrap();
    assert!(store.link_suggestions(&t, w).await.unwrap().is_empty());
    assert!(store.link_suggestions(&t, s).await.unwrap().is_empty());
    assert_eq!(
        store.find_customer(&t, &sms).await.unwrap().map(|c| c.id),
        Some(w),
        "confirmed by the merge"
    );
    store
        .unmerge(&unmerge(&t, merge.id, t0() + Duration::hours(1)))
        .await
        .unwrap();
    assert_eq!(store.link_suggestions(&t, s).await.unwrap(), for_sms);
}
