//! One customer across channels: identity resolution, links, merges.

use super::*;

/// The key a sender's identity shares with their identities on other channels: the phone number
/// of SMS, WhatsApp and calls. Only WhatsApp proves it (Meta verified the number); an SMS sender
/// or a caller ID can be spoofed, so they only claim it, and the store joins nothing on a claim
/// (it suggests the link instead).
pub(super) fn shared_key(identity: &Identity) -> Option<cs_core::SharedKey> {
    use cs_core::ChannelKind as K;
    match identity.kind {
        K::WhatsApp => cs_core::SharedKey::phone(&identity.external_id, true),
        K::Sms | K::Voice => cs_core::SharedKey::phone(&identity.external_id, false),
        _ => None,
    }
}

impl Engine {
    /// The customer who owns the sender's identity, created on first contact.
    ///
    /// Identities are joined to an existing customer only by proof: a link the shop or an agent
    /// made, a merge, or a key both identities prove (the store decides, in one step). A phone
    /// number alone is no proof, since caller ID and SMS senders can be spoofed: a call from a
    /// number a WhatsApp customer uses is a new customer, with the WhatsApp customer suggested
    /// as a possible match, until someone confirms it is the same person.
    pub(super) async fn resolve_sender(
        &self,
        msg: &InboundMessage,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Customer> {
        if let Some(known) = self.inner.cache.owner(&msg.from) {
            return Ok(known);
        }
        let resolved = self
            .inner
            .store
            .resolve_customer(&ResolveCustomer {
                tenant: self.inner.tenant.clone(),
                identity: msg.from.clone(),
                display_name: msg.display_name.clone(),
                language: msg.language.clone(),
                shared_key: shared_key(&msg.from),
                at: now,
            })
            .await?;
        if resolved.created {
            self.emit(DomainEvent::CustomerCreated {
                customer: resolved.customer.id,
                identity: msg.from.clone(),
            });
        }
        if resolved.joined {
            self.emit(DomainEvent::IdentityLinked {
                customer: resolved.customer.id,
                identity: msg.from.clone(),
            });
        }
        self.inner.cache.put_owner(&msg.from, &resolved.customer);
        Ok(resolved.customer)
    }

    /// Links another identity to a customer (the shop's login proves a WeChat user is also this
    /// web visitor, an agent confirms an email address). The link records its origin.
    ///
    /// # Errors
    /// [`cs_core::Error::Conflict`] when the identity belongs to another customer: merge them
    /// with [`Engine::merge_customers`] instead.
    pub async fn link_identity(
        &self,
        customer: cs_core::CustomerId,
        identity: Identity,
        origin: LinkOrigin,
    ) -> Result<()> {
        self.inner
            .store
            .link_identity(&LinkIdentity::new(
                self.inner.tenant.clone(),
                customer,
                identity.clone(),
                origin,
                self.inner.clock.now(),
            ))
            .await?;
        self.inner.cache.forget_customers();
        self.emit(DomainEvent::IdentityLinked { customer, identity });
        Ok(())
    }

    /// Merges customer `from` into `into`: identities, conversations and the whole history move
    /// over, so the agent sees one customer. If both were in an active conversation, `from`'s is
    /// resolved and taken out of the router's queue (or off its agent). Undo with
    /// [`Engine::unmerge`].
    ///
    /// # Errors
    /// As [`cs_core::store::CustomerStore::merge_customers`].
    pub async fn merge_customers(
        &self,
        into: cs_core::CustomerId,
        from: cs_core::CustomerId,
        by: LinkOrigin,
    ) -> Result<Merge> {
        let tenant = &self.inner.tenant;
        // Two customers in one lock stripe share one lock: taking it twice would never return.
        let _locks = self.lock_customers(into, from).await;
        let active = |c| ConversationQuery {
            tenant: tenant.clone(),
            states: vec![
                ConversationState::Bot,
                ConversationState::Queued,
                ConversationState::Assigned,
            ],
            assignee: None,
            customer: Some(c),
            limit: 1,
        };
        let into_active = self.inner.store.conversations(&active(into)).await?;
        let from_active = self.inner.store.conversations(&active(from)).await?;
        let merge = self
            .inner
            .store
            .merge_customers(&MergeCustomers {
                tenant: tenant.clone(),
                into,
                from,
                by,
                at: self.inner.clock.now(),
            })
            .await?;
        if !into_active.is_empty()
            && let Some(closed) = from_active.first()
        {
            match (closed.state, closed.assignee) {
                (ConversationState::Queued, _) => {
                    self.router().cancel(closed.id).await?;
                }
                (ConversationState::Assigned, Some(agent)) => {
                    if let Ok(decisions) = self.router().release(agent, closed.id).await {
                        self.apply(decisions).await;
                    }
                }
                _ => {}
            }
            self.emit(DomainEvent::StateChanged {
                conversation: closed.id,
                from: closed.state,
                to: ConversationState::Resolved,
            });
        }
        self.inner.cache.forget_customers();
        self.emit(DomainEvent::CustomersMerged {
            merge: merge.id,
            into,
            from,
        });
        Ok(merge)
    }

    /// Undoes a merge: both customers are separate again, each with their own identities and
    /// history; nothing is lost.
    ///
    /// # Errors
    /// As [`cs_core::store::CustomerStore::unmerge`].
    pub async fn unmerge(&self, merge: MergeId) -> Result<Merge> {
        let undone = self
            .inner
            .store
            .unmerge(&Unmerge {
                tenant: self.inner.tenant.clone(),
                merge,
                at: self.inner.clock.now(),
            })
            .await?;
        self.inner.cache.forget_customers();
        self.emit(DomainEvent::CustomersUnmerged {
            merge,
            into: undone.into,
            from: undone.from,
        });
        Ok(undone)
    }
}
