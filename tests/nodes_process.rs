//! Three nodes of the bundled service as separate OS processes on loopback, one PostgreSQL
//! database, one NATS JetStream server (`CS_TEST_POSTGRES_URL`, `CS_TEST_NATS_URL`; skipped
//! with a notice when either is unset; built with `--features postgres,nats`):
//!
//! - a customer on one node, the agent signed in on another, replies both ways; the node that
//!   owns the router is killed with SIGKILL mid-conversation: the lease moves, the customer
//!   reconnects to another node and sees the whole history, nothing acknowledged is lost and
//!   nothing is delivered twice; the failover time (kill -> lease moved -> next assignment) is
//!   printed;
//! - 200 conversations arriving concurrently across the three nodes with 20 agents of capacity 3:
//!   no agent ever holds more than 3, no conversation is assigned twice, every conversation is
//!   assigned once capacity allows (agents resolve as they go), all checked from the store.

mod common;
mod server_process;

/// The child's entry point: serves when started as the server, does nothing in a test run.
#[test]
fn child_server_process() {
    server_process::serve_if_child();
}

#[cfg(all(feature = "postgres", feature = "nats"))]
mod nodes {
    use std::collections::{HashMap, HashSet};
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::common::{Client, TempDir, login, post_json, ws_ticket};
    use super::server_process::ServerProcess;
    use futures::{SinkExt, StreamExt};
    use omnidesk::core::store::{
        ConversationLog, ConversationQuery, MessageQuery, MessageScope, PostgresStore,
    };
    use omnidesk::core::{Author, ConversationState, TenantId};
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    const CHILD: &str = "child_server_process";
    const SECRET: &str = "nodes test secret, sixteen+";
    const SKILLS: &str = r#"["after-sales:8", "complaints:7", "logistics:6", "orders:6", "presales:5", "billing:5", "account:5", "marketing:5"]"#;

    /// The database and NATS URLs, or `None` (with a notice) when the test cannot run here.
    pub(super) async fn services(test: &str) -> Option<(String, String)> {
        let (Some(_), Some(nats)) = (
            std::env::var_os("CS_TEST_POSTGRES_URL"),
            std::env::var("CS_TEST_NATS_URL").ok(),
        ) else {
            eprintln!("skipping {test}: set CS_TEST_POSTGRES_URL and CS_TEST_NATS_URL");
            return None;
        };
        let url = cs_core::conformance::postgres_url("omnidesk_nodes")
            .await
            .expect("CS_TEST_POSTGRES_URL is set");
        Some((url, nats))
    }

    /// The config all three nodes share: one database, one tenant, `agents` agents of
    /// `capacity` chats each, limits raised, open all day.
    fn config(url: &str, tenant: &str, agents: usize, capacity: u16) -> String {
        let mut c = format!(
            r#"bind = "127.0.0.1"
port = 0
database = "{url}"
secret = "{SECRET}"
tenant = "{tenant}"
business_hours = "00:00-23:59"
# The agents below are listed with passwords, which only a demo configuration may do.
demo = true

[limits]
messages_per_minute = 100000000
message_burst = 100000000
sessions_per_minute = 100000000
logins_per_minute = 100000
login_failures = 1000
"#
        );
        for i in 0..agents {
            c.push_str(&format!(
                "\n[[agents]]\nname = \"Agent{i:02}\"\npassword = \"pw{i:02}\"\nskills = {SKILLS}\nchat_capacity = {capacity}\n"
            ));
        }
        c
    }

    /// A node: the service as a child process with its node name.
    struct Node {
        name: String,
        process: Option<ServerProcess>,
        addr: SocketAddr,
    }

    impl Node {
        fn owns_router(&self) -> bool {
            self.process
                .as_ref()
                .is_some_and(|p| p.log().iter().any(|l| l.contains("took the router lease")))
        }
    }

    /// Starts the first node, then the others at once (a debug build trains its bot at
    /// start-up: in parallel that takes one start's time; the first one alone creates the
    /// schema, as concurrent first migrations of the analytics tables collide).
    fn start_nodes(config: &std::path::Path, nats: &str, names: &[&str]) -> Vec<Node> {
        let mut first = start_parallel(config, nats, &names[..1]);
        first.extend(start_parallel(config, nats, &names[1..]));
        first
    }

    fn start_parallel(config: &std::path::Path, nats: &str, names: &[&str]) -> Vec<Node> {
        let handles: Vec<_> = names
            .iter()
            .map(|name| {
                let (config, nats, name) = (config.to_owned(), nats.to_owned(), name.to_string());
                // The run's own streams and buckets (the node names start with the run's id).
                let prefix = format!("omnidesk-test-{}", &name[..name.len() - 2]);
                std::thread::spawn(move || {
                    let p = ServerProcess::start_with_env(
                        &config,
                        CHILD,
                        &[
                            ("OMNIDESK_NATS", nats.as_str()),
                            ("OMNIDESK_NODE", name.as_str()),
                            ("OMNIDESK_NATS_PREFIX", prefix.as_str()),
                            ("RUST_LOG", "info"),
                        ],
                    );
                    Node {
                        name,
                        addr: p.addr,
                        process: Some(p),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    }

    /// Waits until one node owns the router and returns its index.
    async fn owner(nodes: &[Node]) -> usize {
        for _ in 0..300 {
            if let Some(i) = nodes.iter().position(Node::owns_router) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no node took the router lease");
    }

    async fn session(addr: SocketAddr, token: Option<&str>) -> (String, Client, Value) {
        let body = token.map_or(json!({}), |t| json!({ "token": t }));
        let (status, session) = post_json(addr, "/chat/session", &body).await;
        assert_eq!(status, 200, "session: {session}");
        let token = session["token"].as_str().unwrap().to_owned();
        let mut c = Client::connect(&format!("ws://{addr}/chat/ws?token={token}")).await;
        let hello = c.next().await;
        assert_eq!(hello["type"], "hello");
        (token, c, hello)
    }

    async fn console(addr: SocketAddr, name: &str, password: &str) -> Client {
        let token = login(addr, name, password).await;
        let ticket = ws_ticket(addr, &token).await;
        let mut c = Client::connect(&format!("ws://{addr}/agent/ws?ticket={ticket}")).await;
        let welcome = c.next().await;
        assert_eq!(welcome["type"], "welcome");
        c
    }

    /// Reads frames until `pick` accepts one (at most `within`); every frame read goes to
    /// `seen`.
    async fn read_until<T>(
        c: &mut Client,
        within: Duration,
        seen: &mut Vec<Value>,
        pick: impl Fn(&Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let msg = tokio::time::timeout_at(deadline, c.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no matching frame within {within:?}; saw {seen:?}"))
                .expect("socket open")
                .expect("frame ok");
            let WsMessage::Text(t) = msg else { continue };
            let f: Value = serde_json::from_str(t.as_str()).unwrap();
            let hit = pick(&f);
            seen.push(f);
            if let Some(t) = hit {
                return t;
            }
        }
    }

    async fn say(c: &mut Client, client_id: &str, text: &str, seen: &mut Vec<Value>) -> String {
        c.send_json(json!({"type": "message", "client_id": client_id, "text": text}))
            .await;
        read_until(c, Duration::from_secs(20), seen, |f| {
            (f["type"] == "ack" && f["client_id"] == client_id)
                .then(|| f["message_id"].as_str().unwrap().to_owned())
        })
        .await
    }

    /// Live message frames a widget received, by id: none twice.
    fn pushed_once(frames: &[Value]) -> HashSet<String> {
        let mut ids = HashSet::new();
        for f in frames.iter().filter(|f| f["type"] == "message") {
            let id = f["message"]["id"].as_str().unwrap().to_owned();
            assert!(ids.insert(id.clone()), "message {id} pushed twice: {f}");
        }
        ids
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn three_nodes_replies_both_ways_and_the_router_owner_killed() {
        let Some((url, nats)) = services("the three-node failover test").await else {
            return;
        };
        let tenant = format!("nodes-{}", uuid::Uuid::new_v4().simple());
        let dir = TempDir::new();
        let path = dir.0.join("omnidesk.toml");
        std::fs::write(&path, config(&url, &tenant, 1, 3)).unwrap();
        let run = &tenant[6..14];
        let names: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|n| format!("t{run}-{n}"))
            .collect();
        let mut nodes = start_nodes(
            &path,
            &nats,
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let o = owner(&nodes).await;
        let (agent_node, third) = ((o + 1) % 3, (o + 2) % 3);
        eprintln!(
            "router on {}, agent on {}, customer on {} then {}",
            nodes[o].name, nodes[agent_node].name, nodes[o].name, nodes[third].name
        );

        // The agent signs in on another node than the customer's (the router owner's).
        let mut agent = console(nodes[agent_node].addr, "Agent00", "pw00").await;
        let mut agent_frames = Vec::new();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (token, mut widget, _) = session(nodes[o].addr, None).await;
        let mut widget_frames = Vec::new();
        let mut acked = vec![
            say(
                &mut widget,
                "c1",
                "I want to talk to a human please",
                &mut widget_frames,
            )
            .await,
        ];
        let conversation = read_until(
            &mut agent,
            Duration::from_secs(20),
            &mut agent_frames,
            |f| {
                (f["type"] == "assigned").then(|| {
                    f["conversation"]["conversation"]["id"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
            },
        )
        .await;
        // Customer -> agent across nodes.
        let started = Instant::now();
        acked.push(
            say(
                &mut widget,
                "c2",
                "My parcel never arrived",
                &mut widget_frames,
            )
            .await,
        );
        read_until(
            &mut agent,
            Duration::from_secs(10),
            &mut agent_frames,
            |f| (f["type"] == "message" && f["message"]["id"] == acked[1].as_str()).then_some(()),
        )
        .await;
        eprintln!("customer -> agent across nodes: {:?}", started.elapsed());
        // Agent -> customer across nodes.
        let started = Instant::now();
        agent
            .send_json(json!({"type": "reply", "conversation_id": conversation, "client_id": "r1", "text": "Sorry! Let me check."}))
            .await;
        let reply1 = read_until(
            &mut agent,
            Duration::from_secs(10),
            &mut agent_frames,
            |f| {
                (f["type"] == "ack" && f["client_id"] == "r1")
                    .then(|| f["message_id"].as_str().unwrap().to_owned())
            },
        )
        .await;
        read_until(
            &mut widget,
            Duration::from_secs(10),
            &mut widget_frames,
            |f| (f["type"] == "message" && f["message"]["id"] == reply1.as_str()).then_some(()),
        )
        .await;
        eprintln!("agent -> customer across nodes: {:?}", started.elapsed());
        let before_kill = pushed_once(&widget_frames);

        // Mid-conversation: the router's node dies (SIGKILL), the customer's socket with it.
        let killed_at = Instant::now();
        nodes[o].process.take().unwrap().kill9();
        let mut lease_moved = None;
        for _ in 0..600 {
            if nodes.iter().any(Node::owns_router) {
                lease_moved = Some(killed_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let lease_moved = lease_moved.expect("another node takes the router lease");
        // The next assignment: a new customer on the third node, the agent has room for two more.
        let (_, mut second, _) = session(nodes[third].addr, None).await;
        let mut second_frames = Vec::new();
        say(
            &mut second,
            "s1",
            "I want a human agent now",
            &mut second_frames,
        )
        .await;
        let assigned = tokio::time::timeout(
            Duration::from_secs(30),
            read_until(
                &mut agent,
                Duration::from_secs(60),
                &mut agent_frames,
                |f| {
                    (f["type"] == "assigned"
                        && f["conversation"]["conversation"]["id"] != conversation.as_str())
                    .then_some(())
                },
            ),
        );
        if assigned.await.is_err() {
            for n in &nodes {
                if let Some(p) = &n.process {
                    eprintln!("--- log of {}:\n{}", n.name, p.log().join("\n"));
                }
            }
            panic!("no assignment after the failover");
        }
        let next_assignment = killed_at.elapsed();
        eprintln!(
            "FAILOVER kill -> lease moved {} ms -> next assignment {} ms",
            lease_moved.as_millis(),
            next_assignment.as_millis()
        );

        // The customer comes back on another node: the whole history, then both ways again.
        let (_, mut widget, hello) = session(nodes[third].addr, Some(&token)).await;
        let history: Vec<String> = hello["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        let unique: HashSet<&String> = history.iter().collect();
        assert_eq!(unique.len(), history.len(), "history without repeats");
        for id in acked.iter().chain([&reply1]).chain(before_kill.iter()) {
            assert!(
                history.contains(id),
                "{id} is in the history after the failover"
            );
        }
        let mut widget_frames = Vec::new();
        acked.push(say(&mut widget, "c3", "Any news about it?", &mut widget_frames).await);
        read_until(
            &mut agent,
            Duration::from_secs(10),
            &mut agent_frames,
            |f| (f["type"] == "message" && f["message"]["id"] == acked[2].as_str()).then_some(()),
        )
        .await;
        agent
            .send_json(json!({"type": "reply", "conversation_id": conversation, "client_id": "r2", "text": "It ships today."}))
            .await;
        let reply2 = read_until(
            &mut agent,
            Duration::from_secs(10),
            &mut agent_frames,
            |f| {
                (f["type"] == "ack" && f["client_id"] == "r2")
                    .then(|| f["message_id"].as_str().unwrap().to_owned())
            },
        )
        .await;
        read_until(
            &mut widget,
            Duration::from_secs(10),
            &mut widget_frames,
            |f| (f["type"] == "message" && f["message"]["id"] == reply2.as_str()).then_some(()),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Drain what else came, then: nothing pushed twice, the console saw each message once.
        while let Ok(Some(Ok(WsMessage::Text(t)))) =
            tokio::time::timeout(Duration::from_millis(200), widget.ws.next()).await
        {
            widget_frames.push(serde_json::from_str(t.as_str()).unwrap());
        }
        pushed_once(&widget_frames);
        let mut console_ids = HashSet::new();
        for f in agent_frames.iter().filter(|f| f["type"] == "message") {
            let id = f["message"]["id"].as_str().unwrap().to_owned();
            assert!(console_ids.insert(id.clone()), "console got {id} twice");
        }

        // The store: every acknowledged message once.
        let store = PostgresStore::connect(&url).await.unwrap();
        let tenant = TenantId::new(tenant).unwrap();
        let conversation_id = conversation.parse().unwrap();
        let stored = store
            .messages(&MessageQuery::new(
                tenant.clone(),
                MessageScope::Conversation(conversation_id),
                1000,
            ))
            .await
            .unwrap();
        for id in acked.iter().chain([&reply1, &reply2]) {
            assert_eq!(
                stored.iter().filter(|m| m.id.to_string() == *id).count(),
                1,
                "{id} stored once"
            );
        }
        let c = store.conversation(&tenant, conversation_id).await.unwrap();
        assert_eq!(c.state, ConversationState::Assigned);
        for n in &mut nodes {
            if let Some(p) = n.process.take() {
                p.stop();
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_hundred_conversations_twenty_agents_across_three_nodes() {
        let Some((url, nats)) = services("the three-node capacity test").await else {
            return;
        };
        const AGENTS: usize = 20;
        const CAPACITY: usize = 3;
        const CONVERSATIONS: usize = 200;
        let tenant = format!("nodes-{}", uuid::Uuid::new_v4().simple());
        let dir = TempDir::new();
        let path = dir.0.join("omnidesk.toml");
        std::fs::write(&path, config(&url, &tenant, AGENTS, CAPACITY as u16)).unwrap();
        let run = &tenant[6..14];
        let names: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|n| format!("l{run}-{n}"))
            .collect();
        let mut nodes = start_nodes(
            &path,
            &nats,
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        owner(&nodes).await;
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();

        // Agents spread over the nodes; each resolves a conversation shortly after getting it.
        let resolved = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut agents = Vec::new();
        for i in 0..AGENTS {
            let addr = addrs[i % 3];
            let resolved = resolved.clone();
            let mut c = console(addr, &format!("Agent{i:02}"), &format!("pw{i:02}")).await;
            agents.push(tokio::spawn(async move {
                loop {
                    let Ok(Some(Ok(msg))) =
                        tokio::time::timeout(Duration::from_secs(120), c.ws.next()).await
                    else {
                        return;
                    };
                    let WsMessage::Text(t) = msg else { continue };
                    let f: Value = serde_json::from_str(t.as_str()).unwrap();
                    if f["type"] == "assigned" {
                        let id = f["conversation"]["conversation"]["id"]
                            .as_str()
                            .unwrap()
                            .to_owned();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let _ =
                            c.ws.send(WsMessage::Text(
                                json!({"type": "resolve", "conversation_id": id})
                                    .to_string()
                                    .into(),
                            ))
                            .await;
                        resolved.lock().unwrap().push(id);
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;

        // 200 customers at once, spread over the three nodes.
        let customers: Vec<_> = (0..CONVERSATIONS)
            .map(|i| {
                let addr = addrs[i % 3];
                tokio::spawn(async move {
                    let (_, mut c, _) = session(addr, None).await;
                    let mut seen = Vec::new();
                    // Client ids are the desk's provider ids: unique per message.
                    let id = format!("h{i}");
                    say(&mut c, &id, "I want to talk to a human please", &mut seen).await;
                    // Keep the socket open until the end.
                    c
                })
            })
            .collect();
        let mut sockets = Vec::new();
        for c in customers {
            sockets.push(c.await.unwrap());
        }

        // Watch the store until every conversation was assigned and resolved.
        let store = PostgresStore::connect(&url).await.unwrap();
        let tenant = TenantId::new(tenant).unwrap();
        let query = |states: Vec<ConversationState>| ConversationQuery {
            tenant: tenant.clone(),
            states,
            assignee: None,
            customer: None,
            limit: 1000,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut peak = 0;
        loop {
            let assigned = store
                .conversations(&query(vec![ConversationState::Assigned]))
                .await
                .unwrap();
            let mut load: HashMap<_, usize> = HashMap::new();
            for c in &assigned {
                *load
                    .entry(c.assignee.expect("an assigned conversation has an agent"))
                    .or_default() += 1;
            }
            for (agent, n) in &load {
                assert!(*n <= CAPACITY, "agent {agent} holds {n} conversations");
                peak = peak.max(*n);
            }
            let done = store
                .conversations(&query(vec![ConversationState::Resolved]))
                .await
                .unwrap()
                .len();
            if done == CONVERSATIONS {
                break;
            }
            if Instant::now() >= deadline {
                for n in &nodes {
                    if let Some(p) = &n.process {
                        eprintln!("--- log of {}:\n{}", n.name, p.log().join("\n"));
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "only {done} of {CONVERSATIONS} conversations went through within 120 s ({} assigned now)",
                assigned.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eprintln!("all {CONVERSATIONS} conversations assigned and resolved; peak load {peak}");

        // Each conversation was assigned once: one agent joined it (the stored notices), and it
        // was resolved once.
        let all = store.conversations(&query(Vec::new())).await.unwrap();
        assert_eq!(all.len(), CONVERSATIONS);
        for c in &all {
            let messages = store
                .messages(&MessageQuery::new(
                    tenant.clone(),
                    MessageScope::Conversation(c.id),
                    1000,
                ))
                .await
                .unwrap();
            let joined = messages
                .iter()
                .filter(|m| {
                    m.author == Author::System && {
                        let t = m.content.plain_text();
                        t.contains("is here to help")
                            || t.contains("joined")
                            || t.contains("为您服务")
                    }
                })
                .count();
            assert!(joined <= 1, "conversation {} joined {joined} times", c.id);
            assert!(c.assignee.is_some(), "conversation {} was assigned", c.id);
        }
        let resolved = resolved.lock().unwrap().clone();
        let unique: HashSet<&String> = resolved.iter().collect();
        assert_eq!(
            unique.len(),
            resolved.len(),
            "no conversation assigned twice"
        );
        assert_eq!(unique.len(), CONVERSATIONS);
        for a in agents {
            a.abort();
        }
        drop(sockets);
        for n in &mut nodes {
            if let Some(p) = n.process.take() {
                p.stop();
            }
        }
    }
}

#[cfg(not(all(feature = "postgres", feature = "nats")))]
#[test]
fn three_nodes_need_postgres_and_nats() {
    eprintln!("skipping the three-node tests: build with --features postgres,nats");
}
