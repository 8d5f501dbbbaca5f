//! The customer's satisfaction survey after a resolve: one rating per conversation, from the
//! conversation's own customer, kept in the conversation as a note agents see and counted in
//! CSAT analytics.

use super::*;

/// The provider message id a conversation's rating is stored under: the store keeps one message
/// per `(channel, provider id)`, so a conversation holds one rating, whoever races to add it.
fn rating_key(conversation: ConversationId) -> String {
    format!("csat:{conversation}")
}

impl Engine {
    /// Records `rating` of a conversation by the customer writing from `identity` (the web chat
    /// widget's survey): only for that customer's own conversation, only once it is resolved
    /// (or closed), and once: a second rating returns [`cs_channels::Rated::AlreadyRated`] and
    /// changes nothing. The rating is stored in the conversation as a customer's note agents
    /// see in its history ("CSAT 4/5: comment"), and recorded through
    /// [`Engine::record_survey`] so CSAT analytics count it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a score off 1-5, a comment over
    /// [`cs_channels::MAX_RATING_COMMENT_CHARS`], or a conversation that is not this customer's
    /// (unknown ones alike, so nothing is learnt about others') or not resolved yet; store
    /// errors.
    pub async fn rate_conversation(
        &self,
        identity: &Identity,
        rating: cs_channels::Rating,
    ) -> Result<cs_channels::Rated> {
        if !cs_core::Survey::Csat.accepts(rating.score) {
            return Err(Error::invalid(format!(
                "a rating is from 1 to 5, not {}",
                rating.score
            )));
        }
        let comment = rating
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > cs_channels::MAX_RATING_COMMENT_CHARS)
        {
            return Err(Error::invalid(format!(
                "a rating's comment is at most {} characters",
                cs_channels::MAX_RATING_COMMENT_CHARS
            )));
        }
        let not_yours = || Error::invalid("no such conversation of yours to rate");
        let customer = self
            .inner
            .store
            .find_customer(&self.inner.tenant, identity)
            .await?
            .ok_or_else(not_yours)?;
        let conversation = match self.conversation(rating.conversation).await {
            Ok(c) if c.customer == customer.id => c,
            Ok(_) | Err(Error::Store(cs_core::Error::NotFound { .. })) => return Err(not_yours()),
            Err(e) => return Err(e),
        };
        if !matches!(
            conversation.state,
            ConversationState::Resolved | ConversationState::Closed
        ) {
            return Err(Error::invalid(
                "a conversation is rated once it is resolved",
            ));
        }
        let stars =
            "★".repeat(usize::from(rating.score)) + &"☆".repeat(5 - usize::from(rating.score));
        let text = match &comment {
            Some(c) => format!("CSAT {stars} {}/5: {c}", rating.score),
            None => format!("CSAT {stars} {}/5", rating.score),
        };
        let note = Message::internal(
            &conversation,
            Author::Customer,
            Content::text(text),
            self.inner.clock.now(),
        )
        .with_provider_id(Some(rating_key(conversation.id)));
        if let cs_core::store::Appended::Duplicate(_) =
            self.inner.store.append_message(&note).await?
        {
            return Ok(cs_channels::Rated::AlreadyRated);
        }
        self.inner.cache.push_message(&note);
        self.emit(DomainEvent::MessageSent {
            message: note.clone(),
        });
        self.record_survey(
            conversation.id,
            cs_core::Survey::Csat,
            rating.score,
            comment,
        )
        .await?;
        Ok(cs_channels::Rated::Recorded)
    }
}
