//! The behaviour every [`Router`] must show (feature `conformance`).
//!
//! Call [`run`] with a factory that makes a fresh, empty router; each check gets its own.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cs_core::{
    Agent, AgentId, Capacity, ChannelKind, ConversationId, Presence, Priority, Skill, TenantId,
};

use crate::error::Error;
use crate::router::Router;
use crate::task::{Decision, SkillRequirement, Task};

/// Runs every check, each on a router made by `make`.
pub async fn run(make: &dyn Fn() -> Box<dyn Router>) {
    assigns_to_an_eligible_agent(make().as_ref()).await;
    respects_capacity_and_release(make().as_ref()).await;
    requires_skills_at_level(make().as_ref()).await;
    orders_by_priority_then_age(make().as_ref()).await;
    ignores_agents_not_online(make().as_ref()).await;
    voice_blocks_chat(make().as_ref()).await;
    refuses_bad_calls(make().as_ref()).await;
    cancel_removes_from_queue(make().as_ref()).await;
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap()
}

/// An online agent with `chat` chat slots and the given skills.
pub fn agent(name: &str, chat: u16, skills: &[(&str, u8)]) -> Agent {
    Agent {
        id: AgentId::new(),
        tenant: TenantId::default(),
        name: name.into(),
        skills: skills.iter().map(|(s, l)| Skill::new(*s, *l)).collect(),
        languages: vec!["zh".into(), "en".into()],
        team: None,
        capacity: Capacity {
            chat,
            ..Capacity::default()
        },
        presence: Presence::Online,
    }
}

fn task(secs: i64) -> Task {
    Task::new(
        ConversationId::new(),
        ChannelKind::WebChat,
        t0() + Duration::seconds(secs),
    )
}

fn assigned(decisions: &[Decision]) -> Vec<(ConversationId, AgentId)> {
    decisions
        .iter()
        .map(|d| match d {
            Decision::Assigned { task, agent } => (*task, *agent),
        })
        .collect()
}

async fn assigns_to_an_eligible_agent(r: &dyn Router) {
    let t = task(0);
    assert!(
        r.enqueue(t.clone()).await.unwrap().is_empty(),
        "no agent yet"
    );
    assert_eq!(r.snapshot().await.unwrap().queued.len(), 1);
    let a = agent("ann", 2, &[]);
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(t.id, a.id)],
        "an agent signing in takes the waiting task"
    );
    let snap = r.snapshot().await.unwrap();
    assert!(snap.queued.is_empty());
    assert_eq!(snap.agents[0].tasks, [t.id]);
    let t2 = task(1);
    let d = r.enqueue(t2.clone()).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(t2.id, a.id)],
        "a free agent takes a new task at once"
    );
}

async fn respects_capacity_and_release(r: &dyn Router) {
    let a = agent("ann", 2, &[]);
    r.upsert_agent(a.clone()).await.unwrap();
    let tasks: Vec<Task> = (0..3).map(task).collect();
    let mut got = Vec::new();
    for t in &tasks {
        got.extend(assigned(&r.enqueue(t.clone()).await.unwrap()));
    }
    assert_eq!(got.len(), 2, "capacity 2 takes two tasks");
    assert_eq!(r.snapshot().await.unwrap().queued.len(), 1);
    let d = r.release(a.id, tasks[0].id).await.unwrap();
    assert_eq!(
        assigned(&d),
        [(tasks[2].id, a.id)],
        "release lets the next task in"
    );
    assert!(r.snapshot().await.unwrap().queued.is_empty());
}

async fn requires_skills_at_level(r: &dyn Router) {
    let novice = agent("novice", 4, &[("refunds", 3)]);
    let expert = agent("expert", 4, &[("refunds", 8)]);
    r.upsert_agent(novice.clone()).await.unwrap();
    let mut t = task(0);
    t.requirements = vec![SkillRequirement::new("refunds", 5)];
    assert!(
        r.enqueue(t.clone()).await.unwrap().is_empty(),
        "level 3 < 5"
    );
    let d = r.upsert_agent(expert.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(t.id, expert.id)]);
    let mut other = task(1);
    other.requirements = vec![SkillRequirement::new("logistics", 1)];
    assert!(
        r.enqueue(other).await.unwrap().is_empty(),
        "nobody has logistics"
    );
}

async fn orders_by_priority_then_age(r: &dyn Router) {
    let old = task(0);
    let newer = task(10);
    let mut urgent = task(20);
    urgent.priority = Priority::Urgent;
    for t in [&newer, &urgent, &old] {
        assert!(r.enqueue(t.clone()).await.unwrap().is_empty());
    }
    let a = agent("ann", 1, &[]);
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(urgent.id, a.id)], "urgent goes first");
    let d = r.release(a.id, urgent.id).await.unwrap();
    assert_eq!(assigned(&d), [(old.id, a.id)], "then the oldest");
    let d = r.release(a.id, old.id).await.unwrap();
    assert_eq!(assigned(&d), [(newer.id, a.id)]);
}

async fn ignores_agents_not_online(r: &dyn Router) {
    let mut a = agent("ann", 4, &[]);
    a.presence = Presence::Away;
    r.upsert_agent(a.clone()).await.unwrap();
    let t = task(0);
    assert!(
        r.enqueue(t.clone()).await.unwrap().is_empty(),
        "away agents take nothing"
    );
    a.presence = Presence::Online;
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(assigned(&d), [(t.id, a.id)], "coming online takes the task");
    a.presence = Presence::Offline;
    r.upsert_agent(a.clone()).await.unwrap();
    let snap = r.snapshot().await.unwrap();
    assert_eq!(
        snap.agents[0].tasks,
        [t.id],
        "going offline keeps current tasks"
    );
    assert!(r.enqueue(task(1)).await.unwrap().is_empty());
}

async fn voice_blocks_chat(r: &dyn Router) {
    let a = agent("ann", 4, &[]);
    r.upsert_agent(a.clone()).await.unwrap();
    let mut call = task(0);
    call.channel = ChannelKind::Voice;
    assert_eq!(assigned(&r.enqueue(call.clone()).await.unwrap()).len(), 1);
    let chat = task(1);
    assert!(
        r.enqueue(chat.clone()).await.unwrap().is_empty(),
        "on a call, no chats"
    );
    let d = r.release(a.id, call.id).await.unwrap();
    assert_eq!(assigned(&d), [(chat.id, a.id)]);
}

async fn refuses_bad_calls(r: &dyn Router) {
    let t = task(0);
    r.enqueue(t.clone()).await.unwrap();
    assert!(matches!(
        r.enqueue(t.clone()).await,
        Err(Error::Conflict { .. })
    ));
    let mut bad = task(1);
    bad.requirements = vec![SkillRequirement::new("refunds", 0)];
    assert!(matches!(
        r.enqueue(bad).await,
        Err(Error::InvalidInput { .. })
    ));
    assert!(matches!(
        r.release(AgentId::new(), t.id).await,
        Err(Error::NotFound { .. })
    ));
    let a = agent("ann", 1, &[]);
    let d = r.upsert_agent(a.clone()).await.unwrap();
    assert_eq!(assigned(&d).len(), 1);
    assert!(matches!(
        r.release(a.id, ConversationId::new()).await,
        Err(Error::Conflict { .. })
    ));
    let mut broken = agent("bob", 1, &[("refunds", 11)]);
    broken.name = "bob".into();
    assert!(matches!(
        r.upsert_agent(broken).await,
        Err(Error::InvalidInput { .. })
    ));
}

async fn cancel_removes_from_queue(r: &dyn Router) {
    let t = task(0);
    r.enqueue(t.clone()).await.unwrap();
    assert!(r.cancel(t.id).await.unwrap());
    assert!(
        !r.cancel(t.id).await.unwrap(),
        "cancelling twice finds nothing"
    );
    let a = agent("ann", 1, &[]);
    assert!(
        r.upsert_agent(a).await.unwrap().is_empty(),
        "a cancelled task is not assigned"
    );
    r.enqueue(t.clone())
        .await
        .expect("a cancelled task may be queued again");
}
