//! Settings for the bundled service: a TOML file and environment variables, with defaults that
//! work with neither.
//!
//! Precedence: defaults < file (`OMNIDESK_CONFIG`, else `omnidesk.toml` if it exists) <
//! environment (`OMNIDESK_BIND`, `OMNIDESK_PORT`, `OMNIDESK_DATABASE`, `OMNIDESK_FAQ`,
//! `OMNIDESK_SECRET`, `OMNIDESK_TENANT`, `OMNIDESK_GROUP_COMMIT`, `OMNIDESK_NATS`,
//! `OMNIDESK_NATS_PREFIX`, `OMNIDESK_NODE`). Without a file the defaults are the demo
//! configuration (`demo = true`, with the demo accounts Alice and Bob).
//!
//! ```toml
//! bind = "127.0.0.1"
//! port = 8080
//! database = "data/omnidesk.db"     # SQLite file, ":memory:", or postgres://user@host/db
//! durability = "normal"             # SQLite: "normal" (default; a crash loses nothing, a power
//! #                                 # loss the last commits) or "full" (nothing, one disk flush
//! #                                 # per commit); see SECURITY.md
//! # node_id = "desk-1"              # this process's outbox claims (default: host name:port)
//! # nats = "nats://127.0.0.1:4222"  # several nodes on one PostgreSQL desk: events, routing
//! #                                 # commands, the router lease and presence go over NATS
//! #                                 # JetStream (feature `nats`; default: one process)
//! faq = "my-faq.txt"                # knowledge file; the bundled bilingual FAQ if absent
//!                                   # (edits at /agent/knowledge are saved back to it)
//! # secret = "..."                  # signs visitor tokens (not agent sessions); generated and kept
//! #                                 # next to the database if absent
//!
//! timezone = "Asia/Shanghai"        # business hours: outside them, with nobody online, a
//! business_hours = "09:00-22:00"    # hand-over also becomes a ticket
//!
//! [routing]                         # cs_routing::RoutingPolicy; the demo's default: rings
//! sticky_wait = "2m"                # that reach any agent with room after 20 s
//! [[routing.rings]]
//! after = "30s"
//! relax = [{ lower_levels = 2 }, "any_language"]
//! [[routing.rings]]
//! after = "2m"
//! relax = ["any_skill", "any_team"]
//! [routing.reservations]            # offers agents accept or reject (default: direct)
//! offer_timeout = "30s"
//! [routing.standby]                 # an elastic pool for sales days
//! team = "standby"
//!
//! [desk]
//! reception = "bot"                 # or "router": routing.bot_first decides
//! reclaim_after = "5m"              # a signed-out agent's conversations go back after
//! skill_teams = { complaints = "after-sales" }
//!
//! [texts.en]                        # reword what the desk tells customers
//! joined = "{name} is here to help."
//!
//! [limits]                          # see server::limits::Limits
//! messages_per_minute = 30
//!
//! [compliance]                      # what agents and the bot may not say
//! presets = ["finance", "advertising"]   # also "healthcare"; the demo: advertising
//! rules = [{ phrase = "内部价", action = "warn" }]   # action "block" (default) or "warn"
//! allowed = ["确保本"]              # everyday words that hold a phrase without meaning it
//!
//! [analytics]                       # see analytics::AnalyticsConfig
//! answer_target = "30s"
//! webhook = "http://127.0.0.1:9000/alerts"
//!
//! [auth]                            # agent sessions
//! idle = "12h"
//! absolute = "7d"
//!
//! demo = true                       # only a demo config seeds [[agents]] with passwords;
//! [[agents]]                        # real accounts: `cargo run --example server -- add-agent`
//! name = "Alice"
//! password = "alice"                # demo sign-in, hashed with Argon2id when seeded
//! role = "admin"                    # agent (default), supervisor or admin
//! skills = ["after-sales:8", "logistics:6"]
//! languages = ["zh", "en"]
//! chat_capacity = 4
//! voice = "client:alice"            # where routed calls ring
//! ```

use std::path::{Path, PathBuf};

use cs_core::{Agent, AgentId, Capacity, Presence, Skill, TenantId};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The largest configuration file read.
const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// One demo account, seeded into the account store at start-up when `demo = true` (the
/// configuration `cargo run --example server` uses without a config file). Real accounts are
/// added with `cargo run --example server -- add-agent` or `POST /api/v1/agents`, never here.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Display and sign-in name (unique).
    pub name: String,
    /// Sign-in password (demo only; hashed with Argon2id when seeded).
    pub password: String,
    /// `agent` (default), `supervisor` or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// Skills as `name` or `name:level` (level 1-10, default 5).
    #[serde(default)]
    pub skills: Vec<String>,
    /// Languages spoken.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// Team.
    #[serde(default)]
    pub team: Option<String>,
    /// Concurrent chats.
    #[serde(default = "default_chat_capacity")]
    pub chat_capacity: u16,
    /// Where the agent takes calls the voice menu routes to them: `client:<identity>` (a
    /// browser or app client), a phone number, or `sip:<uri>` (default: `client:<name in lower
    /// case>`).
    #[serde(default)]
    pub voice: Option<String>,
}

/// Skills written `name` or `name:level` (level 1-10, default 5).
///
/// # Errors
/// [`Error::Config`] for a level that is not a number from 1 to 10.
pub fn parse_skills(agent: &str, skills: &[String]) -> Result<Vec<Skill>> {
    skills
        .iter()
        .map(|s| match s.split_once(':') {
            None => Ok(Skill::new(s.trim(), 5)),
            Some((name, level)) => level
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| (1..=10).contains(l))
                .map(|l| Skill::new(name.trim(), l))
                .ok_or_else(|| Error::Config {
                    reason: format!("agent {agent}: skill {s:?} needs a level of 1-10"),
                }),
        })
        .collect()
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("role", &self.role)
            .field("skills", &self.skills)
            .field("languages", &self.languages)
            .field("team", &self.team)
            .field("chat_capacity", &self.chat_capacity)
            .field("voice", &self.voice)
            .finish()
    }
}

fn default_languages() -> Vec<String> {
    vec!["zh".into(), "en".into()]
}

fn default_chat_capacity() -> u16 {
    4
}

impl AgentConfig {
    /// A stable id derived from the name, so an agent keeps their conversations across restarts.
    pub fn id(&self) -> AgentId {
        let digest = Sha256::digest(format!("omnidesk-agent:{}", self.name).as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        AgentId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// The agent profile.
    ///
    /// # Errors
    /// [`Error::Config`] for a skill level that is not a number from 1 to 10.
    pub fn to_agent(&self, tenant: &TenantId) -> Result<Agent> {
        let skills = parse_skills(&self.name, &self.skills)?;
        Ok(Agent {
            id: self.id(),
            tenant: tenant.clone(),
            name: self.name.clone(),
            skills,
            languages: self.languages.clone(),
            team: self.team.clone(),
            capacity: Capacity {
                chat: self.chat_capacity,
                ..Capacity::default()
            },
            presence: Presence::Offline,
        })
    }
}

/// How hard the SQLite database pushes a commit to disk before the write is acknowledged
/// (SQLite's `synchronous` setting; the database runs in WAL mode either way). See SECURITY.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `synchronous=NORMAL` (default): commits reach the operating system, not necessarily the
    /// disk. A crash of the process loses nothing acknowledged; a power loss or an
    /// operating-system crash can lose the last transactions committed before it (never the
    /// database's consistency).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit (with group commit, every batch of writes) waits for the
    /// disk, so not even a power loss takes back an acknowledged message; writes are slower by a
    /// disk flush each.
    Full,
}

/// Settings of the bundled service.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on (default `127.0.0.1`).
    pub bind: String,
    /// Port (default 8080; 0 picks a free one).
    pub port: u16,
    /// SQLite database file, `:memory:`, or a `postgres://` URL (feature `postgres`; several
    /// processes may then share the desk) (default `data/omnidesk.db`).
    pub database: PathBuf,
    /// How hard a SQLite commit is pushed to disk (`durability = "normal"` or `"full"`; default
    /// normal); PostgreSQL keeps its own settings.
    pub durability: Durability,
    /// SQLite group commit (default on): one writer thread runs the store's writes, many per
    /// transaction. Off (`group_commit = false`, or `OMNIDESK_GROUP_COMMIT=false`), every write
    /// is its own transaction through the `sqlx` pool, as before group commit: for comparisons.
    pub group_commit: bool,
    /// This process's node id (default: the host name and the port, `host:8080`): the owner of
    /// its outbox claims. Restarted with the same id after a crash, the service releases what its
    /// previous process was sending at once instead of waiting for the claims' 30-second lease.
    /// Keep it stable across restarts and distinct between processes running at the same time
    /// on one database.
    pub node_id: Option<String>,
    /// NATS server URL (`nats = "nats://host:4222"`, or `OMNIDESK_NATS`; feature `nats`): this
    /// process is one node of several sharing a PostgreSQL desk. Every event goes over
    /// JetStream to every node's consoles and web-chat sockets, one node at a time runs the
    /// tenant's router (the others send it commands), and agent presence lives in a key-value
    /// bucket. Each node needs its own `node_id` (`OMNIDESK_NODE`; default the host name and
    /// the process id). Default none: one process, nothing crosses processes.
    pub nats: Option<String>,
    /// The names of the desk's NATS streams and buckets start with it (default `omnidesk`;
    /// `OMNIDESK_NATS_PREFIX`): desks, or test runs, with different prefixes share one NATS
    /// server without meeting.
    pub nats_prefix: String,
    /// FAQ knowledge file (default: the bundled bilingual e-commerce FAQ). Edits made at
    /// `/agent/knowledge` are saved back to it (its first version kept as `<faq>.orig`, the
    /// trained model as `<faq>.model`); without it they go to `<database>.knowledge.txt`.
    pub faq: Option<PathBuf>,
    /// Key that signs visitor tokens (and the email channel's reply addresses) (default:
    /// generated once and kept in `<database>.secret`). Agent sessions do not use it: they are
    /// random tokens stored hashed in the database, so rotating this key signs no agent out,
    /// and signing agents out leaves every visitor's history reachable.
    pub secret: Option<String>,
    /// Tenant (default `default`).
    pub tenant: TenantId,
    /// Time zone of the service desk's business hours, for SLA clocks (default
    /// `Asia/Shanghai`).
    pub timezone: String,
    /// Business hours, every day, as `HH:MM-HH:MM` (default `09:00-22:00`).
    pub business_hours: String,
    /// How conversations are routed to agents (the [`cs_routing::RoutingPolicy`] as a `[routing]`
    /// table). The demo default: conversations nobody with the skill can take reach any agent
    /// with room after 20 seconds (levels and language relax after 10). A `[routing]` table
    /// replaces the whole default; unset fields take the policy's own defaults (no rings).
    pub routing: cs_routing::RoutingPolicy,
    /// The desk around the router (`[desk]`): reception, the grace of signed-out agents, teams.
    pub desk: DeskConfig,
    /// What the desk says to customers, reworded per language (`[texts.zh]`, `[texts.en]`, keys
    /// `joined`, `queued`, `queued_no_estimate`, `resolved`, `ticket_opened`, `after_hours`,
    /// `transferred`).
    pub texts: crate::engine::Texts,
    /// The demo configuration (`demo = true`): the demo accounts in `agents` are seeded at
    /// start-up and the sign-in page names them. True only for the built-in defaults (no config
    /// file), which is what the README's `cargo run --example server` uses; a config file is not
    /// a demo unless it says `demo = true`.
    #[serde(default)]
    pub demo: bool,
    /// Demo accounts, seeded only when `demo` is true (default: Alice, an admin, and Bob, an
    /// agent, who between them have every skill the bundled FAQ hands over to). A config that is
    /// not a demo must not list any: add accounts with `add-agent` or the admin API.
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// Agent sessions (`[auth]`): idle and absolute expiry, WebSocket tickets.
    pub auth: AuthConfig,
    /// Webhook channels mounted at `/webhooks/{id}` (default: none), e.g.
    /// `[[channels]] kind = "webhook"  id = "jd"  secret = "..."`; see
    /// `cs_channels::router::ChannelConfig` for every kind and its settings.
    #[cfg(feature = "server")]
    pub channels: Vec<cs_channels::router::ChannelConfig>,
    /// Limits on what strangers can send (feature `server`; see `server::limits::Limits`).
    #[cfg(feature = "server")]
    pub limits: crate::server::limits::Limits,
    /// The email channel (feature `email`; default: none).
    #[cfg(feature = "email")]
    pub email: Option<EmailConfig>,
    /// Metrics, rollups, alerts and staffing (`[analytics]`; see
    /// [`crate::analytics::AnalyticsConfig`]).
    pub analytics: crate::analytics::AnalyticsConfig,
    /// What agents and the bot may not say (`[compliance]`; the demo: the advertising-law
    /// preset).
    pub compliance: ComplianceConfig,
}

/// The `[compliance]` section: forbidden phrases in every agent reply and bot answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComplianceConfig {
    /// Industry rule sets: `finance`, `healthcare`, `advertising`.
    pub presets: Vec<crate::compliance::Preset>,
    /// The desk's own phrases.
    pub rules: Vec<crate::compliance::PhraseRule>,
    /// Everyday words that contain a phrase without meaning it (besides the presets' own).
    pub allowed: Vec<String>,
}

impl Default for ComplianceConfig {
    fn default() -> Self {
        Self {
            presets: vec![crate::compliance::Preset::Advertising],
            rules: Vec::new(),
            allowed: Vec::new(),
        }
    }
}

impl ComplianceConfig {
    /// The compiled rule set.
    pub fn phrase_rules(&self) -> crate::compliance::PhraseRules {
        let presets = self.presets.iter().copied();
        crate::compliance::PhraseRules::new(
            presets
                .clone()
                .flat_map(crate::compliance::Preset::rules)
                .chain(self.rules.iter().cloned()),
        )
        .with_allowed(
            presets
                .flat_map(|p| p.allowed().iter().map(|w| (*w).to_owned()))
                .chain(self.allowed.iter().cloned()),
        )
    }
}

/// The email channel of the bundled service: replies go out through an SMTP relay; mail comes in
/// through the built-in SMTP receiver, an IMAP mailbox, or both.
///
/// ```toml
/// [email]
/// address = "support@shop.example"     # replies come from here; customers write here
/// relay = "smtp.shop.example:587"      # outbound SMTP
/// relay_tls = "starttls"               # "none" (default), "starttls" or "implicit" (feature tls)
/// listen = "0.0.0.0:2525"              # inbound SMTP receiver for the address's domain
/// # imap = { host = "imap.shop.example", port = 993, user = "support", password = "..." }
/// ```
#[cfg(feature = "email")]
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Channel id (default `email`).
    #[serde(default = "default_email_id")]
    pub id: String,
    /// The support address (`local@domain`, no `+`).
    pub address: String,
    /// Outbound SMTP relay as `host:port`.
    pub relay: String,
    /// How the relay connection is secured: `none` (default, a relay on the same network),
    /// `starttls` (submission port 587) or `implicit` (port 465); TLS needs the `tls` feature.
    #[serde(default)]
    pub relay_tls: cs_channels::email::SmtpTls,
    /// Relay user name.
    #[serde(default)]
    pub relay_user: Option<String>,
    /// Relay password.
    #[serde(default)]
    pub relay_password: Option<String>,
    /// Where the built-in SMTP receiver listens (`host:port`), if at all.
    #[serde(default)]
    pub listen: Option<String>,
    /// An IMAP mailbox to poll, if any.
    #[serde(default)]
    pub imap: Option<ImapMailbox>,
}

/// An IMAP mailbox the service polls for customer mail.
#[cfg(feature = "email")]
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapMailbox {
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Whether to use TLS (needs feature `tls`; default false).
    #[serde(default)]
    pub tls: bool,
}

#[cfg(feature = "email")]
impl std::fmt::Debug for ImapMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapMailbox")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("tls", &self.tls)
            .finish()
    }
}

#[cfg(feature = "email")]
fn default_email_id() -> String {
    "email".into()
}

#[cfg(feature = "email")]
impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("id", &self.id)
            .field("address", &self.address)
            .field("relay", &self.relay)
            .field("relay_tls", &self.relay_tls)
            .field("relay_user", &self.relay_user)
            .field(
                "relay_password",
                &self.relay_password.as_ref().map(|_| "<redacted>"),
            )
            .field("listen", &self.listen)
            .field("imap", &self.imap)
            .finish()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("port", &self.port)
            .field(
                "database",
                &if self.postgres_url().is_some() {
                    "postgres://<redacted>".into()
                } else {
                    self.database.display().to_string()
                },
            )
            .field("durability", &self.durability)
            .field("group_commit", &self.group_commit)
            .field("node_id", &self.node_id)
            .field("nats", &self.nats.as_ref().map(|u| redact_url(u)))
            .field("nats_prefix", &self.nats_prefix)
            .field("faq", &self.faq)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("tenant", &self.tenant)
            .field("timezone", &self.timezone)
            .field("business_hours", &self.business_hours)
            .field("routing", &self.routing)
            .field("desk", &self.desk)
            .field("agents", &self.agents)
            .field("analytics", &self.analytics)
            .field("compliance", &self.compliance)
            .finish_non_exhaustive()
    }
}

/// The demo's routing: direct assignment, and overflow rings so no conversation waits for ever
/// for a skill nobody online has.
/// A URL with its password (if any) replaced by `***`, for logs.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:***@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn demo_routing() -> cs_routing::RoutingPolicy {
    use cs_routing::{OverflowRing, Relax};
    use std::time::Duration;
    cs_routing::RoutingPolicyBuilder::new()
        .with_ring(OverflowRing::new(
            Duration::from_secs(10),
            [Relax::LowerLevels(4), Relax::AnyLanguage],
        ))
        .with_ring(OverflowRing::new(
            Duration::from_secs(20),
            [Relax::AnySkill, Relax::AnyTeam],
        ))
        .build()
        .unwrap_or_default()
}

/// Agent sessions.
///
/// ```toml
/// [auth]
/// idle = "12h"          # a session unused this long expires (each use slides it)
/// absolute = "7d"       # and every session expires this long after sign-in
/// ticket = "30s"        # a console WebSocket ticket is good once, for this long
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Idle expiry (default 12 hours).
    #[serde(with = "cs_routing::policy::duration")]
    pub idle: std::time::Duration,
    /// Absolute expiry (default 7 days).
    #[serde(with = "cs_routing::policy::duration")]
    pub absolute: std::time::Duration,
    /// How long a WebSocket ticket is good for (default 30 seconds).
    #[serde(with = "cs_routing::policy::duration")]
    pub ticket: std::time::Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            idle: std::time::Duration::from_secs(12 * 3600),
            absolute: std::time::Duration::from_secs(7 * 24 * 3600),
            ticket: std::time::Duration::from_secs(30),
        }
    }
}

/// The desk around the router.
///
/// ```toml
/// [desk]
/// reception = "bot"           # "bot": the bot answers first (default); "router": new
///                             # conversations are queued and routing.bot_first decides
/// reclaim_after = "5m"        # a signed-out agent's conversations go back to the queue after
/// skill_teams = { complaints = "after-sales" }   # the team that serves a skill
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeskConfig {
    /// Who receives a new conversation (default `bot`).
    pub reception: crate::engine::Reception,
    /// How long a signed-out agent keeps their conversations (default 5 minutes).
    #[serde(with = "cs_routing::policy::duration")]
    pub reclaim_after: std::time::Duration,
    /// The team that serves each skill (default none).
    pub skill_teams: std::collections::HashMap<String, String>,
}

impl Default for DeskConfig {
    fn default() -> Self {
        Self {
            reception: crate::engine::Reception::Bot,
            reclaim_after: std::time::Duration::from_secs(300),
            skill_teams: Default::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 8080,
            database: PathBuf::from("data/omnidesk.db"),
            durability: Durability::Normal,
            group_commit: true,
            node_id: None,
            nats: None,
            nats_prefix: "omnidesk".into(),
            faq: None,
            secret: None,
            tenant: TenantId::default(),
            timezone: "Asia/Shanghai".into(),
            business_hours: "09:00-22:00".into(),
            compliance: ComplianceConfig::default(),
            routing: demo_routing(),
            desk: DeskConfig::default(),
            texts: crate::engine::Texts::default(),
            demo: true,
            auth: AuthConfig::default(),
            agents: vec![
                AgentConfig {
                    name: "Alice".into(),
                    password: "alice".into(),
                    role: Some("admin".into()),
                    skills: vec![
                        "after-sales:8".into(),
                        "complaints:7".into(),
                        "logistics:6".into(),
                        "orders:6".into(),
                        "presales:5".into(),
                    ],
                    languages: default_languages(),
                    team: Some("service".into()),
                    chat_capacity: 4,
                    voice: None,
                },
                AgentConfig {
                    name: "Bob".into(),
                    password: "bob".into(),
                    role: None,
                    skills: vec![
                        "presales:8".into(),
                        "billing:7".into(),
                        "account:6".into(),
                        "marketing:6".into(),
                        "orders:5".into(),
                    ],
                    languages: vec!["en".into(), "zh".into()],
                    team: Some("service".into()),
                    chat_capacity: 4,
                    voice: None,
                },
            ],
            #[cfg(feature = "server")]
            channels: Vec::new(),
            #[cfg(feature = "server")]
            limits: Default::default(),
            #[cfg(feature = "email")]
            email: None,
            analytics: Default::default(),
        }
    }
}

impl Config {
    /// Defaults, then the config file, then the environment.
    ///
    /// # Errors
    /// [`Error::Config`] for an unreadable or invalid file or variable.
    pub fn load() -> Result<Self> {
        let explicit = std::env::var_os("OMNIDESK_CONFIG").map(PathBuf::from);
        let path = explicit
            .clone()
            .unwrap_or_else(|| PathBuf::from("omnidesk.toml"));
        let mut config = if path.exists() {
            Self::from_file(&path)?
        } else if explicit.is_some() {
            return Err(Error::Config {
                reason: format!("config file {} does not exist", path.display()),
            });
        } else {
            Self::default()
        };
        config.apply_env(|k| std::env::var(k).ok())?;
        Ok(config)
    }

    /// Reads a TOML file over the defaults.
    ///
    /// # Errors
    /// [`Error::Config`] when it cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::from_toml(&text).map_err(|e| Error::Config {
            reason: format!("{}: {e}", path.display()),
        })
    }

    /// Parses TOML text over the defaults.
    ///
    /// # Errors
    /// [`Error::Config`] for invalid TOML or unknown keys, and before parsing for a text over
    /// 1 MiB or nested deeper than [`cs_channels::limits::MAX_TOML_DEPTH`].
    pub fn from_toml(text: &str) -> Result<Self> {
        cs_channels::limits::check_toml(
            text,
            MAX_CONFIG_BYTES,
            cs_channels::limits::MAX_TOML_DEPTH,
        )
        .map_err(|e| Error::Config {
            reason: e.to_string(),
        })?;
        toml::from_str(text).map_err(|e| Error::Config {
            reason: e.to_string(),
        })
    }

    /// Applies `OMNIDESK_*` variables as read by `get`.
    ///
    /// # Errors
    /// [`Error::Config`] for a port or tenant that does not parse.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("OMNIDESK_BIND") {
            self.bind = v;
        }
        if let Some(v) = get("OMNIDESK_PORT") {
            self.port = v.parse().map_err(|_| Error::Config {
                reason: format!("OMNIDESK_PORT={v:?} is not a port number"),
            })?;
        }
        if let Some(v) = get("OMNIDESK_DATABASE") {
            self.database = PathBuf::from(v);
        }
        if let Some(v) = get("OMNIDESK_GROUP_COMMIT") {
            self.group_commit = v.parse().map_err(|_| Error::Config {
                reason: format!("OMNIDESK_GROUP_COMMIT={v:?} is not true or false"),
            })?;
        }
        if let Some(v) = get("OMNIDESK_FAQ") {
            self.faq = Some(PathBuf::from(v));
        }
        if let Some(v) = get("OMNIDESK_SECRET") {
            self.secret = Some(v);
        }
        if let Some(v) = get("OMNIDESK_NATS").filter(|v| !v.is_empty()) {
            self.nats = Some(v);
        }
        if let Some(v) = get("OMNIDESK_NATS_PREFIX").filter(|v| !v.is_empty()) {
            self.nats_prefix = v;
        }
        if let Some(v) = get("OMNIDESK_NODE").filter(|v| !v.is_empty()) {
            self.node_id = Some(v);
        }
        if let Some(v) = get("OMNIDESK_TENANT") {
            self.tenant = TenantId::new(v).map_err(|e| Error::Config {
                reason: format!("OMNIDESK_TENANT: {e}"),
            })?;
        }
        Ok(())
    }

    /// The business hours as (start, end) times of day.
    ///
    /// # Errors
    /// [`Error::Config`] unless `business_hours` reads `HH:MM-HH:MM` with start before end.
    pub fn hours(&self) -> Result<(chrono::NaiveTime, chrono::NaiveTime)> {
        let bad = || Error::Config {
            reason: format!(
                "business_hours {:?} should read HH:MM-HH:MM",
                self.business_hours
            ),
        };
        let (a, b) = self.business_hours.split_once('-').ok_or_else(bad)?;
        let t = |s: &str| chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| bad());
        let (start, end) = (t(a)?, t(b)?);
        if start >= end {
            return Err(bad());
        }
        Ok((start, end))
    }

    /// This process's node id: `node_id`, else the host name and the port (with `nats`: the
    /// host name and the process id, so nodes on one host differ).
    pub fn node(&self) -> String {
        self.node_id.clone().unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            if self.nats.is_some() {
                format!("{host}-{}", std::process::id())
            } else {
                format!("{host}:{}", self.port)
            }
        })
    }

    /// The NATS URL, when this process is one node of several.
    pub fn nats_url(&self) -> Option<&str> {
        self.nats.as_deref().filter(|u| !u.is_empty())
    }

    /// The PostgreSQL URL, when `database` is one.
    pub fn postgres_url(&self) -> Option<&str> {
        self.database
            .to_str()
            .filter(|d| d.starts_with("postgres://") || d.starts_with("postgresql://"))
    }

    /// The signing secret: configured, or read from (or generated into) `<database>.secret`. An
    /// in-memory database gets a fresh random secret.
    ///
    /// # Errors
    /// [`Error::Config`] when the secret file cannot be read or written.
    pub fn secret_bytes(&self) -> Result<Vec<u8>> {
        if let Some(s) = &self.secret {
            if s.len() < 16 {
                return Err(Error::Config {
                    reason: "secret must be at least 16 characters".into(),
                });
            }
            return Ok(s.as_bytes().to_vec());
        }
        let fresh = || {
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        };
        if self.database.as_os_str() == ":memory:" {
            return Ok(fresh().into_bytes());
        }
        if self.postgres_url().is_some() {
            return Err(Error::Config {
                reason: "with PostgreSQL, set `secret` (or OMNIDESK_SECRET): every process of \
                         the desk must sign tokens with the same key"
                    .into(),
            });
        }
        let mut path = self.database.clone().into_os_string();
        path.push(".secret");
        let path = PathBuf::from(path);
        match std::fs::read_to_string(&path) {
            Ok(s) if s.trim().len() >= 16 => Ok(s.trim().as_bytes().to_vec()),
            _ => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| Error::Config {
                        reason: format!("cannot create {}: {e}", dir.display()),
                    })?;
                }
                let s = fresh();
                std::fs::write(&path, &s).map_err(|e| Error::Config {
                    reason: format!("cannot write {}: {e}", path.display()),
                })?;
                Ok(s.into_bytes())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_file_and_environment_layer() {
        let c = Config::from_toml("port = 9000\n[[agents]]\nname = \"Li\"\npassword = \"x\"\nskills = [\"refunds:7\", \"vip\"]\n").unwrap();
        assert_eq!(c.port, 9000);
        assert_eq!(c.bind, "127.0.0.1", "unset keys keep their defaults");
        let agent = c.agents[0].to_agent(&TenantId::default()).unwrap();
        assert_eq!(agent.skill_level("refunds"), Some(7));
        assert_eq!(agent.skill_level("vip"), Some(5));
        assert_eq!(agent.id, c.agents[0].id(), "ids are stable");

        let mut c = Config::default();
        c.apply_env(|k| (k == "OMNIDESK_PORT").then(|| "0".to_string()))
            .unwrap();
        assert_eq!(c.port, 0);
        assert!(
            c.apply_env(|k| (k == "OMNIDESK_PORT").then(|| "http".to_string()))
                .is_err()
        );
        assert!(Config::from_toml("prot = 1").is_err(), "typos are refused");
        let bad = Config::from_toml(
            "[[agents]]\nname = \"Li\"\npassword = \"x\"\nskills = [\"refunds:11\"]\n",
        )
        .unwrap();
        assert!(bad.agents[0].to_agent(&TenantId::default()).is_err());
        assert!(format!("{:?}", bad).contains("<redacted>"));
        assert!(!format!("{:?}", bad).contains("\"x\""));
    }

    #[test]
    fn nats_and_the_node_come_from_the_file_or_the_environment() {
        let c = Config::default();
        assert_eq!(c.nats_url(), None, "one process by default");
        assert!(c.node().ends_with(":8080"));
        let mut c = Config::from_toml("nats = \"nats://desk:pw@10.0.0.5:4222\"\n").unwrap();
        assert_eq!(c.nats_url(), Some("nats://desk:pw@10.0.0.5:4222"));
        assert!(
            c.node().ends_with(&format!("-{}", std::process::id())),
            "several nodes on one host differ by default: {}",
            c.node()
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains(":pw@"), "{shown}");
        c.apply_env(|k| match k {
            "OMNIDESK_NATS" => Some("nats://127.0.0.1:4222".into()),
            "OMNIDESK_NODE" => Some("desk-b".into()),
            "OMNIDESK_NATS_PREFIX" => Some("shop2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.nats_url(), Some("nats://127.0.0.1:4222"));
        assert_eq!(c.node(), "desk-b");
        assert_eq!(c.nats_prefix, "shop2");
    }

    #[test]
    fn durability_and_node_id_come_from_the_file() {
        let c = Config::default();
        assert_eq!(c.durability, Durability::Normal, "NORMAL unless asked");
        assert!(
            c.node().ends_with(":8080"),
            "host name and port: {}",
            c.node()
        );
        let c = Config::from_toml("durability = \"full\"\nnode_id = \"desk-1\"\n").unwrap();
        assert_eq!(c.durability, Durability::Full);
        assert_eq!(c.node(), "desk-1");
        let normal = Config::from_toml("durability = \"normal\"").unwrap();
        assert_eq!(normal.durability, Durability::Normal);
        assert!(
            Config::from_toml("durability = \"off\"").is_err(),
            "only normal and full"
        );
        assert!(format!("{c:?}").contains("Full"));
        assert!(c.group_commit, "group commit unless asked");
        let mut off = Config::default();
        off.apply_env(|k| (k == "OMNIDESK_GROUP_COMMIT").then(|| "false".to_string()))
            .unwrap();
        assert!(!off.group_commit);
    }

    #[test]
    fn routing_desk_and_texts_come_from_the_file() {
        let c = Config::from_toml(
            r#"
[routing]
sticky_wait = "2m"
bot_first = { above_depth = 20 }
[[routing.rings]]
after = "45s"
relax = ["any_skill", "any_team"]
[routing.reservations]
offer_timeout = "25s"

[desk]
reception = "router"
reclaim_after = "90s"
skill_teams = { complaints = "after-sales" }

[texts.en]
joined = "Hi, {name} here."

[[agents]]
name = "Li"
password = "x"
voice = "+8613800138000"
"#,
        )
        .unwrap();
        assert_eq!(c.routing.sticky_wait, std::time::Duration::from_secs(120));
        assert_eq!(
            c.routing.rings.len(),
            1,
            "a [routing] table replaces the demo's rings"
        );
        assert_eq!(
            c.routing.reservations.map(|r| r.offer_timeout),
            Some(std::time::Duration::from_secs(25))
        );
        assert_eq!(c.desk.reception, crate::engine::Reception::Router);
        assert_eq!(c.desk.reclaim_after, std::time::Duration::from_secs(90));
        assert_eq!(c.desk.skill_teams["complaints"], "after-sales");
        assert_eq!(c.agents[0].voice.as_deref(), Some("+8613800138000"));
        let text = c.texts.render(
            crate::engine::Notice::Joined,
            crate::engine::Lang::En,
            &[("name", "Li")],
        );
        assert_eq!(text, "Hi, Li here.");

        let demo = Config::default();
        assert_eq!(
            demo.routing.rings.len(),
            2,
            "the demo reaches anyone with room"
        );
        assert!(demo.routing.validate().is_ok());
        for typo in [
            "[routing]
stiky_wait = \"2m\"\n",
            "[desk]
reclaim_after = \"soon\"\n",
            "[texts.en]
joinde = \"x\"\n",
        ] {
            assert!(Config::from_toml(typo).is_err(), "{typo}");
        }
    }

    #[test]
    fn analytics_settings_come_from_the_file() {
        let c = Config::from_toml(
            "[analytics]\nanswer_target = \"20s\"\nwebhook = \"http://127.0.0.1:9/a\"\n\
             [[analytics.alerts]]\nkind = \"queue_wait_above\"\nname = \"slow\"\nseconds = 60\n",
        )
        .unwrap();
        assert_eq!(
            c.analytics.answer_target,
            std::time::Duration::from_secs(20)
        );
        assert_eq!(
            c.analytics.alerts.len(),
            1,
            "a list replaces the default rules"
        );
        assert!(c.analytics.validate().is_ok());
        assert!(Config::from_toml("[analytics]\nflush_evry = \"2s\"\n").is_err());
        let bad = Config::from_toml("[analytics]\nwebhook = \"ftp://x\"\n").unwrap();
        assert!(bad.analytics.validate().is_err());
    }

    #[cfg(feature = "email")]
    #[test]
    fn the_email_relay_takes_a_tls_mode() {
        use cs_channels::email::SmtpTls;
        let mail = |extra: &str| {
            Config::from_toml(&format!(
                "[email]\naddress = \"support@shop.example\"\nrelay = \"smtp.shop.example:587\"\n{extra}"
            ))
            .map(|c| c.email.expect("an email section").relay_tls)
        };
        assert_eq!(mail("").unwrap(), SmtpTls::None, "plain by default");
        assert_eq!(mail("relay_tls = \"starttls\"").unwrap(), SmtpTls::StartTls);
        assert_eq!(mail("relay_tls = \"implicit\"").unwrap(), SmtpTls::Implicit);
        assert!(
            mail("relay_tls = \"yes\"").is_err(),
            "an unknown mode is refused"
        );
    }
}
