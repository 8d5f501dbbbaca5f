//! Proving a phone number before the bot shows the orders placed with it: a six-digit one-time
//! code texted to the number, which expires, allows few attempts and is sent a few times at most.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use cs_core::{Clock, CustomerId, SystemClock, TenantId};

use crate::shop::same_phone;

/// How one-time codes behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodePolicy {
    /// How long a code works (default 5 minutes).
    pub ttl: Duration,
    /// Wrong answers before the code stops working (default 3).
    pub max_attempts: u8,
    /// Codes sent to one customer within [`CodePolicy::send_window`] (default 3), so the bot
    /// cannot be used to flood someone's phone.
    pub max_sends: u8,
    /// The window [`CodePolicy::max_sends`] counts in (default 1 hour).
    pub send_window: Duration,
    /// How long the bot itself remembers a proven number (default 24 hours); the engine also
    /// links it to the customer as a verified identity, which lasts.
    pub remember: Duration,
}

impl Default for CodePolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::minutes(5),
            max_attempts: 3,
            max_sends: 3,
            send_window: Duration::hours(1),
            remember: Duration::hours(24),
        }
    }
}

/// What became of an answer to a code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeCheck {
    /// Right: the customer proved this phone number.
    Verified {
        /// The number.
        phone: String,
    },
    /// Wrong; this many attempts are left.
    Wrong {
        /// Attempts left.
        attempts_left: u8,
    },
    /// Wrong too many times: the code no longer works.
    TooManyAttempts,
    /// The code expired.
    Expired,
    /// No code is outstanding for this customer.
    NoCode,
}

/// A code to text to a phone number. The engine sends it through an SMS channel, straight to
/// the number, never into the conversation. `Debug` hides the text (it holds the code).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PhoneCode {
    /// The number to text, as the customer wrote it.
    pub phone: String,
    /// The SMS text, with the code.
    pub text: String,
}

impl fmt::Debug for PhoneCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneCode")
            .field("phone", &self.phone)
            .field("text", &"***")
            .finish()
    }
}

#[derive(Debug, Clone)]
struct Challenge {
    phone: String,
    code: String,
    expires_at: DateTime<Utc>,
    attempts: u8,
}

#[derive(Debug, Default)]
struct Entry {
    challenge: Option<Challenge>,
    sends: Vec<DateTime<Utc>>,
    proven: Vec<(String, DateTime<Utc>)>,
    seen_at: Option<DateTime<Utc>>,
}

/// One-time codes per customer: issues six-digit codes, checks answers (in constant time),
/// expires them, limits attempts and sends, and remembers the numbers customers proved.
///
/// ```
/// use cs_bot::{CodeCheck, PhoneCodes};
/// use cs_core::{CustomerId, TenantId};
///
/// let codes = PhoneCodes::new();
/// let (t, c) = (TenantId::default(), CustomerId::new());
/// let code = codes.issue(&t, c, "13800138000").expect("first code");
/// assert_eq!(code.len(), 6);
/// assert!(matches!(codes.check(&t, c, "000000x"), CodeCheck::Wrong { .. }));
/// assert_eq!(
///     codes.check(&t, c, &code),
///     CodeCheck::Verified { phone: "13800138000".into() }
/// );
/// assert_eq!(codes.proven(&t, c), vec!["13800138000".to_owned()]);
/// ```
pub struct PhoneCodes {
    policy: CodePolicy,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    customers: HashMap<(TenantId, CustomerId), Entry>,
    /// Codes sent to each number ([`crate::phone_key`]), whoever asked: the same limit holds
    /// per number, so many new visitors cannot flood one phone either.
    phones: HashMap<String, Vec<DateTime<Utc>>>,
}

impl fmt::Debug for PhoneCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneCodes")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Default for PhoneCodes {
    fn default() -> Self {
        Self::new()
    }
}

impl PhoneCodes {
    /// Codes with the default [`CodePolicy`] on the system clock.
    pub fn new() -> Self {
        Self {
            policy: CodePolicy::default(),
            clock: Arc::new(SystemClock),
            state: Mutex::new(State::default()),
        }
    }

    /// With this policy.
    pub fn with_policy(mut self, policy: CodePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// With this clock (tests use [`cs_core::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &CodePolicy {
        &self.policy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new code for `customer` to prove `phone` (replacing any earlier code), or `None` when
    /// the customer, or the number, was sent [`CodePolicy::max_sends`] codes within the window
    /// already.
    pub fn issue(&self, tenant: &TenantId, customer: CustomerId, phone: &str) -> Option<String> {
        let now = self.clock.now();
        let window = self.policy.send_window;
        let max = usize::from(self.policy.max_sends);
        let mut guard = self.lock();
        let state = &mut *guard;
        if state.customers.len() > 4096 {
            let keep = self.policy.remember.max(window);
            state
                .customers
                .retain(|_, e| e.seen_at.is_some_and(|t| now - t < keep));
        }
        if state.phones.len() > 4096 {
            state
                .phones
                .retain(|_, sends| sends.iter().any(|t| now - *t < window));
        }
        let key = crate::shop::phone_key(phone).unwrap_or_else(|| phone.to_owned());
        let to_phone = state.phones.entry(key).or_default();
        to_phone.retain(|t| now - *t < window);
        let entry = state
            .customers
            .entry((tenant.clone(), customer))
            .or_default();
        entry.seen_at = Some(now);
        entry.sends.retain(|t| now - *t < window);
        if entry.sends.len() >= max || to_phone.len() >= max {
            return None;
        }
        entry.sends.push(now);
        to_phone.push(now);
        let code = format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000);
        entry.challenge = Some(Challenge {
            phone: phone.to_owned(),
            code: code.clone(),
            expires_at: now + self.policy.ttl,
            attempts: 0,
        });
        Some(code)
    }

    /// The number an outstanding (unexpired, not locked) code was sent to.
    pub fn pending(&self, tenant: &TenantId, customer: CustomerId) -> Option<String> {
        let now = self.clock.now();
        self.lock()
            .customers
            .get(&(tenant.clone(), customer))
            .and_then(|e| e.challenge.as_ref())
            .filter(|c| now < c.expires_at && c.attempts < self.policy.max_attempts)
            .map(|c| c.phone.clone())
    }

    /// Whether the customer has a code out, expired or not (an answer to it gets checked).
    pub fn awaiting(&self, tenant: &TenantId, customer: CustomerId) -> bool {
        self.lock()
            .customers
            .get(&(tenant.clone(), customer))
            .is_some_and(|e| e.challenge.is_some())
    }

    /// Checks the customer's answer. A right answer proves the number and uses the code up; a
    /// wrong one counts against [`CodePolicy::max_attempts`].
    pub fn check(&self, tenant: &TenantId, customer: CustomerId, answer: &str) -> CodeCheck {
        let now = self.clock.now();
        let mut state = self.lock();
        let Some(entry) = state.customers.get_mut(&(tenant.clone(), customer)) else {
            return CodeCheck::NoCode;
        };
        entry.seen_at = Some(now);
        let Some(challenge) = entry.challenge.as_mut() else {
            return CodeCheck::NoCode;
        };
        if now >= challenge.expires_at {
            entry.challenge = None;
            return CodeCheck::Expired;
        }
        if challenge.attempts >= self.policy.max_attempts {
            entry.challenge = None;
            return CodeCheck::TooManyAttempts;
        }
        if constant_time_eq(answer.trim().as_bytes(), challenge.code.as_bytes()) {
            let phone = challenge.phone.clone();
            entry.challenge = None;
            entry.proven.retain(|(p, _)| !same_phone(p, &phone));
            entry.proven.push((phone.clone(), now));
            return CodeCheck::Verified { phone };
        }
        challenge.attempts += 1;
        let left = self.policy.max_attempts - challenge.attempts;
        if left == 0 {
            entry.challenge = None;
            return CodeCheck::TooManyAttempts;
        }
        CodeCheck::Wrong {
            attempts_left: left,
        }
    }

    /// The numbers the customer proved with a code within [`CodePolicy::remember`].
    pub fn proven(&self, tenant: &TenantId, customer: CustomerId) -> Vec<String> {
        let now = self.clock.now();
        self.lock()
            .customers
            .get(&(tenant.clone(), customer))
            .map(|e| {
                e.proven
                    .iter()
                    .filter(|(_, at)| now - *at < self.policy.remember)
                    .map(|(p, _)| p.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A phone number with its middle hidden (`138****8000`), to tell the customer where a code
/// went without repeating the whole number.
pub(crate) fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "****".into();
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// A six-digit answer (full-width digits and spaces allowed), as the code it may be.
pub(crate) fn code_answer(text: &str) -> Option<String> {
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c as u32 {
            0xFF10..=0xFF19 => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cs_core::ManualClock;

    fn codes() -> (PhoneCodes, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        (PhoneCodes::new().with_clock(clock.clone()), clock)
    }

    #[test]
    fn a_code_expires() {
        let (codes, clock) = codes();
        let (t, c) = (TenantId::default(), CustomerId::new());
        let code = codes.issue(&t, c, "13800138000").unwrap();
        assert_eq!(codes.pending(&t, c).as_deref(), Some("13800138000"));
        clock.advance(Duration::minutes(5));
        assert_eq!(codes.pending(&t, c), None);
        assert_eq!(codes.check(&t, c, &code), CodeCheck::Expired);
        assert_eq!(codes.check(&t, c, &code), CodeCheck::NoCode);
        assert!(codes.proven(&t, c).is_empty());
    }

    #[test]
    fn wrong_answers_are_limited_and_sends_too() {
        let (codes, _) = codes();
        let (t, c) = (TenantId::default(), CustomerId::new());
        let code = codes.issue(&t, c, "13800138000").unwrap();
        let wrong = if code == "111111" { "222222" } else { "111111" };
        assert_eq!(
            codes.check(&t, c, wrong),
            CodeCheck::Wrong { attempts_left: 2 }
        );
        assert_eq!(
            codes.check(&t, c, wrong),
            CodeCheck::Wrong { attempts_left: 1 }
        );
        assert_eq!(codes.check(&t, c, wrong), CodeCheck::TooManyAttempts);
        assert_eq!(
            codes.check(&t, c, &code),
            CodeCheck::NoCode,
            "the right code no longer works"
        );
        assert!(codes.issue(&t, c, "13800138000").is_some());
        assert!(codes.issue(&t, c, "13800138000").is_some());
        assert!(
            codes.issue(&t, c, "13800138000").is_none(),
            "three sends an hour"
        );
        let other = CustomerId::new();
        assert!(
            codes.issue(&t, other, "+86 138 0013 8000").is_none(),
            "nor three to one number, whoever asks"
        );
        assert!(codes.issue(&t, other, "13900139000").is_some());
    }

    #[test]
    fn masks_and_reads_answers() {
        assert_eq!(mask_phone("13800138000"), "138****8000");
        assert_eq!(code_answer(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(code_answer("１２３４５６").as_deref(), Some("123456"));
        assert_eq!(code_answer("1234567"), None);
        assert_eq!(code_answer("order 123456"), None);
    }
}
