//! The REST API through the real server: the OpenAPI document covers every route of the router;
//! sessions expire, are revoked (a live console socket closes) and sign-in is rate limited; the
//! role gate holds on every route of the document; a session of another tenant, given this
//! tenant's ids, gets 404 or 403 on every route and changes nothing; demo accounts exist only in
//! the demo configuration.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Server, TempDir, api, login, ws_ticket};
use omnidesk::Config;
use omnidesk::channels::InboundMessage;
use omnidesk::core::{
    AgentId, ChannelId, ChannelKind, Content, ConversationState, Identity, TenantId,
};
use omnidesk::server::accounts::{Account, Role};
use omnidesk::server::api::{Access, openapi, routes};
use serde_json::{Value, json};

fn config(dir: &TempDir) -> Config {
    let mut c = Config {
        database: dir.0.join("desk.db"),
        ..Config::default()
    };
    c.limits.logins_per_minute = 100_000;
    c.limits.login_failures = 100_000;
    c
}

/// What the test expects of each route: its least role. Written here independently of the
/// code's table, so a changed role fails the test.
fn expected_roles() -> BTreeMap<(String, String), &'static str> {
    let rows: &[(&str, &str, &str)] = &[
        ("GET", "/api/v1/openapi.json", "public"),
        ("POST", "/api/v1/auth/login", "public"),
        ("POST", "/api/v1/auth/logout", "agent"),
        ("POST", "/api/v1/auth/ws-ticket", "agent"),
        ("GET", "/api/v1/me", "agent"),
        ("PUT", "/api/v1/me/password", "agent"),
        ("PUT", "/api/v1/me/presence", "agent"),
        ("GET", "/api/v1/agents", "supervisor"),
        ("POST", "/api/v1/agents", "admin"),
        ("GET", "/api/v1/agents/{id}", "supervisor"),
        ("PATCH", "/api/v1/agents/{id}", "admin"),
        ("PUT", "/api/v1/agents/{id}/password", "admin"),
        ("POST", "/api/v1/agents/{id}/revoke-sessions", "admin"),
        ("GET", "/api/v1/presence", "agent"),
        ("GET", "/api/v1/queue", "agent"),
        ("GET", "/api/v1/conversations", "agent"),
        ("GET", "/api/v1/conversations/{id}", "agent"),
        ("GET", "/api/v1/conversations/{id}/messages", "agent"),
        ("POST", "/api/v1/conversations/{id}/reply", "agent"),
        ("POST", "/api/v1/conversations/{id}/notes", "agent"),
        ("POST", "/api/v1/conversations/{id}/resolve", "agent"),
        ("POST", "/api/v1/conversations/{id}/take", "agent"),
        ("POST", "/api/v1/conversations/{id}/transfer", "agent"),
        ("POST", "/api/v1/conversations/{id}/accept", "agent"),
        ("POST", "/api/v1/conversations/{id}/reject", "agent"),
        ("POST", "/api/v1/conversations/{id}/tickets", "agent"),
        ("GET", "/api/v1/customers/{id}", "agent"),
        ("GET", "/api/v1/customers/{id}/identities", "agent"),
        ("POST", "/api/v1/customers/{id}/identities", "supervisor"),
        ("GET", "/api/v1/customers/{id}/merges", "supervisor"),
        ("POST", "/api/v1/customers/{id}/merge", "supervisor"),
        ("POST", "/api/v1/merges/{id}/undo", "supervisor"),
        ("GET", "/api/v1/tickets", "agent"),
        ("GET", "/api/v1/tickets/{id}", "agent"),
        ("GET", "/api/v1/tickets/{id}/comments", "agent"),
        ("POST", "/api/v1/tickets/{id}/comments", "agent"),
        ("GET", "/api/v1/settings", "admin"),
        ("GET", "/api/v1/canned", "agent"),
        ("POST", "/api/v1/canned", "agent"),
        ("PATCH", "/api/v1/canned/{id}", "agent"),
        ("DELETE", "/api/v1/canned/{id}", "agent"),
        ("POST", "/api/v1/conversations/{id}/expand", "agent"),
    ];
    rows.iter()
        .map(|(m, p, r)| ((m.to_string(), p.to_string()), *r))
        .collect()
}

/// Every operation of the served document: (method, path) -> its `x-required-role`.
async fn document(server: &Server) -> BTreeMap<(String, String), String> {
    let (status, doc) = api(server.addr, "GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let role = op["x-required-role"].as_str().unwrap_or("").to_owned();
            ops.insert((method.to_uppercase(), path.clone()), role);
        }
    }
    ops
}

#[tokio::test]
async fn the_openapi_document_has_every_route_of_the_router() {
    // The router's own table against the generated document, both ways.
    let doc = openapi();
    let documented: BTreeSet<(String, String)> = doc
        .paths
        .paths
        .iter()
        .flat_map(|(path, item)| {
            let mut v = Vec::new();
            for (m, op) in [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ] {
                if op {
                    v.push((m.to_owned(), path.clone()));
                }
            }
            v
        })
        .collect();
    let routed: BTreeSet<(String, String)> = routes()
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&routed).collect();
    assert!(stale.is_empty(), "documented but not routed: {stale:?}");

    // The served document carries each route's role, as this test expects it.
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let served = document(&server).await;
    let expected = expected_roles();
    let served_roles: BTreeMap<_, _> = served
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str()))
        .collect();
    assert_eq!(served_roles, expected);
    for r in routes() {
        let role = match r.access {
            Access::Public => "public",
            Access::Role(role) => role.as_str(),
        };
        assert_eq!(expected[&(r.method.to_owned(), r.path.to_owned())], role);
    }

    // Every routed path is really served (a path the router lacks gets the fallback's 404
    // with "not found" from outside the API).
    for r in routes() {
        let path = r
            .path
            .replace("{id}", "00000000-0000-0000-0000-000000000000");
        let (status, body) = api(server.addr, r.method, &path, None, Some(&json!({}))).await;
        assert_ne!(
            (status, body["reason"].as_str()),
            (404, Some("not found")),
            "{} {} is not routed",
            r.method,
            r.path
        );
        if r.access != Access::Public {
            assert_eq!(status, 401, "{} {} without a session", r.method, r.path);
            assert_eq!(body["error"], "unauthenticated");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn sessions_are_revoked_expire_and_sign_in_is_rate_limited() {
    let dir = TempDir::new();
    let mut c = config(&dir);
    c.limits.login_failures = 5;
    let server = Server::start_with(c).await;
    let addr = server.addr;

    // A new opaque token each time; the token works in a header, never in a URL.
    let t1 = login(addr, "bob", "bob").await;
    let t2 = login(addr, "Bob", "bob").await;
    assert_ne!(t1, t2);
    let (s, me) = api(addr, "GET", "/api/v1/me", Some(&t1), None).await;
    assert_eq!(
        (s, me["name"].as_str(), me["role"].as_str()),
        (200, Some("Bob"), Some("agent"))
    );
    let (s, _, _) = common::http(addr, "GET", &format!("/agent/ws?token={t1}"), &[], "").await;
    assert!(
        s == 400 || s == 401,
        "a session token is no socket ticket: {s}"
    );

    // Sign-out ends that session only.
    let (s, _) = api(addr, "POST", "/api/v1/auth/logout", Some(&t1), None).await;
    assert_eq!(s, 204);
    assert_eq!(api(addr, "GET", "/api/v1/me", Some(&t1), None).await.0, 401);
    assert_eq!(api(addr, "GET", "/api/v1/me", Some(&t2), None).await.0, 200);

    // A password change ends every session of the account.
    let t3 = login(addr, "bob", "bob").await;
    let (s, _) = api(
        addr,
        "PUT",
        "/api/v1/me/password",
        Some(&t2),
        Some(&json!({"current": "wrong", "new": "bob2"})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = api(
        addr,
        "PUT",
        "/api/v1/me/password",
        Some(&t2),
        Some(&json!({"current": "bob", "new": "bob2"})),
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(api(addr, "GET", "/api/v1/me", Some(&t2), None).await.0, 401);
    assert_eq!(api(addr, "GET", "/api/v1/me", Some(&t3), None).await.0, 401);

    // An admin's revocation closes the agent's live console socket.
    let bob = login(addr, "bob", "bob2").await;
    let ticket = ws_ticket(addr, &bob).await;
    let mut console =
        common::Client::connect(&format!("ws://{addr}/agent/ws?ticket={ticket}")).await;
    assert_eq!(console.next().await["type"], "welcome");
    // A ticket is good once.
    let again =
        tokio_tungstenite::connect_async(format!("ws://{addr}/agent/ws?ticket={ticket}")).await;
    assert!(again.is_err(), "a used ticket opens nothing");
    let alice = login(addr, "alice", "alice").await;
    let (_, me) = api(addr, "GET", "/api/v1/me", Some(&bob), None).await;
    let bob_id = me["id"].as_str().unwrap().to_owned();
    let (s, r) = api(
        addr,
        "POST",
        &format!("/api/v1/agents/{bob_id}/revoke-sessions"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!((s, r["revoked"].as_u64()), (200, Some(1)));
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        use futures::StreamExt;
        loop {
            match console.ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the revoked session's socket closes");
    assert_eq!(
        api(addr, "GET", "/api/v1/me", Some(&bob), None).await.0,
        401
    );

    // Wrong passwords: 401 five times, then 429 with Retry-After, even with the right one.
    for i in 0..5 {
        let (s, _) = api(
            addr,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"name": "bob", "password": format!("guess{i}")})),
        )
        .await;
        assert_eq!(s, 401);
    }
    let body = json!({"name": "bob", "password": "bob2"}).to_string();
    let (s, head, text) = common::http(
        addr,
        "POST",
        "/api/v1/auth/login",
        &[("Content-Type", "application/json".into())],
        &body,
    )
    .await;
    assert_eq!(s, 429, "{text}");
    assert!(head.contains("retry-after:"), "{head}");
    assert!(text.contains("rate_limited"), "{text}");
    server.stop().await;

    // Idle expiry, end to end (the unit tests move a clock through idle and absolute expiry).
    let dir = TempDir::new();
    let mut c = config(&dir);
    c.auth.idle = Duration::from_secs(1);
    let server = Server::start_with(c).await;
    let t = login(server.addr, "bob", "bob").await;
    assert_eq!(
        api(server.addr, "GET", "/api/v1/me", Some(&t), None)
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        api(server.addr, "GET", "/api/v1/me", Some(&t), None)
            .await
            .0,
        401
    );
    server.stop().await;
}

#[tokio::test]
async fn demo_accounts_exist_only_in_the_demo_configuration() {
    let dir = TempDir::new();
    let mut c = Config::from_toml("").unwrap();
    assert!(!c.demo && c.agents.is_empty(), "a config file is no demo");
    c.database = dir.0.join("desk.db");
    let server = Server::start_with(c.clone()).await;
    let (s, _) = api(
        server.addr,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({"name": "alice", "password": "alice"})),
    )
    .await;
    assert_eq!(s, 401, "no alice outside the demo");
    // An account added to the database (as add-agent does) signs in and reaches the desk.
    let store = omnidesk::server::open_accounts(&c).await.unwrap();
    let auth = omnidesk::server::auth::AgentAuth::new(store, c.auth.clone()).unwrap();
    auth.add(
        &Account::new(TenantId::default(), "Root", Role::Admin),
        "s3cret pass",
    )
    .await
    .unwrap();
    let t = login(server.addr, "root", "s3cret pass").await;
    assert_eq!(
        api(server.addr, "GET", "/api/v1/settings", Some(&t), None)
            .await
            .0,
        200
    );
    let (s, p) = api(server.addr, "GET", "/api/v1/presence", Some(&t), None).await;
    assert_eq!(s, 200);
    assert_eq!(
        p["items"][0]["name"], "Root",
        "registered with the desk on first use"
    );
    server.stop().await;

    // Passwords in a config that is not a demo are refused.
    let mut c = Config::from_toml("[[agents]]\nname = \"X\"\npassword = \"x\"\n").unwrap();
    c.database = dir.0.join("other.db");
    c.port = 0;
    let err = omnidesk::server::App::from_config(c).await.unwrap_err();
    assert!(err.to_string().contains("demo"), "{err}");

    // The sign-in page says where the demo accounts come from.
    let page = include_str!("../src/server/assets/agent.html");
    assert!(page.contains("exist only in the demo configuration"));
}

/// The ids a walk uses: an agent's conversation, its customer, a second customer merged into
/// it, a ticket, a spare account.
#[derive(Debug, Clone)]
struct Fixture {
    conversation: String,
    customer: String,
    other_customer: String,
    merge: String,
    ticket: String,
    spare: String,
    spare_name: String,
    canned: String,
}

async fn inbound(server: &Server, from: &str, text: &str) -> omnidesk::core::ConversationId {
    let d = server
        .app
        .engine()
        .handle_inbound_and_wait(InboundMessage {
            channel: ChannelId::new("webchat").unwrap(),
            from: Identity::new(ChannelKind::WebChat, from),
            provider_message_id: Some(uuid::Uuid::new_v4().to_string()),
            content: Content::text(text),
            display_name: None,
            language: Some("zh".into()),
            sent_at: None,
        })
        .await
        .unwrap();
    d.message.conversation
}

/// A fresh conversation assigned to `agent`, with a ticket and a merge.
async fn fixture(server: &Server, agent: AgentId, n: usize) -> Fixture {
    let engine = server.app.engine();
    let visitor = format!("v-{n}-{}", uuid::Uuid::new_v4().simple());
    inbound(server, &visitor, "你好").await;
    let conversation = inbound(server, &visitor, "转人工").await;
    for _ in 0..200 {
        let c = engine.conversation(conversation).await.unwrap();
        match (c.state, c.assignee) {
            (ConversationState::Assigned, Some(a)) if a == agent => break,
            (ConversationState::Assigned, Some(other)) => {
                engine
                    .transfer(conversation, agent)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("transfer from {other}: {e}");
                    });
            }
            (ConversationState::Queued, _) => {
                let _ = engine.take_from_queue(agent, conversation).await;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let conv = engine.conversation(conversation).await.unwrap();
    assert_eq!(conv.assignee, Some(agent), "fixture conversation assigned");
    let ticket = engine
        .open_ticket(agent, conversation, "fixture ticket", None)
        .await
        .unwrap();
    let other_visitor = format!("w-{n}-{}", uuid::Uuid::new_v4().simple());
    let other = inbound(server, &other_visitor, "你好").await;
    let other_customer = engine.conversation(other).await.unwrap().customer;
    let merge = engine
        .merge_customers(
            conv.customer,
            other_customer,
            omnidesk::core::LinkOrigin::Api,
        )
        .await
        .unwrap();
    // A second customer to merge in the walk.
    let third = inbound(
        server,
        &format!("x-{n}-{}", uuid::Uuid::new_v4().simple()),
        "你好",
    )
    .await;
    let third_customer = engine.conversation(third).await.unwrap().customer;
    let spare_name = format!("spare{n}");
    let mut spare = Account::new(TenantId::default(), spare_name.clone(), Role::Agent);
    spare.chat_capacity = 50;
    server.app.auth().add(&spare, &spare_name).await.unwrap();
    engine
        .register_agent(spare.to_agent().unwrap())
        .await
        .unwrap();
    engine.sign_in(spare.id).await.unwrap();
    // A canned reply of the agent's own (its owner and supervisors manage it).
    let canned = omnidesk::server::canned::CannedReply::new(
        TenantId::default(),
        Some(agent),
        format!("fx{n}"),
        "fixture",
        "Hi {customer.name}",
    );
    server.app.canned().create(&canned).await.unwrap();
    Fixture {
        conversation: conversation.to_string(),
        customer: conv.customer.to_string(),
        other_customer: third_customer.to_string(),
        merge: merge.id.to_string(),
        ticket: ticket.id.to_string(),
        spare: spare.id.to_string(),
        spare_name,
        canned: canned.id,
    }
}

/// The path with the fixture's ids, and a body that is valid for the route.
fn request(method: &str, path: &str, f: &Fixture, password: &str) -> (String, Option<Value>) {
    let id = if path.starts_with("/api/v1/agents/") {
        &f.spare
    } else if path.starts_with("/api/v1/conversations/") {
        &f.conversation
    } else if path.starts_with("/api/v1/customers/") {
        &f.customer
    } else if path.starts_with("/api/v1/merges/") {
        &f.merge
    } else if path.starts_with("/api/v1/canned/") {
        &f.canned
    } else {
        &f.ticket
    };
    let concrete = path.replace("{id}", id);
    let body = match (method, path) {
        ("POST", "/api/v1/auth/login") => json!({"name": "bob", "password": "bob"}),
        ("PUT", "/api/v1/me/password") => json!({"current": password, "new": password}),
        ("PUT", "/api/v1/me/presence") => json!({"presence": "online"}),
        ("POST", "/api/v1/agents") => {
            json!({"name": format!("new-{}", uuid::Uuid::new_v4().simple()), "password": "pw", "role": "agent"})
        }
        ("PATCH", _) => json!({"chat_capacity": 50}),
        ("PUT", "/api/v1/agents/{id}/password") => json!({"password": f.spare_name}),
        ("POST", "/api/v1/conversations/{id}/reply") => json!({"text": "hello from the API"}),
        ("POST", "/api/v1/conversations/{id}/notes") => json!({"text": "a note"}),
        ("POST", "/api/v1/conversations/{id}/transfer") => json!({"agent": f.spare}),
        ("POST", "/api/v1/conversations/{id}/tickets") => json!({"subject": "from the API"}),
        ("POST", "/api/v1/customers/{id}/identities") => {
            json!({"kind": "email", "external_id": format!("{}@example.com", uuid::Uuid::new_v4().simple())})
        }
        ("POST", "/api/v1/customers/{id}/merge") => json!({"from": f.other_customer}),
        ("POST", "/api/v1/tickets/{id}/comments") => json!({"body": "a comment"}),
        ("POST", "/api/v1/canned") => {
            json!({"shortcut": format!("s{}", uuid::Uuid::new_v4().simple()), "text": "Hello {customer.name}"})
        }
        ("POST", "/api/v1/conversations/{id}/expand") => json!({"text": "Hi {agent.name}"}),
        _ => json!({}),
    };
    (concrete, (method != "GET").then_some(body))
}

/// Whether the role gate refused (as opposed to a rule inside the route).
fn gate_refused(status: u16, body: &Value) -> bool {
    status == 403
        && body["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("this route needs the"))
}

#[tokio::test]
async fn every_route_of_the_document_enforces_its_role() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let addr = server.addr;
    let admin = login(addr, "alice", "alice").await;
    let (s, sue) = api(
        addr,
        "POST",
        "/api/v1/agents",
        Some(&admin),
        Some(&json!({"name": "Sue", "password": "sue", "role": "supervisor"})),
    )
    .await;
    assert_eq!(s, 201, "{sue}");
    let (_, bob) = api(
        addr,
        "GET",
        "/api/v1/me",
        Some(&login(addr, "bob", "bob").await),
        None,
    )
    .await;
    let bob_id: AgentId = bob["id"].as_str().unwrap().parse().unwrap();
    let (s, _) = api(
        addr,
        "PATCH",
        &format!("/api/v1/agents/{bob_id}"),
        Some(&admin),
        Some(&json!({"chat_capacity": 200})),
    )
    .await;
    assert_eq!(s, 200);
    server.app.engine().sign_in(bob_id).await.unwrap();

    let roles = [
        ("bob", "bob", "agent"),
        ("sue", "sue", "supervisor"),
        ("alice", "alice", "admin"),
    ];
    let rank = |r: &str| match r {
        "public" => 0,
        "agent" => 1,
        "supervisor" => 2,
        _ => 3,
    };
    let doc = document(&server).await;
    let mut n = 0;
    let mut refused = 0;
    let mut allowed_ok = 0;
    for ((method, path), least) in &doc {
        for (name, password, role) in roles {
            n += 1;
            let f = fixture(&server, bob_id, n).await;
            let token = login(addr, name, password).await;
            let (concrete, body) = request(method, path, &f, password);
            let (status, answer) = api(addr, method, &concrete, Some(&token), body.as_ref()).await;
            let may = rank(role) >= rank(least);
            if may {
                assert!(
                    !gate_refused(status, &answer) && status != 401 && status < 500,
                    "{role} may {method} {path}: {status} {answer}"
                );
                // With the agent's own conversation, every allowed call succeeds; accepting,
                // rejecting or taking an assigned conversation (no offer, not queued) is a
                // conflict the engine reports.
                let conflict_only = path.ends_with("/accept")
                    || path.ends_with("/reject")
                    || path.ends_with("/take");
                // Only the conversation's agent replies or opens a ticket from it (a supervisor
                // takes it over first): a rule inside the route, not the role gate.
                let assignee_only = role != "agent"
                    && (path.ends_with("/reply") || path.ends_with("/{id}/tickets"));
                assert!(
                    (200..300).contains(&status)
                        || (conflict_only && status == 409)
                        || (assignee_only && status == 403),
                    "{role} {method} {path}: {status} {answer}"
                );
                allowed_ok += 1;
            } else {
                assert!(
                    gate_refused(status, &answer),
                    "{role} may not {method} {path}: {status} {answer}"
                );
                refused += 1;
            }
        }
    }
    eprintln!("role walk: {n} calls, {allowed_ok} allowed and succeeded, {refused} refused");
    let expected_refusals: usize = doc
        .values()
        .map(|least| {
            roles
                .iter()
                .filter(|(_, _, r)| rank(r) < rank(least))
                .count()
        })
        .sum();
    assert_eq!(refused, expected_refusals);
    assert_eq!(allowed_ok + refused, n);
    assert!(
        refused >= 16,
        "agents and supervisors meet the gate: {refused}"
    );

    // Inside the agent role: another agent's conversation is out of reach.
    let f = fixture(&server, bob_id, 10_000).await;
    let spare = login(addr, &f.spare_name, &f.spare_name).await;
    for path in [
        format!("/api/v1/conversations/{}", f.conversation),
        format!("/api/v1/conversations/{}/messages", f.conversation),
        format!("/api/v1/customers/{}", f.customer),
        format!("/api/v1/tickets/{}", f.ticket),
    ] {
        let (s, _) = api(addr, "GET", &path, Some(&spare), None).await;
        assert_eq!(s, 403, "{path}");
    }
    let (_, list) = api(addr, "GET", "/api/v1/conversations", Some(&spare), None).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "an agent lists their own only"
    );
    let (s, _) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{}/reply", f.conversation),
        Some(&spare),
        Some(&json!({"text": "not mine"})),
    )
    .await;
    assert_eq!(s, 403);
    server.stop().await;
}

/// Everything of the default tenant a request could change, read from the stores.
async fn snapshot(server: &Server, f: &Fixture) -> Value {
    let engine = server.app.engine();
    let tenant = TenantId::default();
    let accounts = server.app.auth().store().accounts(&tenant).await.unwrap();
    let convs = engine
        .store()
        .conversations(&omnidesk::core::store::ConversationQuery {
            tenant: tenant.clone(),
            states: Vec::new(),
            assignee: None,
            customer: None,
            limit: 1000,
        })
        .await
        .unwrap();
    let customer = f.customer.parse().unwrap();
    let messages = engine
        .store()
        .messages(&omnidesk::core::store::MessageQuery::new(
            tenant.clone(),
            omnidesk::core::store::MessageScope::Customer(customer),
            1000,
        ))
        .await
        .unwrap();
    let links = engine
        .store()
        .identity_links(&tenant, customer)
        .await
        .unwrap();
    let merges = engine
        .store()
        .merges(&tenant, customer)
        .await
        .unwrap()
        .len();
    let ticket = engine
        .tickets()
        .get(&tenant, f.ticket.parse().unwrap())
        .await
        .unwrap();
    let comments = engine
        .tickets()
        .comments(&tenant, ticket.id)
        .await
        .unwrap()
        .len();
    let presence: Vec<_> = engine.agents().iter().map(|a| (a.id, a.presence)).collect();
    let canned = server
        .app
        .canned()
        .list(&omnidesk::server::canned::CannedQuery {
            tenant: tenant.clone(),
            viewer: None,
            search: None,
            limit: 1000,
        })
        .await
        .unwrap();
    json!({
        "canned": canned,
        "accounts": accounts,
        "conversations": convs,
        "messages": messages.len(),
        "links": links,
        "merges": merges,
        "ticket": ticket,
        "comments": comments,
        "presence": serde_json::to_value(presence).unwrap(),
    })
}

#[tokio::test]
async fn another_tenant_reaches_nothing_on_any_route() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let addr = server.addr;
    let admin = login(addr, "alice", "alice").await;
    let (_, bob) = api(
        addr,
        "GET",
        "/api/v1/me",
        Some(&login(addr, "bob", "bob").await),
        None,
    )
    .await;
    let bob_id: AgentId = bob["id"].as_str().unwrap().parse().unwrap();
    server.app.engine().sign_in(bob_id).await.unwrap();
    let f = fixture(&server, bob_id, 1).await;
    // The other tenant's admin, named like this tenant's.
    let other = TenantId::new("other-shop").unwrap();
    server
        .app
        .auth()
        .add(
            &Account::new(other.clone(), "Alice", Role::Admin),
            "eve pass",
        )
        .await
        .unwrap();
    let before = snapshot(&server, &f).await;
    let ours: Vec<String> = vec![
        f.conversation.clone(),
        f.customer.clone(),
        f.ticket.clone(),
        f.spare.clone(),
        bob_id.to_string(),
    ];
    let doc = document(&server).await;
    let mut checked = 0;
    for (method, path) in doc.keys() {
        if path == "/api/v1/auth/login" || path == "/api/v1/openapi.json" {
            continue;
        }
        let (_, eve) = api(
            addr,
            "POST",
            "/api/v1/auth/login",
            None,
            Some(&json!({"name": "alice", "password": "eve pass", "tenant": "other-shop"})),
        )
        .await;
        let token = eve["token"]
            .as_str()
            .expect("the other tenant signs in")
            .to_owned();
        assert_eq!(eve["account"]["tenant"], "other-shop");
        let (concrete, body) = request(method, path, &f, "eve pass");
        let (status, answer) = api(addr, method, &concrete, Some(&token), body.as_ref()).await;
        // Routes on the caller's own account answer, about that account only.
        let own = matches!(
            (method.as_str(), path.as_str()),
            ("GET", "/api/v1/me")
                | ("PUT", "/api/v1/me/password")
                | ("POST", "/api/v1/auth/logout")
                | ("GET", "/api/v1/agents")
                | ("POST", "/api/v1/agents")
        );
        if own {
            assert!(status < 300, "{method} {path}: {status} {answer}");
            let text = answer.to_string();
            for id in &ours {
                assert!(
                    !text.contains(id.as_str()),
                    "{method} {path} leaks {id}: {text}"
                );
            }
        } else {
            assert!(
                status == 404 || status == 403,
                "{method} {path} from another tenant: {status} {answer}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 35, "{checked} routes walked");
    let after = snapshot(&server, &f).await;
    assert_eq!(before, after, "nothing of this tenant changed");
    // And this tenant's admin still sees their own desk.
    let (s, list) = api(addr, "GET", "/api/v1/agents", Some(&admin), None).await;
    assert_eq!(s, 200);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["tenant"] == "default")
    );
    server.stop().await;
}

#[tokio::test]
async fn an_integrator_drives_a_conversation_and_pages_its_messages() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let addr = server.addr;
    let bob = login(addr, "bob", "bob").await;
    let (_, me) = api(addr, "GET", "/api/v1/me", Some(&bob), None).await;
    let bob_id: AgentId = me["id"].as_str().unwrap().parse().unwrap();
    server.app.engine().sign_in(bob_id).await.unwrap();
    let f = fixture(&server, bob_id, 1).await;
    let c = &f.conversation;
    let (s, list) = api(
        addr,
        "GET",
        "/api/v1/conversations?state=assigned",
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["id"] == c.as_str())
    );
    for i in 0..7 {
        let (s, m) = api(
            addr,
            "POST",
            &format!("/api/v1/conversations/{c}/reply"),
            Some(&bob),
            Some(&json!({"text": format!("reply {i}"), "client_id": format!("r{i}")})),
        )
        .await;
        assert_eq!(s, 200, "{m}");
    }
    let (s, _) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{c}/notes"),
        Some(&bob),
        Some(&json!({"text": "internal only"})),
    )
    .await;
    assert_eq!(s, 200);
    // Page through three at a time: every message once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cur) => format!("/api/v1/conversations/{c}/messages?limit=3&cursor={cur}"),
            None => format!("/api/v1/conversations/{c}/messages?limit=3"),
        };
        let (s, page) = api(addr, "GET", &path, Some(&bob), None).await;
        assert_eq!(s, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|m| m["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: BTreeSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no message twice");
    assert!(
        seen.len() >= 10,
        "customer messages, bot answers, 7 replies and a note: {}",
        seen.len()
    );
    // The errors have one shape with a stable code.
    let (s, e) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{c}/reply"),
        Some(&bob),
        Some(&json!({"text": "  "})),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_input")),
        "{e}"
    );
    let (s, e) = api(addr, "GET", "/api/v1/conversations/nope", Some(&bob), None).await;
    assert_eq!((s, e["error"].as_str()), (404, Some("not_found")));
    let (s, _) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{c}/resolve"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, 204);
    server.stop().await;
}

#[tokio::test]
async fn canned_replies_are_managed_per_agent_and_team_and_fill_in_their_own_customer() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let addr = server.addr;
    let admin = login(addr, "alice", "alice").await;
    let bob = login(addr, "bob", "bob").await;
    let (_, me) = api(addr, "GET", "/api/v1/me", Some(&bob), None).await;
    let bob_id: AgentId = me["id"].as_str().unwrap().parse().unwrap();
    server.app.engine().sign_in(bob_id).await.unwrap();
    let f = fixture(&server, bob_id, 1).await;
    let spare = login(addr, &f.spare_name, &f.spare_name).await;
    let post = |token: String, body: Value| async move {
        api(addr, "POST", "/api/v1/canned", Some(&token), Some(&body)).await
    };

    // An agent keeps their own; only a supervisor shares one with the team.
    let (s, own) = post(
        bob.clone(),
        json!({"shortcut": "ship", "title": "Shipping", "text": "{customer.name}，您的订单 {order.status}。{agent.name} {coupon.code}"}),
    )
    .await;
    assert_eq!(s, 201, "{own}");
    assert_eq!(own["owner"], bob_id.to_string());
    let (s, e) = post(
        bob.clone(),
        json!({"shortcut": "team", "text": "x", "shared": true}),
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (403, Some("forbidden")), "{e}");
    let (s, shared) = post(
        admin.clone(),
        json!({"shortcut": "thanks", "title": "Thanks", "text": "感谢您的耐心等待", "shared": true}),
    )
    .await;
    assert_eq!(s, 201, "{shared}");
    assert!(shared["owner"].is_null());
    let (s, _) = post(bob.clone(), json!({"shortcut": "ship", "text": "again"})).await;
    assert_eq!(s, 409, "a shortcut once per owner");
    let (s, _) = post(spare.clone(), json!({"shortcut": "ship", "text": "mine"})).await;
    assert_eq!(s, 201, "another agent's shortcuts are theirs");
    for bad in [
        json!({"shortcut": "has space", "text": "x"}),
        json!({"shortcut": "ok", "text": "  "}),
        json!({"shortcut": "big", "text": "字".repeat(2000)}),
    ] {
        let (s, e) = post(bob.clone(), bad).await;
        assert_eq!(
            (s, e["error"].as_str()),
            (400, Some("invalid_input")),
            "{e}"
        );
    }

    // Lists: the team's and the caller's own, searched in any case.
    let list = |token: String, q: &'static str| async move {
        let (s, l) = api(
            addr,
            "GET",
            &format!("/api/v1/canned?{q}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(s, 200, "{l}");
        let mut v: Vec<String> = l["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["shortcut"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(list(bob.clone(), "").await, vec!["fx1", "ship", "thanks"]);
    assert_eq!(list(spare.clone(), "").await, vec!["ship", "thanks"]);
    assert_eq!(list(bob.clone(), "q=SHIPPING").await, vec!["ship"]);
    assert_eq!(list(bob.clone(), "q=耐心").await, vec!["thanks"]);
    assert_eq!(list(admin.clone(), "all=true").await.len(), 4);
    assert_eq!(
        list(bob.clone(), "all=true").await.len(),
        3,
        "agents see no one else's"
    );

    // Agents manage their own; the team's are the supervisors'; another agent's is not there.
    let shared_id = shared["id"].as_str().unwrap();
    let own_id = own["id"].as_str().unwrap();
    let (s, _) = api(
        addr,
        "PATCH",
        &format!("/api/v1/canned/{shared_id}"),
        Some(&bob),
        Some(&json!({"text": "mine now"})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = api(
        addr,
        "DELETE",
        &format!("/api/v1/canned/{shared_id}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = api(
        addr,
        "PATCH",
        &format!("/api/v1/canned/{own_id}"),
        Some(&spare),
        Some(&json!({"text": "hijack"})),
    )
    .await;
    assert_eq!(s, 404);
    let (s, _) = api(
        addr,
        "DELETE",
        &format!("/api/v1/canned/{own_id}"),
        Some(&spare),
        None,
    )
    .await;
    assert_eq!(s, 404);
    let (s, changed) = api(
        addr,
        "PATCH",
        &format!("/api/v1/canned/{own_id}"),
        Some(&bob),
        Some(&json!({"title": "Where is my parcel"})),
    )
    .await;
    assert_eq!(
        (s, changed["title"].as_str()),
        (200, Some("Where is my parcel"))
    );
    let (s, _) = api(
        addr,
        "PATCH",
        &format!("/api/v1/canned/{shared_id}"),
        Some(&admin),
        Some(&json!({"text": "感谢您的耐心等待！"})),
    )
    .await;
    assert_eq!(s, 200);

    // Filling in: the customer's name, the agent's, and no order for a customer who proved no
    // phone; unknown variables stay visible.
    let engine = server.app.engine();
    let conv = engine
        .conversation(f.conversation.parse().unwrap())
        .await
        .unwrap();
    let mut profile = engine
        .store()
        .customer(&TenantId::default(), conv.customer)
        .await
        .unwrap();
    profile.display_name = Some("王芳".into());
    engine.store().update_customer(&profile).await.unwrap();
    let expand = |token: String, text: Value| {
        let path = format!("/api/v1/conversations/{}/expand", f.conversation);
        async move {
            api(
                addr,
                "POST",
                &path,
                Some(&token),
                Some(&json!({"text": text})),
            )
            .await
        }
    };
    let (s, x) = expand(bob.clone(), own["text"].clone()).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        x["text"],
        "王芳，您的订单 {order.status}。Bob {coupon.code}"
    );
    assert_eq!(x["unresolved"], json!(["order.status", "coupon.code"]));
    // Once the customer proved the shop's phone number, their newest order.
    engine
        .link_identity(
            conv.customer,
            Identity::new(ChannelKind::Sms, "+8613800138000"),
            omnidesk::core::LinkOrigin::OneTimeCode,
        )
        .await
        .unwrap();
    let (_, x) = expand(bob.clone(), own["text"].clone()).await;
    assert_eq!(
        x["text"],
        "王芳，您的订单 20261111002 已付款，待发货。Bob {coupon.code}"
    );
    assert_eq!(x["unresolved"], json!(["coupon.code"]));
    // Another agent may not fill in (nor read) this customer's orders.
    let (s, _) = expand(spare.clone(), own["text"].clone()).await;
    assert_eq!(s, 403);
    // A customer who proved nothing sees nothing of the shop's orders for that number.
    let g = fixture(&server, bob_id, 2).await;
    let (s, x) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{}/expand", g.conversation),
        Some(&bob),
        Some(&json!({"text": "{order.status}"})),
    )
    .await;
    assert_eq!(
        (s, x["text"].as_str()),
        (200, Some("{order.status}")),
        "{x}"
    );

    // The compliance rules apply to the text as sent: a canned reply with forbidden wording is
    // refused on sending, whatever it expanded from.
    let (_, bad) = post(
        bob.clone(),
        json!({"shortcut": "promo", "text": "{customer.name}，本店全网最低价"}),
    )
    .await;
    let (_, x) = expand(bob.clone(), bad["text"].clone()).await;
    let (s, e) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{}/reply", f.conversation),
        Some(&bob),
        Some(&json!({"text": x["text"]})),
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (422, Some("compliance")), "{e}");
    let (s, _) = api(
        addr,
        "DELETE",
        &format!("/api/v1/canned/{own_id}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(list(bob.clone(), "q=parcel").await, Vec::<String>::new());
    server.stop().await;
}

#[tokio::test]
async fn a_note_mentions_a_colleague_who_is_told_live_and_may_read_and_note_but_not_reply() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let addr = server.addr;
    let bob = login(addr, "bob", "bob").await;
    let (_, me) = api(addr, "GET", "/api/v1/me", Some(&bob), None).await;
    let bob_id: AgentId = me["id"].as_str().unwrap().parse().unwrap();
    server.app.engine().sign_in(bob_id).await.unwrap();
    let f = fixture(&server, bob_id, 1).await;
    let g = fixture(&server, bob_id, 2).await;
    let c = &f.conversation;
    let spare = login(addr, &f.spare_name, &f.spare_name).await;
    let outsider = login(addr, &g.spare_name, &g.spare_name).await;
    // The colleague's console is open.
    let ticket = ws_ticket(addr, &spare).await;
    let mut console =
        common::Client::connect(&format!("ws://{addr}/agent/ws?ticket={ticket}")).await;
    assert_eq!(console.next().await["type"], "welcome");

    // Before any mention the conversation is out of the colleague's reach.
    let (s, _) = api(
        addr,
        "GET",
        &format!("/api/v1/conversations/{c}"),
        Some(&spare),
        None,
    )
    .await;
    assert_eq!(s, 403);
    // A mention of a name that merely starts with theirs is none.
    let (s, _) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{c}/notes"),
        Some(&bob),
        Some(&json!({"text": format!("@{}x ignore", f.spare_name)})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = api(
        addr,
        "GET",
        &format!("/api/v1/conversations/{c}"),
        Some(&spare),
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, note) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{c}/notes"),
        Some(&bob),
        Some(
            &json!({"text": format!("@{} 这位客户的退款怎么处理？", f.spare_name.to_uppercase())}),
        ),
    )
    .await;
    assert_eq!(s, 200, "{note}");
    assert_eq!(note["direction"], "internal");

    // The colleague is told live, with the conversation to open.
    let m = console.until(|f| f["type"] == "mention").await;
    assert_eq!(m["conversation"]["conversation"]["id"], c.as_str());
    assert_eq!(m["from"], "Bob");
    assert!(
        m["message"]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("退款")
    );
    // They read it and answer with a note; they do not reply to the customer or resolve.
    let (s, _) = api(
        addr,
        "GET",
        &format!("/api/v1/conversations/{c}/messages"),
        Some(&spare),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, answer) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{c}/notes"),
        Some(&spare),
        Some(&json!({"text": "@bob 走原路退回即可"})),
    )
    .await;
    assert_eq!(s, 200, "{answer}");
    let (s, _) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{c}/reply"),
        Some(&spare),
        Some(&json!({"text": "not theirs"})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{c}/resolve"),
        Some(&spare),
        None,
    )
    .await;
    assert!(s == 403 || s == 409, "{s}");
    // The one never mentioned still sees nothing.
    let (s, _) = api(
        addr,
        "GET",
        &format!("/api/v1/conversations/{c}"),
        Some(&outsider),
        None,
    )
    .await;
    assert_eq!(s, 403);
    // The notes stay inside the desk: the customer's side of the conversation has none.
    let conv = server
        .app
        .engine()
        .conversation(c.parse().unwrap())
        .await
        .unwrap();
    let customer_view = server
        .app
        .engine()
        .customer_view(conv.customer)
        .await
        .unwrap();
    for m in &customer_view.history {
        if let omnidesk::core::Content::Text { text } = &m.content
            && (text.contains("退款怎么处理") || text.contains("原路退回"))
        {
            assert_eq!(m.direction, omnidesk::core::Direction::Internal, "{text}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_transfer_carries_a_note_and_never_puts_the_receiver_over_capacity() {
    let dir = TempDir::new();
    let server = Server::start_with(config(&dir)).await;
    let addr = server.addr;
    let admin = login(addr, "alice", "alice").await;
    let bob = login(addr, "bob", "bob").await;
    let (_, me) = api(addr, "GET", "/api/v1/me", Some(&bob), None).await;
    let bob_id: AgentId = me["id"].as_str().unwrap().parse().unwrap();
    server.app.engine().sign_in(bob_id).await.unwrap();
    let f = fixture(&server, bob_id, 1).await;
    let g = fixture(&server, bob_id, 2).await;
    // Carol serves one chat at a time.
    let (s, carol) = api(
        addr,
        "POST",
        "/api/v1/agents",
        Some(&admin),
        Some(&json!({"name": "Carol", "password": "carol", "role": "agent", "chat_capacity": 1})),
    )
    .await;
    assert_eq!(s, 201, "{carol}");
    let carol_id: AgentId = carol["id"].as_str().unwrap().parse().unwrap();
    server.app.engine().sign_in(carol_id).await.unwrap();
    let carol_token = login(addr, "carol", "carol").await;
    let ticket = ws_ticket(addr, &carol_token).await;
    let mut console =
        common::Client::connect(&format!("ws://{addr}/agent/ws?ticket={ticket}")).await;
    assert_eq!(console.next().await["type"], "welcome");

    let (s, e) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{}/transfer", f.conversation),
        Some(&bob),
        Some(&json!({"agent": carol_id, "note": "客户要退款，订单 20261111002"})),
    )
    .await;
    assert_eq!(s, 204, "{e}");
    // Carol's console receives it with the note in its history.
    let assigned = console.until(|f| f["type"] == "assigned").await;
    assert_eq!(
        assigned["conversation"]["conversation"]["id"],
        f.conversation.as_str()
    );
    let history = assigned["conversation"]["customer"]["history"]
        .as_array()
        .unwrap();
    let note = history
        .iter()
        .find(|m| {
            m["content"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("订单 20261111002"))
        })
        .expect("the transfer note");
    assert_eq!(note["direction"], "internal");
    assert_eq!(note["author"]["agent"], bob_id.to_string());
    // Carol is full: a second transfer is refused with a typed error, and nothing moves.
    let (s, e) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{}/transfer", g.conversation),
        Some(&bob),
        Some(&json!({"agent": carol_id, "note": "another"})),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (409, Some("over_capacity")),
        "{e}"
    );
    let conv = server
        .app
        .engine()
        .conversation(g.conversation.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(conv.assignee, Some(bob_id));
    // The receiver can work it: reply and resolve.
    let (s, _) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{}/reply", f.conversation),
        Some(&carol_token),
        Some(&json!({"text": "您好，我是 Carol，已为您办理退款"})),
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = api(
        addr,
        "POST",
        &format!("/api/v1/conversations/{}/reply", f.conversation),
        Some(&bob),
        Some(&json!({"text": "not mine any more"})),
    )
    .await;
    assert_eq!(s, 403);
    server.stop().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_canned_store_conforms() {
    let Some(url) = omnidesk::core::conformance::postgres_url("canned").await else {
        eprintln!("CS_TEST_POSTGRES_URL not set: PostgreSQL canned store not tested");
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let store = omnidesk::server::canned::SqlCannedStore::new(pool)
        .await
        .unwrap();
    omnidesk::server::canned::conformance(&store).await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_account_store_conforms() {
    let Some(url) = omnidesk::core::conformance::postgres_url("accounts").await else {
        eprintln!("CS_TEST_POSTGRES_URL not set: PostgreSQL account store not tested");
        return;
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let store = omnidesk::server::accounts::SqlAccountStore::new(pool)
        .await
        .unwrap();
    omnidesk::server::accounts::conformance(&store).await;
}
