//! Issue 16, the satisfaction survey over the widget's socket: after an agent resolves, the
//! customer rates their own conversation once (1-5 and an optional comment); the rating is
//! stored in the conversation, counted in CSAT analytics and shown to agents; anything else is
//! refused.

mod common;

use std::time::Duration;

use common::browser::{self, type_and_send, wait_for_text};
use common::{Server, TempDir, agent, customer, is_message_from};
use fantoccini::Locator;
use omnidesk::core::{DomainEvent, Survey};
use serde_json::{Value, json};

/// A shopper handed over to Alice, who resolves: the shopper's socket, the token, Alice's
/// socket, and the conversation id.
async fn resolved_conversation(server: &Server) -> (common::Client, String, common::Client, Value) {
    let (mut alice, _) = agent(server, "alice", "alice").await;
    let (token, mut shopper, _) = customer(server, None).await;
    shopper
        .send_json(json!({"type": "message", "client_id": "c1", "text": "转人工"}))
        .await;
    let assigned = alice.until(|f| f["type"] == "assigned").await;
    let conversation = assigned["conversation"]["conversation"]["id"].clone();
    shopper.until(|f| f["type"] == "ack").await;
    (shopper, token, alice, conversation)
}

#[tokio::test]
async fn a_customer_rates_their_resolved_conversation_once() {
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;
    let mut events = server.app.engine().subscribe();
    let (mut shopper, token, mut alice, conversation) = resolved_conversation(&server).await;

    // Before the resolve: refused (a conversation is rated once it is resolved).
    shopper
        .send_json(json!({"type": "rate", "conversation": conversation, "score": 5}))
        .await;
    let early = shopper.until(|f| f["type"] == "error").await;
    assert_eq!(early["code"], "invalid_input", "{early}");

    alice
        .send_json(json!({"type": "resolve", "conversation_id": conversation}))
        .await;
    alice.until(|f| f["type"] == "resolved").await;
    // The customer's widget learns the conversation from the "resolved" notice.
    let bye = shopper.until(is_message_from("system")).await;
    assert_eq!(bye["message"]["conversation"], conversation, "{bye}");

    // Off the scale, an unknown field, an over-long comment: refused, nothing stored.
    for (frame, code) in [
        (
            json!({"type": "rate", "conversation": conversation, "score": 0}),
            "invalid_input",
        ),
        (
            json!({"type": "rate", "conversation": conversation, "score": 6}),
            "invalid_input",
        ),
        (
            json!({"type": "rate", "conversation": conversation, "score": 300}),
            "invalid_input",
        ),
        (
            json!({"type": "rate", "conversation": conversation, "score": 4, "extra": 1}),
            "invalid_input",
        ),
        (
            json!({"type": "rate", "conversation": conversation, "score": 4, "comment": "好".repeat(501)}),
            "payload_too_large",
        ),
    ] {
        shopper.send_json(frame.clone()).await;
        let refused = shopper.until(|f| f["type"] == "error").await;
        assert_eq!(refused["code"], code, "{frame} -> {refused}");
    }

    // Another visitor cannot rate it, nor can anyone rate a conversation that does not exist.
    let (_, mut stranger, _) = customer(&server, None).await;
    stranger
        .send_json(json!({"type": "rate", "conversation": conversation, "score": 1}))
        .await;
    let theirs = stranger.until(|f| f["type"] == "error").await;
    assert_eq!(theirs["code"], "invalid_input", "{theirs}");
    shopper
        .send_json(json!({"type": "rate", "conversation": uuid::Uuid::now_v7(), "score": 1}))
        .await;
    let unknown = shopper.until(|f| f["type"] == "error").await;
    assert_eq!(unknown["code"], "invalid_input", "{unknown}");

    // The customer's own rating: stored and acknowledged.
    shopper
        .send_json(json!({"type": "rate", "conversation": conversation, "score": 4, "comment": "  回复很快 "}))
        .await;
    let rated = shopper.until(|f| f["type"] == "rated").await;
    assert_eq!(rated["conversation"], conversation);
    assert_eq!(rated["score"], 4);

    // Once: a second rating (from another tab, say) is refused and the first one stands.
    let (_, mut second_tab, _) = customer(&server, Some(&token)).await;
    second_tab
        .send_json(json!({"type": "rate", "conversation": conversation, "score": 1, "comment": "changed my mind"}))
        .await;
    let again = second_tab.until(|f| f["type"] == "error").await;
    assert_eq!(again["code"], "already_rated", "{again}");

    // Recorded for CSAT analytics exactly once, with the comment trimmed.
    let mut answers = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let DomainEvent::SurveyAnswered {
            conversation: c,
            survey,
            score,
            comment,
            agent,
        } = e.kind
        {
            assert_eq!(c.to_string(), conversation.as_str().unwrap());
            assert!(agent.is_some(), "credited to the agent who had it");
            answers.push((survey, score, comment));
        }
    }
    assert_eq!(
        answers,
        vec![(Survey::Csat, 4, Some("回复很快".to_owned()))]
    );

    // Agents see it in the conversation's history (the customer's widget does not).
    let id = conversation.as_str().unwrap().parse().unwrap();
    let conv = server.app.engine().conversation(id).await.unwrap();
    let view = server
        .app
        .engine()
        .customer_view(conv.customer)
        .await
        .unwrap();
    let notes: Vec<String> = view
        .history
        .iter()
        .filter(|m| m.provider_message_id.as_deref() == Some(&format!("csat:{id}")))
        .map(|m| m.content.plain_text())
        .collect();
    assert_eq!(notes, vec!["CSAT ★★★★☆ 4/5: 回复很快".to_owned()]);
    let (_, _, hello) = customer(&server, Some(&token)).await;
    assert!(
        !hello["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["text"].as_str().unwrap_or("").starts_with("CSAT")),
        "the rating note is the desk's: {hello}"
    );

    server.stop().await;
}

/// In Chromium, a shopper on the Chinese shop page at 375 px asks for a human; Alice answers
/// and resolves from the console; the widget asks, in Chinese, for a rating; the shopper picks
/// four stars, writes a comment and sends it; the widget thanks them, a reload does not ask
/// again, and when the shopper comes back Alice's console shows the last CSAT in the customer
/// panel and the rating in the history.
#[tokio::test]
async fn the_shopper_rates_a_resolved_chat_at_375_px_in_chinese() {
    let Some(driver) = browser::driver().await else {
        return;
    };
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;

    let console = browser::browser(&driver, "agent", 1280, 900).await;
    console.goto(&server.url("/agent")).await.unwrap();
    console
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("[data-testid=agent-name]"))
        .await
        .unwrap()
        .send_keys("alice")
        .await
        .unwrap();
    type_and_send(
        &console,
        "[data-testid=agent-password]",
        "[data-testid=agent-login-submit]",
        "alice",
    )
    .await;
    wait_for_text(&console, "[data-testid=agent-me]", "Alice").await;

    let shopper = browser::browser_in(&driver, "zh-CN", 375, 812).await;
    shopper.goto(&server.url("/")).await.unwrap();
    wait_for_text(
        &shopper,
        "[data-testid=chat-status][data-state=online]",
        "在线",
    )
    .await;
    type_and_send(
        &shopper,
        "[data-testid=chat-input]",
        "[data-testid=chat-send]",
        "转人工",
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=system]",
        "Alice",
    )
    .await;
    wait_for_text(
        &console,
        "[data-testid=agent-message][data-author=customer]",
        "转人工",
    )
    .await;
    type_and_send(
        &console,
        "[data-testid=agent-reply-input]",
        "[data-testid=agent-reply-send]",
        "您好，已为您处理好了。",
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=agent]",
        "处理好了",
    )
    .await;

    // Alice resolves: the widget asks for a rating, in Chinese.
    console
        .find(Locator::Css("[data-testid=agent-resolve]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let survey = wait_for_text(&shopper, "[data-testid=chat-survey]", "本次服务您满意吗？").await;
    assert!(survey.contains("提交评价"), "{survey}");
    let submit = shopper
        .find(Locator::Css("[data-testid=chat-survey-submit]"))
        .await
        .unwrap();
    assert!(
        submit.attr("disabled").await.unwrap().is_some(),
        "nothing to send before a score is chosen"
    );
    let stars = shopper
        .find_all(Locator::Css("[data-testid=chat-survey-star]"))
        .await
        .unwrap();
    assert_eq!(stars.len(), 5);
    assert_eq!(
        stars[3].attr("aria-label").await.unwrap().as_deref(),
        Some("4 星 · 满意")
    );
    browser::shoot(&shopper, "survey-375-zh-asked", 375, 812).await;
    stars[3].click().await.unwrap();
    wait_for_text(&shopper, "[data-testid=chat-survey-meaning]", "满意").await;
    let comment = shopper
        .find(Locator::Css("[data-testid=chat-survey-comment]"))
        .await
        .unwrap();
    comment.send_keys("回复很快，谢谢").await.unwrap();
    let font = shopper
        .execute(
            "return getComputedStyle(document.querySelector('[data-testid=chat-survey-comment]')).fontSize",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(font, "16px", "no zoom on phones");
    browser::shoot(&shopper, "survey-375-zh-chosen", 375, 812).await;
    submit.click().await.unwrap();
    wait_for_text(
        &shopper,
        "[data-testid=chat-survey][data-state=done]",
        "感谢您的评价",
    )
    .await;
    browser::shoot(&shopper, "survey-375-zh-thanks", 375, 812).await;

    // A reload shows the history and does not ask again.
    shopper.refresh().await.unwrap();
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=agent]",
        "处理好了",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        shopper
            .find_all(Locator::Css("[data-testid=chat-survey]"))
            .await
            .unwrap()
            .is_empty(),
        "rated once, asked once"
    );

    // The shopper comes back: Alice sees the last CSAT in the customer panel and the rating in
    // the history.
    type_and_send(
        &shopper,
        "[data-testid=chat-input]",
        "[data-testid=chat-send]",
        "转人工",
    )
    .await;
    let csat = wait_for_text(&console, "[data-testid=agent-csat]", "4/5").await;
    assert!(csat.contains("回复很快，谢谢"), "{csat}");
    wait_for_text(
        &console,
        "[data-testid=agent-message][data-author=customer]",
        "CSAT ★★★★☆ 4/5: 回复很快，谢谢",
    )
    .await;
    browser::shoot(&console, "survey-console-last-csat", 1280, 900).await;

    shopper.close().await.unwrap();
    console.close().await.unwrap();
    server.stop().await;
}
