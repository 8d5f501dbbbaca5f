//! Calls: a call the voice menu routed is connected to the agent the router chose.

use super::*;

/// The event a voice channel routes a call with, and the one that connects it (the names of
/// `cs_channels::voice::CALL_EVENT` and `CONNECT_EVENT`, which exist only with the `voice`
/// feature).
const CALL_EVENT: &str = "call";
const CONNECT_EVENT: &str = "connect";

impl Engine {
    /// When `conversation` is a phone call, rings `agent` on it: the agent's voice target from
    /// the settings (`client:alice`, a phone number, a SIP address), by default the browser
    /// client named after the agent. The instruction goes through the outbox, so a provider
    /// failure is retried like any delivery.
    pub(super) async fn connect_call(
        &self,
        conversation: &Conversation,
        agent: AgentId,
    ) -> Result<()> {
        if conversation.route.identity.kind != cs_core::ChannelKind::Voice {
            return Ok(());
        }
        let Some(call_sid) = self.call_sid(conversation).await? else {
            tracing::warn!(conversation = %conversation.id, "a call conversation without its call");
            return Ok(());
        };
        let target = match self.inner.settings.voice_targets.get(&agent) {
            Some(t) => t.clone(),
            None => {
                let name = self.agent(agent).map(|a| a.name).unwrap_or_default();
                format!("client:{}", name.to_lowercase())
            }
        };
        let instruction = Content::Event {
            name: CONNECT_EVENT.into(),
            data: serde_json::json!({ "call_sid": call_sid, "target": target }),
        };
        self.send_to_customer(conversation, Author::System, instruction, None)
            .await?;
        Ok(())
    }

    /// The provider's id of the call in a conversation: the latest routed-call event's.
    async fn call_sid(&self, conversation: &Conversation) -> Result<Option<String>> {
        let recent = self.recent_messages(conversation.id, 50).await?;
        Ok(recent.iter().rev().find_map(|m| match &m.content {
            Content::Event { name, data } if name == CALL_EVENT => data
                .get("call_sid")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            _ => None,
        }))
    }
}

/// The skills of a call the voice menu routed (a `call` event with a `skills` list).
pub(super) fn routed_call_skills(content: &Content) -> Option<Vec<String>> {
    match content {
        Content::Event { name, data } if name == CALL_EVENT => Some(
            data.get("skills")?
                .as_array()?
                .iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}
