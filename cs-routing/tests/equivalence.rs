//! The fast router makes exactly the reference router's decisions on random event streams, under
//! random policies, and the policy checker finds nothing wrong with them.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use cs_core::{
    Agent, AgentId, Capacity, ChannelKind, ConversationId, CustomerTier, Presence, Priority, Skill,
    TenantId,
};
use cs_routing::checker::Checked;
use cs_routing::{
    BotFirst, Checker, Decision, NaiveRouter, OverflowRing, Relax, Reprioritize, RoutingPolicy,
    RoutingPolicyBuilder, SkillRequirement, SkillRouter, StandbyPool, SyncRouter, Task,
};
use proptest::prelude::*;

const SKILLS: [&str; 3] = ["refunds", "logistics", "presale"];
const LANGS: [&str; 2] = ["zh", "en"];
const TEAMS: [&str; 3] = ["after-sales", "logistics", "standby"];
/// Agent ids in a stream: the first five sign in at the start, the last only later (or is
/// restored to before it does).
const AGENTS: usize = 6;

#[derive(Debug, Clone)]
enum Op {
    Upsert {
        agent: usize,
        skills: Vec<(usize, u8)>,
        lang: usize,
        team: Option<usize>,
        chat: u16,
        voice: u16,
        presence: u8,
    },
    Enqueue {
        task: usize,
        skills: Vec<(usize, u8)>,
        lang: Option<usize>,
        team: Option<usize>,
        voice: bool,
        priority: u8,
        vip: bool,
        preferred: Option<usize>,
        back: u64,
        dt: u64,
        skip_bot: bool,
    },
    Cancel(usize),
    /// Release the n-th held task (or a random pair when `wrong`).
    Release(usize, bool),
    Accept(usize),
    Reject(usize),
    Tick(u64),
    /// Re-prioritise the n-th queued task (or any task when `any`); `tier`: keep, standard, VIP.
    Reprioritize {
        n: usize,
        any: bool,
        priority: u8,
        tier: Option<bool>,
    },
    /// `agent` picks the n-th queued task (or any task when `any`).
    Pick {
        agent: usize,
        n: usize,
        any: bool,
    },
    /// Restore `task` to `agent` (agent 5 is not signed in at first).
    Restore {
        agent: usize,
        task: usize,
        voice: bool,
    },
}

fn upsert(agent: impl Strategy<Value = usize>) -> impl Strategy<Value = Op> {
    let reqs = prop::collection::vec((0..3usize, 1..=10u8), 0..3);
    (
        agent,
        reqs,
        0..2usize,
        prop::option::of(0..3usize),
        0..4u16,
        0..2u16,
        0..8u8,
    )
        .prop_map(
            |(agent, skills, lang, team, chat, voice, presence)| Op::Upsert {
                agent,
                skills,
                lang,
                team,
                chat,
                voice,
                presence,
            },
        )
}

/// Every agent signs in, then random events follow.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    (
        (0..5usize)
            .map(|a| upsert(Just(a)).boxed())
            .collect::<Vec<_>>(),
        prop::collection::vec(op(), 1..70),
    )
        .prop_map(|(mut first, rest)| {
            first.extend(rest);
            first
        })
}

fn op() -> impl Strategy<Value = Op> {
    let reqs = prop::collection::vec((0..3usize, 1..=10u8), 0..3);
    prop_oneof![
        2 => upsert(0..AGENTS),
        4 => (
            (0..14usize, reqs, prop::option::of(0..2usize), prop::option::of(0..2usize)),
            (any::<bool>(), 0..4u8, any::<bool>(), prop::option::of(0..5usize), 0..30u64, 0..8u64),
            prop::bool::weighted(0.2),
        )
            .prop_map(|((task, skills, lang, team), (voice, priority, vip, preferred, back, dt), skip_bot)| {
                Op::Enqueue { task, skills, lang, team, voice, priority, vip, preferred, back, dt, skip_bot }
            }),
        1 => (0..14usize).prop_map(Op::Cancel),
        3 => (0..8usize, prop::bool::weighted(0.1)).prop_map(|(n, w)| Op::Release(n, w)),
        2 => (0..8usize).prop_map(Op::Accept),
        1 => (0..8usize).prop_map(Op::Reject),
        2 => (0..25u64).prop_map(Op::Tick),
        2 => (0..8usize, prop::bool::weighted(0.15), 0..4u8, prop::option::of(any::<bool>()))
            .prop_map(|(n, any, priority, tier)| Op::Reprioritize { n, any, priority, tier }),
        2 => (0..AGENTS, 0..8usize, prop::bool::weighted(0.15))
            .prop_map(|(agent, n, any)| Op::Pick { agent, n, any }),
        1 => (0..AGENTS, 0..14usize, any::<bool>())
            .prop_map(|(agent, task, voice)| Op::Restore { agent, task, voice }),
    ]
}

fn policy() -> impl Strategy<Value = RoutingPolicy> {
    (
        prop::sample::select(vec![5u64, 300]),
        0..2u8,
        prop::sample::select(vec![0u64, 12]),
        0..4usize,
        prop::option::of(1..4usize),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(aging, vip, sticky, rings, standby, offers, bot)| {
            let mut b = RoutingPolicyBuilder::new()
                .with_aging_step(StdDuration::from_secs(aging))
                .with_vip_bonus(vip)
                .with_sticky_wait(StdDuration::from_secs(sticky));
            if rings >= 1 {
                b = b.with_ring(OverflowRing::new(
                    StdDuration::from_secs(10),
                    [Relax::LowerLevels(4), Relax::AddTeam("logistics".into())],
                ));
            }
            if rings >= 2 {
                b = b.with_ring(OverflowRing::new(
                    StdDuration::from_secs(25),
                    [Relax::PrimaryOnly, Relax::AnyLanguage, Relax::AnyTeam],
                ));
            }
            if rings >= 3 {
                b = b.with_ring(OverflowRing::new(
                    StdDuration::from_secs(40),
                    [Relax::AnySkill],
                ));
            }
            if let Some(depth) = standby {
                b = b.with_standby(StandbyPool {
                    team: "standby".into(),
                    depth,
                    oldest_wait: StdDuration::from_secs(20),
                });
            }
            if offers {
                b = b.with_reservations(StdDuration::from_secs(9), 2);
            }
            if bot {
                b = b.with_bot_first(BotFirst::AboveDepth(3));
            }
            b.build().unwrap()
        })
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap()
}

struct World {
    agents: Vec<AgentId>,
    tasks: Vec<ConversationId>,
    now: DateTime<Utc>,
    /// (agent, task, accepted) from the decisions so far.
    held: Vec<(AgentId, ConversationId, bool)>,
    /// Queued tasks, in serving order (from the reference router after each step).
    queued: Vec<ConversationId>,
}

impl World {
    fn note(&mut self, decisions: &[Decision]) {
        for d in decisions {
            match d {
                Decision::Assigned { task, agent } => {
                    self.held.retain(|h| h.1 != *task);
                    self.held.push((*agent, *task, true));
                }
                Decision::Offered { task, agent, .. } => self.held.push((*agent, *task, false)),
                Decision::OfferExpired { task, .. } => self.held.retain(|h| h.1 != *task),
                _ => {}
            }
        }
    }

    /// The n-th queued task, or any task when `any` (or nothing is queued).
    fn queued_or_any(&self, n: usize, any: bool) -> ConversationId {
        if any || self.queued.is_empty() {
            self.tasks[n % self.tasks.len()]
        } else {
            self.queued[n % self.queued.len()]
        }
    }

    fn pick(&self, n: usize, accepted: bool) -> Option<(AgentId, ConversationId)> {
        let v: Vec<_> = self.held.iter().filter(|h| h.2 == accepted).collect();
        (!v.is_empty()).then(|| {
            let h = v[n % v.len()];
            (h.0, h.1)
        })
    }
}

fn reqs(skills: &[(usize, u8)]) -> Vec<SkillRequirement> {
    skills
        .iter()
        .map(|(s, l)| SkillRequirement::new(SKILLS[*s], *l))
        .collect()
}

/// Applies `op` to `r`; returns the outcome as comparable text.
fn apply(r: &mut dyn SyncRouter, w: &World, op: &Op) -> (String, Vec<Decision>) {
    let mut out = Vec::new();
    let mut cancelled = None;
    let res = match op {
        Op::Upsert {
            agent,
            skills,
            lang,
            team,
            chat,
            voice,
            presence,
        } => r.upsert_agent(
            Agent {
                id: w.agents[*agent],
                tenant: TenantId::default(),
                name: format!("a{agent}"),
                skills: skills
                    .iter()
                    .map(|(s, l)| Skill::new(SKILLS[*s], *l))
                    .collect(),
                languages: vec![LANGS[*lang].into()],
                team: team.map(|t| TEAMS[t].into()),
                capacity: Capacity {
                    chat: *chat,
                    email: 0,
                    voice: *voice,
                    voice_blocks_others: true,
                },
                presence: match presence {
                    0 => Presence::Away,
                    1 => Presence::Offline,
                    _ => Presence::Online,
                },
            },
            &mut out,
        ),
        Op::Enqueue {
            task,
            skills,
            lang,
            team,
            voice,
            priority,
            vip,
            preferred,
            back,
            skip_bot,
            ..
        } => {
            let mut t = Task::new(
                w.tasks[*task],
                if *voice {
                    ChannelKind::Voice
                } else {
                    ChannelKind::WebChat
                },
                w.now - Duration::seconds(*back as i64),
            );
            t.requirements = reqs(skills);
            t.language = lang.map(|l| LANGS[l].into());
            t.team = team.map(|x| TEAMS[x].into());
            t.priority = [
                Priority::Low,
                Priority::Normal,
                Priority::High,
                Priority::Urgent,
            ][*priority as usize];
            if *vip {
                t.tier = CustomerTier::Vip;
            }
            t.preferred_agent = preferred.map(|p| w.agents[p]);
            t.skip_bot = *skip_bot;
            r.enqueue(t, &mut out)
        }
        Op::Cancel(t) => r.cancel(w.tasks[*t]).map(|b| cancelled = Some(b)),
        Op::Release(n, wrong) => match (wrong, w.pick(*n, true)) {
            (false, Some((a, t))) => r.release(a, t, &mut out),
            _ => r.release(w.agents[n % 5], w.tasks[n % 14], &mut out),
        },
        Op::Accept(n) => match w.pick(*n, false) {
            Some((a, t)) => r.accept(a, t, &mut out),
            None => r.accept(w.agents[n % 5], w.tasks[n % 14], &mut out),
        },
        Op::Reject(n) => match w.pick(*n, false) {
            Some((a, t)) => r.reject(a, t, &mut out),
            None => r.reject(w.agents[n % 5], w.tasks[n % 14], &mut out),
        },
        Op::Tick(_) => r.tick(w.now, &mut out),
        Op::Reprioritize {
            n,
            any,
            priority,
            tier,
        } => {
            let mut change = Reprioritize::to(
                [
                    Priority::Low,
                    Priority::Normal,
                    Priority::High,
                    Priority::Urgent,
                ][*priority as usize],
            );
            if let Some(vip) = tier {
                change = change.with_tier(if *vip {
                    CustomerTier::Vip
                } else {
                    CustomerTier::Standard
                });
            }
            r.reprioritize(w.queued_or_any(*n, *any), change, &mut out)
        }
        Op::Pick { agent, n, any } => r.pick(w.agents[*agent], w.queued_or_any(*n, *any), &mut out),
        Op::Restore { agent, task, voice } => {
            let channel = if *voice {
                ChannelKind::Voice
            } else {
                ChannelKind::WebChat
            };
            r.restore(w.agents[*agent], Task::new(w.tasks[*task], channel, w.now))
        }
    };
    let outcome = match res {
        Ok(()) => format!("ok {cancelled:?}"),
        Err(e) => format!("{e}"),
    };
    (outcome, out)
}

proptest! {
    // 400 random streams by default; `PROPTEST_CASES=20000` for a longer hunt.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400),
    ))]

    #[test]
    fn fast_router_matches_reference(policy in policy(), ops in ops()) {
        let mut w = World {
            agents: (0..AGENTS).map(|_| AgentId::new()).collect(),
            tasks: (0..14).map(|_| ConversationId::new()).collect(),
            now: t0(),
            held: Vec::new(),
            queued: Vec::new(),
        };
        let mut naive = NaiveRouter::new(policy.clone());
        let mut fast = Checked::new(SkillRouter::new(policy.clone()), Checker::new(policy));
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Enqueue { dt, .. } | Op::Tick(dt) => {
                    w.now += Duration::seconds(*dt as i64);
                }
                _ => {}
            }
            let expected = apply(&mut naive, &w, op);
            let got = apply(&mut fast, &w, op);
            prop_assert_eq!(&got, &expected, "step {} {:?}", i, op);
            prop_assert_eq!(fast.snapshot(), naive.snapshot(), "snapshot after step {}", i);
            prop_assert_eq!(fast.next_deadline(), naive.next_deadline(), "deadline after step {}", i);
            w.note(&got.1);
            if let (Op::Restore { agent, task, .. }, true) = (op, got.0.starts_with("ok")) {
                w.held.push((w.agents[*agent], w.tasks[*task], true));
            }
            w.queued = naive.snapshot().queued.iter().map(|q| q.task.id).collect();
        }
        fast.checker.check_idle();
        prop_assert_eq!(fast.checker.violations(), &[][..]);
    }
}

/// A regression found by the property test: a back-dated task makes the standby pool join by
/// time alone when the next task arrives; the router serves the older task before the new one
/// enters, which the checker must not call an order violation.
#[test]
fn standby_joining_by_time_before_a_new_task_is_in_order() {
    let policy = RoutingPolicyBuilder::new()
        .with_standby(StandbyPool {
            team: "standby".into(),
            depth: 3,
            oldest_wait: StdDuration::from_secs(20),
        })
        .build()
        .unwrap();
    let mut fast = Checked::new(SkillRouter::new(policy.clone()), Checker::new(policy));
    let agent = Agent {
        id: AgentId::new(),
        tenant: TenantId::default(),
        name: "standby".into(),
        skills: vec![Skill::new("logistics", 7)],
        languages: vec!["zh".into()],
        team: Some("standby".into()),
        capacity: Capacity {
            chat: 1,
            email: 0,
            voice: 1,
            voice_blocks_others: true,
        },
        presence: Presence::Online,
    };
    let mut out = Vec::new();
    fast.upsert_agent(agent, &mut out).unwrap();
    let old = ConversationId::new();
    let mut task = Task::new(old, ChannelKind::WebChat, t0() - Duration::seconds(24));
    task.priority = Priority::Low;
    fast.enqueue(task, &mut out).unwrap();
    assert!(
        out.is_empty(),
        "the pool is not active yet at the task's own time"
    );
    let mut task = Task::new(ConversationId::new(), ChannelKind::WebChat, t0());
    task.priority = Priority::Normal;
    fast.enqueue(task, &mut out).unwrap();
    assert!(matches!(out.as_slice(), [Decision::Assigned { task, .. }] if *task == old));
    fast.checker.check_idle();
    assert_eq!(fast.checker.violations(), &[][..]);
}
