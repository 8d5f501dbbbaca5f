//! What the bot may know about who asks: the phone numbers a customer proved, and the one-time
//! codes that prove more (order privacy, issue 15).

use cs_core::{ChannelKind, IdentityLink};

use super::*;

/// The phone number an identity link proves, if any. The bot's answers to an SMS or WhatsApp
/// sender go to that number (WhatsApp numbers are verified by Meta; an SMS sender who spoofs a
/// number never reads the answers), and a number confirmed with a one-time code is proved;
/// a caller ID is not (the caller hears the answer), nor a link the store does not confirm.
pub(super) fn proven_phone(link: &IdentityLink) -> Option<&str> {
    if !link.verified {
        return None;
    }
    match (link.identity.kind, &link.origin) {
        (ChannelKind::Sms | ChannelKind::WhatsApp, _) | (_, LinkOrigin::OneTimeCode) => {
            Some(link.identity.external_id.as_str())
        }
        _ => None,
    }
}

/// A phone number as an SMS provider addresses it: `+` and its international digits.
fn e164(phone: &str) -> String {
    format!(
        "+{}",
        cs_bot::phone_key(phone).unwrap_or_else(|| phone.trim_start_matches('+').to_owned())
    )
}

impl Engine {
    /// The phone numbers `customer` proved, for the bot (empty, with a warning, when the store
    /// cannot say: the bot then shows no orders without a code).
    pub(super) async fn verified_phones(&self, customer: cs_core::CustomerId) -> Vec<String> {
        if let Some(known) = self.inner.cache.verified_phones(customer) {
            return known;
        }
        match self
            .inner
            .store
            .identity_links(&self.inner.tenant, customer)
            .await
        {
            Ok(links) => {
                let phones: Vec<String> = links
                    .iter()
                    .filter_map(proven_phone)
                    .map(str::to_owned)
                    .collect();
                // Identity changes go through the engine, which forgets these (write-through).
                self.inner.cache.put_verified_phones(customer, &phones);
                phones
            }
            Err(e) => {
                tracing::warn!(error = %e, %customer, "identities unavailable for the bot");
                Vec::new()
            }
        }
    }

    /// Carries out what the bot's turn asks besides its messages: texts a one-time code
    /// straight to the number (through an SMS channel, never into the conversation or its
    /// history), and links each phone the customer proved as a verified identity.
    pub(super) async fn after_bot_turn(
        &self,
        conversation: &Conversation,
        customer: &Customer,
        reply: &cs_bot::BotReply,
    ) {
        if let Some(code) = &reply.phone_code
            && let Err(e) = self.text_code(conversation, code).await
        {
            tracing::warn!(error = %e, conversation = %conversation.id, "one-time code not sent");
            if let Err(e) = self.notify(conversation, Notice::CodeNotSent, &[]).await {
                tracing::warn!(error = %e, "code failure notice not sent");
            }
        }
        for phone in &reply.verified_phones {
            let identity = Identity::new(ChannelKind::Sms, e164(phone));
            match self
                .link_identity(customer.id, identity, LinkOrigin::OneTimeCode)
                .await
            {
                Ok(()) => {}
                // The number writes to us as another customer: the proof holds for this
                // conversation (the bot remembers it); an agent may merge the two.
                Err(Error::Store(cs_core::Error::Conflict { .. })) => {
                    tracing::info!(customer = %customer.id, "a proved phone belongs to another customer");
                }
                Err(e) => tracing::warn!(error = %e, "proved phone not linked"),
            }
        }
    }

    /// Sends a one-time code by SMS: through the conversation's own channel when it is SMS,
    /// otherwise the first SMS channel configured.
    async fn text_code(&self, conversation: &Conversation, code: &cs_bot::PhoneCode) -> Result<()> {
        let channels = &self.inner.channels;
        let channel = channels
            .get(&conversation.route.channel)
            .filter(|c| c.info().kind == ChannelKind::Sms)
            .or_else(|| {
                let mut sms: Vec<_> = channels
                    .values()
                    .filter(|c| c.info().kind == ChannelKind::Sms)
                    .collect();
                sms.sort_by(|a, b| a.info().id.cmp(&b.info().id));
                sms.into_iter().next()
            })
            .ok_or_else(|| Error::UnknownChannel("sms".into()))?;
        let mut message = Message::outbound(
            conversation,
            ChannelKind::Sms,
            Author::Bot,
            Content::text(code.text.clone()),
            self.inner.clock.now(),
        );
        message.channel = channel.info().id.clone();
        channel
            .send(&OutboundMessage {
                message,
                to: Identity::new(ChannelKind::Sms, e164(&code.phone)),
            })
            .await?;
        Ok(())
    }
}
