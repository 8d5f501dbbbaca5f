//! Routing: queue a conversation with what the router needs to know, and carry out every
//! decision the router makes (assignments, offers and their ends, agents set away, bot-first
//! reception).

use std::collections::VecDeque;

use super::*;

/// How a new conversation is received.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reception {
    /// The bot answers every new conversation first; the router sees it only when the bot hands
    /// over (the default).
    #[default]
    Bot,
    /// Every new conversation is queued at once, and the router's bot-first policy
    /// ([`cs_routing::BotFirst`]) decides whether the bot takes it first
    /// ([`Decision::ToBot`]) or it waits for a human.
    Router,
}

/// A conversation offered to an agent who has not answered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Offer {
    /// The conversation.
    pub conversation: ConversationId,
    /// The agent it is offered to.
    pub agent: AgentId,
    /// When the offer lapses.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Why a conversation enters the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Entry {
    /// A new conversation under [`Reception::Router`]: the router may give it to the bot.
    New,
    /// The bot (or the voice menu) handed it over: it waits for a human.
    Handoff,
    /// It was waiting when the process stopped, and waits again.
    Requeue,
    /// Its agent signed out and did not come back: it goes to someone else (no sticky hold).
    Reclaim,
}

/// Where a conversation went when it was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Routed {
    /// The bot takes it first.
    ToBot,
    /// It was assigned or offered at once.
    Taken,
    /// It waits in the queue.
    Waiting,
}

/// Recent assignments, from which an honest wait is estimated: the desk's recent pace of taking
/// conversations off the queue.
#[derive(Debug, Default)]
pub(super) struct Pace {
    assigned: VecDeque<chrono::DateTime<chrono::Utc>>,
}

impl Pace {
    /// How many assignments are remembered.
    const KEEP: usize = 64;
    /// Only this recent a pace counts.
    const WINDOW_MINUTES: i64 = 30;

    pub(super) fn record(&mut self, at: chrono::DateTime<chrono::Utc>) {
        if self.assigned.len() == Self::KEEP {
            self.assigned.pop_front();
        }
        self.assigned.push_back(at);
    }

    /// Seconds until a conversation with `ahead` conversations before it is taken, at the pace
    /// of the last half hour; `None` without three assignments to judge by.
    pub(super) fn estimate(&self, ahead: usize, now: chrono::DateTime<chrono::Utc>) -> Option<i64> {
        let since = now - chrono::Duration::minutes(Self::WINDOW_MINUTES);
        let recent: Vec<_> = self.assigned.iter().filter(|t| **t >= since).collect();
        if recent.len() < 3 {
            return None;
        }
        let span = (now - *recent[0]).num_milliseconds().max(1_000) as f64 / 1_000.0;
        let per_second = recent.len() as f64 / span;
        Some(((ahead as f64 + 1.0) / per_second).ceil() as i64)
    }
}

impl Engine {
    /// Queues `conversation` (which the caller has set to [`ConversationState::Queued`]) with
    /// everything the router needs, and carries out what the router decides.
    #[tracing::instrument(skip_all, fields(conversation = %conversation.id))]
    pub(super) async fn enqueue(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        entry: Entry,
    ) -> Result<Routed> {
        let mut task = self.task_for(conversation, customer).await?;
        if entry == Entry::Reclaim {
            task.preferred_agent = None;
        }
        // The bot has had its turn (or the customer is waiting for a human already).
        task.skip_bot = entry != Entry::New;
        self.emit(DomainEvent::Queued {
            conversation: conversation.id,
            priority: conversation.priority,
            skills: conversation.skills.clone(),
        });
        let started = std::time::Instant::now();
        let decisions = self.router().enqueue(task).await?;
        metrics::histogram!("omnidesk_routing_latency_seconds").record(started.elapsed());
        if decisions
            .iter()
            .any(|d| matches!(d, Decision::ToBot { task } if *task == conversation.id))
        {
            self.apply(decisions).await;
            self.update_conversation(conversation.id, |c| {
                c.state = ConversationState::Bot;
            })
            .await?;
            self.emit(DomainEvent::StateChanged {
                conversation: conversation.id,
                from: ConversationState::Queued,
                to: ConversationState::Bot,
            });
            return Ok(Routed::ToBot);
        }
        let taken = decisions.iter().any(|d| {
            matches!(d, Decision::Assigned { task, .. } | Decision::Offered { task, .. }
                if *task == conversation.id)
        });
        self.apply(decisions).await;
        Ok(if taken {
            Routed::Taken
        } else {
            Routed::Waiting
        })
    }

    /// The router's view of a conversation: skills, language, priority, tier, team, the agent
    /// who served the customer last (sticky), and when it started waiting.
    pub(super) async fn task_for(
        &self,
        conversation: &Conversation,
        customer: &Customer,
    ) -> Result<Task> {
        let mut task = Task::new(
            conversation.id,
            conversation.route.identity.kind,
            conversation.queued_at.unwrap_or(conversation.updated_at),
        );
        task.requirements = conversation
            .skills
            .iter()
            .map(|s| SkillRequirement::new(s.clone(), 1))
            .collect();
        task.language = match customer.language.as_deref().and_then(Lang::from_tag) {
            Some(lang) => Some(lang.tag().to_owned()),
            None => customer
                .language
                .as_ref()
                .map(|l| l.split(['-', '_']).next().unwrap_or(l).to_lowercase()),
        };
        task.priority = conversation.priority;
        task.tier = customer.tier;
        task.team = conversation
            .skills
            .iter()
            .find_map(|s| self.inner.settings.skill_teams.get(s).cloned());
        task.preferred_agent = self.last_agent(conversation).await?;
        Ok(task)
    }

    /// The agent who served this customer last, in an earlier conversation or in this one
    /// before it went back to the queue.
    async fn last_agent(&self, conversation: &Conversation) -> Result<Option<AgentId>> {
        if conversation.assignee.is_some() {
            return Ok(conversation.assignee);
        }
        let earlier = self
            .inner
            .store
            .conversations(&ConversationQuery {
                tenant: self.inner.tenant.clone(),
                states: Vec::new(),
                assignee: None,
                customer: Some(conversation.customer),
                limit: 20,
            })
            .await?;
        Ok(earlier
            .into_iter()
            .filter(|c| c.id != conversation.id)
            .find_map(|c| c.assignee))
    }

    /// Carries out router decisions.
    pub(super) async fn apply(&self, decisions: Vec<Decision>) {
        for d in decisions {
            let result = match d {
                Decision::Assigned { task, agent } => self.assign(task, agent).await,
                Decision::Offered {
                    task,
                    agent,
                    expires_at,
                } => {
                    self.offered(task, agent, expires_at);
                    Ok(())
                }
                Decision::OfferExpired { task, agent } => {
                    self.offer_closed(task, agent, "expired");
                    Ok(())
                }
                Decision::AgentAway { agent } => self.set_away_by_router(agent),
                // Handled where tasks are queued (only a new task can go to the bot).
                Decision::ToBot { task } => {
                    tracing::debug!(conversation = %task, "the bot takes the conversation first");
                    Ok(())
                }
                other => {
                    tracing::warn!(decision = ?other, "a routing decision this engine does not know");
                    Ok(())
                }
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "routing decision not applied");
            }
        }
    }

    fn offered(
        &self,
        conversation: ConversationId,
        agent: AgentId,
        expires_at: chrono::DateTime<chrono::Utc>,
    ) {
        self.inner
            .offers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                conversation,
                Offer {
                    conversation,
                    agent,
                    expires_at,
                },
            );
        self.emit(DomainEvent::Offered {
            conversation,
            agent,
            expires_at,
        });
    }

    fn offer_closed(&self, conversation: ConversationId, agent: AgentId, outcome: &str) {
        self.forget_offer(conversation);
        self.emit(DomainEvent::OfferClosed {
            conversation,
            agent,
            outcome: outcome.to_owned(),
        });
    }

    fn forget_offer(&self, conversation: ConversationId) {
        self.inner
            .offers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&conversation);
    }

    /// The offers waiting for `agent`'s answer.
    pub fn offers_for(&self, agent: AgentId) -> Vec<Offer> {
        let mut v: Vec<Offer> = self
            .inner
            .offers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|o| o.agent == agent)
            .copied()
            .collect();
        v.sort_by_key(|o| o.expires_at);
        v
    }

    /// The agent accepts an offered conversation: it is theirs.
    ///
    /// # Errors
    /// Router errors: [`cs_routing::Error::Conflict`] when it is not offered to this agent
    /// (any more), [`cs_routing::Error::NotFound`] for an unknown conversation.
    pub async fn accept_offer(&self, agent: AgentId, conversation: ConversationId) -> Result<()> {
        let decisions = self.router().accept(agent, conversation).await?;
        self.apply(decisions).await;
        Ok(())
    }

    /// The agent turns an offered conversation down: it goes back to its place in the queue and
    /// to the next agent, never to this one again.
    ///
    /// # Errors
    /// As [`Engine::accept_offer`].
    pub async fn reject_offer(&self, agent: AgentId, conversation: ConversationId) -> Result<()> {
        let decisions = self.router().reject(agent, conversation).await?;
        self.offer_closed(conversation, agent, "rejected");
        self.apply(decisions).await;
        Ok(())
    }

    /// The conversation goes to `agent`: stored as theirs, announced to everyone, and the
    /// customer told who joined (once: a conversation that is already this agent's is left as
    /// it is).
    #[tracing::instrument(skip_all, fields(conversation = %conversation))]
    pub(super) async fn assign(&self, conversation: ConversationId, agent: AgentId) -> Result<()> {
        self.forget_offer(conversation);
        // Across processes: the agent's load is counted and taken under their lock.
        let _agent_lock = self.desk_lock(LockKey::Agent(agent)).await?;
        let before = self.conversation(conversation).await?;
        if before.state == ConversationState::Assigned && before.assignee == Some(agent) {
            return Ok(());
        }
        let saved = if self.inner.desk_locks.is_some() && !self.may_assign(&before, agent).await? {
            None
        } else {
            self.store_assignment(&before, agent).await?
        };
        let Some(assigned) = saved else {
            // The router's view was stale: it must not count the conversation against the agent.
            if let Ok(decisions) = self.router().release(agent, conversation).await {
                Box::pin(self.apply(decisions)).await;
            }
            return Ok(());
        };
        let now = self.inner.clock.now();
        self.inner
            .pace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(now);
        self.emit(DomainEvent::StateChanged {
            conversation,
            from: before.state,
            to: ConversationState::Assigned,
        });
        self.emit(DomainEvent::AgentAssigned {
            conversation,
            agent,
        });
        let name = self.agent(agent).map(|a| a.name).unwrap_or_default();
        let notice = if before.assignee.is_some_and(|a| a != agent) {
            Notice::Transferred
        } else {
            Notice::Joined
        };
        self.notify(&assigned, notice, &[("name", &name)]).await?;
        self.connect_call(&assigned, agent).await
    }

    /// Whether a decision to give `conversation` to `agent` may be carried out when several
    /// processes share the desk (a stale router's decision may not): the conversation still
    /// waits (no other agent has it, it is not closed) and the agent, by the store's count, has
    /// room for one more of its medium. Called under the agent's desk lock.
    async fn may_assign(&self, conversation: &Conversation, agent: AgentId) -> Result<bool> {
        if !conversation.state.is_active() || conversation.state == ConversationState::Assigned {
            tracing::warn!(
                conversation = %conversation.id,
                %agent,
                state = ?conversation.state,
                holder = ?conversation.assignee,
                "assignment refused: the conversation no longer waits"
            );
            metrics::counter!("omnidesk_assignments_refused_total", "why" => "taken").increment(1);
            return Ok(false);
        }
        let Some(profile) = self.agent(agent) else {
            return Err(Error::UnknownAgent(agent.to_string()));
        };
        let medium = conversation.route.identity.kind.medium();
        let held = self
            .agent_conversations(agent)
            .await?
            .iter()
            .filter(|c| c.route.identity.kind.medium() == medium)
            .count();
        if held >= usize::from(profile.capacity.slots(medium)) {
            tracing::warn!(
                conversation = %conversation.id,
                %agent,
                held,
                "assignment refused: the agent is at capacity"
            );
            metrics::counter!("omnidesk_assignments_refused_total", "why" => "capacity")
                .increment(1);
            return Ok(false);
        }
        Ok(true)
    }

    /// Stores `conversation` as `agent`'s with the store's optimistic version: when another
    /// writer changed it first, it is read again and, with several processes, given up when it
    /// no longer waits. `None` when given up.
    async fn store_assignment(
        &self,
        conversation: &Conversation,
        agent: AgentId,
    ) -> Result<Option<Conversation>> {
        let mut current = conversation.clone();
        for _ in 0..cs_core::store::UPDATE_RETRIES {
            let mut next = current.clone();
            next.state = ConversationState::Assigned;
            next.assignee = Some(agent);
            next.updated_at = self.inner.clock.now();
            match self.inner.store.update_conversation(&next).await {
                Ok(saved) => {
                    self.inner.cache.put_conversation(&saved);
                    return Ok(Some(saved));
                }
                Err(cs_core::Error::Conflict { .. }) => {
                    current = self.conversation(conversation.id).await?;
                    if current.state == ConversationState::Assigned
                        && current.assignee == Some(agent)
                    {
                        return Ok(None);
                    }
                    if self.inner.desk_locks.is_some() && !self.may_assign(&current, agent).await? {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(cs_core::Error::Conflict {
            reason: format!("conversation {} kept changing", conversation.id),
        }))
    }

    /// Tells a customer who just joined the queue their place in it and an honest wait.
    pub(super) async fn announce_place(&self, conversation: &Conversation) -> Result<()> {
        if !self.routes_here() {
            // The router's owner tells the customer when it has queued the conversation.
            return Ok(());
        }
        let snapshot = self.router().snapshot().await?;
        let Some(place) = snapshot
            .queued
            .iter()
            .find(|q| q.task.id == conversation.id)
        else {
            return Ok(());
        };
        let position = place.position;
        let ahead = position.to_string();
        let now = self.inner.clock.now();
        let estimate = self
            .inner
            .pace
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .estimate(position, now);
        let lang = self.language_of(conversation).await;
        match estimate {
            Some(seconds) => {
                let wait = Texts::wait(lang, seconds);
                self.notify(
                    conversation,
                    Notice::Queued,
                    &[("ahead", &ahead), ("wait", &wait)],
                )
                .await
            }
            None => {
                self.notify(conversation, Notice::QueuedNoEstimate, &[("ahead", &ahead)])
                    .await
            }
        }
    }

    /// The customer gave up waiting (closed the chat, hung up) before an agent took the
    /// conversation: it leaves the queue (an offer pending for it is withdrawn), is closed, and
    /// [`DomainEvent::QueueAbandoned`] announces it. `reason` says how they left
    /// (`customer_left`, `call_ended`). Returns `false`, changing nothing, when the conversation
    /// is not waiting.
    ///
    /// # Errors
    /// Store errors ([`cs_core::Error::NotFound`]); router errors.
    pub async fn customer_left(&self, conversation: ConversationId, reason: &str) -> Result<bool> {
        let before = self.conversation(conversation).await?;
        if before.state != ConversationState::Queued {
            return Ok(false);
        }
        let _guard = self.lock_customer(before.customer).await;
        let offered = self
            .inner
            .offers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&conversation)
            .map(|o| o.agent);
        match offered {
            Some(agent) => {
                self.forget_offer(conversation);
                match self.router().release(agent, conversation).await {
                    Ok(decisions) => self.apply(decisions).await,
                    Err(
                        cs_routing::Error::Conflict { .. } | cs_routing::Error::NotFound { .. },
                    ) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                self.router().cancel(conversation).await?;
            }
        }
        self.update_conversation(conversation, |c| c.state = ConversationState::Closed)
            .await?;
        self.emit(DomainEvent::StateChanged {
            conversation,
            from: ConversationState::Queued,
            to: ConversationState::Closed,
        });
        self.emit(DomainEvent::QueueAbandoned {
            conversation,
            reason: reason.to_owned(),
        });
        Ok(true)
    }

    /// The router's queue and agents' loads, now.
    ///
    /// # Errors
    /// Router errors.
    pub async fn queue(&self) -> Result<Snapshot> {
        Ok(self.router().snapshot().await?)
    }

    /// The router's queue and agents' loads as of at most `max_age` ago: one snapshot serves
    /// every reader in the meantime (consoles, queue notices), so a deep queue on a busy day is
    /// copied a few times a second, not once per event per reader.
    ///
    /// # Errors
    /// Router errors.
    pub async fn queue_snapshot(&self, max_age: std::time::Duration) -> Result<Arc<Snapshot>> {
        {
            let cached = self
                .inner
                .snapshot
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some((at, snap)) = cached.as_ref()
                && at.elapsed() <= max_age
            {
                return Ok(snap.clone());
            }
        }
        let snap = Arc::new(self.router().snapshot().await?);
        *self
            .inner
            .snapshot
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), snap.clone()));
        Ok(snap)
    }

    /// Lets time act: offers that lapse, sticky holds and overflow rings that expire, aging;
    /// agents who stayed away past the grace period lose their conversations to the queue;
    /// SLA clocks of tickets. The bundled server calls it every second (and at the router's
    /// next deadline); call it from a timer when you embed the engine.
    ///
    /// # Errors
    /// Router, store and ticket errors.
    pub async fn tick(&self) -> Result<()> {
        let decisions = self.router().tick(self.inner.clock.now()).await?;
        self.apply(decisions).await;
        self.requeue_absent_agents().await?;
        for e in self.inner.desk.tick(&self.inner.tenant).await? {
            self.emit_ticket_event(e);
        }
        Ok(())
    }

    /// When [`Engine::tick`] next has routing work to do, if the router knows.
    ///
    /// # Errors
    /// Router errors.
    pub async fn next_deadline(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        Ok(self.router().next_deadline().await?)
    }
}
