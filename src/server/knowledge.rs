//! Knowledge management for supervisors: the bot's FAQ entries (training phrasings and answers
//! in Chinese and English) edited while the bot serves, a background retrain that swaps the new
//! model in when it is ready (the old one answers meanwhile), and the questions the bot could
//! not answer, grouped, to turn into entries or phrasings.
//!
//! Access: an agent's session token (the console's sign-in, [`AgentAuth::verify`]) as
//! `Authorization: Bearer ..`, the same sign-in as the dashboard; any signed-in agent of the
//! service's tenant may edit for now (supervisor roles come with the accounts and roles work).
//!
//! Edits are saved at once, atomically (a temporary file, then a rename), to the knowledge file
//! ([`KnowledgeBase::saved_to`]): the configured `faq` file (its first version kept beside it as
//! `<faq>.orig`), else `<database>.knowledge.txt`; the trained model is kept beside it
//! (`.model`), so a restart serves the saved knowledge without training again. Edits go live at
//! the next retrain (or restart). The unanswered questions are kept beside it too
//! (`.unanswered.json`, saved every half minute and when the service stops).
//!
//! Routes (under `/agent/knowledge`), JSON in and out, bodies at most [`MAX_BODY_BYTES`], errors
//! as `{"error": code, "reason": .., "field": ..}`:
//! - `GET /` the page, `/knowledge.js`, `/knowledge.css`
//! - `GET /entries?q=..` entries (all, or those whose id, phrasings or answers contain `q`)
//! - `POST /entries` `{"id", "phrasings": [..], "answer_zh", "answer_en", "skills": [..],
//!   "from_unanswered": [..]}` adds an entry (`from_unanswered`: unanswered questions it covers,
//!   forgotten once it is saved)
//! - `GET|PUT|DELETE /entries/{id}` one entry; `PUT` takes the same body without `id`
//! - `POST /entries/{id}/phrasings` `{"texts": [..], "from_unanswered": bool}` adds phrasings;
//!   `DELETE /entries/{id}/phrasings?text=..` removes one
//! - `POST /out-of-scope` `{"texts": [..]}` questions the bot should not answer
//! - `POST /retrain` starts training in the background (`202` at once); `GET /status` where it
//!   stands (`training`, `ready` or `failed`, revisions, counts, how long training took)
//! - `GET /unanswered` the questions the bot could not answer, grouped; `POST
//!   /unanswered/dismiss` `{"texts": [..]}` forgets some
//!
//! Entries carry a `version`; a `PUT` that sends the version it was based on is refused with
//! `stale` when someone else changed the entry since.
//!
//! Answers are checked against the service's compliance rules when saved: a blocked phrase is
//! refused (`forbidden_phrase`, with the `phrases`), a warned one is saved and reported in
//! `warnings`.
//!
//! Error codes: `unauthenticated` (401), `forbidden` (403), `not_found` (404), `duplicate_id`
//! and `phrasing_in_use` (409, with the other `entry`), `stale` (409), `invalid_input` and `forbidden_phrase` (422, with the
//! `field`), `invalid_json` (400), `payload_too_large` (413), `storage` (500: the edit was not
//! kept).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use cs_bot::{FaqEntry, Knowledge, LiveBot, OUT_OF_SCOPE};
use cs_core::Agent;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::BasePath;
use super::agent::AgentAuth;
use crate::engine::Engine;

const PAGE: &str = include_str!("assets/knowledge.html");
const SCRIPT: &str = include_str!("assets/knowledge.js");
const STYLE: &str = include_str!("assets/knowledge.css");

/// The largest request body the knowledge API takes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest entry id.
const MAX_ID_CHARS: usize = 64;
/// The longest training phrasing.
const MAX_PHRASING_CHARS: usize = 300;
/// The most phrasings an entry may have.
const MAX_PHRASINGS: usize = 300;
/// The longest answer.
const MAX_ANSWER_CHARS: usize = 4000;
/// The most entries the knowledge may have.
const MAX_ENTRIES: usize = 2000;
/// How similar unanswered questions must be to be grouped (cosine of TF-IDF vectors).
const CLUSTER_SIMILARITY: f32 = 0.15;
/// The most groups of unanswered questions listed.
const MAX_CLUSTERS: usize = 200;

/// The live bot's knowledge in the bundled service: the bot, and the file its edits are saved to.
#[derive(Debug, Clone)]
pub struct KnowledgeBase {
    live: Arc<LiveBot>,
    file: Option<PathBuf>,
    model: Option<PathBuf>,
    /// Whether `file` is the operator's own knowledge file (kept once as `.orig` before the
    /// first rewrite).
    configured: bool,
    /// Edits one at a time: each is applied and saved before the next.
    writes: Arc<Mutex<()>>,
    retrain: Arc<Mutex<Option<RetrainRequest>>>,
    /// The unanswered questions as last saved (how many, the latest), to skip saving when
    /// nothing changed.
    unanswered_saved: Arc<Mutex<Option<Fingerprint>>>,
    /// What the bot may not say: answers are checked when they are saved.
    rules: crate::compliance::PhraseRules,
}

/// How many unanswered questions there were and when the latest was asked.
type Fingerprint = (usize, Option<DateTime<Utc>>);

/// The fingerprint of a list of unanswered questions.
fn fingerprint(questions: &[cs_bot::Unanswered]) -> Fingerprint {
    (questions.len(), questions.last().map(|q| q.at))
}

#[derive(Debug, Clone, Serialize)]
struct RetrainRequest {
    at: DateTime<Utc>,
    by: String,
    revision: u64,
}

/// Where a service keeps its knowledge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnowledgePaths {
    /// The knowledge file edits are saved to (`None`: edits live in memory only).
    pub file: Option<PathBuf>,
    /// The trained model kept beside it.
    pub model: Option<PathBuf>,
    /// Whether `file` is the operator's configured knowledge file.
    pub configured: bool,
}

impl KnowledgePaths {
    /// The configured `faq` file, else `<database>.knowledge.txt` for a SQLite file; nothing for
    /// an in-memory or PostgreSQL database without a `faq` file.
    pub fn for_config(config: &crate::Config) -> Self {
        let beside = |p: &Path, ext: &str| {
            let mut s = p.as_os_str().to_owned();
            s.push(ext);
            PathBuf::from(s)
        };
        if let Some(faq) = &config.faq {
            return Self {
                file: Some(faq.clone()),
                model: Some(beside(faq, ".model")),
                configured: true,
            };
        }
        if config.database.as_os_str() == ":memory:" || config.postgres_url().is_some() {
            return Self {
                file: None,
                model: None,
                configured: false,
            };
        }
        Self {
            file: Some(beside(&config.database, ".knowledge.txt")),
            model: Some(beside(&config.database, ".knowledge.model")),
            configured: false,
        }
    }

    /// The knowledge to start from: the saved file when there is one, else the bundled
    /// bilingual e-commerce FAQ.
    ///
    /// # Errors
    /// [`crate::Error::Config`] when the file cannot be read or parsed.
    pub fn load(&self) -> crate::Result<Knowledge> {
        let text = match &self.file {
            Some(f) if self.configured || f.exists() => {
                std::fs::read_to_string(f).map_err(|e| crate::Error::Config {
                    reason: format!("FAQ {}: {e}", f.display()),
                })?
            }
            _ => cs_bot::ECOMMERCE_FAQ.to_owned(),
        };
        cs_bot::parse_knowledge(&text).map_err(|e| crate::Error::Config {
            reason: format!("FAQ: {e}"),
        })
    }
}

impl KnowledgeBase {
    /// Manages `live`, saving edits as `paths` say.
    pub fn new(live: Arc<LiveBot>, paths: KnowledgePaths) -> Self {
        Self {
            live,
            file: paths.file,
            model: paths.model,
            configured: paths.configured,
            writes: Arc::default(),
            retrain: Arc::default(),
            unanswered_saved: Arc::default(),
            rules: crate::compliance::PhraseRules::new([]),
        }
    }

    /// Checks answers against these rules when they are saved: an answer with a blocked phrase
    /// is refused (the engine would keep it back from customers anyway), one with a warned
    /// phrase is saved with a warning.
    pub fn with_compliance(mut self, rules: crate::compliance::PhraseRules) -> Self {
        self.rules = rules;
        self
    }

    /// Where the unanswered questions are kept between restarts: beside the knowledge file.
    fn unanswered_file(&self) -> Option<PathBuf> {
        self.file.as_ref().map(|f| {
            let mut s = f.as_os_str().to_owned();
            s.push(".unanswered.json");
            PathBuf::from(s)
        })
    }

    /// Reads back the `tenant`'s unanswered questions saved by
    /// [`KnowledgeBase::save_unanswered`] (none when there is no file).
    ///
    /// # Errors
    /// [`crate::Error::Config`] when the file exists but cannot be read.
    pub fn load_unanswered(&self, tenant: &cs_core::TenantId) -> crate::Result<usize> {
        let Some(path) = self.unanswered_file().filter(|p| p.exists()) else {
            return Ok(0);
        };
        let bad = |e: String| crate::Error::Config {
            reason: format!("unanswered questions {}: {e}", path.display()),
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let saved: Vec<cs_bot::Unanswered> =
            serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let log = self.live.unanswered();
        let n = saved.len();
        for q in saved.into_iter().filter(|q| &q.tenant == tenant) {
            log.record(&q.tenant, &q.text, q.at);
        }
        *self.lock_saved() = Some(fingerprint(&log.questions(tenant)));
        Ok(n)
    }

    fn lock_saved(&self) -> std::sync::MutexGuard<'_, Option<Fingerprint>> {
        self.unanswered_saved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Saves the `tenant`'s unanswered questions beside the knowledge file (atomically), so a
    /// restart keeps them; does nothing when they did not change since the last save.
    ///
    /// # Errors
    /// I/O errors of writing the file.
    pub fn save_unanswered(&self, tenant: &cs_core::TenantId) -> std::io::Result<()> {
        let Some(path) = self.unanswered_file() else {
            return Ok(());
        };
        let questions = self.live.unanswered().questions(tenant);
        // Questions are appended or forgotten: either moves the count or the latest.
        let mut saved = self.lock_saved();
        let now = fingerprint(&questions);
        if *saved == Some(now) {
            return Ok(());
        }
        let body = serde_json::to_vec(&questions).map_err(std::io::Error::other)?;
        write_atomically(&path, &body)?;
        *saved = Some(now);
        Ok(())
    }

    /// The live bot.
    pub fn live(&self) -> &Arc<LiveBot> {
        &self.live
    }

    /// The file edits are saved to (`None`: they are kept in memory only).
    pub fn saved_to(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Applies `f` to a copy of the knowledge, then serves the copy as the edited knowledge and
    /// saves it; when saving fails the edit is undone.
    fn edit<T>(
        &self,
        f: impl FnOnce(&mut Knowledge) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let _one = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let (old, _) = self.live.knowledge();
        let mut k = old.clone();
        let out = f(&mut k)?;
        self.live
            .replace_knowledge(k.clone())
            .map_err(|e| ApiError::invalid(None, e.to_string()))?;
        if let Err(e) = self.save(&k) {
            tracing::error!(error = %e, "knowledge not saved; the edit is undone");
            // The old knowledge passed validation before.
            let _ = self.live.replace_knowledge(old);
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage",
                format!("the knowledge file could not be written ({e}); nothing was changed"),
            ));
        }
        Ok(out)
    }

    /// Writes the knowledge file: a temporary file beside it, flushed, then renamed over it.
    fn save(&self, k: &Knowledge) -> std::io::Result<()> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        if self.configured && path.exists() {
            let mut orig = path.as_os_str().to_owned();
            orig.push(".orig");
            let orig = PathBuf::from(orig);
            if !orig.exists() {
                std::fs::copy(path, &orig)?;
            }
        }
        let body = format!(
            "# omnidesk knowledge file, edited in the knowledge console (/agent/knowledge).\n\
             # Saved {}. Format: cs_bot::parse_knowledge.\n\n{}",
            Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            k.to_text()
        );
        write_atomically(path, body.as_bytes())
    }
}

/// Writes `body` to a temporary file beside `path`, flushed to disk, then renamed over `path`: a
/// reader (or a crash) sees the old file or the new one, never half of one.
fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself survives a crash once the folder is synced (best effort).
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A refusal, as JSON: `{"error": code, "reason": .., "field": .., "entry": ..}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    reason: String,
    field: Option<&'static str>,
    entry: Option<String>,
    /// The forbidden phrases found (`forbidden_phrase`).
    phrases: Vec<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            code,
            reason: reason.into(),
            field: None,
            entry: None,
            phrases: Vec::new(),
        }
    }

    fn invalid(field: Option<&'static str>, reason: impl Into<String>) -> Self {
        Self {
            field,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", reason)
        }
    }

    fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    fn json(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request bodies are at most {MAX_BODY_BYTES} bytes"),
            );
        }
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            rejection.body_text(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.code, "reason": self.reason});
        if let Some(f) = self.field {
            body["field"] = json!(f);
        }
        if let Some(e) = self.entry {
            body["entry"] = json!(e);
        }
        if !self.phrases.is_empty() {
            body["phrases"] = json!(self.phrases);
        }
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T = Response> = Result<T, ApiError>;

#[derive(Debug, Clone)]
struct KState {
    engine: Engine,
    auth: Arc<AgentAuth>,
    kb: KnowledgeBase,
}

/// The knowledge routes (to nest at `/agent/knowledge`).
pub fn router(engine: Engine, auth: Arc<AgentAuth>, kb: KnowledgeBase) -> Router {
    Router::new()
        .route("/", get(|base: BasePath| async move { base.page(PAGE) }))
        .route(
            "/knowledge.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/knowledge.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route("/entries", get(list).post(create))
        .route("/entries/{id}", get(one).put(update).delete(remove))
        .route(
            "/entries/{id}/phrasings",
            post(add_phrasings).delete(remove_phrasing),
        )
        .route("/out-of-scope", post(out_of_scope))
        .route("/retrain", post(retrain))
        .route("/status", get(status))
        .route("/unanswered", get(unanswered))
        .route("/unanswered/dismiss", post(dismiss))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(KState { engine, auth, kb })
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The signed-in agent of the service's tenant; else the refusal.
async fn gate(s: &KState, headers: &HeaderMap) -> ApiResult<Agent> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let caller = match token {
        Some(t) => s.auth.verify(t).await.ok().flatten(),
        None => None,
    };
    let agent = caller.and_then(|c| s.engine.agent(c.id())).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in as an agent to manage the knowledge",
        )
    })?;
    if &agent.tenant != s.engine.tenant() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this agent belongs to another tenant",
        ));
    }
    Ok(agent)
}

/// Lower case, punctuation and spacing dropped: phrasings that read the same.
fn normalise(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A fingerprint of an entry's content: an edit based on another version is refused, so two
/// supervisors do not overwrite each other's work unseen.
fn version(e: &FaqEntry) -> String {
    use sha2::Digest;
    let bytes = serde_json::to_vec(e).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(&bytes)[..8])
}

/// One entry as the API shows it.
#[derive(Debug, Serialize)]
struct EntryView<'a> {
    id: &'a str,
    phrasings: &'a [String],
    answer_zh: Option<&'a str>,
    answer_en: Option<&'a str>,
    skills: &'a [String],
    /// Send it back with an edit (`PUT`): the edit is refused if the entry changed since.
    version: String,
}

impl<'a> From<&'a FaqEntry> for EntryView<'a> {
    fn from(e: &'a FaqEntry) -> Self {
        Self {
            id: &e.intent,
            phrasings: &e.questions,
            answer_zh: e.answer_zh.as_deref(),
            answer_en: e.answer_en.as_deref(),
            skills: &e.skills,
            version: version(e),
        }
    }
}

/// An entry as the page sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryInput {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    phrasings: Vec<String>,
    #[serde(default)]
    answer_zh: Option<String>,
    #[serde(default)]
    answer_en: Option<String>,
    #[serde(default)]
    skills: Vec<String>,
    /// Unanswered questions this entry covers: forgotten once it is saved.
    #[serde(default)]
    from_unanswered: Vec<String>,
    /// The version the edit is based on (`PUT`); omitted: the edit applies whatever changed.
    #[serde(default)]
    version: Option<String>,
}

fn check_id(id: &str) -> ApiResult<()> {
    if id.is_empty() {
        return Err(ApiError::invalid(Some("id"), "an entry needs an id"));
    }
    if id.chars().count() > MAX_ID_CHARS
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::invalid(
            Some("id"),
            format!("an id is 1 to {MAX_ID_CHARS} letters, digits, '_' or '-' (e.g. gift_cards)"),
        ));
    }
    if id == OUT_OF_SCOPE || id == "oos" {
        return Err(ApiError::invalid(
            Some("id"),
            "this id names the out-of-scope questions; choose another",
        ));
    }
    Ok(())
}

/// A checked phrasing: trimmed, not blank, not too long.
fn check_phrasing(text: &str) -> ApiResult<String> {
    let t = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if normalise(&t).is_empty() {
        return Err(ApiError::invalid(
            Some("phrasings"),
            "a phrasing needs words, not only spaces or punctuation",
        ));
    }
    if t.chars().count() > MAX_PHRASING_CHARS {
        return Err(ApiError::invalid(
            Some("phrasings"),
            format!("a phrasing is at most {MAX_PHRASING_CHARS} characters"),
        ));
    }
    Ok(t)
}

/// The entry (other than `except`) or the out-of-scope list that already has this phrasing.
fn phrasing_owner(k: &Knowledge, text: &str, except: Option<&str>) -> Option<String> {
    let n = normalise(text);
    k.entries
        .iter()
        .filter(|e| Some(e.intent.as_str()) != except)
        .find(|e| e.questions.iter().any(|q| normalise(q) == n))
        .map(|e| e.intent.clone())
        .or_else(|| {
            k.out_of_scope
                .iter()
                .any(|q| normalise(q) == n)
                .then(|| OUT_OF_SCOPE.to_owned())
        })
}

fn in_use(text: &str, owner: String) -> ApiError {
    let reason = if owner == OUT_OF_SCOPE {
        format!("{text:?} is listed as a question the bot should not answer")
    } else {
        format!("{text:?} already trains entry {owner:?}; a phrasing belongs to one entry")
    };
    ApiError {
        field: Some("phrasings"),
        entry: Some(owner),
        ..ApiError::new(StatusCode::CONFLICT, "phrasing_in_use", reason)
    }
}

/// A warned phrase in a saved answer.
#[derive(Debug, Clone, Serialize)]
struct PhraseWarning {
    field: &'static str,
    phrases: Vec<String>,
}

/// Refuses an answer with a blocked phrase; the warned phrases of the others.
fn check_phrases(
    rules: &crate::compliance::PhraseRules,
    e: &FaqEntry,
) -> ApiResult<Vec<PhraseWarning>> {
    let mut warnings = Vec::new();
    for (field, answer) in [("answer_zh", &e.answer_zh), ("answer_en", &e.answer_en)] {
        let Some(answer) = answer else { continue };
        let verdict = rules.check(answer);
        let phrases: Vec<String> = verdict.phrases().into_iter().map(str::to_owned).collect();
        if verdict.is_blocked() {
            return Err(ApiError {
                field: Some(field),
                reason: format!(
                    "the answer says {phrases:?}, which the compliance rules forbid: customers \
                     would never see it"
                ),
                phrases,
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "forbidden_phrase", "")
            });
        }
        if !phrases.is_empty() {
            warnings.push(PhraseWarning { field, phrases });
        }
    }
    Ok(warnings)
}

/// The entry `input` describes, checked against the knowledge (`id`: the entry it replaces).
fn checked_entry(k: &Knowledge, id: &str, input: &EntryInput) -> ApiResult<FaqEntry> {
    check_id(id)?;
    let mut phrasings: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for p in &input.phrasings {
        let p = check_phrasing(p)?;
        if !seen.insert(normalise(&p)) {
            continue;
        }
        if let Some(owner) = phrasing_owner(k, &p, Some(id)) {
            return Err(in_use(&p, owner));
        }
        phrasings.push(p);
    }
    if phrasings.is_empty() {
        return Err(ApiError::invalid(
            Some("phrasings"),
            "an entry needs at least one phrasing (a way customers ask it)",
        ));
    }
    if phrasings.len() > MAX_PHRASINGS {
        return Err(ApiError::invalid(
            Some("phrasings"),
            format!("an entry has at most {MAX_PHRASINGS} phrasings"),
        ));
    }
    let answer = |a: &Option<String>, field: &'static str| -> ApiResult<Option<String>> {
        let a = a.as_deref().map(str::trim).filter(|a| !a.is_empty());
        match a {
            Some(a) if a.chars().count() > MAX_ANSWER_CHARS => Err(ApiError::invalid(
                Some(field),
                format!("an answer is at most {MAX_ANSWER_CHARS} characters"),
            )),
            _ => Ok(a.map(str::to_owned)),
        }
    };
    let answer_zh = answer(&input.answer_zh, "answer_zh")?;
    let answer_en = answer(&input.answer_en, "answer_en")?;
    if answer_zh.is_none() && answer_en.is_none() {
        return Err(ApiError::invalid(
            Some("answer"),
            "an entry needs an answer, in Chinese or English (each falls back to the other)",
        ));
    }
    let mut skills = Vec::new();
    for s in input
        .skills
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        if s.chars().count() > 40 || s.contains(char::is_whitespace) || s.contains(',') {
            return Err(ApiError::invalid(
                Some("skills"),
                format!("{s:?}: a skill is one word of at most 40 characters"),
            ));
        }
        if !skills.iter().any(|x| x == s) {
            skills.push(s.to_owned());
        }
    }
    Ok(FaqEntry {
        intent: id.to_owned(),
        questions: phrasings,
        answer_zh,
        answer_en,
        skills,
    })
}

fn body<T>(json: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    json.map(|Json(t)| t).map_err(ApiError::json)
}

/// Runs a blocking edit (it writes a file) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("edit failed: {e}"),
        )
    })?
}

#[derive(Debug, Deserialize)]
struct Search {
    #[serde(default)]
    q: String,
}

async fn list(
    State(s): State<KState>,
    headers: HeaderMap,
    Query(search): Query<Search>,
) -> ApiResult {
    gate(&s, &headers).await?;
    let (k, revision) = s.kb.live.knowledge();
    let q = search.q.trim().to_lowercase();
    let hit = |e: &&FaqEntry| {
        q.is_empty()
            || e.intent.to_lowercase().contains(&q)
            || e.questions.iter().any(|p| p.to_lowercase().contains(&q))
            || [&e.answer_zh, &e.answer_en]
                .iter()
                .any(|a| a.as_deref().is_some_and(|a| a.to_lowercase().contains(&q)))
    };
    let entries: Vec<EntryView<'_>> = k.entries.iter().filter(hit).map(Into::into).collect();
    Ok(Json(json!({
        "entries": entries,
        "total": k.entries.len(),
        "out_of_scope": k.out_of_scope,
        "revision": revision,
    }))
    .into_response())
}

async fn one(
    State(s): State<KState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult {
    gate(&s, &headers).await?;
    let (k, revision) = s.kb.live.knowledge();
    let e = k
        .entries
        .iter()
        .find(|e| e.intent == id)
        .ok_or_else(|| ApiError::not_found(format!("no entry {id:?}")))?;
    Ok(Json(json!({"entry": EntryView::from(e), "revision": revision})).into_response())
}

/// The answer to an edit: the entry as saved, the knowledge revision, and the phrases the
/// compliance rules warn about.
fn saved(status: StatusCode, kb: &KnowledgeBase, id: &str, warnings: &[PhraseWarning]) -> Response {
    let (k, revision) = kb.live.knowledge();
    let entry = k
        .entries
        .iter()
        .find(|e| e.intent == id)
        .map(EntryView::from);
    (
        status,
        Json(json!({
            "entry": entry,
            "revision": revision,
            "retrain_needed": true,
            "warnings": warnings,
        })),
    )
        .into_response()
}

/// Forgets the unanswered questions an edit covers.
fn forget_unanswered(s: &KState, texts: &[String]) -> usize {
    if texts.is_empty() {
        return 0;
    }
    s.kb.live.unanswered().remove(s.engine.tenant(), texts)
}

async fn create(
    State(s): State<KState>,
    headers: HeaderMap,
    input: Result<Json<EntryInput>, JsonRejection>,
) -> ApiResult {
    let agent = gate(&s, &headers).await?;
    let input = body(input)?;
    let id = input.id.as_deref().unwrap_or_default().trim().to_owned();
    let kb = s.kb.clone();
    let entry_id = id.clone();
    let from = input.from_unanswered.clone();
    let warnings = blocking(move || {
        kb.edit(|k| {
            if k.entries.iter().any(|e| e.intent == entry_id) {
                return Err(ApiError {
                    field: Some("id"),
                    entry: Some(entry_id.clone()),
                    ..ApiError::new(
                        StatusCode::CONFLICT,
                        "duplicate_id",
                        format!(
                            "there is already an entry {entry_id:?}; edit it or choose another id"
                        ),
                    )
                });
            }
            if k.entries.len() >= MAX_ENTRIES {
                return Err(ApiError::invalid(
                    None,
                    format!("the knowledge holds at most {MAX_ENTRIES} entries"),
                ));
            }
            let e = checked_entry(k, &entry_id, &input)?;
            let warnings = check_phrases(&kb.rules, &e)?;
            k.entries.push(e);
            Ok(warnings)
        })
    })
    .await?;
    let forgotten = forget_unanswered(&s, &from);
    tracing::info!(agent = %agent.name, entry = %id, forgotten, "knowledge entry added");
    Ok(saved(StatusCode::CREATED, &s.kb, &id, &warnings))
}

async fn update(
    State(s): State<KState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    input: Result<Json<EntryInput>, JsonRejection>,
) -> ApiResult {
    let agent = gate(&s, &headers).await?;
    let input = body(input)?;
    if input.id.as_deref().is_some_and(|i| i.trim() != id) {
        return Err(ApiError::invalid(
            Some("id"),
            "an entry's id cannot change; add a new entry and delete this one",
        ));
    }
    let kb = s.kb.clone();
    let entry_id = id.clone();
    let from = input.from_unanswered.clone();
    let warnings = blocking(move || {
        kb.edit(|k| {
            let pos = k
                .entries
                .iter()
                .position(|e| e.intent == entry_id)
                .ok_or_else(|| ApiError::not_found(format!("no entry {entry_id:?}")))?;
            if let Some(v) = &input.version
                && *v != version(&k.entries[pos])
            {
                return Err(ApiError {
                    entry: Some(entry_id.clone()),
                    ..ApiError::new(
                        StatusCode::CONFLICT,
                        "stale",
                        format!(
                            "entry {entry_id:?} was changed by someone else since you opened it; \
                             reopen it and edit again"
                        ),
                    )
                });
            }
            let e = checked_entry(k, &entry_id, &input)?;
            let warnings = check_phrases(&kb.rules, &e)?;
            k.entries[pos] = e;
            Ok(warnings)
        })
    })
    .await?;
    let forgotten = forget_unanswered(&s, &from);
    tracing::info!(agent = %agent.name, entry = %id, forgotten, "knowledge entry edited");
    Ok(saved(StatusCode::OK, &s.kb, &id, &warnings))
}

async fn remove(
    State(s): State<KState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult {
    let agent = gate(&s, &headers).await?;
    let kb = s.kb.clone();
    let entry_id = id.clone();
    blocking(move || {
        kb.edit(|k| {
            let before = k.entries.len();
            k.entries.retain(|e| e.intent != entry_id);
            if k.entries.len() == before {
                return Err(ApiError::not_found(format!("no entry {entry_id:?}")));
            }
            if k.entries.len() < 2 {
                return Err(ApiError::invalid(
                    None,
                    "the bot needs at least two entries; add another before deleting this one",
                ));
            }
            Ok(())
        })
    })
    .await?;
    tracing::info!(agent = %agent.name, entry = %id, "knowledge entry deleted");
    let (_, revision) = s.kb.live.knowledge();
    Ok(Json(json!({"deleted": id, "revision": revision, "retrain_needed": true})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhrasingsInput {
    texts: Vec<String>,
    /// The texts are unanswered questions: forget them once they are added.
    #[serde(default)]
    from_unanswered: bool,
}

async fn add_phrasings(
    State(s): State<KState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    input: Result<Json<PhrasingsInput>, JsonRejection>,
) -> ApiResult {
    let agent = gate(&s, &headers).await?;
    let input = body(input)?;
    if input.texts.is_empty() {
        return Err(ApiError::invalid(Some("texts"), "no phrasing given"));
    }
    let kb = s.kb.clone();
    let entry_id = id.clone();
    let texts = input.texts.clone();
    let added = blocking(move || {
        kb.edit(|k| {
            let mut checked = Vec::new();
            for t in &texts {
                let t = check_phrasing(t)?;
                if let Some(owner) = phrasing_owner(k, &t, Some(&entry_id)) {
                    return Err(in_use(&t, owner));
                }
                checked.push(t);
            }
            let e = k
                .entries
                .iter_mut()
                .find(|e| e.intent == entry_id)
                .ok_or_else(|| ApiError::not_found(format!("no entry {entry_id:?}")))?;
            let mut added = 0;
            for t in checked {
                let n = normalise(&t);
                if !e.questions.iter().any(|q| normalise(q) == n) {
                    e.questions.push(t);
                    added += 1;
                }
            }
            if e.questions.len() > MAX_PHRASINGS {
                return Err(ApiError::invalid(
                    Some("texts"),
                    format!("an entry has at most {MAX_PHRASINGS} phrasings"),
                ));
            }
            Ok(added)
        })
    })
    .await?;
    let forgotten = if input.from_unanswered {
        forget_unanswered(&s, &input.texts)
    } else {
        0
    };
    tracing::info!(agent = %agent.name, entry = %id, added, forgotten, "phrasings added");
    Ok(saved(StatusCode::OK, &s.kb, &id, &[]))
}

#[derive(Debug, Deserialize)]
struct PhrasingQuery {
    text: String,
}

async fn remove_phrasing(
    State(s): State<KState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<PhrasingQuery>,
) -> ApiResult {
    let agent = gate(&s, &headers).await?;
    let kb = s.kb.clone();
    let entry_id = id.clone();
    blocking(move || {
        kb.edit(|k| {
            let e = k
                .entries
                .iter_mut()
                .find(|e| e.intent == entry_id)
                .ok_or_else(|| ApiError::not_found(format!("no entry {entry_id:?}")))?;
            let pos = e
                .questions
                .iter()
                .position(|p| p == &q.text || normalise(p) == normalise(&q.text))
                .ok_or_else(|| {
                    ApiError::not_found(format!("entry {entry_id:?} has no phrasing {:?}", q.text))
                })?;
            if e.questions.len() == 1 {
                return Err(ApiError::invalid(
                    Some("phrasings"),
                    "an entry keeps at least one phrasing; delete the entry instead",
                ));
            }
            e.questions.remove(pos);
            Ok(())
        })
    })
    .await?;
    tracing::info!(agent = %agent.name, entry = %id, "phrasing removed");
    Ok(saved(StatusCode::OK, &s.kb, &id, &[]))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TextsInput {
    texts: Vec<String>,
}

async fn out_of_scope(
    State(s): State<KState>,
    headers: HeaderMap,
    input: Result<Json<TextsInput>, JsonRejection>,
) -> ApiResult {
    let agent = gate(&s, &headers).await?;
    let input = body(input)?;
    if input.texts.is_empty() {
        return Err(ApiError::invalid(Some("texts"), "no question given"));
    }
    let kb = s.kb.clone();
    let texts = input.texts.clone();
    blocking(move || {
        kb.edit(|k| {
            for t in &texts {
                let t = check_phrasing(t)?;
                match phrasing_owner(k, &t, None) {
                    Some(o) if o == OUT_OF_SCOPE => {}
                    Some(o) => return Err(in_use(&t, o)),
                    None => k.out_of_scope.push(t),
                }
            }
            Ok(())
        })
    })
    .await?;
    let forgotten = forget_unanswered(&s, &input.texts);
    tracing::info!(agent = %agent.name, forgotten, "out-of-scope questions added");
    let (k, revision) = s.kb.live.knowledge();
    Ok(Json(json!({
        "out_of_scope": k.out_of_scope,
        "revision": revision,
        "retrain_needed": true,
    }))
    .into_response())
}

/// Where training stands, with the counts a supervisor checks.
fn status_body(s: &KState) -> serde_json::Value {
    let st = s.kb.live.status();
    let (k, _) = s.kb.live.knowledge();
    let state = if st.training {
        "training"
    } else if st.last_error.is_some() {
        "failed"
    } else {
        "ready"
    };
    let request =
        s.kb.retrain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
    let tenant = s.engine.tenant();
    json!({
        "state": state,
        "training": st.training,
        "serving_revision": st.serving_revision,
        "knowledge_revision": st.knowledge_revision,
        "untrained_edits": st.knowledge_revision != st.serving_revision,
        "last_error": st.last_error,
        "last_train_secs": st.last_train_secs,
        "last_request": request,
        "counts": {
            "entries": k.entries.len(),
            "phrasings": k.entries.iter().map(|e| e.questions.len()).sum::<usize>(),
            "out_of_scope": k.out_of_scope.len(),
            "serving_intents": s.kb.live.bot().classifier().labels().len(),
            "unanswered": s.kb.live.unanswered().questions(tenant).len(),
        },
        "saved_to": s.kb.file.as_ref().map(|f| f.display().to_string()),
        "model_saved": s.kb.model.as_ref().is_some_and(|m| m.exists()),
        "tenant": tenant,
    })
}

async fn status(State(s): State<KState>, headers: HeaderMap) -> ApiResult {
    gate(&s, &headers).await?;
    Ok(Json(status_body(&s)).into_response())
}

async fn retrain(State(s): State<KState>, headers: HeaderMap) -> ApiResult {
    let agent = gate(&s, &headers).await?;
    let revision = s.kb.live.retrain();
    *s.kb.retrain.lock().unwrap_or_else(|e| e.into_inner()) = Some(RetrainRequest {
        at: Utc::now(),
        by: agent.name.clone(),
        revision,
    });
    tracing::info!(agent = %agent.name, revision, "retrain started");
    Ok((StatusCode::ACCEPTED, Json(status_body(&s))).into_response())
}

async fn unanswered(State(s): State<KState>, headers: HeaderMap) -> ApiResult {
    gate(&s, &headers).await?;
    let log = s.kb.live.unanswered().clone();
    let tenant = s.engine.tenant().clone();
    let (total, mut clusters) = blocking(move || {
        Ok((
            log.questions(&tenant).len(),
            log.clusters(&tenant, CLUSTER_SIMILARITY),
        ))
    })
    .await?;
    let groups = clusters.len();
    clusters.truncate(MAX_CLUSTERS);
    // Which entry already trains each example (an edit since it was asked may cover it).
    let (k, _) = s.kb.live.knowledge();
    let owners: HashMap<String, String> = clusters
        .iter()
        .flat_map(|c| c.examples.iter())
        .filter_map(|t| phrasing_owner(&k, t, None).map(|o| (t.clone(), o)))
        .collect();
    Ok(Json(json!({
        "clusters": clusters,
        "groups": groups,
        "questions": total,
        "covered": owners,
    }))
    .into_response())
}

async fn dismiss(
    State(s): State<KState>,
    headers: HeaderMap,
    input: Result<Json<TextsInput>, JsonRejection>,
) -> ApiResult {
    let agent = gate(&s, &headers).await?;
    let input = body(input)?;
    let removed = forget_unanswered(&s, &input.texts);
    tracing::info!(agent = %agent.name, removed, "unanswered questions dismissed");
    Ok(Json(json!({"removed": removed})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knowledge() -> Knowledge {
        cs_bot::parse_knowledge(
            "Intent: hours\nQ: when are you open\nA: 9 to 21.\n\n\
             Intent: size\nQ: which size should I take\nA: See the chart.\n\n\
             Intent: oos\nQ: tell me a joke\n",
        )
        .unwrap()
    }

    fn input(phrasings: &[&str], zh: Option<&str>, en: Option<&str>) -> EntryInput {
        EntryInput {
            id: None,
            phrasings: phrasings.iter().map(|s| s.to_string()).collect(),
            answer_zh: zh.map(Into::into),
            answer_en: en.map(Into::into),
            skills: vec![],
            from_unanswered: vec![],
            version: None,
        }
    }

    #[test]
    fn entries_are_checked_with_reasons() {
        let k = knowledge();
        let ok = checked_entry(
            &k,
            "gift",
            &input(&[" gift  cards? ", "Gift cards"], None, Some(" Yes. ")),
        )
        .unwrap();
        assert_eq!(ok.questions, ["gift cards?"], "trimmed, duplicates dropped");
        assert_eq!(ok.answer_en.as_deref(), Some("Yes."));
        let err = |id: &str, i: EntryInput| checked_entry(&k, id, &i).unwrap_err();
        let e = err("gift", input(&["gift"], Some("  "), None));
        assert_eq!((e.code, e.field), ("invalid_input", Some("answer")));
        let e = err("gift card", input(&["gift"], None, Some("a")));
        assert_eq!(e.field, Some("id"));
        let e = err("oos", input(&["gift"], None, Some("a")));
        assert_eq!(e.field, Some("id"));
        let e = err("gift", input(&["When are you OPEN?"], None, Some("a")));
        assert_eq!(
            (e.code, e.entry.as_deref()),
            ("phrasing_in_use", Some("hours"))
        );
        let e = err("gift", input(&["tell me a joke"], None, Some("a")));
        assert_eq!(e.entry.as_deref(), Some(OUT_OF_SCOPE));
        let e = err("gift", input(&["  ", "?!"], None, Some("a")));
        assert_eq!(e.field, Some("phrasings"));
        // An entry's own phrasings are not a conflict when it is edited.
        assert!(
            checked_entry(&k, "hours", &input(&["when are you open"], None, Some("a"))).is_ok()
        );
    }

    #[test]
    fn edits_rewrite_the_operators_file_keeping_its_first_version() {
        let dir = std::env::temp_dir().join(format!("omnidesk-kb-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let faq = dir.join("faq.txt");
        let original = "# ours, with a comment\nIntent: hours\nQ: when are you open\nA: 9 to 21.\n\n\
                        Intent: size\nQ: which size should I take\nA: See the chart.\n";
        std::fs::write(&faq, original).unwrap();
        let config = crate::Config {
            faq: Some(faq.clone()),
            database: PathBuf::from(":memory:"),
            ..crate::Config::default()
        };
        let paths = KnowledgePaths::for_config(&config);
        let live = LiveBot::new(paths.load().unwrap(), cs_bot::IntentBot::builder).unwrap();
        let kb = KnowledgeBase::new(live, paths);
        let add = |phrasing: &'static str| {
            kb.edit(|k| {
                k.entries[0].questions.push(phrasing.into());
                Ok(())
            })
        };
        add("opening hours").unwrap();
        add("are you open on sunday").unwrap();
        let orig = std::fs::read_to_string(dir.join("faq.txt.orig")).unwrap();
        assert_eq!(orig, original, "the first version is kept once");
        let saved = cs_bot::parse_knowledge(&std::fs::read_to_string(&faq).unwrap()).unwrap();
        assert_eq!(saved, kb.live().knowledge().0);
        assert_eq!(saved.entries[0].questions.len(), 3);
        // A refused edit leaves the file and the bot as they were.
        let before = std::fs::read_to_string(&faq).unwrap();
        let refused = kb.edit(|_| -> ApiResult<()> { Err(ApiError::invalid(None, "no")) });
        assert!(refused.is_err());
        assert_eq!(std::fs::read_to_string(&faq).unwrap(), before);
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn paths_follow_the_configuration() {
        let mut c = crate::Config {
            database: PathBuf::from("/tmp/x/desk.db"),
            ..crate::Config::default()
        };
        let p = KnowledgePaths::for_config(&c);
        assert_eq!(p.file, Some(PathBuf::from("/tmp/x/desk.db.knowledge.txt")));
        assert!(!p.configured);
        c.faq = Some(PathBuf::from("/srv/faq.txt"));
        let p = KnowledgePaths::for_config(&c);
        assert_eq!(p.model, Some(PathBuf::from("/srv/faq.txt.model")));
        assert!(p.configured);
        c.faq = None;
        c.database = PathBuf::from(":memory:");
        assert_eq!(KnowledgePaths::for_config(&c).file, None);
    }
}
