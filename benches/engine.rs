#![allow(missing_docs)]
//! The cost of one customer message through the whole engine (identity, conversation, de-dup
//! store, bot answer, outbound), against the bare store append it is built on (the baseline),
//! both on the in-memory store so the engine's own overhead shows.

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use omnidesk::Engine;
use omnidesk::bot::FaqBot;
use omnidesk::channels::{InboundMessage, WebChat};
use omnidesk::core::store::{
    ConversationLog, CustomerStore, MemoryStore, OpenConversation, ResolveCustomer,
};
use omnidesk::core::{
    Author, ChannelId, ChannelKind, Content, DeliveryStatus, Direction, Identity, Message,
    MessageId, Priority, Route, TenantId,
};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let faq = omnidesk::bot::ECOMMERCE_FAQ;
    let (engine, store) = rt.block_on(async {
        let webchat = Arc::new(
            WebChat::builder(ChannelId::new("webchat").unwrap())
                .with_secret(*b"bench secret, 16+ bytes")
                .build()
                .unwrap(),
        );
        let engine = Engine::builder()
            .with_store(Arc::new(MemoryStore::new()))
            .with_bot(Arc::new(FaqBot::from_text(faq).unwrap()))
            .with_channel(webchat)
            .build()
            .await
            .unwrap();
        (engine, Arc::new(MemoryStore::new()))
    });

    let mut group = c.benchmark_group("inbound_message");
    let mut n = 0u64;
    group.bench_function("baseline_store_append", |b| {
        let tenant = TenantId::default();
        let identity = Identity::new(ChannelKind::WebChat, "bench-visitor");
        let conv = rt.block_on(async {
            let customer = store
                .resolve_customer(&ResolveCustomer::new(
                    tenant.clone(),
                    identity.clone(),
                    chrono::Utc::now(),
                ))
                .await
                .unwrap()
                .customer;
            store
                .open_conversation(&OpenConversation {
                    tenant: tenant.clone(),
                    customer: customer.id,
                    route: Route {
                        channel: ChannelId::new("webchat").unwrap(),
                        identity,
                    },
                    priority: Priority::Normal,
                    at: chrono::Utc::now(),
                    unless_stored: None,
                })
                .await
                .unwrap()
                .conversation
        });
        b.iter(|| {
            n += 1;
            let m = Message {
                id: MessageId::new(),
                tenant: tenant.clone(),
                conversation: conv.id,
                customer: conv.customer,
                channel: conv.route.channel.clone(),
                channel_kind: ChannelKind::WebChat,
                direction: Direction::Inbound,
                author: Author::Customer,
                content: Content::text("When will my order ship?"),
                provider_message_id: Some(format!("b{n}")),
                status: DeliveryStatus::Delivered,
                created_at: chrono::Utc::now(),
            };
            rt.block_on(store.append_message(&m)).unwrap()
        })
    });
    group.bench_function("engine_handle_inbound_with_bot_answer", |b| {
        b.iter(|| {
            n += 1;
            rt.block_on(engine.handle_inbound_and_wait(InboundMessage {
                channel: ChannelId::new("webchat").unwrap(),
                from: Identity::new(ChannelKind::WebChat, format!("v{}", n % 500)),
                provider_message_id: Some(format!("e{n}")),
                content: Content::text("When will my order ship?"),
                display_name: None,
                language: None,
                sent_at: None,
            }))
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
