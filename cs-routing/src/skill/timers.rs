//! Time-outs: offers, sticky holds and overflow rings in one heap, fired in time order.

use std::cmp::Reverse;

use cs_core::Presence;

use super::records::State;
use super::{NONE, SkillRouter};
use crate::policy::at_ms;
use crate::task::Decision;

// Timer kinds, in the order they apply at one instant.
/// An offer times out.
pub(super) const EXPIRE: u8 = 0;
/// A sticky hold ends: any eligible agent may take the task.
pub(super) const HOLD_END: u8 = 1;
/// The task reaches its next overflow ring.
const RING_UP: u8 = 2;

/// One scheduled time-out. Timers fire in the order of their fields as declared (the derived
/// ordering compares them in turn): time, then kind, then the task's rank and arrival, so one
/// instant's timers fire in a fixed order whatever order they were scheduled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Timer {
    /// When it fires (ms).
    pub(super) at: i64,
    /// What it does ([`EXPIRE`], [`HOLD_END`], [`RING_UP`]).
    pub(super) kind: u8,
    /// The task's rank when scheduled.
    pub(super) rank: i64,
    /// The task's arrival sequence number.
    pub(super) seq: u64,
    /// The task's slot.
    pub(super) task: u32,
    /// The task's life in that slot when scheduled (a reused slot's old timers are dead).
    pub(super) life: u32,
}

impl SkillRouter {
    /// Schedules a timer of `kind` for task `t` at `at` (ms), for the task's current life.
    pub(super) fn timer(&mut self, at: i64, kind: u8, t: u32) {
        let task = &self.hot[t as usize];
        self.timers.push(Reverse(Timer {
            at,
            kind,
            rank: task.rank,
            seq: task.seq,
            task: t,
            life: task.life,
        }));
    }

    /// Schedules task `t`'s next overflow ring, if it has one.
    #[inline]
    pub(super) fn schedule_ring(&mut self, t: u32) {
        if !self.policy.rings.is_empty() {
            self.schedule_ring_now(t);
        }
    }

    fn schedule_ring_now(&mut self, t: u32) {
        let enqueued = at_ms(self.cold[t as usize].enqueued_at);
        if let Some(at) = self
            .policy
            .ring_time(enqueued, self.cold[t as usize].ring as usize)
        {
            self.timer(at, RING_UP, t);
        }
    }

    /// Whether `timer` still applies (timers are deleted lazily).
    pub(super) fn timer_live(&self, timer: &Timer) -> bool {
        let &Timer {
            at,
            kind,
            task: t,
            life,
            ..
        } = timer;
        let task = &self.hot[t as usize];
        if task.life != life {
            return false;
        }
        match kind {
            EXPIRE => matches!(task.state, State::Offered(_)),
            HOLD_END => task.state == State::Queued && task.hold != NONE,
            _ => {
                task.state == State::Queued
                    && self.policy.ring_time(
                        at_ms(self.cold[t as usize].enqueued_at),
                        self.cold[t as usize].ring as usize,
                    ) == Some(at)
            }
        }
    }

    /// Moves the clock to `to` (ms), firing due timers instant by instant; after each instant
    /// dispatch runs for the tasks and agents it changed.
    pub(super) fn advance(&mut self, to: i64, out: &mut Vec<Decision>) {
        while let Some(&Reverse(Timer { at: instant, .. })) = self.timers.peek() {
            if instant > to {
                break;
            }
            let mut due = Vec::new();
            while let Some(&Reverse(timer)) = self.timers.peek() {
                if timer.at != instant {
                    break;
                }
                self.timers.pop();
                due.push(timer);
            }
            let (mut agents, mut tasks) = (Vec::new(), Vec::new());
            let mut fired = false;
            for timer in due {
                if !self.timer_live(&timer) {
                    continue;
                }
                if !fired {
                    fired = true;
                    self.now = instant;
                }
                let Timer { kind, task: t, .. } = timer;
                tasks.push(t);
                match kind {
                    EXPIRE => {
                        let State::Offered(a) = self.hot[t as usize].state else {
                            unreachable!("checked live")
                        };
                        self.take_back(t, a);
                        let agent = self.agents[a as usize].agent.id;
                        out.push(Decision::OfferExpired {
                            task: self.hot[t as usize].id,
                            agent,
                        });
                        let max = self.policy.reservations.map_or(u32::MAX, |r| r.max_missed);
                        let ag = &mut self.agents[a as usize];
                        ag.missed += 1;
                        if ag.missed >= max {
                            ag.missed = 0;
                            ag.agent.presence = Presence::Away;
                            self.hot_agents[a as usize].online = false;
                            out.push(Decision::AgentAway { agent });
                        }
                        agents.push(a);
                    }
                    HOLD_END => {
                        self.unplace(t);
                        self.hot[t as usize].hold = NONE;
                        self.place(t);
                    }
                    _ => {
                        self.unplace(t);
                        let ring = self.cold[t as usize].ring as usize + 1;
                        self.cold[t as usize].ring = ring as u32;
                        let class = self.class_of_task(t, ring);
                        self.hot[t as usize].class = class;
                        self.place(t);
                        self.schedule_ring(t);
                    }
                }
            }
            if fired {
                self.dispatch(&agents, &tasks, out);
                self.standby_eval(out);
            }
        }
        self.now = self.now.max(to);
        self.standby_eval(out);
    }
}
