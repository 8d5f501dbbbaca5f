//! Agent sign-in: accounts checked against their Argon2id hash, sessions that are random opaque
//! tokens (only their SHA-256 is stored) with a sliding idle expiry and an absolute one, revoked
//! by sign-out, password change and admin action, and one-time tickets for the console's
//! WebSocket upgrade so a session token never appears in a URL.
//!
//! Nothing here uses the service's `secret`: that key signs visitor tokens only, so rotating it
//! signs no agent out and revoking agents cuts no visitor off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use cs_core::{AgentId, Clock, SystemClock, TenantId};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::accounts::{
    self, Account, AccountStore, MemoryAccountStore, Role, SessionRecord, hash_password,
};
use crate::config::AuthConfig;
use crate::error::{Error, Result};

/// How often a used session's `last_seen` is written (the idle expiry is this coarse).
const TOUCH_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// A signed-in caller: their account and the hash of the session they used.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account, as stored now (role and tenant included).
    pub account: Account,
    /// The SHA-256 of the session token (what revocations name).
    pub session: String,
}

impl Caller {
    /// The account's id (its agent id in the engine).
    pub fn id(&self) -> AgentId {
        self.account.id
    }

    /// The account's tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.account.tenant
    }

    /// Whether the account has at least `role`.
    pub fn is(&self, role: Role) -> bool {
        self.account.role >= role
    }
}

/// What was revoked, for live sockets to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoked {
    /// One session.
    Session(String),
    /// Every session of an account.
    Account(TenantId, AgentId),
}

impl Revoked {
    /// Whether this revocation ends `caller`'s session.
    pub fn ends(&self, caller: &Caller) -> bool {
        match self {
            Self::Session(h) => *h == caller.session,
            Self::Account(t, a) => t == caller.tenant() && *a == caller.id(),
        }
    }
}

/// Sessions of agents, supervisors and admins over an [`AccountStore`].
pub struct AgentAuth {
    store: Arc<dyn AccountStore>,
    policy: AuthConfig,
    clock: Arc<dyn Clock>,
    revoked: broadcast::Sender<Revoked>,
    /// A hash to verify against when the name is unknown, so the answer takes as long.
    decoy: String,
    /// Open console sockets per agent.
    sockets: Arc<Mutex<HashMap<AgentId, usize>>>,
}

impl std::fmt::Debug for AgentAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAuth")
            .field("store", &self.store)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A fresh random token with a readable prefix.
fn random_token(prefix: &str) -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Other(Box::new(e)))?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl AgentAuth {
    /// Sessions over `store` with `policy`'s expiry.
    ///
    /// # Errors
    /// When the random source fails.
    pub fn new(store: Arc<dyn AccountStore>, policy: AuthConfig) -> Result<Self> {
        let decoy = hash_password(&random_token("")?)?;
        Ok(Self {
            store,
            policy,
            clock: Arc::new(SystemClock),
            revoked: broadcast::channel(64).0,
            decoy,
            sockets: Arc::default(),
        })
    }

    /// Accounts in memory with the default expiry (tests, embedding).
    ///
    /// # Errors
    /// As [`AgentAuth::new`].
    pub fn in_memory() -> Result<Self> {
        Self::new(Arc::new(MemoryAccountStore::new()), AuthConfig::default())
    }

    /// Uses `clock` for expiry (tests move time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The account store.
    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    /// The session policy.
    pub fn policy(&self) -> &AuthConfig {
        &self.policy
    }

    /// Stores a new account with `password` (hashed with Argon2id).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty name or password, or an invalid skill;
    /// [`cs_core::Error::Conflict`] (as [`Error::Store`]) when the name is taken in the tenant.
    pub async fn add(&self, account: &Account, password: &str) -> Result<()> {
        if account.name.trim().is_empty() || account.name.len() > 100 {
            return Err(Error::InvalidInput {
                reason: "a name has 1 to 100 bytes".into(),
            });
        }
        account.to_agent().map_err(|e| Error::InvalidInput {
            reason: e.to_string(),
        })?;
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| Error::Other(Box::new(e)))??;
        self.store.create_account(account, &hash).await?;
        Ok(())
    }

    /// Checks a name and password in `tenant`; on success a new session token. `None` for an
    /// unknown name, a wrong password or a disabled account (indistinguishable, and as slow).
    ///
    /// # Errors
    /// Store errors.
    pub async fn login(
        &self,
        tenant: &TenantId,
        name: &str,
        password: &str,
    ) -> Result<Option<(Account, String)>> {
        let found = self.store.account_by_name(tenant, name).await?;
        let (hash, account) = match found {
            Some((a, h)) => (h, Some(a)),
            None => (self.decoy.clone(), None),
        };
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash))
            .await
            .map_err(|e| Error::Other(Box::new(e)))?;
        let Some(account) = account.filter(|a| ok && !a.disabled) else {
            return Ok(None);
        };
        let token = random_token("ods_")?;
        let now = self.clock.now();
        self.store
            .create_session(&SessionRecord {
                token_hash: token_hash(&token),
                tenant: account.tenant.clone(),
                account: account.id,
                created_at: now,
                last_seen: now,
                revoked_at: None,
            })
            .await?;
        Ok(Some((account, token)))
    }

    /// When a session ends at the latest if used no more: idle or absolute expiry.
    pub fn expires_at(&self, s: &SessionRecord) -> DateTime<Utc> {
        (s.last_seen + chrono(self.policy.idle)).min(s.created_at + chrono(self.policy.absolute))
    }

    /// The caller behind a session token hash, if the session is live and the account enabled;
    /// slides the idle expiry.
    ///
    /// # Errors
    /// Store errors.
    pub async fn verify_hash(&self, hash: &str) -> Result<Option<Caller>> {
        let Some(s) = self.store.session(hash).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if s.revoked_at.is_some() || now >= self.expires_at(&s) {
            return Ok(None);
        }
        let Some(account) = self.store.account(&s.tenant, s.account).await? else {
            return Ok(None);
        };
        if account.disabled {
            return Ok(None);
        }
        if now - s.last_seen >= TOUCH_EVERY {
            self.store.touch_session(hash, now).await?;
        }
        Ok(Some(Caller {
            account,
            session: s.token_hash,
        }))
    }

    /// The caller behind a session token (see [`AgentAuth::verify_hash`]).
    ///
    /// # Errors
    /// Store errors.
    pub async fn verify(&self, token: &str) -> Result<Option<Caller>> {
        if !token.starts_with("ods_") || token.len() > 100 {
            return Ok(None);
        }
        self.verify_hash(&token_hash(token)).await
    }

    /// Signs a session out.
    ///
    /// # Errors
    /// Store errors.
    pub async fn logout(&self, caller: &Caller) -> Result<()> {
        self.store
            .revoke_session(&caller.session, self.clock.now())
            .await?;
        let _ = self.revoked.send(Revoked::Session(caller.session.clone()));
        Ok(())
    }

    /// Revokes every session of an account (password change, admin action); how many.
    ///
    /// # Errors
    /// Store errors.
    pub async fn revoke_account(&self, tenant: &TenantId, id: AgentId) -> Result<u64> {
        let n = self
            .store
            .revoke_sessions(tenant, id, self.clock.now())
            .await?;
        let _ = self.revoked.send(Revoked::Account(tenant.clone(), id));
        Ok(n)
    }

    /// Sets an account's password and revokes all its sessions.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unusable password; store errors; `false` for no account.
    pub async fn set_password(
        &self,
        tenant: &TenantId,
        id: AgentId,
        password: &str,
    ) -> Result<bool> {
        let password = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| Error::Other(Box::new(e)))??;
        if !self.store.set_password(tenant, id, &hash).await? {
            return Ok(false);
        }
        self.revoke_account(tenant, id).await?;
        Ok(true)
    }

    /// Whether `password` is the caller's current one.
    ///
    /// # Errors
    /// Store errors.
    pub async fn check_password(&self, caller: &Caller, password: &str) -> Result<bool> {
        let Some((_, hash)) = self
            .store
            .account_by_name(caller.tenant(), &caller.account.name)
            .await?
        else {
            return Ok(false);
        };
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash))
            .await
            .map_err(|e| Error::Other(Box::new(e)))
    }

    /// A one-time ticket for the console's WebSocket upgrade, good for the policy's `ticket`
    /// time.
    ///
    /// # Errors
    /// When the random source fails.
    pub async fn ticket(&self, caller: &Caller) -> Result<(String, DateTime<Utc>)> {
        let ticket = random_token("wst_")?;
        let now = self.clock.now();
        let until = now + chrono(self.policy.ticket);
        self.store
            .create_ticket(&token_hash(&ticket), &caller.session, until, now)
            .await?;
        Ok((ticket, until))
    }

    /// The caller a ticket was issued to, once, while it and its session are live.
    ///
    /// # Errors
    /// Store errors.
    pub async fn redeem(&self, ticket: &str) -> Result<Option<Caller>> {
        match self
            .store
            .take_ticket(&token_hash(ticket), self.clock.now())
            .await?
        {
            Some(session) => self.verify_hash(&session).await,
            None => Ok(None),
        }
    }

    /// Revocations from now on (a live console socket closes on its own).
    pub fn revocations(&self) -> broadcast::Receiver<Revoked> {
        self.revoked.subscribe()
    }

    /// Counts open console sockets of `agent`; returns how many are open now.
    pub(crate) fn connected(&self, agent: AgentId, delta: isize) -> usize {
        metrics::gauge!("omnidesk_console_sockets").increment(delta as f64);
        let mut s = self.sockets.lock().unwrap_or_else(|e| e.into_inner());
        let n = s.entry(agent).or_default();
        *n = n.saturating_add_signed(delta);
        let now = *n;
        if now == 0 {
            s.remove(&agent);
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cs_core::ManualClock;

    #[tokio::test]
    async fn sessions_expire_slide_and_are_revoked() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let auth = AgentAuth::in_memory().unwrap().with_clock(clock.clone());
        let tenant = TenantId::default();
        let alice = Account::new(tenant.clone(), "Alice", Role::Agent);
        auth.add(&alice, "pw").await.unwrap();
        assert!(
            auth.login(&tenant, "alice", "wrong")
                .await
                .unwrap()
                .is_none()
        );
        assert!(auth.login(&tenant, "nobody", "pw").await.unwrap().is_none());
        let other = TenantId::new("other").unwrap();
        assert!(auth.login(&other, "alice", "pw").await.unwrap().is_none());
        let (_, t1) = auth.login(&tenant, "Alice", "pw").await.unwrap().unwrap();
        let (_, t2) = auth.login(&tenant, "Alice", "pw").await.unwrap().unwrap();
        assert_ne!(t1, t2, "a new token every sign-in");
        let caller = auth.verify(&t1).await.unwrap().unwrap();
        assert_eq!(caller.id(), alice.id);
        assert!(auth.verify("ods_forged").await.unwrap().is_none());

        // Idle: 11 h apart keeps it alive (sliding), 13 h of silence ends it.
        for _ in 0..3 {
            clock.advance(chrono::Duration::hours(11));
            assert!(auth.verify(&t1).await.unwrap().is_some());
        }
        clock.advance(chrono::Duration::hours(13));
        assert!(auth.verify(&t1).await.unwrap().is_none(), "idle expiry");
        assert!(auth.verify(&t2).await.unwrap().is_none());

        // Absolute: used every 11 h, still gone after 7 days.
        let (_, t3) = auth.login(&tenant, "alice", "pw").await.unwrap().unwrap();
        for _ in 0..15 {
            clock.advance(chrono::Duration::hours(11));
            assert!(auth.verify(&t3).await.unwrap().is_some(), "165 h, used");
        }
        clock.advance(chrono::Duration::hours(11));
        assert!(auth.verify(&t3).await.unwrap().is_none(), "absolute expiry");

        // Sign-out, tickets once, password change revokes all.
        let (_, t4) = auth.login(&tenant, "alice", "pw").await.unwrap().unwrap();
        let (_, t5) = auth.login(&tenant, "alice", "pw").await.unwrap().unwrap();
        let c4 = auth.verify(&t4).await.unwrap().unwrap();
        let (ticket, _) = auth.ticket(&c4).await.unwrap();
        assert!(auth.redeem(&ticket).await.unwrap().is_some());
        assert!(auth.redeem(&ticket).await.unwrap().is_none(), "one time");
        let (late, _) = auth.ticket(&c4).await.unwrap();
        clock.advance(chrono::Duration::seconds(31));
        assert!(auth.redeem(&late).await.unwrap().is_none(), "short-lived");
        let mut revoked = auth.revocations();
        auth.logout(&c4).await.unwrap();
        assert!(revoked.recv().await.unwrap().ends(&c4));
        assert!(auth.verify(&t4).await.unwrap().is_none());
        assert!(auth.verify(&t5).await.unwrap().is_some());
        assert!(
            auth.set_password(&tenant, alice.id, "new pw")
                .await
                .unwrap()
        );
        assert!(auth.verify(&t5).await.unwrap().is_none());
        assert!(auth.login(&tenant, "alice", "pw").await.unwrap().is_none());
        assert!(
            auth.login(&tenant, "alice", "new pw")
                .await
                .unwrap()
                .is_some()
        );
    }
}
