//! A routing policy of your own: wrap a router of ours and change what it decides, then prove the
//! result with the `Router` conformance suite.
//!
//! `PresaleFirst` is what a shop asks for on a sales day: a shopper with a question before paying
//! (a task needing the `presale` skill) is worth more than an after-sales question that can wait
//! ten minutes, so during a campaign window such tasks are raised to at least `High` priority, on
//! enqueue and whenever the engine re-prioritises them (an angry after-sales customer still
//! climbs past them to `Urgent`). Everything else is the wrapped router's.
//!
//! ```sh
//! cargo run --example custom_router     # a small scenario, decisions printed
//! cargo test --example custom_router    # the scenario as a test, and the conformance suite
//! ```
//! Give it to the engine with `EngineBuilder::with_router(Arc::new(router))`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use cs_core::{Agent, AgentId, ConversationId, Priority};
use cs_routing::{
    Decision, Reprioritize, Result, Router, RoutingPolicy, Shared, SkillRouter, Snapshot, Task,
};

/// Raises pre-sales tasks to at least `High` while a campaign runs.
#[derive(Debug)]
struct PresaleFirst {
    inner: Arc<dyn Router>,
    /// The campaign: from, until.
    window: (DateTime<Utc>, DateTime<Utc>),
    /// Queued pre-sales tasks (so a re-prioritisation keeps the floor).
    presale: Mutex<HashSet<ConversationId>>,
}

impl PresaleFirst {
    fn new(inner: Arc<dyn Router>, from: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Self {
            inner,
            window: (from, until),
            presale: Mutex::new(HashSet::new()),
        }
    }

    fn in_campaign(&self, at: DateTime<Utc>) -> bool {
        self.window.0 <= at && at < self.window.1
    }

    fn floor(priority: Priority) -> Priority {
        priority.max(Priority::High)
    }

    /// Forgets tasks that left the queue.
    fn observe(&self, decisions: &[Decision]) {
        let mut presale = self.presale.lock().expect("not poisoned");
        for d in decisions {
            if let Decision::Assigned { task, .. } = d {
                presale.remove(task);
            }
        }
    }
}

#[async_trait]
impl Router for PresaleFirst {
    async fn enqueue(&self, mut task: Task) -> Result<Vec<Decision>> {
        let presale = task.requirements.iter().any(|r| r.skill == "presale");
        if presale && self.in_campaign(task.enqueued_at) {
            task.priority = Self::floor(task.priority);
            self.presale.lock().expect("not poisoned").insert(task.id);
        }
        let decisions = self.inner.enqueue(task).await?;
        self.observe(&decisions);
        Ok(decisions)
    }

    async fn cancel(&self, task: ConversationId) -> Result<bool> {
        self.presale.lock().expect("not poisoned").remove(&task);
        self.inner.cancel(task).await
    }

    async fn upsert_agent(&self, agent: Agent) -> Result<Vec<Decision>> {
        let decisions = self.inner.upsert_agent(agent).await?;
        self.observe(&decisions);
        Ok(decisions)
    }

    async fn release(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        let decisions = self.inner.release(agent, task).await?;
        self.observe(&decisions);
        Ok(decisions)
    }

    async fn tick(&self, now: DateTime<Utc>) -> Result<Vec<Decision>> {
        let decisions = self.inner.tick(now).await?;
        self.observe(&decisions);
        Ok(decisions)
    }

    async fn reprioritize(
        &self,
        task: ConversationId,
        mut change: Reprioritize,
    ) -> Result<Vec<Decision>> {
        if self.presale.lock().expect("not poisoned").contains(&task) {
            change.priority = Self::floor(change.priority);
        }
        self.inner.reprioritize(task, change).await
    }

    async fn pick(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        let decisions = self.inner.pick(agent, task).await?;
        self.observe(&decisions);
        Ok(decisions)
    }

    async fn restore(&self, agent: AgentId, task: Task) -> Result<()> {
        self.inner.restore(agent, task).await
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        self.inner.snapshot().await
    }

    async fn accept(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        let decisions = self.inner.accept(agent, task).await?;
        self.observe(&decisions);
        Ok(decisions)
    }

    async fn reject(&self, agent: AgentId, task: ConversationId) -> Result<Vec<Decision>> {
        let decisions = self.inner.reject(agent, task).await?;
        self.observe(&decisions);
        Ok(decisions)
    }

    async fn next_deadline(&self) -> Result<Option<DateTime<Utc>>> {
        self.inner.next_deadline().await
    }
}

/// 11.11 from midnight to midnight, Beijing time.
fn campaign() -> (DateTime<Utc>, DateTime<Utc>) {
    (
        Utc.with_ymd_and_hms(2026, 11, 10, 16, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 11, 16, 0, 0).unwrap(),
    )
}

fn router() -> PresaleFirst {
    let (from, until) = campaign();
    let inner: Arc<dyn Router> = Arc::new(Shared::new(SkillRouter::new(RoutingPolicy::default())));
    PresaleFirst::new(inner, from, until)
}

/// One agent, busy; an after-sales question waits, then a shopper asks before paying. When the
/// agent frees up, the shopper goes first. Returns who got the freed slot, and the shopper.
async fn scenario(router: &dyn Router) -> Result<(ConversationId, ConversationId)> {
    use cs_core::{Capacity, ChannelKind, Presence, Skill, TenantId};
    use cs_routing::SkillRequirement;

    let at = Utc.with_ymd_and_hms(2026, 11, 11, 2, 0, 0).unwrap();
    let mei = Agent {
        id: AgentId::new(),
        tenant: TenantId::new("shop").expect("valid tenant"),
        name: "Mei".into(),
        skills: vec![Skill::new("presale", 5), Skill::new("after-sales", 5)],
        languages: vec!["zh".into()],
        team: None,
        capacity: Capacity {
            chat: 1,
            ..Capacity::default()
        },
        presence: Presence::Online,
    };
    let agent = mei.id;
    router.upsert_agent(mei).await?;

    let busy = ConversationId::new();
    router
        .enqueue(Task::new(busy, ChannelKind::WebChat, at))
        .await?;
    let mut after_sales = Task::new(ConversationId::new(), ChannelKind::WebChat, at);
    after_sales.requirements = vec![SkillRequirement::new("after-sales", 1)];
    router.enqueue(after_sales).await?;
    let shopper = ConversationId::new();
    let mut presale = Task::new(
        shopper,
        ChannelKind::WebChat,
        at + chrono::Duration::minutes(2),
    );
    presale.requirements = vec![SkillRequirement::new("presale", 1)];
    router.enqueue(presale).await?;

    let decisions = router.release(agent, busy).await?;
    for d in &decisions {
        println!("{d:?}");
    }
    let next = decisions
        .iter()
        .find_map(|d| match d {
            Decision::Assigned { task, .. } => Some(*task),
            _ => None,
        })
        .expect("the freed slot is given to someone");
    println!(
        "the freed slot went to the {}",
        if next == shopper {
            "shopper asking before paying"
        } else {
            "after-sales question"
        }
    );
    Ok((next, shopper))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    scenario(&router()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_shopper_goes_first_during_the_campaign() {
        let r = router();
        let (next, shopper) = scenario(&r).await.unwrap();
        assert_eq!(next, shopper, "the shopper asking before paying goes first");
        let snapshot = r.snapshot().await.unwrap();
        assert_eq!(
            snapshot.queued.len(),
            1,
            "the after-sales question still waits"
        );
        assert!(
            r.presale.lock().unwrap().is_empty(),
            "an assigned task is forgotten"
        );
    }

    #[tokio::test]
    async fn outside_the_campaign_the_queue_order_is_kept() {
        let inner: Arc<dyn Router> =
            Arc::new(Shared::new(SkillRouter::new(RoutingPolicy::default())));
        // A campaign that ended before the scenario starts.
        let r = PresaleFirst::new(
            inner,
            Utc.with_ymd_and_hms(2026, 6, 18, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 6, 19, 0, 0, 0).unwrap(),
        );
        let (next, shopper) = scenario(&r).await.unwrap();
        assert_ne!(next, shopper, "first come, first served");
        let snapshot = r.snapshot().await.unwrap();
        assert_eq!(snapshot.queued.len(), 1);
        assert_eq!(snapshot.queued[0].task.id, shopper);
        assert_eq!(snapshot.queued[0].task.priority, Priority::Normal);
    }

    #[tokio::test]
    async fn conforms_to_the_router_suite() {
        cs_routing::conformance::run(&|| Box::new(router())).await;
    }
}
