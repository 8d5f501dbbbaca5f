//! Canned replies: texts an agent sends often, found by a shortcut (type `/` in the console's
//! composer), shared by the whole tenant or kept by one agent, with variables filled in from the
//! conversation (`{customer.name}`, `{agent.name}`, `{order.status}`; see [`expand`]).
//!
//! [`CannedStore`] is the storage trait ([`MemoryCannedStore`] for tests and embedding,
//! [`SqlCannedStore`] written once over the workspace's SQL [`Driver`](cs_core::sql::Driver) for
//! SQLite and PostgreSQL, migrating its table as component `canned`); [`conformance`] is the
//! suite every implementation passes.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use cs_core::{AgentId, TenantId};
use serde::{Deserialize, Serialize};

/// The longest shortcut, in characters.
pub const MAX_SHORTCUT_CHARS: usize = 40;
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 120;
/// The longest text, in bytes (a reply's own limit is the channel's).
pub const MAX_TEXT_BYTES: usize = 4096;

/// One canned reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CannedReply {
    /// The id.
    pub id: String,
    /// The tenant.
    #[schema(value_type = String)]
    pub tenant: TenantId,
    /// The agent who keeps it; `None`: shared with the whole tenant (managed by supervisors).
    #[schema(value_type = Option<String>)]
    pub owner: Option<AgentId>,
    /// What the agent types after `/` (unique per owner, or among the shared ones).
    pub shortcut: String,
    /// A short title shown in the picker.
    pub title: String,
    /// The text, with variables such as `{customer.name}`.
    pub text: String,
    /// When it last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl CannedReply {
    /// A new reply of `tenant`, shared when `owner` is `None`.
    pub fn new(
        tenant: TenantId,
        owner: Option<AgentId>,
        shortcut: impl Into<String>,
        title: impl Into<String>,
        text: impl Into<String>,
    ) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            tenant,
            owner,
            shortcut: shortcut.into(),
            title: title.into(),
            text: text.into(),
            updated_at: now(),
        }
    }

    /// Checks the lengths and the shortcut's characters (letters, digits, `-`, `_`, `.`; no
    /// spaces).
    ///
    /// # Errors
    /// [`cs_core::Error::InvalidInput`] saying what is wrong.
    pub fn validate(&self) -> cs_core::Result<()> {
        let bad = |reason: &str| {
            Err(cs_core::Error::InvalidInput {
                reason: reason.into(),
            })
        };
        let n = self.shortcut.chars().count();
        if n == 0 || n > MAX_SHORTCUT_CHARS {
            return bad("a shortcut has 1 to 40 characters");
        }
        if !self
            .shortcut
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad("a shortcut has letters, digits, '-', '_' and '.' only");
        }
        if self.title.chars().count() > MAX_TITLE_CHARS {
            return bad("a title has at most 120 characters");
        }
        if self.text.trim().is_empty() || self.text.len() > MAX_TEXT_BYTES {
            return bad("a canned text has 1 to 4,096 bytes");
        }
        Ok(())
    }

    /// Whether `words` (lower case) occur in its shortcut, title or text.
    fn matches(&self, words: &str) -> bool {
        haystack(self).contains(words)
    }
}

/// Now, to the microsecond (what the SQL stores keep), so a reply reads back as it was written.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_else(Utc::now)
}

/// What the search looks in: shortcut, title and text, lower case.
fn haystack(r: &CannedReply) -> String {
    format!("{}\n{}\n{}", r.shortcut, r.title, r.text).to_lowercase()
}

/// Which canned replies to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedQuery {
    /// The tenant.
    pub tenant: TenantId,
    /// The shared ones and this agent's own; `None`: every one of the tenant.
    pub viewer: Option<AgentId>,
    /// Words to find in the shortcut, title or text (any case).
    pub search: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// Where canned replies live.
#[async_trait]
pub trait CannedStore: Send + Sync + std::fmt::Debug {
    /// Stores a new reply.
    ///
    /// # Errors
    /// [`cs_core::Error::Conflict`] when its owner (or the shared set) has that shortcut.
    async fn create(&self, reply: &CannedReply) -> cs_core::Result<()>;

    /// One reply of `tenant`.
    ///
    /// # Errors
    /// Backend errors.
    async fn get(&self, tenant: &TenantId, id: &str) -> cs_core::Result<Option<CannedReply>>;

    /// Replies by shortcut (shared and own alike), then id.
    ///
    /// # Errors
    /// Backend errors.
    async fn list(&self, query: &CannedQuery) -> cs_core::Result<Vec<CannedReply>>;

    /// Replaces a reply's shortcut, title, text and time (not its tenant or owner); `false` when
    /// there is no such reply.
    ///
    /// # Errors
    /// [`cs_core::Error::Conflict`] when the new shortcut is taken.
    async fn update(&self, reply: &CannedReply) -> cs_core::Result<bool>;

    /// Deletes a reply; `false` when there was none.
    ///
    /// # Errors
    /// Backend errors.
    async fn delete(&self, tenant: &TenantId, id: &str) -> cs_core::Result<bool>;
}

/// Canned replies in memory.
#[derive(Debug, Default)]
pub struct MemoryCannedStore {
    replies: Mutex<HashMap<(TenantId, String), CannedReply>>,
}

impl MemoryCannedStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(TenantId, String), CannedReply>> {
        self.replies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn taken(shortcut: &str) -> cs_core::Error {
    cs_core::Error::Conflict {
        reason: format!("the shortcut /{shortcut} is taken"),
    }
}

#[async_trait]
impl CannedStore for MemoryCannedStore {
    async fn create(&self, reply: &CannedReply) -> cs_core::Result<()> {
        let mut m = self.lock();
        if m.values().any(|r| {
            r.tenant == reply.tenant && r.owner == reply.owner && r.shortcut == reply.shortcut
        }) {
            return Err(taken(&reply.shortcut));
        }
        if m.contains_key(&(reply.tenant.clone(), reply.id.clone())) {
            return Err(cs_core::Error::Conflict {
                reason: "a canned reply with this id exists".into(),
            });
        }
        m.insert((reply.tenant.clone(), reply.id.clone()), reply.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &str) -> cs_core::Result<Option<CannedReply>> {
        Ok(self.lock().get(&(tenant.clone(), id.to_owned())).cloned())
    }

    async fn list(&self, q: &CannedQuery) -> cs_core::Result<Vec<CannedReply>> {
        let words = q.search.as_deref().map(str::to_lowercase);
        let mut v: Vec<CannedReply> = self
            .lock()
            .values()
            .filter(|r| r.tenant == q.tenant)
            .filter(|r| q.viewer.is_none() || r.owner.is_none() || r.owner == q.viewer)
            .filter(|r| words.as_deref().is_none_or(|w| r.matches(w)))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.shortcut.cmp(&b.shortcut).then(a.id.cmp(&b.id)));
        v.truncate(q.limit);
        Ok(v)
    }

    async fn update(&self, reply: &CannedReply) -> cs_core::Result<bool> {
        let mut m = self.lock();
        let key = (reply.tenant.clone(), reply.id.clone());
        let Some(owner) = m.get(&key).map(|r| r.owner) else {
            return Ok(false);
        };
        if m.values().any(|r| {
            r.tenant == reply.tenant
                && r.owner == owner
                && r.shortcut == reply.shortcut
                && r.id != reply.id
        }) {
            return Err(taken(&reply.shortcut));
        }
        if let Some(r) = m.get_mut(&key) {
            r.shortcut = reply.shortcut.clone();
            r.title = reply.title.clone();
            r.text = reply.text.clone();
            r.updated_at = reply.updated_at;
        }
        Ok(true)
    }

    async fn delete(&self, tenant: &TenantId, id: &str) -> cs_core::Result<bool> {
        Ok(self
            .lock()
            .remove(&(tenant.clone(), id.to_owned()))
            .is_some())
    }
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use sql::SqlCannedStore;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql {
    use super::*;
    use cs_core::sql::{Driver, Migration, SqlRow, Stmt, micros};
    use sqlx::Pool;

    /// The same DDL on SQLite and PostgreSQL; `owner` is `''` for a shared reply, so the
    /// shortcut is unique per owner and among the shared ones.
    const MIGRATIONS: &[Migration] = &[Migration {
        version: 1,
        name: "canned replies",
        sql: r#"
CREATE TABLE cs_canned_replies (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    shortcut TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    haystack TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, id),
    UNIQUE (tenant, owner, shortcut)
);
"#,
    }];

    /// Canned replies in a SQL database (SQLite or PostgreSQL), written once.
    #[derive(Debug, Clone)]
    pub struct SqlCannedStore<D: Driver> {
        pool: Pool<D>,
    }

    impl<D: Driver> SqlCannedStore<D> {
        /// Opens the store on `pool` (on SQLite, the writer pool), creating its table.
        ///
        /// # Errors
        /// Migration and driver errors.
        pub async fn new(pool: Pool<D>) -> cs_core::Result<Self> {
            cs_core::sql::migrate(&pool, "canned", MIGRATIONS).await?;
            Ok(Self { pool })
        }

        async fn conn(&self) -> cs_core::Result<sqlx::pool::PoolConnection<D>> {
            self.pool.acquire().await.map_err(D::map_error)
        }
    }

    fn owner_key(owner: Option<AgentId>) -> String {
        owner.map(|a| a.to_string()).unwrap_or_default()
    }

    fn row<R: SqlRow>(r: &R) -> cs_core::Result<CannedReply> {
        let owner = r.text("owner")?;
        Ok(CannedReply {
            id: r.text("id")?,
            tenant: r.parse("tenant")?,
            owner: if owner.is_empty() {
                None
            } else {
                Some(owner.parse().map_err(|_| cs_core::Error::InvalidInput {
                    reason: format!("stored owner {owner:?} is no agent id"),
                })?)
            },
            shortcut: r.text("shortcut")?,
            title: r.text("title")?,
            text: r.text("body")?,
            updated_at: r.time("updated_at")?,
        })
    }

    /// `%`, `_` and `\` taken literally in a `LIKE ... ESCAPE '\'` pattern.
    fn like_pattern(words: &str) -> String {
        let mut p = String::from("%");
        for c in words.to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('%');
        p
    }

    const COLUMNS: &str =
        "SELECT tenant, id, owner, shortcut, title, body, updated_at FROM cs_canned_replies";

    fn conflict_as_taken(e: cs_core::Error, shortcut: &str) -> cs_core::Error {
        match e {
            cs_core::Error::Conflict { .. } => taken(shortcut),
            other => other,
        }
    }

    #[async_trait]
    impl<D: Driver> CannedStore for SqlCannedStore<D>
    where
        D::Connection: Send,
    {
        async fn create(&self, r: &CannedReply) -> cs_core::Result<()> {
            let mut c = self.conn().await?;
            D::execute(
                &mut c,
                Stmt::new(
                    "INSERT INTO cs_canned_replies (tenant, id, owner, shortcut, title, body, \
                     haystack, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(r.tenant.as_str())
                .bind(r.id.as_str())
                .bind(owner_key(r.owner))
                .bind(r.shortcut.as_str())
                .bind(r.title.as_str())
                .bind(r.text.as_str())
                .bind(haystack(r))
                .bind(micros(r.updated_at)),
            )
            .await
            .map_err(|e| conflict_as_taken(e, &r.shortcut))?;
            Ok(())
        }

        async fn get(&self, tenant: &TenantId, id: &str) -> cs_core::Result<Option<CannedReply>> {
            let mut c = self.conn().await?;
            D::fetch_optional(
                &mut c,
                Stmt::dynamic(format!("{COLUMNS} WHERE tenant = $1 AND id = $2"))
                    .bind(tenant.as_str())
                    .bind(id),
            )
            .await?
            .map(|r| row(&r))
            .transpose()
        }

        async fn list(&self, q: &CannedQuery) -> cs_core::Result<Vec<CannedReply>> {
            let mut stmt = Stmt::dynamic(format!("{COLUMNS} WHERE tenant = "));
            stmt.push_bind(q.tenant.as_str());
            if let Some(viewer) = q.viewer {
                stmt.push(" AND (owner = '' OR owner = ")
                    .push_bind(viewer.to_string())
                    .push(")");
            }
            if let Some(words) = q.search.as_deref().filter(|w| !w.is_empty()) {
                stmt.push(" AND haystack LIKE ")
                    .push_bind(like_pattern(words))
                    .push(" ESCAPE '\\'");
            }
            stmt.push(" ORDER BY shortcut, id LIMIT ")
                .push_bind(i64::try_from(q.limit).unwrap_or(i64::MAX));
            let mut c = self.conn().await?;
            D::fetch_all(&mut c, stmt).await?.iter().map(row).collect()
        }

        async fn update(&self, r: &CannedReply) -> cs_core::Result<bool> {
            let mut c = self.conn().await?;
            let n = D::execute(
                &mut c,
                Stmt::new(
                    "UPDATE cs_canned_replies SET shortcut = $3, title = $4, body = $5, \
                     haystack = $6, updated_at = $7 WHERE tenant = $1 AND id = $2",
                )
                .bind(r.tenant.as_str())
                .bind(r.id.as_str())
                .bind(r.shortcut.as_str())
                .bind(r.title.as_str())
                .bind(r.text.as_str())
                .bind(haystack(r))
                .bind(micros(r.updated_at)),
            )
            .await
            .map_err(|e| conflict_as_taken(e, &r.shortcut))?;
            Ok(n > 0)
        }

        async fn delete(&self, tenant: &TenantId, id: &str) -> cs_core::Result<bool> {
            let mut c = self.conn().await?;
            let n = D::execute(
                &mut c,
                Stmt::new("DELETE FROM cs_canned_replies WHERE tenant = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id),
            )
            .await?;
            Ok(n > 0)
        }
    }
}

/// The values a canned text's variables take in one conversation; `None`: not known (the
/// variable stays as written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables {
    /// `{customer.name}`.
    pub customer_name: Option<String>,
    /// `{agent.name}`.
    pub agent_name: Option<String>,
    /// `{order.status}`: the customer's latest order.
    pub order_status: Option<String>,
}

/// A text with its variables filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Expansion {
    /// The text to send.
    pub text: String,
    /// Variables left as written: unknown names, or values this conversation lacks.
    pub unresolved: Vec<String>,
}

/// The variables `text` uses (`{name.field}` of lower-case letters, digits, `_` and `.`).
pub fn variables(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_variable(&after[..close]) => {
                out.push(&after[..close]);
                rest = &after[close + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

fn is_variable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.contains('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// Fills in `{customer.name}`, `{agent.name}` and `{order.status}`; any other variable, and one
/// without a value, stays visible as written and is listed in [`Expansion::unresolved`] (never
/// an error).
///
/// ```
/// use omnidesk::server::canned::{Variables, expand};
///
/// let vars = Variables { customer_name: Some("王芳".into()), ..Variables::default() };
/// let e = expand("{customer.name}您好，{order.status} {coupon.code}", &vars);
/// assert_eq!(e.text, "王芳您好，{order.status} {coupon.code}");
/// assert_eq!(e.unresolved, vec!["order.status", "coupon.code"]);
/// ```
pub fn expand(text: &str, vars: &Variables) -> Expansion {
    let mut out = String::with_capacity(text.len());
    let mut unresolved: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if is_variable(&after[..close]) => {
                let name = &after[..close];
                let value = match name {
                    "customer.name" => vars.customer_name.as_deref(),
                    "agent.name" => vars.agent_name.as_deref(),
                    "order.status" => vars.order_status.as_deref(),
                    _ => None,
                };
                match value {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push_str(&rest[open..open + close + 2]);
                        if !unresolved.iter().any(|u| u == name) {
                            unresolved.push(name.to_owned());
                        }
                    }
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Expansion {
        text: out,
        unresolved,
    }
}

/// The suite every [`CannedStore`] passes: tenants apart, shared and own replies, shortcuts
/// unique per owner, search in any case (with `%` and `_` taken literally), updates and deletes.
///
/// # Panics
/// When the store breaks a rule.
pub async fn conformance(store: &dyn CannedStore) {
    let t1 = TenantId::new("canned-a").expect("tenant");
    let t2 = TenantId::new("canned-b").expect("tenant");
    let (ann, ben) = (AgentId::new(), AgentId::new());
    let at = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("time");
    let make = |t: &TenantId, owner, shortcut: &str, text: &str| {
        let mut r = CannedReply::new(t.clone(), owner, shortcut, format!("T {shortcut}"), text);
        r.updated_at = at;
        r
    };
    let shared = make(&t1, None, "hi", "您好 {customer.name}，很高兴为您服务");
    let anns = make(&t1, Some(ann), "hi", "Hi {customer.name}, Ann here");
    let bens = make(
        &t1,
        Some(ben),
        "ship",
        "Your parcel: {order.status} (100% sure)",
    );
    let other = make(&t2, None, "hi", "another shop");
    for r in [&shared, &anns, &bens, &other] {
        store.create(r).await.expect("created");
    }
    // One shortcut per owner, and once among the shared.
    let dup = make(&t1, Some(ann), "hi", "again");
    assert!(matches!(
        store.create(&dup).await,
        Err(cs_core::Error::Conflict { .. })
    ));
    assert!(matches!(
        store.create(&make(&t1, None, "hi", "again")).await,
        Err(cs_core::Error::Conflict { .. })
    ));

    let q = |viewer, search: Option<&str>| CannedQuery {
        tenant: t1.clone(),
        viewer,
        search: search.map(str::to_owned),
        limit: 100,
    };
    let ids = |v: Vec<CannedReply>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let mut for_ann = ids(store.list(&q(Some(ann), None)).await.expect("list"));
    for_ann.sort();
    let mut want = vec![shared.id.clone(), anns.id.clone()];
    want.sort();
    assert_eq!(for_ann, want, "the shared ones and Ann's own");
    assert_eq!(store.list(&q(None, None)).await.expect("list").len(), 3);
    assert_eq!(
        ids(store
            .list(&q(Some(ben), Some("PARCEL")))
            .await
            .expect("list")),
        vec![bens.id.clone()],
        "search in any case"
    );
    assert_eq!(
        ids(store
            .list(&q(Some(ann), Some("很高兴")))
            .await
            .expect("list")),
        vec![shared.id.clone()]
    );
    assert_eq!(
        ids(store.list(&q(None, Some("100%"))).await.expect("list")),
        vec![bens.id.clone()]
    );
    assert!(
        store
            .list(&q(None, Some("1_0")))
            .await
            .expect("list")
            .is_empty(),
        "_ is no wildcard"
    );
    assert!(
        store
            .list(&q(Some(ann), Some("parcel")))
            .await
            .expect("list")
            .is_empty(),
        "Ben's own stay his"
    );
    let one = CannedQuery {
        limit: 1,
        ..q(None, None)
    };
    assert_eq!(store.list(&one).await.expect("list").len(), 1);

    assert_eq!(
        store.get(&t1, &anns.id).await.expect("get"),
        Some(anns.clone())
    );
    assert_eq!(store.get(&t2, &anns.id).await.expect("get"), None);

    let mut changed = anns.clone();
    changed.shortcut = "hello".into();
    changed.text = "Hello {customer.name}".into();
    changed.owner = None; // the owner never changes
    assert!(store.update(&changed).await.expect("update"));
    let read = store.get(&t1, &anns.id).await.expect("get").expect("found");
    assert_eq!(
        (read.shortcut.as_str(), read.text.as_str(), read.owner),
        ("hello", "Hello {customer.name}", Some(ann))
    );
    let mut clash = bens.clone();
    clash.shortcut = "hi".into();
    // Ben has no "hi" of his own: the shared one does not clash with his.
    assert!(store.update(&clash).await.expect("own shortcut"));
    let mut back = changed.clone();
    back.owner = Some(ann);
    back.id = bens.id.clone();
    back.tenant = t2.clone();
    assert!(
        !store.update(&back).await.expect("update"),
        "another tenant's id"
    );
    let mut ann2 = make(&t1, Some(ann), "bye", "Bye");
    store.create(&ann2).await.expect("created");
    ann2.shortcut = "hello".into();
    assert!(matches!(
        store.update(&ann2).await,
        Err(cs_core::Error::Conflict { .. })
    ));

    assert!(!store.delete(&t2, &shared.id).await.expect("delete"));
    assert!(store.delete(&t1, &shared.id).await.expect("delete"));
    assert!(!store.delete(&t1, &shared.id).await.expect("twice"));
    assert_eq!(store.get(&t1, &shared.id).await.expect("get"), None);
    assert_eq!(
        store.get(&t2, &other.id).await.expect("get"),
        Some(other),
        "the other tenant's untouched"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_store_conforms() {
        conformance(&MemoryCannedStore::new()).await;
    }

    #[cfg(feature = "sqlite")]
    #[tokio::test]
    async fn sqlite_store_conforms() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("sqlite");
        let store = SqlCannedStore::new(pool).await.expect("migrated");
        conformance(&store).await;
    }

    #[test]
    fn variables_fill_in_and_unknown_ones_stay_visible() {
        let vars = Variables {
            customer_name: Some("Ann".into()),
            agent_name: Some("Bob".into()),
            order_status: None,
        };
        let e = expand(
            "Hi {customer.name}, {agent.name} here. {order.status}; {unknown.thing} {x} {} {a.b",
            &vars,
        );
        assert_eq!(
            e.text,
            "Hi Ann, Bob here. {order.status}; {unknown.thing} {x} {} {a.b"
        );
        assert_eq!(e.unresolved, vec!["order.status", "unknown.thing"]);
        // Values are inserted as they are, never expanded again.
        let tricky = Variables {
            customer_name: Some("{agent.name}".into()),
            ..vars
        };
        assert_eq!(
            expand("{customer.name}", &tricky).text,
            "{agent.name}",
            "no second pass"
        );
        assert_eq!(
            variables("{customer.name} {{agent.name}} {Bad.Case}"),
            vec!["customer.name", "agent.name"]
        );
    }
}
