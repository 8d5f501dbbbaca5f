//! The agent's workbench in a real browser (headless Chromium over WebDriver): an agent adds a
//! canned reply in the console, types `/` in the reply box, picks it, and the shopper receives
//! it with the variables filled in; then the same on a 390 px phone in Chinese with the team's
//! shared reply, the console laid out in one column. A note with `@bob` reaches Bob's console
//! live; he opens the conversation and answers with a note; the shopper sees neither.
//!
//! Runs when `CS_TEST_CHROMEDRIVER` names the chromedriver binary; otherwise it prints a notice
//! and passes. `CS_TEST_SCREENSHOTS` names a folder to keep the screenshots in.

mod common;

use std::time::Duration;

use common::browser::{self, shoot, text_of, type_and_send, wait_for_text};
use common::{Server, TempDir};
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use omnidesk::core::TenantId;

async fn sign_in(console: &Client, server: &Server, name: &str, password: &str) {
    console.goto(&server.url("/agent")).await.unwrap();
    console
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("[data-testid=agent-name]"))
        .await
        .unwrap()
        .send_keys(name)
        .await
        .unwrap();
    type_and_send(
        console,
        "[data-testid=agent-password]",
        "[data-testid=agent-login-submit]",
        password,
    )
    .await;
}

async fn fill(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn js(client: &Client, script: &str) -> serde_json::Value {
    client.execute(script, vec![]).await.unwrap()
}

/// Types `/` and `words` in the reply box, waits for `shortcut` in the picker, and picks it
/// with Enter; the reply box's text once filled in.
async fn pick_canned(console: &Client, words: &str, shortcut: &str) -> String {
    let input = console
        .find(Locator::Css("[data-testid=agent-reply-input]"))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input.send_keys(&format!("/{words}")).await.unwrap();
    wait_for_text(
        console,
        "[data-testid=agent-canned-option]",
        &format!("/{shortcut}"),
    )
    .await;
    input.send_keys(&Key::Enter.to_string()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let v = input.prop("value").await.unwrap().unwrap_or_default();
        if !v.starts_with('/') && !v.is_empty() {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "never filled in");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_agent_sends_a_canned_reply_with_variables_from_the_console() {
    let Some(driver) = browser::driver().await else {
        return;
    };
    let dir = TempDir::new();
    let server = Server::start(&dir.0).await;

    // A shopper asks for a human in the widget.
    let shopper = browser::browser(&driver, "shopper", 1280, 900).await;
    shopper.goto(&server.url("/")).await.unwrap();
    wait_for_text(&shopper, "[data-testid=chat-status]", "在线").await;

    // Alice signs in (desktop, English) and adds a canned reply of her own.
    let console = browser::browser_in(&driver, "en-US", 1280, 860).await;
    sign_in(&console, &server, "alice", "alice").await;
    wait_for_text(&console, "[data-testid=agent-me]", "Alice").await;
    click(&console, "[data-testid=agent-canned-manage]").await;
    fill(&console, "[data-testid=agent-canned-shortcut]", "greet").await;
    fill(&console, "[data-testid=agent-canned-title]", "Greeting").await;
    fill(
        &console,
        "[data-testid=agent-canned-text]",
        "Hi {customer.name}, {agent.name} here. Your code: {coupon.code}",
    )
    .await;
    click(&console, "[data-testid=agent-canned-save]").await;
    wait_for_text(&console, "[data-testid=agent-canned-item]", "/greet").await;
    // And a shared one for the team (she is an admin).
    fill(&console, "[data-testid=agent-canned-shortcut]", "xie").await;
    fill(&console, "[data-testid=agent-canned-title]", "致谢").await;
    fill(
        &console,
        "[data-testid=agent-canned-text]",
        "{customer.name}您好，感谢您的耐心等待，我是{agent.name}。",
    )
    .await;
    click(&console, "[data-testid=agent-canned-shared]").await;
    click(&console, "[data-testid=agent-canned-save]").await;
    wait_for_text(&console, "[data-testid=agent-canned-item]", "/xie").await;
    shoot(&console, "console-canned-panel-en", 1280, 860).await;
    click(&console, "[data-testid=agent-canned-close]").await;

    type_and_send(
        &shopper,
        "[data-testid=chat-input]",
        "[data-testid=chat-send]",
        "转人工",
    )
    .await;
    wait_for_text(&console, "[data-testid=agent-conversation]", "").await;
    // The shop knows the shopper's name.
    let engine = server.app.engine();
    let tenant = TenantId::default();
    let convs = engine
        .store()
        .conversations(&omnidesk::core::store::ConversationQuery {
            tenant: tenant.clone(),
            states: Vec::new(),
            assignee: None,
            customer: None,
            limit: 10,
        })
        .await
        .unwrap();
    let mut customer = engine
        .store()
        .customer(&tenant, convs[0].customer)
        .await
        .unwrap();
    customer.display_name = Some("王芳".into());
    engine.store().update_customer(&customer).await.unwrap();

    // The customer at a glance: their web chat identity and this conversation.
    click(&console, "[data-testid=agent-customer] summary").await;
    let id = wait_for_text(
        &console,
        "[data-testid=agent-customer-identity]",
        "web_chat",
    )
    .await;
    assert!(id.contains("v-"), "{id}");
    wait_for_text(
        &console,
        "[data-testid=agent-customer-conversation]",
        "this one",
    )
    .await;

    // "/gr" finds it; Enter fills it in; the unknown variable stays visible with a note.
    let filled = pick_canned(&console, "gr", "greet").await;
    assert_eq!(filled, "Hi 王芳, Alice here. Your code: {coupon.code}");
    let note = wait_for_text(&console, "[data-testid=agent-canned-note]", "coupon.code").await;
    assert!(note.contains("{coupon.code}"), "{note}");
    // The agent edits what was not filled in, and sends.
    let input = console
        .find(Locator::Css("[data-testid=agent-reply-input]"))
        .await
        .unwrap();
    input.clear().await.unwrap();
    input
        .send_keys("Hi 王芳, Alice here. Your code: SPRING")
        .await
        .unwrap();
    let probe = console
        .find(Locator::Css("[data-testid=agent-reply-send]"))
        .await
        .unwrap();
    probe.click().await.unwrap();
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=agent]",
        "Hi 王芳, Alice here. Your code: SPRING",
    )
    .await;
    let input = console
        .find(Locator::Css("[data-testid=agent-reply-input]"))
        .await
        .unwrap();
    input.send_keys("/").await.unwrap();
    wait_for_text(&console, "[data-testid=agent-canned-option]", "/xie").await;
    shoot(&console, "console-canned-picker-en", 1280, 860).await;
    input.send_keys(&Key::Escape.to_string()).await.unwrap();
    input.clear().await.unwrap();

    // A note with a mention: Bob, in his own console, is told and opens the conversation.
    let colleague = browser::browser_in(&driver, "en-GB", 1280, 860).await;
    sign_in(&colleague, &server, "bob", "bob").await;
    wait_for_text(&colleague, "[data-testid=agent-me]", "Bob").await;
    click(&console, "[data-testid=agent-note-toggle]").await;
    type_and_send(
        &console,
        "[data-testid=agent-reply-input]",
        "[data-testid=agent-reply-send]",
        "@bob 这位客户的退款怎么处理？",
    )
    .await;
    wait_for_text(
        &console,
        "[data-testid=agent-message].internal",
        "退款怎么处理",
    )
    .await;
    let card = wait_for_text(&colleague, "[data-testid=agent-mention]", "退款怎么处理").await;
    assert!(card.contains("Alice"), "{card}");
    let title = colleague.title().await.unwrap();
    assert!(title.starts_with("(1) "), "the tab counts it: {title}");
    click(&colleague, "[data-testid=agent-mention-open]").await;
    let note = wait_for_text(&colleague, "[data-testid=agent-message].internal", "退款").await;
    assert!(note.contains("internal note"), "{note}");
    let mark = text_of(&colleague, "[data-testid=agent-message].internal .mention").await;
    assert_eq!(mark, "@bob");
    // He answers with a note (the composer is in note mode for a conversation he helps with).
    type_and_send(
        &colleague,
        "[data-testid=agent-reply-input]",
        "[data-testid=agent-reply-send]",
        "走原路退回即可",
    )
    .await;
    wait_for_text(
        &console,
        "[data-testid=agent-message].internal",
        "走原路退回即可",
    )
    .await;
    shoot(&colleague, "console-mention-en", 1280, 860).await;
    click(&console, "[data-testid=agent-note-toggle]").await;

    // On a phone, in Chinese: one column, a usable reply box, the team's reply by its shortcut.
    let phone = browser::browser_in(&driver, "zh-CN", 1280, 900).await;
    phone.set_window_size(390, 844).await.unwrap();
    sign_in(&phone, &server, "alice", "alice").await;
    wait_for_text(&phone, "[data-testid=agent-conversation]", "").await;
    let layout = js(
        &phone,
        "const r = s => document.querySelector(s).getBoundingClientRect();\
         return {side: r('#side').width, main: r('#main').width, input: r('[data-testid=agent-reply-input]').width,\
                 header: r('header').height, doc: document.documentElement.scrollWidth,\
                 font: getComputedStyle(document.querySelector('[data-testid=agent-reply-input]')).fontSize};",
    )
    .await;
    assert!(layout["side"].as_f64().unwrap() >= 380.0, "{layout}");
    assert!(layout["main"].as_f64().unwrap() >= 380.0, "{layout}");
    assert!(layout["input"].as_f64().unwrap() >= 230.0, "{layout}");
    assert!(
        layout["doc"].as_f64().unwrap() <= 390.0,
        "no sideways scroll: {layout}"
    );
    assert!(layout["header"].as_f64().unwrap() <= 200.0, "{layout}");
    assert_eq!(layout["font"], "16px", "no zoom on focus: {layout}");
    let filled = pick_canned(&phone, "xi", "xie").await;
    assert_eq!(filled, "王芳您好，感谢您的耐心等待，我是Alice。");
    shoot(&phone, "console-canned-390-zh", 390, 844).await;
    click(&phone, "[data-testid=agent-reply-send]").await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=agent]",
        "感谢您的耐心等待",
    )
    .await;
    wait_for_text(
        &phone,
        "[data-testid=agent-message][data-author=agent]",
        "感谢您的耐心等待",
    )
    .await;
    shoot(&phone, "console-sent-390-zh", 390, 844).await;
    // The notes never reached the shopper.
    let seen = js(
        &shopper,
        "return Array.from(document.querySelectorAll('[data-testid=chat-message]')).map(e => e.textContent).join('|');",
    )
    .await;
    let seen = seen.as_str().unwrap();
    assert!(seen.contains("感谢您的耐心等待"), "{seen}");
    assert!(!seen.contains("退款") && !seen.contains("原路"), "{seen}");

    // Alice hands the conversation to Bob with a note; he reads it and answers the shopper.
    click(&console, "[data-testid=agent-conversation]").await;
    let bob_option = console
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::XPath(
            "//select[@data-testid='agent-transfer-to']/option[starts-with(., 'Bob')]",
        ))
        .await
        .unwrap();
    bob_option.click().await.unwrap();
    fill(
        &console,
        "[data-testid=agent-transfer-note]",
        "请跟进退款，原路退回",
    )
    .await;
    click(&console, "[data-testid=agent-transfer]").await;
    wait_for_text(&console, "#status", "Transferred to Bob").await;
    assert_eq!(
        js(
            &console,
            "return document.querySelectorAll('[data-testid=agent-conversation]').length;"
        )
        .await,
        0,
        "it left Alice's list"
    );
    wait_for_text(
        &colleague,
        "[data-testid=agent-message].internal",
        "请跟进退款",
    )
    .await;
    click(&colleague, "[data-testid=agent-conversation]").await;
    type_and_send(
        &colleague,
        "[data-testid=agent-reply-input]",
        "[data-testid=agent-reply-send]",
        "您好，我是 Bob，退款已为您办理",
    )
    .await;
    wait_for_text(
        &shopper,
        "[data-testid=chat-message][data-author=agent]",
        "我是 Bob",
    )
    .await;
    shoot(&colleague, "console-transferred-en", 1280, 860).await;

    // Bob resolves it: it leaves his own list and is found under "Resolved", where it opens to
    // read; the search narrows the list.
    click(&colleague, "[data-testid=agent-resolve]").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while js(
        &colleague,
        "return document.querySelectorAll('[data-testid=agent-conversation]').length;",
    )
    .await
        != 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resolved one stays in Mine"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    click(&colleague, "[data-testid=agent-filter-resolved]").await;
    wait_for_text(
        &colleague,
        "[data-testid=agent-listed-conversation]",
        "resolved",
    )
    .await;
    click(&colleague, "[data-testid=agent-listed-conversation]").await;
    wait_for_text(&colleague, "[data-testid=agent-message]", "我是 Bob").await;
    let disabled = js(
        &colleague,
        "return document.querySelector('[data-testid=agent-reply-input]').disabled;",
    )
    .await;
    assert_eq!(
        disabled, true,
        "a resolved conversation is read, not answered"
    );
    shoot(&colleague, "console-resolved-filter-en", 1280, 860).await;
    fill(&colleague, "[data-testid=agent-search]", "no such words").await;
    assert_eq!(
        js(
            &colleague,
            "return document.querySelectorAll('[data-testid=agent-listed-conversation]').length;"
        )
        .await,
        0
    );

    shopper.close().await.unwrap();
    console.close().await.unwrap();
    phone.close().await.unwrap();
    colleague.close().await.unwrap();
    server.stop().await;
}
