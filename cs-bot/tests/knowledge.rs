//! Out-of-scope questions in a dialogue, knowledge edits with background retraining, and saved
//! models.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use cs_bot::{
    Bot, BotInput, BotReply, DemoShop, FaqEntry, IntentBot, IntentBotBuilder, IntentClassifier,
    LiveBot, parse_knowledge,
};
use cs_core::{ConversationId, CustomerId, TenantId};

const FAQ: &str = include_str!("../data/ecommerce_faq.txt");

fn input(conversation: ConversationId, text: &str) -> BotInput {
    BotInput {
        tenant: TenantId::default(),
        conversation,
        customer: CustomerId::new(),
        text: text.into(),
        history: vec![],
        // The demo shop's customer, who proved the phone its orders were placed with.
        verified_phones: vec!["+8613800138000".into()],
    }
}

fn text(r: &BotReply) -> String {
    r.messages.join("\n")
}

fn builder() -> IntentBotBuilder {
    let shop = Arc::new(DemoShop::sample(Utc::now()));
    IntentBot::builder()
        .with_orders(shop.clone())
        .with_tickets(shop)
}

#[test]
fn the_bundled_knowledge_file_has_an_out_of_scope_section() {
    let k = parse_knowledge(FAQ).unwrap();
    assert!(k.out_of_scope.len() >= 16);
    assert!(k.entries.iter().all(|e| e.intent != "oos"));
}

#[tokio::test]
async fn an_out_of_scope_question_gets_i_dont_know_with_the_menu_not_the_nearest_answer() {
    let live = LiveBot::new(parse_knowledge(FAQ).unwrap(), builder).unwrap();
    let c = ConversationId::new();
    let r = live
        .reply(&input(c, "can you tell me a joke about cats"))
        .await
        .unwrap();
    let t = text(&r);
    assert!(t.contains("don't know"), "{t}");
    assert!(t.contains("- "), "offers the topics: {t}");
    assert!(r.intent.is_none(), "{r:?}");
    assert!(r.handoff.is_none());
    let r = live.reply(&input(c, "明天北京天气怎么样")).await.unwrap();
    // The second miss in a row hands over.
    assert!(r.handoff.is_some(), "{r:?}");
    let asked = live.unanswered().questions(&TenantId::default());
    assert_eq!(asked.len(), 2, "{asked:?}");
    // In-scope questions are still answered.
    let r = live
        .reply(&input(ConversationId::new(), "退款多久到账"))
        .await
        .unwrap();
    assert!(text(&r).contains("1-3个工作日"), "{r:?}");
}

/// Issue 20: a shop question the knowledge file has no entry for (gift cards) is not answered
/// with an entry that merely shares a word with it (payment: "credit card"), and is logged for
/// supervisors; the bundled out-of-scope section covers such near misses in general (other
/// products, stores, jobs), not this phrase.
#[tokio::test]
async fn a_question_that_only_shares_a_word_with_an_entry_is_not_answered_with_it() {
    let live = LiveBot::new(parse_knowledge(FAQ).unwrap(), builder).unwrap();
    for q in [
        "can I buy a gift card",
        "do you sell gift cards?",
        "有礼品卡吗",
    ] {
        let r = live.reply(&input(ConversationId::new(), q)).await.unwrap();
        let t = text(&r);
        assert!(!t.contains("Alipay") && !t.contains("支付宝"), "{q}: {t}");
    }
    assert_eq!(live.unanswered().questions(&TenantId::default()).len(), 3);
    // Paying with a card is still a payment question.
    let r = live
        .reply(&input(
            ConversationId::new(),
            "can I pay with a credit card",
        ))
        .await
        .unwrap();
    assert!(text(&r).contains("Alipay"), "{r:?}");
}

#[tokio::test]
async fn edits_retrain_in_the_background_while_the_old_model_answers() {
    let live = LiveBot::new(parse_knowledge(FAQ).unwrap(), builder).unwrap();
    let c = ConversationId::new();
    // A conversation waiting for an order number...
    let r = live.reply(&input(c, "track my package")).await.unwrap();
    assert!(text(&r).contains("order number"), "{r:?}");

    let rev = live
        .upsert_entry(FaqEntry {
            intent: "gift_card".into(),
            questions: vec![
                "do you sell gift cards".into(),
                "can I buy a gift card".into(),
                "有礼品卡吗".into(),
                "怎么买礼品卡".into(),
            ],
            answer_zh: Some("礼品卡在“我的-礼品卡”购买。".into()),
            answer_en: Some("Gift cards are sold under Me - Gift cards.".into()),
            skills: vec![],
        })
        .unwrap();
    live.add_phrasing("gift_card", "gift voucher for a friend")
        .unwrap();
    assert!(live.add_phrasing("nope", "x").is_err());
    assert_eq!(live.status().serving_revision, 1);
    let target = live.retrain();
    assert_eq!(target, rev + 1);
    // The old model answers meanwhile.
    let r = live
        .reply(&input(ConversationId::new(), "退款多久到账"))
        .await
        .unwrap();
    assert!(text(&r).contains("1-3个工作日"), "{r:?}");
    assert!(live.wait_idle(Duration::from_secs(120)));
    let st = live.status();
    assert_eq!(st.serving_revision, target, "{st:?}");
    assert!(st.last_error.is_none());

    let r = live
        .reply(&input(ConversationId::new(), "do you sell gift cards?"))
        .await
        .unwrap();
    assert!(text(&r).contains("Gift cards are sold"), "{r:?}");
    // ...still has its dialogue state after the swap.
    let r = live.reply(&input(c, "20261111001")).await.unwrap();
    assert!(text(&r).contains("SF Express"), "{r:?}");

    // A failed retraining keeps the model and says why.
    live.replace_knowledge(parse_knowledge("Intent: a\nQ: x\nA: y\n").unwrap())
        .unwrap();
    live.retrain();
    assert!(live.wait_idle(Duration::from_secs(60)));
    let st = live.status();
    assert!(st.last_error.is_some(), "{st:?}");
    assert_eq!(st.serving_revision, target);
}

#[test]
fn a_model_cache_trains_once_and_retrains_when_the_knowledge_changes() {
    let dir = std::env::temp_dir().join(format!("cs-bot-cache-{}", std::process::id()));
    let path = dir.with_extension("model");
    let _ = std::fs::remove_file(&path);
    let first = builder()
        .with_faq_text(FAQ)
        .unwrap()
        .with_model_cache(&path)
        .build()
        .unwrap();
    let saved = IntentClassifier::load_file(&path).unwrap();
    let digest = saved.selection().training_digest.clone();
    assert!(digest.is_some());
    let second = builder()
        .with_faq_text(FAQ)
        .unwrap()
        .with_model_cache(&path)
        .build()
        .unwrap();
    for q in [
        "我的快递到哪了",
        "how do I get an invoice",
        "tell me a joke",
    ] {
        assert_eq!(
            first.classifier().predict(q),
            second.classifier().predict(q)
        );
    }
    assert_eq!(
        second.classifier().selection().train_secs,
        saved.selection().train_secs,
        "loaded, not retrained"
    );
    let mut k = parse_knowledge(FAQ).unwrap();
    k.entries[0].questions.push("hey there".into());
    builder()
        .with_knowledge(k)
        .with_model_cache(&path)
        .build()
        .unwrap();
    let again = IntentClassifier::load_file(&path).unwrap();
    assert_ne!(again.selection().training_digest, digest);
    let _ = std::fs::remove_file(&path);
}
