//! Outgoing messages against the tenant's compliance rules: agent replies refused or held for
//! confirmation, bot answers kept back, every hit audited on the event stream.

use cs_bot::{BotReply, HandoffReason};
use cs_core::ComplianceOutcome;

use super::*;
use crate::compliance::{RuleAction, Verdict};

impl Engine {
    /// Checks a text an agent wants to send. Clean, or warned and `confirmed`: `Ok` (a confirmed
    /// warning is audited). Blocked, or warned and not confirmed: audited and refused.
    pub(super) fn comply(
        &self,
        conversation: ConversationId,
        author: Author,
        text: &str,
        confirmed: bool,
    ) -> Result<()> {
        let verdict = self.inner.compliance.check(&self.inner.tenant, text);
        let outcome = match verdict.action() {
            None => return Ok(()),
            Some(RuleAction::Block) => ComplianceOutcome::Blocked,
            Some(RuleAction::Warn) if confirmed => ComplianceOutcome::SentAfterWarning,
            Some(RuleAction::Warn) => ComplianceOutcome::Warned,
        };
        self.audit(conversation, author, outcome, &verdict);
        match outcome {
            ComplianceOutcome::SentAfterWarning => Ok(()),
            _ => Err(Error::Compliance { verdict }),
        }
    }

    /// A bot's answers checked before they go out. A bot cannot confirm: answers with a warned
    /// phrase go out (audited); an answer with a blocked phrase is kept back, and unless the
    /// bot hands over anyway, the conversation goes to a human who can answer properly.
    pub(super) fn screen_bot_reply(
        &self,
        conversation: ConversationId,
        mut reply: BotReply,
    ) -> BotReply {
        if self
            .inner
            .compliance
            .for_tenant(&self.inner.tenant)
            .is_empty()
        {
            return reply;
        }
        let mut kept_back = Vec::new();
        reply.messages.retain(|text| {
            let verdict = self.inner.compliance.check(&self.inner.tenant, text);
            match verdict.action() {
                None => true,
                Some(RuleAction::Warn) => {
                    self.audit(
                        conversation,
                        Author::Bot,
                        ComplianceOutcome::SentAfterWarning,
                        &verdict,
                    );
                    true
                }
                Some(RuleAction::Block) => {
                    self.audit(
                        conversation,
                        Author::Bot,
                        ComplianceOutcome::Blocked,
                        &verdict,
                    );
                    kept_back.extend(verdict.phrases().into_iter().map(str::to_owned));
                    false
                }
            }
        });
        if !kept_back.is_empty() && reply.handoff.is_none() {
            reply.handoff = Some(Handoff::new(
                HandoffReason::NoAnswer,
                format!(
                    "The bot's answer was kept back by the compliance rules ({}).",
                    kept_back.join(", ")
                ),
            ));
        }
        reply
    }

    fn audit(
        &self,
        conversation: ConversationId,
        author: Author,
        outcome: ComplianceOutcome,
        verdict: &Verdict,
    ) {
        tracing::info!(
            conversation = %conversation,
            author = author.role(),
            outcome = outcome.as_str(),
            phrases = ?verdict.phrases(),
            "compliance hit"
        );
        metrics::counter!("omnidesk_compliance_hits_total", "outcome" => outcome.as_str())
            .increment(1);
        self.emit(DomainEvent::ComplianceHit {
            conversation,
            author,
            outcome,
            phrases: verdict.phrases().into_iter().map(str::to_owned).collect(),
            found: verdict.hits.iter().map(|h| h.found.clone()).collect(),
        });
    }
}
