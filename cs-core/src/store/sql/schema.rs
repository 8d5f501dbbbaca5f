//! The conversation schema, shared by the SQL stores: the same statements run on SQLite and
//! PostgreSQL (SQLite reads `BIGINT` as an integer column). Timestamps are microseconds since the
//! Unix epoch; ids are UUID text (UUIDv7 text sorts in creation order); flags are `BIGINT` 0 or 1.

use crate::sql::Migration;

/// The migrations, in order.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "customers, identities, conversations, messages",
        sql: r#"
CREATE TABLE cs_customers (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    display_name TEXT,
    tier TEXT NOT NULL,
    language TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE TABLE cs_identities (
    tenant TEXT NOT NULL,
    kind TEXT NOT NULL,
    external_id TEXT NOT NULL,
    customer TEXT NOT NULL,
    linked_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, kind, external_id),
    FOREIGN KEY (tenant, customer) REFERENCES cs_customers (tenant, id)
);
CREATE INDEX cs_identities_customer ON cs_identities (tenant, customer);
CREATE TABLE cs_conversations (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    customer TEXT NOT NULL,
    route_channel TEXT NOT NULL,
    route_kind TEXT NOT NULL,
    route_external_id TEXT NOT NULL,
    state TEXT NOT NULL,
    priority TEXT NOT NULL,
    skills TEXT NOT NULL,
    assignee TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, customer) REFERENCES cs_customers (tenant, id)
);
CREATE UNIQUE INDEX cs_conversations_one_active ON cs_conversations (tenant, customer)
    WHERE state IN ('bot', 'queued', 'assigned');
CREATE INDEX cs_conversations_updated ON cs_conversations (tenant, updated_at);
CREATE TABLE cs_messages (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    conversation TEXT NOT NULL,
    customer TEXT NOT NULL,
    channel TEXT NOT NULL,
    channel_kind TEXT NOT NULL,
    direction TEXT NOT NULL,
    author TEXT NOT NULL,
    content TEXT NOT NULL,
    provider_message_id TEXT,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, conversation) REFERENCES cs_conversations (tenant, id)
);
CREATE UNIQUE INDEX cs_messages_provider_id ON cs_messages (tenant, channel, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE INDEX cs_messages_conversation ON cs_messages (tenant, conversation, id);
CREATE INDEX cs_messages_customer ON cs_messages (tenant, customer, id);
"#,
    },
    Migration {
        version: 2,
        name: "outbox and delivery receipts",
        sql: r#"
CREATE TABLE cs_outbox (
    tenant TEXT NOT NULL,
    message TEXT NOT NULL,
    conversation TEXT NOT NULL,
    to_kind TEXT NOT NULL,
    to_external_id TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    dead INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (tenant, message),
    FOREIGN KEY (tenant, message) REFERENCES cs_messages (tenant, id)
);
CREATE INDEX cs_outbox_due ON cs_outbox (tenant, dead, next_attempt_at);
CREATE INDEX cs_outbox_conversation ON cs_outbox (tenant, conversation, message);
CREATE TABLE cs_receipts (
    tenant TEXT NOT NULL,
    channel TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (tenant, channel, provider_id)
);
"#,
    },
    Migration {
        version: 3,
        name: "identity link origins and customer merges",
        sql: r#"
ALTER TABLE cs_identities ADD COLUMN origin TEXT NOT NULL DEFAULT 'first_contact';
CREATE TABLE cs_merges (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    into_customer TEXT NOT NULL,
    from_customer TEXT NOT NULL,
    identities TEXT NOT NULL,
    conversations TEXT NOT NULL,
    resolved TEXT,
    origin TEXT NOT NULL,
    at BIGINT NOT NULL,
    undone_at BIGINT,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX cs_merges_into ON cs_merges (tenant, into_customer);
CREATE INDEX cs_merges_from ON cs_merges (tenant, from_customer);
"#,
    },
    Migration {
        version: 4,
        name: "shared keys of identities, and whether a link is verified",
        // Columns with defaults, so a database of an earlier version keeps working; then what
        // earlier versions knew is carried over:
        // - a link made by a shared key has the origin's key;
        // - a phone identity's number is its key (only numbers written as digits with an optional
        //   leading `+`, six digits or more: the engine's `SharedKey::phone` of them);
        // - WhatsApp proves its number (Meta verified it); an SMS sender or a caller ID does not;
        // - a shared-key link made from an SMS sender or a caller ID (the identity's own, or the
        //   customer's identity it was matched with) is not verified: those can be spoofed.
        sql: r#"
ALTER TABLE cs_identities ADD COLUMN shared_key TEXT;
ALTER TABLE cs_identities ADD COLUMN key_proven BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cs_identities ADD COLUMN verified BIGINT NOT NULL DEFAULT 1;
UPDATE cs_identities SET shared_key = substr(origin, 12) WHERE origin LIKE 'shared_key:%';
UPDATE cs_identities SET shared_key = 'phone:+' || ltrim(external_id, '+')
WHERE shared_key IS NULL AND kind IN ('sms', 'voice', 'whats_app')
  AND ltrim(external_id, '+0123456789') = '' AND length(ltrim(external_id, '+')) >= 6;
UPDATE cs_identities SET key_proven = 1 WHERE kind = 'whats_app' AND shared_key LIKE 'phone:%';
UPDATE cs_identities SET verified = 0
WHERE origin LIKE 'shared_key:%' AND (kind IN ('sms', 'voice') OR EXISTS (
    SELECT 1 FROM cs_identities o
    WHERE o.tenant = cs_identities.tenant AND o.customer = cs_identities.customer
      AND o.shared_key = cs_identities.shared_key AND o.kind IN ('sms', 'voice')));
CREATE INDEX cs_identities_shared_key ON cs_identities (tenant, shared_key)
    WHERE shared_key IS NOT NULL;
"#,
    },
    Migration {
        version: 5,
        name: "when a conversation started waiting",
        // Conversations waiting or with an agent when this runs started waiting no later than
        // their last change.
        sql: r#"
ALTER TABLE cs_conversations ADD COLUMN queued_at BIGINT;
UPDATE cs_conversations SET queued_at = updated_at WHERE state IN ('queued', 'assigned');
"#,
    },
    Migration {
        version: 6,
        name: "who holds an outbox claim",
        // The claiming node's id, so a restarted node releases its dead predecessor's claims at
        // once; the index finds them.
        sql: r#"
ALTER TABLE cs_outbox ADD COLUMN claimed_by TEXT;
CREATE INDEX cs_outbox_claimed_by ON cs_outbox (tenant, claimed_by) WHERE claimed_by IS NOT NULL;
"#,
    },
    Migration {
        version: 7,
        name: "messages without an index by customer",
        // Every message wrote an entry into this index at a random place (one more page in each
        // commit); a customer's history is read through their conversations instead.
        sql: r#"
DROP INDEX cs_messages_customer;
"#,
    },
    Migration {
        version: 8,
        name: "the bot's dialogue state per conversation",
        // The bot's own JSON, so a conversation's next message continues the dialogue on any
        // process sharing the desk.
        sql: r#"
CREATE TABLE cs_bot_states (
    tenant TEXT NOT NULL,
    conversation TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (tenant, conversation)
);
"#,
    },
];
