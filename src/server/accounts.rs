//! Accounts and sessions in the database: agents, supervisors and admins of a tenant, each with
//! a role, a routing profile (skills, languages, team, capacity) and a password hashed with
//! Argon2id; and the sessions they sign in with, stored only as a hash of their token.
//!
//! [`AccountStore`] is the storage trait ([`MemoryAccountStore`] for tests, [`SqlAccountStore`]
//! written once over the workspace's SQL [`Driver`](cs_core::sql::Driver) for SQLite and PostgreSQL, migrating its own
//! tables as component `accounts`); [`conformance`] is the suite every implementation passes.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cs_core::{Agent, AgentId, Capacity, Presence, TenantId};
use serde::{Deserialize, Serialize};

/// What an account may do.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Their own conversations and the queue they can serve.
    Agent,
    /// Everything in their tenant, including take-over.
    Supervisor,
    /// Accounts and settings, and everything a supervisor does.
    Admin,
}

impl Role {
    /// The role's name as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Supervisor => "supervisor",
            Self::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent" => Ok(Self::Agent),
            "supervisor" => Ok(Self::Supervisor),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown role {other:?} (agent, supervisor or admin)"
            )),
        }
    }
}

/// An account: who signs in, in which tenant, with which role, and how the router sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Account {
    /// The id (also the agent's id in the engine).
    #[schema(value_type = String)]
    pub id: AgentId,
    /// The tenant.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// Display and sign-in name (unique in the tenant, case-insensitively).
    pub name: String,
    /// The role.
    pub role: Role,
    /// Skills as `name` or `name:level` (level 1-10).
    pub skills: Vec<String>,
    /// Languages spoken.
    pub languages: Vec<String>,
    /// Team.
    pub team: Option<String>,
    /// Concurrent chats.
    pub chat_capacity: u16,
    /// A disabled account cannot sign in.
    pub disabled: bool,
    /// When it was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

impl Account {
    /// A new enabled account with the demo's defaults (Chinese and English, four chats).
    pub fn new(tenant: TenantId, name: impl Into<String>, role: Role) -> Self {
        Self {
            id: AgentId::new(),
            tenant,
            name: name.into(),
            role,
            skills: Vec::new(),
            languages: vec!["zh".into(), "en".into()],
            team: None,
            chat_capacity: 4,
            disabled: false,
            created_at: Utc::now(),
        }
    }

    /// The agent profile the engine routes to.
    ///
    /// # Errors
    /// [`crate::Error::Config`] for a skill level that is not a number from 1 to 10.
    pub fn to_agent(&self) -> crate::Result<Agent> {
        Ok(Agent {
            id: self.id,
            tenant: self.tenant.clone(),
            name: self.name.clone(),
            skills: crate::config::parse_skills(&self.name, &self.skills)?,
            languages: self.languages.clone(),
            team: self.team.clone(),
            capacity: Capacity {
                chat: self.chat_capacity,
                ..Capacity::default()
            },
            presence: Presence::Offline,
        })
    }

    /// The name as looked up: trimmed, lower case.
    pub fn login_key(name: &str) -> String {
        name.trim().to_lowercase()
    }
}

/// A stored session: the SHA-256 of its token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// The account's tenant.
    pub tenant: TenantId,
    /// The account.
    pub account: AgentId,
    /// When it was issued (the absolute expiry counts from here).
    pub created_at: DateTime<Utc>,
    /// When it was last used (the idle expiry counts from here).
    pub last_seen: DateTime<Utc>,
    /// When it was revoked (sign-out, password change, admin action).
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where accounts and sessions live.
#[async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Stores a new account with its password hash.
    ///
    /// # Errors
    /// [`cs_core::Error::Conflict`] when the tenant has an account of that name.
    async fn create_account(&self, account: &Account, password_hash: &str) -> cs_core::Result<()>;

    /// The account of `name` (any case) in `tenant`, with its password hash.
    ///
    /// # Errors
    /// Backend errors.
    async fn account_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> cs_core::Result<Option<(Account, String)>>;

    /// One account of `tenant`.
    ///
    /// # Errors
    /// Backend errors.
    async fn account(&self, tenant: &TenantId, id: AgentId) -> cs_core::Result<Option<Account>>;

    /// Every account of `tenant`, by name.
    ///
    /// # Errors
    /// Backend errors.
    async fn accounts(&self, tenant: &TenantId) -> cs_core::Result<Vec<Account>>;

    /// Replaces an account's role, profile and disabled flag (not its id, tenant, name or
    /// password); `false` when there is no such account.
    ///
    /// # Errors
    /// Backend errors.
    async fn update_account(&self, account: &Account) -> cs_core::Result<bool>;

    /// Replaces an account's password hash; `false` when there is no such account.
    ///
    /// # Errors
    /// Backend errors.
    async fn set_password(
        &self,
        tenant: &TenantId,
        id: AgentId,
        password_hash: &str,
    ) -> cs_core::Result<bool>;

    /// Stores a new session.
    ///
    /// # Errors
    /// [`cs_core::Error::Conflict`] for a token hash already stored.
    async fn create_session(&self, session: &SessionRecord) -> cs_core::Result<()>;

    /// The session with this token hash.
    ///
    /// # Errors
    /// Backend errors.
    async fn session(&self, token_hash: &str) -> cs_core::Result<Option<SessionRecord>>;

    /// Records that the session was used at `at`.
    ///
    /// # Errors
    /// Backend errors.
    async fn touch_session(&self, token_hash: &str, at: DateTime<Utc>) -> cs_core::Result<()>;

    /// Revokes one session; `false` when it was unknown or already revoked.
    ///
    /// # Errors
    /// Backend errors.
    async fn revoke_session(&self, token_hash: &str, at: DateTime<Utc>) -> cs_core::Result<bool>;

    /// Revokes every live session of an account; how many.
    ///
    /// # Errors
    /// Backend errors.
    async fn revoke_sessions(
        &self,
        tenant: &TenantId,
        account: AgentId,
        at: DateTime<Utc>,
    ) -> cs_core::Result<u64>;

    /// Stores a one-time ticket (by its hash) for a session, good until `until`; forgets the
    /// tickets that expired before `now`. Tickets are stored, not kept in one process, so a
    /// ticket issued by one node opens a socket on any other.
    ///
    /// # Errors
    /// [`cs_core::Error::Conflict`] for a ticket hash that exists; backend errors.
    async fn create_ticket(
        &self,
        ticket_hash: &str,
        session_hash: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> cs_core::Result<()>;

    /// Takes a ticket: removes it and returns its session's hash when it was still good at
    /// `now`. A ticket is taken once, whoever asks first (also across processes).
    ///
    /// # Errors
    /// Backend errors.
    async fn take_ticket(
        &self,
        ticket_hash: &str,
        now: DateTime<Utc>,
    ) -> cs_core::Result<Option<String>>;
}

/// Accounts in memory (tests, embedding without a database).
#[derive(Debug, Default)]
pub struct MemoryAccountStore {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    accounts: HashMap<(TenantId, AgentId), (Account, String)>,
    sessions: HashMap<String, SessionRecord>,
    /// Ticket hash -> (session hash, good until).
    tickets: HashMap<String, (String, DateTime<Utc>)>,
}

impl MemoryAccountStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl AccountStore for MemoryAccountStore {
    async fn create_account(&self, account: &Account, password_hash: &str) -> cs_core::Result<()> {
        let mut m = self.lock();
        let key = Account::login_key(&account.name);
        let taken = m.accounts.values().any(|(a, _)| {
            a.tenant == account.tenant && (Account::login_key(&a.name) == key || a.id == account.id)
        });
        if taken {
            return Err(cs_core::Error::Conflict {
                reason: format!("account {:?} exists", account.name),
            });
        }
        m.accounts.insert(
            (account.tenant.clone(), account.id),
            (account.clone(), password_hash.to_owned()),
        );
        Ok(())
    }

    async fn account_by_name(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> cs_core::Result<Option<(Account, String)>> {
        let key = Account::login_key(name);
        Ok(self
            .lock()
            .accounts
            .values()
            .find(|(a, _)| &a.tenant == tenant && Account::login_key(&a.name) == key)
            .cloned())
    }

    async fn account(&self, tenant: &TenantId, id: AgentId) -> cs_core::Result<Option<Account>> {
        Ok(self
            .lock()
            .accounts
            .get(&(tenant.clone(), id))
            .map(|(a, _)| a.clone()))
    }

    async fn accounts(&self, tenant: &TenantId) -> cs_core::Result<Vec<Account>> {
        let mut v: Vec<Account> = self
            .lock()
            .accounts
            .values()
            .filter(|(a, _)| &a.tenant == tenant)
            .map(|(a, _)| a.clone())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    async fn update_account(&self, account: &Account) -> cs_core::Result<bool> {
        let mut m = self.lock();
        Ok(
            match m.accounts.get_mut(&(account.tenant.clone(), account.id)) {
                Some((a, _)) => {
                    *a = Account {
                        id: a.id,
                        tenant: a.tenant.clone(),
                        name: a.name.clone(),
                        created_at: a.created_at,
                        ..account.clone()
                    };
                    true
                }
                None => false,
            },
        )
    }

    async fn set_password(
        &self,
        tenant: &TenantId,
        id: AgentId,
        password_hash: &str,
    ) -> cs_core::Result<bool> {
        let mut m = self.lock();
        Ok(match m.accounts.get_mut(&(tenant.clone(), id)) {
            Some((_, h)) => {
                *h = password_hash.to_owned();
                true
            }
            None => false,
        })
    }

    async fn create_session(&self, session: &SessionRecord) -> cs_core::Result<()> {
        let mut m = self.lock();
        if m.sessions.contains_key(&session.token_hash) {
            return Err(cs_core::Error::Conflict {
                reason: "session exists".into(),
            });
        }
        m.sessions
            .insert(session.token_hash.clone(), session.clone());
        Ok(())
    }

    async fn session(&self, token_hash: &str) -> cs_core::Result<Option<SessionRecord>> {
        Ok(self.lock().sessions.get(token_hash).cloned())
    }

    async fn touch_session(&self, token_hash: &str, at: DateTime<Utc>) -> cs_core::Result<()> {
        if let Some(s) = self.lock().sessions.get_mut(token_hash) {
            s.last_seen = s.last_seen.max(at);
        }
        Ok(())
    }

    async fn revoke_session(&self, token_hash: &str, at: DateTime<Utc>) -> cs_core::Result<bool> {
        Ok(match self.lock().sessions.get_mut(token_hash) {
            Some(s) if s.revoked_at.is_none() => {
                s.revoked_at = Some(at);
                true
            }
            _ => false,
        })
    }

    async fn revoke_sessions(
        &self,
        tenant: &TenantId,
        account: AgentId,
        at: DateTime<Utc>,
    ) -> cs_core::Result<u64> {
        let mut n = 0;
        for s in self.lock().sessions.values_mut() {
            if &s.tenant == tenant && s.account == account && s.revoked_at.is_none() {
                s.revoked_at = Some(at);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn create_ticket(
        &self,
        ticket_hash: &str,
        session_hash: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> cs_core::Result<()> {
        let mut m = self.lock();
        m.tickets.retain(|_, (_, good_until)| *good_until > now);
        if m.tickets.contains_key(ticket_hash) {
            return Err(cs_core::Error::Conflict {
                reason: "ticket exists".into(),
            });
        }
        m.tickets
            .insert(ticket_hash.to_owned(), (session_hash.to_owned(), until));
        Ok(())
    }

    async fn take_ticket(
        &self,
        ticket_hash: &str,
        now: DateTime<Utc>,
    ) -> cs_core::Result<Option<String>> {
        Ok(match self.lock().tickets.remove(ticket_hash) {
            Some((session, until)) if now < until => Some(session),
            _ => None,
        })
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::SqlAccountStore;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql {
    use super::*;
    use cs_core::sql::{Driver, Migration, SqlRow, Stmt, micros};
    use sqlx::Pool;

    /// The accounts schema: the same DDL on SQLite and PostgreSQL.
    const MIGRATIONS: &[Migration] = &[
        Migration {
            version: 1,
            name: "accounts and sessions",
            sql: r#"
CREATE TABLE cs_accounts (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    login TEXT NOT NULL,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    profile TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, login)
);
CREATE TABLE cs_sessions (
    token_hash TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    account TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX cs_sessions_account ON cs_sessions (tenant, account);
"#,
        },
        Migration {
            version: 2,
            name: "one-time socket tickets",
            sql: r#"
CREATE TABLE cs_ws_tickets (
    ticket_hash TEXT PRIMARY KEY,
    session_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX cs_ws_tickets_expiry ON cs_ws_tickets (expires_at);
"#,
        },
    ];

    /// The routing profile, stored as one JSON column.
    #[derive(Serialize, Deserialize)]
    struct Profile {
        skills: Vec<String>,
        languages: Vec<String>,
        team: Option<String>,
        chat_capacity: u16,
    }

    /// Accounts and sessions in a SQL database (SQLite or PostgreSQL), written once.
    #[derive(Debug, Clone)]
    pub struct SqlAccountStore<D: Driver> {
        pool: Pool<D>,
    }

    impl<D: Driver> SqlAccountStore<D> {
        /// Opens the store on `pool` (on SQLite, the writer pool), creating its tables.
        ///
        /// # Errors
        /// Migration and driver errors.
        pub async fn new(pool: Pool<D>) -> cs_core::Result<Self> {
            cs_core::sql::migrate(&pool, "accounts", MIGRATIONS).await?;
            Ok(Self { pool })
        }

        async fn conn(&self) -> cs_core::Result<sqlx::pool::PoolConnection<D>> {
            self.pool.acquire().await.map_err(D::map_error)
        }
    }

    fn row_account<R: SqlRow>(r: &R) -> cs_core::Result<(Account, String)> {
        let profile: Profile = r.json("profile")?;
        let role = r.known("role", |s| s.parse::<Role>().ok())?;
        Ok((
            Account {
                id: r.parse("id")?,
                tenant: r.parse("tenant")?,
                name: r.text("name")?,
                role,
                skills: profile.skills,
                languages: profile.languages,
                team: profile.team,
                chat_capacity: profile.chat_capacity,
                disabled: r.flag("disabled")?,
                created_at: r.time("created_at")?,
            },
            r.text("password_hash")?,
        ))
    }

    fn row_session<R: SqlRow>(r: &R) -> cs_core::Result<SessionRecord> {
        Ok(SessionRecord {
            token_hash: r.text("token_hash")?,
            tenant: r.parse("tenant")?,
            account: r.parse("account")?,
            created_at: r.time("created_at")?,
            last_seen: r.time("last_seen")?,
            revoked_at: r.opt_time("revoked_at")?,
        })
    }

    fn profile(a: &Account) -> String {
        serde_json::to_string(&Profile {
            skills: a.skills.clone(),
            languages: a.languages.clone(),
            team: a.team.clone(),
            chat_capacity: a.chat_capacity,
        })
        .unwrap_or_else(|_| "{}".into())
    }

    const ACCOUNT_COLUMNS: &str = "SELECT tenant, id, name, role, profile, password_hash, disabled, created_at FROM cs_accounts";

    #[async_trait]
    impl<D: Driver> AccountStore for SqlAccountStore<D>
    where
        D::Connection: Send,
    {
        async fn create_account(
            &self,
            account: &Account,
            password_hash: &str,
        ) -> cs_core::Result<()> {
            let mut c = self.conn().await?;
            D::execute(
                &mut c,
                Stmt::new(
                    "INSERT INTO cs_accounts (tenant, id, login, name, role, profile, \
                     password_hash, disabled, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(account.tenant.as_str())
                .bind(account.id.to_string())
                .bind(Account::login_key(&account.name))
                .bind(account.name.as_str())
                .bind(account.role.as_str())
                .bind(profile(account))
                .bind(password_hash)
                .bind(i64::from(account.disabled))
                .bind(micros(account.created_at)),
            )
            .await?;
            Ok(())
        }

        async fn account_by_name(
            &self,
            tenant: &TenantId,
            name: &str,
        ) -> cs_core::Result<Option<(Account, String)>> {
            let mut c = self.conn().await?;
            D::fetch_optional(
                &mut c,
                Stmt::dynamic(format!(
                    "{ACCOUNT_COLUMNS} WHERE tenant = $1 AND login = $2"
                ))
                .bind(tenant.as_str())
                .bind(Account::login_key(name)),
            )
            .await?
            .map(|r| row_account(&r))
            .transpose()
        }

        async fn account(
            &self,
            tenant: &TenantId,
            id: AgentId,
        ) -> cs_core::Result<Option<Account>> {
            let mut c = self.conn().await?;
            D::fetch_optional(
                &mut c,
                Stmt::dynamic(format!("{ACCOUNT_COLUMNS} WHERE tenant = $1 AND id = $2"))
                    .bind(tenant.as_str())
                    .bind(id.to_string()),
            )
            .await?
            .map(|r| row_account(&r).map(|(a, _)| a))
            .transpose()
        }

        async fn accounts(&self, tenant: &TenantId) -> cs_core::Result<Vec<Account>> {
            let mut c = self.conn().await?;
            D::fetch_all(
                &mut c,
                Stmt::dynamic(format!("{ACCOUNT_COLUMNS} WHERE tenant = $1 ORDER BY name"))
                    .bind(tenant.as_str()),
            )
            .await?
            .iter()
            .map(|r| row_account(r).map(|(a, _)| a))
            .collect()
        }

        async fn update_account(&self, account: &Account) -> cs_core::Result<bool> {
            let mut c = self.conn().await?;
            let n = D::execute(
                &mut c,
                Stmt::new(
                    "UPDATE cs_accounts SET role = $3, profile = $4, disabled = $5 \
                     WHERE tenant = $1 AND id = $2",
                )
                .bind(account.tenant.as_str())
                .bind(account.id.to_string())
                .bind(account.role.as_str())
                .bind(profile(account))
                .bind(i64::from(account.disabled)),
            )
            .await?;
            Ok(n > 0)
        }

        async fn set_password(
            &self,
            tenant: &TenantId,
            id: AgentId,
            password_hash: &str,
        ) -> cs_core::Result<bool> {
            let mut c = self.conn().await?;
            let n = D::execute(
                &mut c,
                Stmt::new(
                    "UPDATE cs_accounts SET password_hash = $3 WHERE tenant = $1 AND id = $2",
                )
                .bind(tenant.as_str())
                .bind(id.to_string())
                .bind(password_hash),
            )
            .await?;
            Ok(n > 0)
        }

        async fn create_session(&self, s: &SessionRecord) -> cs_core::Result<()> {
            let mut c = self.conn().await?;
            D::execute(
                &mut c,
                Stmt::new(
                    "INSERT INTO cs_sessions (token_hash, tenant, account, created_at, \
                     last_seen, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(s.token_hash.as_str())
                .bind(s.tenant.as_str())
                .bind(s.account.to_string())
                .bind(micros(s.created_at))
                .bind(micros(s.last_seen))
                .bind(s.revoked_at.map(micros)),
            )
            .await?;
            Ok(())
        }

        async fn session(&self, token_hash: &str) -> cs_core::Result<Option<SessionRecord>> {
            let mut c = self.conn().await?;
            D::fetch_optional(
                &mut c,
                Stmt::new(
                    "SELECT token_hash, tenant, account, created_at, last_seen, revoked_at \
                     FROM cs_sessions WHERE token_hash = $1",
                )
                .bind(token_hash),
            )
            .await?
            .map(|r| row_session(&r))
            .transpose()
        }

        async fn touch_session(&self, token_hash: &str, at: DateTime<Utc>) -> cs_core::Result<()> {
            let mut c = self.conn().await?;
            D::execute(
                &mut c,
                Stmt::new(
                    "UPDATE cs_sessions SET last_seen = $2 WHERE token_hash = $1 AND last_seen < $2",
                )
                .bind(token_hash)
                .bind(micros(at)),
            )
            .await?;
            Ok(())
        }

        async fn revoke_session(
            &self,
            token_hash: &str,
            at: DateTime<Utc>,
        ) -> cs_core::Result<bool> {
            let mut c = self.conn().await?;
            let n = D::execute(
                &mut c,
                Stmt::new(
                    "UPDATE cs_sessions SET revoked_at = $2 \
                     WHERE token_hash = $1 AND revoked_at IS NULL",
                )
                .bind(token_hash)
                .bind(micros(at)),
            )
            .await?;
            Ok(n > 0)
        }

        async fn revoke_sessions(
            &self,
            tenant: &TenantId,
            account: AgentId,
            at: DateTime<Utc>,
        ) -> cs_core::Result<u64> {
            let mut c = self.conn().await?;
            D::execute(
                &mut c,
                Stmt::new(
                    "UPDATE cs_sessions SET revoked_at = $3 \
                     WHERE tenant = $1 AND account = $2 AND revoked_at IS NULL",
                )
                .bind(tenant.as_str())
                .bind(account.to_string())
                .bind(micros(at)),
            )
            .await
        }

        async fn create_ticket(
            &self,
            ticket_hash: &str,
            session_hash: &str,
            until: DateTime<Utc>,
            now: DateTime<Utc>,
        ) -> cs_core::Result<()> {
            let mut c = self.conn().await?;
            D::execute(
                &mut c,
                Stmt::new("DELETE FROM cs_ws_tickets WHERE expires_at <= $1").bind(micros(now)),
            )
            .await?;
            D::execute(
                &mut c,
                Stmt::new(
                    "INSERT INTO cs_ws_tickets (ticket_hash, session_hash, expires_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(ticket_hash)
                .bind(session_hash)
                .bind(micros(until)),
            )
            .await?;
            Ok(())
        }

        async fn take_ticket(
            &self,
            ticket_hash: &str,
            now: DateTime<Utc>,
        ) -> cs_core::Result<Option<String>> {
            let mut c = self.conn().await?;
            // One statement removes and reads: of two takers, one gets the row.
            let taken = D::fetch_optional(
                &mut c,
                Stmt::new(
                    "DELETE FROM cs_ws_tickets WHERE ticket_hash = $1 \
                     RETURNING session_hash, expires_at",
                )
                .bind(ticket_hash),
            )
            .await?;
            match taken {
                Some(r) if micros(now) < r.int("expires_at")? => Ok(Some(r.text("session_hash")?)),
                _ => Ok(None),
            }
        }
    }
}

/// Hashes a password with Argon2id (the `argon2` crate's defaults: 19 MiB, two passes, a random
/// salt) into a PHC string.
///
/// # Errors
/// [`crate::Error::InvalidInput`] for an empty password or one over 1,024 bytes.
pub fn hash_password(password: &str) -> crate::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    if password.is_empty() || password.len() > 1024 {
        return Err(crate::Error::InvalidInput {
            reason: "a password has 1 to 1,024 bytes".into(),
        });
    }
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| crate::Error::Other(Box::new(e)))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| crate::Error::Other(e.to_string().into()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| crate::Error::Other(e.to_string().into()))
}

/// Whether `password` matches a PHC string from [`hash_password`] (constant time).
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// The suite every [`AccountStore`] passes: names unique per tenant and case, tenants apart,
/// profile updates, password changes, sessions touched and revoked one by one and per account.
///
/// # Panics
/// When the store breaks a rule.
pub async fn conformance(store: &dyn AccountStore) {
    let t1 = TenantId::new("conf-a").expect("tenant");
    let t2 = TenantId::new("conf-b").expect("tenant");
    let mut alice = Account::new(t1.clone(), "Alice", Role::Agent);
    alice.skills = vec!["orders:7".into()];
    alice.team = Some("service".into());
    alice.created_at = DateTime::from_timestamp_micros(micros_now()).expect("time");
    store.create_account(&alice, "h1").await.expect("created");
    let dup = Account::new(t1.clone(), " alice ", Role::Admin);
    assert!(matches!(
        store.create_account(&dup, "h").await,
        Err(cs_core::Error::Conflict { .. })
    ));
    // The same name in another tenant is another account.
    let other = Account::new(t2.clone(), "Alice", Role::Admin);
    store
        .create_account(&other, "h2")
        .await
        .expect("other tenant");
    let (found, hash) = store
        .account_by_name(&t1, "ALICE")
        .await
        .expect("read")
        .expect("found");
    assert_eq!((found.clone(), hash.as_str()), (alice.clone(), "h1"));
    assert_eq!(store.account(&t2, alice.id).await.expect("read"), None);
    assert_eq!(
        store.account(&t1, alice.id).await.expect("read"),
        Some(alice.clone())
    );
    assert_eq!(
        store.accounts(&t1).await.expect("list"),
        vec![alice.clone()]
    );

    let mut changed = alice.clone();
    changed.role = Role::Supervisor;
    changed.disabled = true;
    changed.languages = vec!["en".into()];
    assert!(store.update_account(&changed).await.expect("update"));
    assert_eq!(
        store.account(&t1, alice.id).await.expect("read"),
        Some(changed)
    );
    let mut ghost = alice.clone();
    ghost.tenant = t2.clone();
    assert!(!store.update_account(&ghost).await.expect("update"));
    assert!(store.set_password(&t1, alice.id, "h3").await.expect("pw"));
    assert!(!store.set_password(&t2, alice.id, "h4").await.expect("pw"));
    let (_, hash) = store
        .account_by_name(&t1, "alice")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(hash, "h3");

    let at = DateTime::from_timestamp_micros(micros_now()).expect("time");
    let session = |hash: &str| SessionRecord {
        token_hash: hash.into(),
        tenant: t1.clone(),
        account: alice.id,
        created_at: at,
        last_seen: at,
        revoked_at: None,
    };
    store.create_session(&session("s1")).await.expect("session");
    store.create_session(&session("s2")).await.expect("session");
    assert!(store.create_session(&session("s1")).await.is_err());
    let later = at + chrono::Duration::seconds(5);
    store.touch_session("s1", later).await.expect("touch");
    store
        .touch_session("s1", at)
        .await
        .expect("an older touch changes nothing");
    assert_eq!(
        store
            .session("s1")
            .await
            .expect("read")
            .expect("found")
            .last_seen,
        later
    );
    assert!(store.revoke_session("s1", later).await.expect("revoke"));
    assert!(!store.revoke_session("s1", later).await.expect("twice"));
    assert_eq!(
        store
            .session("s1")
            .await
            .expect("read")
            .expect("found")
            .revoked_at,
        Some(later)
    );
    assert_eq!(
        store
            .revoke_sessions(&t2, alice.id, later)
            .await
            .expect("none"),
        0
    );
    assert_eq!(
        store
            .revoke_sessions(&t1, alice.id, later)
            .await
            .expect("one"),
        1
    );
    assert!(
        store
            .session("s2")
            .await
            .expect("read")
            .expect("found")
            .revoked_at
            .is_some()
    );
    assert_eq!(store.session("nope").await.expect("read"), None);
    tickets_are_taken_once(store).await;
}

/// One-time tickets: taken once, never after they expire, unknown ones are nothing, and
/// creating one forgets the expired.
///
/// # Panics
/// When the store breaks a rule.
pub async fn tickets_are_taken_once(store: &dyn AccountStore) {
    let now = DateTime::from_timestamp_micros(micros_now()).expect("time");
    let until = now + chrono::Duration::seconds(30);
    store
        .create_ticket("conf-t1", "s1", until, now)
        .await
        .expect("ticket");
    assert!(
        store
            .create_ticket("conf-t1", "s2", until, now)
            .await
            .is_err(),
        "a ticket hash is unique"
    );
    store
        .create_ticket("conf-t2", "s2", until, now)
        .await
        .expect("ticket");
    assert_eq!(
        store.take_ticket("conf-t1", now).await.expect("take"),
        Some("s1".into())
    );
    assert_eq!(store.take_ticket("conf-t1", now).await.expect("take"), None);
    assert_eq!(
        store.take_ticket("conf-none", now).await.expect("take"),
        None
    );
    // Past its time a ticket is nothing, and it is gone.
    assert_eq!(
        store.take_ticket("conf-t2", until).await.expect("take"),
        None
    );
    assert_eq!(store.take_ticket("conf-t2", now).await.expect("take"), None);
    // An expired ticket is forgotten when the next one is made, so its hash is free again.
    store
        .create_ticket("conf-t3", "s3", now + chrono::Duration::seconds(1), now)
        .await
        .expect("ticket");
    let later = now + chrono::Duration::seconds(2);
    store
        .create_ticket(
            "conf-t3",
            "s4",
            later + chrono::Duration::seconds(30),
            later,
        )
        .await
        .expect("the expired one was forgotten");
    assert_eq!(
        store.take_ticket("conf-t3", later).await.expect("take"),
        Some("s4".into())
    );
}

/// Now, to the microsecond (what the SQL stores keep).
fn micros_now() -> i64 {
    Utc::now().timestamp_micros()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_conforms() {
        conformance(&MemoryAccountStore::new()).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_store_conforms() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("sqlite");
        let store = SqlAccountStore::new(pool).await.expect("migrated");
        conformance(&store).await;
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse").expect("hashed");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert_ne!(h, hash_password("correct horse").expect("hashed"), "salted");
        assert!(hash_password("").is_err());
        assert!(!verify_password("x", "not a hash"));
    }
}
