//! Knowledge management in the bundled service, against the real service: an entry added
//! through the API, a background retrain, and the bot answering the new question through the
//! widget; strangers refused; validation with reasons; the questions the bot could not answer,
//! grouped, turned into an entry; edits and the trained model surviving a restart; and the page
//! in headless Chromium (desktop and phone widths, Chinese and English).
//!
//! The Chromium part runs when `CS_TEST_CHROMEDRIVER` names the chromedriver binary; otherwise
//! it prints a notice and passes. Screenshots go to `CS_TEST_SCREENSHOTS` (a folder) when set.

mod common;

use std::time::{Duration, Instant};

use common::{Server, TempDir, browser, customer, http, is_message_from, post_json};
use omnidesk::Config;
use serde_json::{Value, json};

fn config(dir: &TempDir) -> Config {
    Config {
        database: dir.0.join("desk.db"),
        ..Config::default()
    }
}

async fn token(server: &Server) -> String {
    let (status, login) = post_json(
        server.addr,
        "/agent/login",
        &json!({"name": "alice", "password": "alice"}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    login["token"].as_str().unwrap().to_owned()
}

/// One call to the knowledge API: the status and the JSON body.
async fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut headers = vec![];
    if let Some(t) = token {
        headers.push(("Authorization", format!("Bearer {t}")));
    }
    if body.is_some() {
        headers.push(("Content-Type", "application/json".to_owned()));
    }
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, head, body) = http(
        server.addr,
        method,
        &format!("/agent/knowledge{path}"),
        &headers,
        &text,
    )
    .await;
    if status >= 400 {
        assert!(head.contains("application/json"), "JSON errors: {head}");
    }
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// Asks through the widget as a new visitor; the bot's answer.
async fn ask(server: &Server, text: &str) -> String {
    let (_token, mut shopper, _) = customer(server, None).await;
    shopper
        .send_json(
            json!({"type": "message", "client_id": uuid::Uuid::new_v4().to_string(), "text": text}),
        )
        .await;
    let answer = shopper.until(is_message_from("bot")).await;
    answer["message"]["text"].as_str().unwrap().to_owned()
}

/// Waits until the retrain is done and the edited knowledge serves; the last status.
async fn until_trained(server: &Server, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, s) = call(server, "GET", "/status", Some(token), None).await;
        assert_eq!(status, 200, "{s}");
        assert_ne!(s["state"], "failed", "{s}");
        if s["state"] == "ready" && s["untrained_edits"] == false {
            return s;
        }
        assert!(Instant::now() < deadline, "training never finished: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const GIFT_EN: &str = "Yes: gift cards of 100, 200 and 500 yuan, under Account - Gift cards.";
const GIFT_ZH: &str = "有的：100、200、500 元礼品卡，在“我的账户 - 礼品卡”购买。";

fn gift_entry() -> Value {
    json!({
        "id": "gift_cards",
        "phrasings": [
            "do you sell gift cards",
            "can I buy a gift card",
            "gift card for a friend",
            "how do gift cards work",
            "你们有礼品卡吗",
            "怎么买礼品卡",
            "礼品卡怎么用",
            "可以送朋友礼品卡吗"
        ],
        "answer_zh": GIFT_ZH,
        "answer_en": GIFT_EN,
        "skills": ["after-sales"]
    })
}

#[tokio::test]
async fn an_edited_entry_answers_through_the_widget_after_a_retrain() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let token = token(&server).await;

    // The bundled entries with their phrasings and answers in both languages.
    let (status, list) = call(&server, "GET", "/entries", Some(&token), None).await;
    assert_eq!(status, 200, "{list}");
    let invoice = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "invoice")
        .expect("the bundled invoice entry");
    assert!(invoice["phrasings"].as_array().unwrap().len() > 2);
    assert!(invoice["answer_zh"].is_string() && invoice["answer_en"].is_string());
    let (_, found) = call(
        &server,
        "GET",
        "/entries?q=%E5%8F%91%E7%A5%A8",
        Some(&token),
        None,
    )
    .await;
    assert!(
        found["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == "invoice"),
        "search finds 发票: {found}"
    );

    // Before: the bot does not know gift cards.
    let before = ask(&server, "do you sell gift cards").await;
    assert!(!before.contains("gift cards of 100"), "{before}");

    let (status, created) = call(
        &server,
        "POST",
        "/entries",
        Some(&token),
        Some(&gift_entry()),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["entry"]["phrasings"].as_array().unwrap().len(), 8);
    // Phrasings added and removed one by one.
    let (status, added) = call(
        &server,
        "POST",
        "/entries/gift_cards/phrasings",
        Some(&token),
        Some(&json!({"texts": ["gift voucher", "礼品卡余额"]})),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    assert_eq!(added["entry"]["phrasings"].as_array().unwrap().len(), 10);
    let (status, removed) = call(
        &server,
        "DELETE",
        "/entries/gift_cards/phrasings?text=gift%20voucher",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(removed["entry"]["phrasings"].as_array().unwrap().len(), 9);

    // Saved, not yet live: the old model keeps answering until the retrain.
    let (_, s) = call(&server, "GET", "/status", Some(&token), None).await;
    assert_eq!(s["untrained_edits"], true, "{s}");
    let still = ask(&server, "do you sell gift cards").await;
    assert!(!still.contains("gift cards of 100"), "{still}");

    // The retrain returns at once and trains in the background.
    let started = Instant::now();
    let (status, r) = call(&server, "POST", "/retrain", Some(&token), None).await;
    assert_eq!(status, 202, "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "returns at once"
    );
    assert!(r["state"] == "training" || r["state"] == "ready", "{r}");
    assert_eq!(r["last_request"]["by"], "Alice");
    let s = until_trained(&server, &token).await;
    assert_eq!(s["serving_revision"], s["knowledge_revision"]);
    assert!(s["last_train_secs"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["counts"]["entries"].as_u64().unwrap() >= 21);
    assert!(
        s["counts"]["serving_intents"].as_u64().unwrap()
            >= s["counts"]["entries"].as_u64().unwrap()
    );

    // After: the widget gets the new answer, in the customer's language.
    assert_eq!(ask(&server, "do you sell gift cards").await, GIFT_EN);
    assert_eq!(ask(&server, "你们有礼品卡吗").await, GIFT_ZH);

    // An edit of the answer goes live at the next retrain.
    let (_, opened) = call(&server, "GET", "/entries/gift_cards", Some(&token), None).await;
    let mut edited = gift_entry();
    edited.as_object_mut().unwrap().remove("id");
    edited["answer_en"] = json!("Gift cards are sold out this week.");
    edited["version"] = opened["entry"]["version"].clone();
    let (status, body) = call(
        &server,
        "PUT",
        "/entries/gift_cards",
        Some(&token),
        Some(&edited),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A second edit based on the same (now old) version is refused, not applied over it.
    edited["answer_en"] = json!("Someone else's answer.");
    let (status, body) = call(
        &server,
        "PUT",
        "/entries/gift_cards",
        Some(&token),
        Some(&edited),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("stale")),
        "{body}"
    );
    call(&server, "POST", "/retrain", Some(&token), None).await;
    until_trained(&server, &token).await;
    assert_eq!(
        ask(&server, "do you sell gift cards").await,
        "Gift cards are sold out this week."
    );

    // Deleted: gone from the list.
    let (status, _) = call(&server, "DELETE", "/entries/gift_cards", Some(&token), None).await;
    assert_eq!(status, 200);
    let (status, e) = call(&server, "GET", "/entries/gift_cards", Some(&token), None).await;
    assert_eq!((status, e["error"].as_str()), (404, Some("not_found")));
    server.stop().await;
}

#[tokio::test]
async fn strangers_are_refused_and_invalid_edits_get_reasons() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;

    // The page loads for anyone (it signs in); the API does not.
    let (status, head, page) = http(server.addr, "GET", "/agent/knowledge", &[], "").await;
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    assert!(page.contains("knowledge.js"));
    for (method, path) in [
        ("GET", "/entries"),
        ("GET", "/status"),
        ("GET", "/unanswered"),
        ("POST", "/retrain"),
        ("DELETE", "/entries/invoice"),
    ] {
        let (status, body) = call(&server, method, path, None, None).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["error"], "unauthenticated");
        let (status, _) = call(&server, method, path, Some("a1.forged.token"), None).await;
        assert_eq!(status, 401, "{method} {path} with a forged token");
    }
    let (status, _) = call(&server, "POST", "/entries", None, Some(&gift_entry())).await;
    assert_eq!(status, 401);

    let token = token(&server).await;
    let t = Some(token.as_str());
    let mut e = gift_entry();
    e["answer_zh"] = json!("   ");
    e["answer_en"] = json!("");
    let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        (body["error"].as_str(), body["field"].as_str()),
        (Some("invalid_input"), Some("answer"))
    );
    assert!(body["reason"].as_str().unwrap().contains("answer"));

    let mut e = gift_entry();
    e["id"] = json!("invoice");
    let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        (body["error"].as_str(), body["entry"].as_str()),
        (Some("duplicate_id"), Some("invoice"))
    );

    let mut e = gift_entry();
    e["phrasings"] = json!(["do you sell gift cards", "怎么退货？"]);
    let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "phrasing_in_use");
    assert_eq!(
        body["entry"], "return",
        "names the entry that has it: {body}"
    );
    let (status, body) = call(
        &server,
        "POST",
        "/entries/invoice/phrasings",
        t,
        Some(&json!({"texts": ["How do I return an item"]})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("phrasing_in_use")),
        "{body}"
    );

    // An answer the compliance rules forbid (the demo: advertising law) would never reach a
    // customer: refused, with the phrase; a warned phrase is saved with a warning.
    let mut e = gift_entry();
    e["answer_zh"] = json!("我们的礼品卡是国家级品质。");
    let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"], "forbidden_phrase");
    assert_eq!(body["field"], "answer_zh");
    assert_eq!(body["phrases"], json!(["国家级"]));
    let e = json!({
        "id": "warned",
        "phrasings": ["which gift card is the best"],
        "answer_zh": "最佳选择是 200 元礼品卡。",
    });
    let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["warnings"][0]["phrases"], json!(["最佳"]), "{body}");
    assert_eq!(
        call(&server, "DELETE", "/entries/warned", t, None).await.0,
        200
    );

    for bad in ["gift cards", "", "oos", "礼品卡"] {
        let mut e = gift_entry();
        e["id"] = json!(bad);
        let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (422, Some("id")),
            "{bad:?}: {body}"
        );
    }
    let mut e = gift_entry();
    e["phrasings"] = json!(["  ", "?!"]);
    let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("phrasings")),
        "{body}"
    );

    // Malformed, unknown fields, too large.
    let (status, _, body) = http(
        server.addr,
        "POST",
        "/agent/knowledge/entries",
        &[
            ("Authorization", format!("Bearer {token}")),
            ("Content-Type", "application/json".into()),
        ],
        "{not json",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_json"), "{body}");
    let mut e = gift_entry();
    e["colour"] = json!("blue");
    let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    let mut e = gift_entry();
    e["answer_en"] = json!("x".repeat(100 * 1024));
    let (status, body) = call(&server, "POST", "/entries", t, Some(&e)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );

    // The last phrasing stays; unknown entries are not found.
    let (status, body) = call(&server, "DELETE", "/entries/nope", t, None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let one = json!({"id": "solo", "phrasings": ["a lonely question"], "answer_en": "ok"});
    assert_eq!(
        call(&server, "POST", "/entries", t, Some(&one)).await.0,
        201
    );
    let (status, body) = call(
        &server,
        "DELETE",
        "/entries/solo/phrasings?text=a%20lonely%20question",
        t,
        None,
    )
    .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("phrasings")),
        "{body}"
    );
    // A refused edit changed nothing.
    let (_, list) = call(&server, "GET", "/entries", t, None).await;
    assert!(
        !list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == "gift_cards")
    );
    server.stop().await;
}

#[tokio::test]
async fn unanswered_questions_are_grouped_and_become_an_entry() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let token = token(&server).await;
    let t = Some(token.as_str());

    // Customers ask what the bot does not know (each a new visitor). (Questions it asks back
    // about are logged too: it could not answer them at once.)
    for q in [
        "do you have gift cards for sale",
        "Do you have gift cards for sale?",
        "do you have gift cards for sale",
        "do you have any gift cards for sale",
        "what is the meaning of life",
    ] {
        ask(&server, q).await;
    }
    let (status, u) = call(&server, "GET", "/unanswered", t, None).await;
    assert_eq!(status, 200, "{u}");
    let clusters = u["clusters"].as_array().unwrap();
    let gift = clusters
        .iter()
        .find(|c| c["representative"].as_str().unwrap().contains("gift card"))
        .unwrap_or_else(|| panic!("a gift card group: {u}"));
    assert_eq!(gift["count"], 4, "{gift}");
    assert!(gift["examples"].as_array().unwrap().len() >= 2, "{gift}");
    assert_eq!(clusters[0], *gift, "the most asked first: {u}");
    assert!(u["questions"].as_u64().unwrap() >= 4);

    // One click: the group becomes an entry, and leaves the list.
    let examples = gift["examples"].clone();
    let entry = json!({
        "id": "gift_cards",
        "phrasings": examples,
        "answer_en": GIFT_EN,
        "from_unanswered": examples,
    });
    let (status, body) = call(&server, "POST", "/entries", t, Some(&entry)).await;
    assert_eq!(status, 201, "{body}");
    let (_, u) = call(&server, "GET", "/unanswered", t, None).await;
    assert!(
        !u["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["representative"].as_str().unwrap().contains("gift card")),
        "{u}"
    );
    // Or: a question added as a phrasing of an existing entry, or ignored.
    ask(&server, "what is the meaning of life").await;
    let (_, u) = call(&server, "GET", "/unanswered", t, None).await;
    let rest: Vec<String> = u["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["examples"].as_array().unwrap().clone())
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    assert!(rest.iter().any(|e| e.contains("meaning of life")), "{u}");
    let (status, body) = call(
        &server,
        "POST",
        "/unanswered/dismiss",
        t,
        Some(&json!({"texts": rest})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, u) = call(&server, "GET", "/unanswered", t, None).await;
    assert_eq!(u["clusters"].as_array().unwrap().len(), 0, "{u}");
    server.stop().await;
}

#[tokio::test]
async fn edits_and_the_model_survive_a_restart() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let tok = token(&server).await;
    let (status, body) = call(&server, "POST", "/entries", Some(&tok), Some(&gift_entry())).await;
    assert_eq!(status, 201, "{body}");
    call(&server, "POST", "/retrain", Some(&tok), None).await;
    let s = until_trained(&server, &tok).await;
    assert_eq!(
        s["saved_to"].as_str(),
        Some(dir.0.join("desk.db.knowledge.txt").to_str().unwrap())
    );
    assert_eq!(s["model_saved"], true, "{s}");
    // An edit saved after the retrain, not trained before the restart.
    let (status, _) = call(
        &server,
        "POST",
        "/entries/gift_cards/phrasings",
        Some(&tok),
        Some(&json!({"texts": ["e-gift card"]})),
    )
    .await;
    assert_eq!(status, 200);
    // A question the bot cannot answer is still there after the restart.
    ask(&server, "loyalty points").await;
    server.stop().await;

    let file = std::fs::read_to_string(dir.0.join("desk.db.knowledge.txt")).unwrap();
    assert!(
        file.contains("Intent: gift_cards") && file.contains("Q: e-gift card"),
        "{file}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );

    // The restart serves the saved knowledge.
    let server = Server::start_with(config(&dir)).await;
    let tok = token(&server).await;
    let (status, e) = call(&server, "GET", "/entries/gift_cards", Some(&tok), None).await;
    assert_eq!(status, 200, "{e}");
    assert!(
        e["entry"]["phrasings"]
            .as_array()
            .unwrap()
            .contains(&json!("e-gift card"))
    );
    let (_, s) = call(&server, "GET", "/status", Some(&tok), None).await;
    assert_eq!(s["untrained_edits"], false, "{s}");
    assert_eq!(ask(&server, "do you sell gift cards").await, GIFT_EN);
    let (_, u) = call(&server, "GET", "/unanswered", Some(&tok), None).await;
    assert_eq!(u["clusters"][0]["representative"], "loyalty points", "{u}");
    server.stop().await;

    // A restart on unchanged knowledge loads the saved model instead of training again.
    let model = dir.0.join("desk.db.knowledge.model");
    let stamp = std::fs::metadata(&model).unwrap().modified().unwrap();
    let server = Server::start_with(config(&dir)).await;
    assert_eq!(
        std::fs::metadata(&model).unwrap().modified().unwrap(),
        stamp,
        "the saved model was reused"
    );
    assert_eq!(ask(&server, "你们有礼品卡吗").await, GIFT_ZH);
    server.stop().await;
}

// ---- the page in headless Chromium ----

/// How long the page may take to show what a step expects.
const WAIT: Duration = Duration::from_secs(60);

fn css(s: &str) -> fantoccini::Locator<'_> {
    fantoccini::Locator::Css(s)
}

async fn click(client: &fantoccini::Client, selector: &str) {
    client
        .find(css(selector))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn type_into(client: &fantoccini::Client, selector: &str, text: &str) {
    let e = client.find(css(selector)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// Whether the page overflows sideways (nothing should at phone width).
async fn overflows(client: &fantoccini::Client) -> bool {
    client
        .execute(
            "return document.documentElement.scrollWidth > document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap_or(true)
}

#[tokio::test]
async fn knowledge_page_in_chromium() {
    let Some(driver) = browser::driver().await else {
        return;
    };
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    for q in [
        "do you have gift cards for sale",
        "Do you have gift cards for sale?",
        "do you have any gift cards for sale",
        "你们卖礼品卡吗",
        "你们有礼品卡卖吗",
        "loyalty points",
        "your store has a loyalty scheme?",
    ] {
        ask(&server, q).await;
    }

    for lang in ["en", "zh-CN"] {
        let short = if lang == "en" { "en" } else { "zh" };
        let client = browser::browser_in(&driver, lang, 1280, 800).await;
        client.set_window_size(1280, 800).await.unwrap();
        // The console links to the page.
        client.goto(&server.url("/agent")).await.unwrap();
        let href = client
            .find(css("[data-testid=agent-knowledge-link]"))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap_or_default();
        assert!(href.ends_with("/agent/knowledge"), "{href}");
        if short == "en" {
            browser::shoot(&client, "console-with-knowledge-link", 1280, 800).await;
        }
        client.goto(&server.url("/agent/knowledge")).await.unwrap();
        client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(css("[data-testid=kb-name]"))
            .await
            .unwrap();
        let hint = browser::text_of(&client, "#login .hint").await;
        assert!(
            hint.contains("dashboard") || hint.contains("仪表盘"),
            "the page says which sign-in: {hint}"
        );
        // The page follows the browser's language; the button switches it either way.
        let want_title = if short == "en" {
            "Bot knowledge"
        } else {
            "机器人知识库"
        };
        if browser::text_of(&client, "h1").await != want_title {
            click(&client, "[data-testid=kb-lang]").await;
        }
        assert_eq!(browser::text_of(&client, "h1").await, want_title);
        browser::shoot(&client, &format!("knowledge-login-phone-{short}"), 390, 844).await;
        client.set_window_size(1280, 800).await.unwrap();
        type_into(&client, "[data-testid=kb-name]", "alice").await;
        type_into(&client, "[data-testid=kb-password]", "alice").await;
        click(&client, "[data-testid=kb-login-submit]").await;
        browser::wait_until(&client, "[data-testid=kb-entries]", WAIT, |t| {
            t.contains("invoice")
        })
        .await;
        browser::wait_until(&client, "[data-testid=kb-status]", WAIT, |t| !t.is_empty()).await;
        // Search narrows the list.
        type_into(&client, "[data-testid=kb-search]", "发票").await;
        browser::wait_until(&client, "[data-testid=kb-entries]", WAIT, |t| {
            t.contains("invoice") && !t.contains("greeting")
        })
        .await;
        // Emptied by keys, as a person would (the page listens to input events).
        type_into(&client, "[data-testid=kb-search]", "x\u{E003}").await;
        browser::wait_until(&client, "[data-testid=kb-entries]", WAIT, |t| {
            t.contains("greeting")
        })
        .await;
        browser::shoot(&client, &format!("knowledge-phone-list-{short}"), 390, 844).await;
        client.set_window_size(1280, 800).await.unwrap();
        // An entry opens in the editor with its phrasings.
        click(&client, "[data-testid=kb-entry][data-id=invoice]").await;
        let phrasings = client
            .find_all(css("[data-testid=kb-phrasing]"))
            .await
            .unwrap();
        assert!(phrasings.len() > 2);
        browser::shoot(&client, &format!("knowledge-desktop-{short}"), 1280, 800).await;
        client.set_window_size(390, 844).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!overflows(&client).await, "no sideways scrolling at 390 px");
        browser::shoot(
            &client,
            &format!("knowledge-phone-editor-{short}"),
            390,
            844,
        )
        .await;
        click(&client, "#back").await;
        client.set_window_size(1280, 800).await.unwrap();

        // The unanswered questions, grouped; one click starts an entry from a group.
        click(&client, "[data-testid=kb-tab-unanswered]").await;
        // (The English pass turns the gift card group into an entry.)
        browser::wait_until(&client, "[data-testid=kb-clusters]", WAIT, |t| {
            t.contains("loyalty")
        })
        .await;
        browser::shoot(
            &client,
            &format!("knowledge-unanswered-desktop-{short}"),
            1280,
            800,
        )
        .await;
        client.set_window_size(390, 844).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!overflows(&client).await, "no sideways scrolling at 390 px");
        browser::shoot(
            &client,
            &format!("knowledge-unanswered-phone-{short}"),
            390,
            844,
        )
        .await;
        client.set_window_size(1280, 800).await.unwrap();
        if short == "en" {
            click(&client, "[data-testid=kb-cluster-new]").await;
            let id = client
                .find(css("[data-testid=kb-id]"))
                .await
                .unwrap()
                .prop("value")
                .await
                .unwrap()
                .unwrap_or_default();
            assert!(id.contains("gift"), "an id is suggested: {id:?}");
            // Saving without an answer is refused with the reason next to the field.
            click(&client, "[data-testid=kb-save]").await;
            browser::wait_until(&client, ".ferr[data-field=answer]", WAIT, |t| {
                t.contains("answer")
            })
            .await;
            browser::shoot(&client, "knowledge-validation-en", 1280, 800).await;
            type_into(&client, "[data-testid=kb-answer-en]", GIFT_EN).await;
            click(&client, "[data-testid=kb-save]").await;
            browser::wait_until(&client, "[data-testid=kb-entries]", WAIT, |t| {
                t.contains("gift")
            })
            .await;
            browser::wait_until(&client, "[data-testid=kb-status]", WAIT, |t| {
                t.contains("not trained")
            })
            .await;
            click(&client, "[data-testid=kb-retrain]").await;
            browser::wait_until(&client, "[data-testid=kb-status]", WAIT, |t| {
                t.contains("Serving revision")
            })
            .await;
            assert_eq!(ask(&server, "do you sell gift cards").await, GIFT_EN);
        }
        client.set_window_size(1280, 800).await.unwrap();
        click(&client, "[data-testid=kb-tab-entries]").await;
        client.set_window_size(390, 844).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!overflows(&client).await, "no sideways scrolling at 390 px");
        browser::shoot(&client, &format!("knowledge-phone-{short}"), 390, 844).await;
        client.close().await.unwrap();
    }
    server.stop().await;
}
