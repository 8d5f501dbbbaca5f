//! The policy's settings: what a desk configures, with defaults, validation, and the serde shape
//! a config file uses (humane durations such as `"30s"`, see [`super::duration`]).

use std::time::Duration;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::duration;
use crate::error::{Error, Result};

/// One relaxation an overflow ring applies to a task's requirements. Every relaxation only widens
/// the set of eligible agents. In a config file: `{ lower_levels = 2 }`, `{ drop_skill =
/// "refunds" }`, `"primary_only"`, `"any_skill"`, `"any_language"`, `{ add_team = "logistics" }`,
/// `"any_team"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Relax {
    /// Lowers every minimum level by this much (never below 1).
    LowerLevels(u8),
    /// Drops the requirement on this skill.
    DropSkill(String),
    /// Keeps only the first (primary) required skill.
    PrimaryOnly,
    /// Drops every skill requirement. With [`Relax::AnyLanguage`] and [`Relax::AnyTeam`] the
    /// task reaches any online agent with a free slot for its medium (the last ring of a desk
    /// where no conversation may be stranded).
    AnySkill,
    /// Drops the language requirement.
    AnyLanguage,
    /// Also accepts agents of this (backup) team.
    AddTeam(String),
    /// Accepts agents of any team.
    AnyTeam,
}

/// An overflow ring: after a task has waited `after`, its requirements relax by `relax`. Rings
/// are cumulative (ring 2 applies ring 1's relaxations too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverflowRing {
    /// How long after enqueueing the ring applies.
    #[serde(with = "duration")]
    pub after: Duration,
    /// What it relaxes.
    pub relax: Vec<Relax>,
}

impl OverflowRing {
    /// A ring applying `relax` after `after`.
    pub fn new(after: Duration, relax: impl IntoIterator<Item = Relax>) -> Self {
        Self {
            after,
            relax: relax.into_iter().collect(),
        }
    }
}

/// An elastic pool: agents of `team` take new tasks only while the queue is deep or old.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyPool {
    /// The team whose agents are on standby.
    pub team: String,
    /// The pool joins when at least this many tasks wait (default 5)...
    #[serde(default = "StandbyPool::default_depth")]
    pub depth: usize,
    /// ...or when the oldest waiting task has waited this long (default 2 minutes).
    #[serde(with = "duration", default = "StandbyPool::default_oldest_wait")]
    pub oldest_wait: Duration,
}

impl StandbyPool {
    /// The pool of `team`'s agents, joining when 5 tasks wait or the oldest has waited 2
    /// minutes.
    pub fn new(team: impl Into<String>) -> Self {
        Self {
            team: team.into(),
            depth: Self::default_depth(),
            oldest_wait: Self::default_oldest_wait(),
        }
    }

    fn default_depth() -> usize {
        5
    }

    fn default_oldest_wait() -> Duration {
        Duration::from_secs(120)
    }
}

/// Offers instead of direct assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reservations {
    /// How long an agent has to accept an offer (default 30 seconds).
    #[serde(with = "duration")]
    pub offer_timeout: Duration,
    /// After this many offers in a row time out, the agent is set away (default 3).
    pub max_missed: u32,
}

impl Default for Reservations {
    /// Offers time out after 30 seconds; three missed in a row set the agent away.
    fn default() -> Self {
        Self {
            offer_timeout: Duration::from_secs(30),
            max_missed: 3,
        }
    }
}

/// Whether new tasks meet the bot first. In a config file: `"off"`, `"always"` or `{ above_depth
/// = 20 }`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BotFirst {
    /// Tasks go straight to the queue.
    #[default]
    Off,
    /// Every new task goes to the bot first ([`crate::Decision::ToBot`]); the engine enqueues it
    /// again when the bot hands over, and then it is queued.
    Always,
    /// A new task goes to the bot first when at least this many tasks already wait.
    AboveDepth(usize),
}

/// The routing policy of [`crate::SkillRouter`] and [`crate::NaiveRouter`]. Build it with
/// [`RoutingPolicyBuilder`], or read it from a config file (serde; every field may be left out,
/// durations are written `"30s"`, `"2m"`, `"1h"`, `"500ms"`, and the policy is validated as
/// [`RoutingPolicy::validate`] does):
///
/// ```
/// # use std::time::Duration;
/// use cs_routing::{BotFirst, Relax, RoutingPolicy};
///
/// let policy: RoutingPolicy = toml::from_str(r#"
///     aging_step = "5m"          # default "5m": one priority band is worth 5 minutes of waiting
///     vip_bonus = 1              # default 1: bands a VIP customer's task gains
///     sticky_wait = "2m"         # default "0s": how long a task waits for the customer's last agent
///     bot_first = "off"          # default "off"; or "always", or { above_depth = 20 }
///
///     [[rings]]                  # default none; cumulative, by increasing `after`
///     after = "30s"
///     relax = [{ lower_levels = 2 }, "any_language"]
///
///     [[rings]]
///     after = "2m"
///     relax = ["any_skill", "any_team"]   # any agent with a free slot
///
///     [standby]                  # default none
///     team = "standby"
///     depth = 5                  # default 5: joins when this many wait...
///     oldest_wait = "2m"         # default "2m": ...or the oldest has waited this long
///
///     [reservations]             # default none (assign directly); offers when present
///     offer_timeout = "30s"      # default "30s"
///     max_missed = 3             # default 3: missed in a row set the agent away
/// "#).unwrap();
/// assert_eq!(policy.sticky_wait, Duration::from_secs(120));
/// assert_eq!(policy.rings[1].relax, [Relax::AnySkill, Relax::AnyTeam]);
/// assert_eq!(policy.bot_first, BotFirst::Off);
/// assert_eq!(toml::from_str::<RoutingPolicy>("").unwrap(), RoutingPolicy::default());
/// assert!(toml::from_str::<RoutingPolicy>("[[rings]]\nafter = 30\nrelax = []").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutingPolicy {
    /// How much waiting one priority band is worth (see the module docs).
    #[serde(with = "duration")]
    pub aging_step: Duration,
    /// Bands a VIP customer's task gains.
    pub vip_bonus: u8,
    /// How long a task waits for its preferred agent before any eligible agent may take it.
    #[serde(with = "duration")]
    pub sticky_wait: Duration,
    /// Overflow rings, by increasing `after`.
    pub rings: Vec<OverflowRing>,
    /// The standby pool, if any.
    pub standby: Option<StandbyPool>,
    /// Offers with accept/reject/time-out; `None` assigns directly.
    pub reservations: Option<Reservations>,
    /// Bot-first reception.
    pub bot_first: BotFirst,
}

impl Default for RoutingPolicy {
    /// Aging step 5 minutes, VIP bonus 1 band, no sticky wait, no rings, no standby pool, direct
    /// assignment (no offers), no bot-first reception.
    fn default() -> Self {
        Self {
            aging_step: Duration::from_secs(300),
            vip_bonus: 1,
            sticky_wait: Duration::ZERO,
            rings: Vec::new(),
            standby: None,
            reservations: None,
            bot_first: BotFirst::Off,
        }
    }
}

/// Builds a [`RoutingPolicy`].
#[derive(Debug, Clone, Default)]
pub struct RoutingPolicyBuilder {
    policy: RoutingPolicy,
}

impl RoutingPolicyBuilder {
    /// Starts from the default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// How much waiting one priority band is worth (default 5 minutes).
    pub fn with_aging_step(mut self, step: Duration) -> Self {
        self.policy.aging_step = step;
        self
    }

    /// Bands a VIP customer's task gains (default 1).
    pub fn with_vip_bonus(mut self, bands: u8) -> Self {
        self.policy.vip_bonus = bands;
        self
    }

    /// How long a task waits for its preferred agent (default 0: the preferred agent is only
    /// first choice when free at the moment).
    pub fn with_sticky_wait(mut self, wait: Duration) -> Self {
        self.policy.sticky_wait = wait;
        self
    }

    /// Adds an overflow ring.
    pub fn with_ring(mut self, ring: OverflowRing) -> Self {
        self.policy.rings.push(ring);
        self
    }

    /// Sets the standby pool.
    pub fn with_standby(mut self, pool: StandbyPool) -> Self {
        self.policy.standby = Some(pool);
        self
    }

    /// Makes offers that time out after `offer_timeout`; an agent missing `max_missed` in a row
    /// is set away.
    pub fn with_reservations(mut self, offer_timeout: Duration, max_missed: u32) -> Self {
        self.policy.reservations = Some(Reservations {
            offer_timeout,
            max_missed,
        });
        self
    }

    /// Bot-first reception.
    pub fn with_bot_first(mut self, bot_first: BotFirst) -> Self {
        self.policy.bot_first = bot_first;
        self
    }

    /// Checks and returns the policy.
    ///
    /// # Errors
    /// As [`RoutingPolicy::validate`].
    pub fn build(self) -> Result<RoutingPolicy> {
        self.policy.validate()?;
        Ok(self.policy)
    }
}

impl RoutingPolicy {
    /// Checks the policy (the builder and deserialization do).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when rings are not in strictly increasing order of `after`, a
    /// duration does not fit in milliseconds, the standby pool has no team, the offer time-out
    /// is zero or `max_missed` is 0.
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: &str| {
            Err(Error::InvalidInput {
                reason: reason.into(),
            })
        };
        let mut last = None;
        for ring in &self.rings {
            if last.is_some_and(|l| ring.after <= l) {
                return invalid("overflow rings must have strictly increasing `after`");
            }
            last = Some(ring.after);
        }
        let mut all = vec![self.aging_step, self.sticky_wait];
        all.extend(self.rings.iter().map(|r| r.after));
        if let Some(s) = &self.standby {
            if s.team.is_empty() {
                return invalid("the standby pool needs a team");
            }
            all.push(s.oldest_wait);
        }
        if let Some(r) = self.reservations {
            if r.offer_timeout.is_zero() || r.max_missed == 0 {
                return invalid("offers need a time-out above 0 and max_missed of at least 1");
            }
            all.push(r.offer_timeout);
        }
        if all.iter().any(|d| d.as_millis() > (i64::MAX / 8) as u128) {
            return invalid("durations must fit in milliseconds");
        }
        Ok(())
    }
}

/// What a config file may say: every field of [`RoutingPolicy`], each optional.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PolicyFile {
    #[serde(with = "duration")]
    aging_step: Duration,
    vip_bonus: u8,
    #[serde(with = "duration")]
    sticky_wait: Duration,
    rings: Vec<OverflowRing>,
    standby: Option<StandbyPool>,
    reservations: Option<Reservations>,
    bot_first: BotFirst,
}

impl Default for PolicyFile {
    fn default() -> Self {
        let RoutingPolicy {
            aging_step,
            vip_bonus,
            sticky_wait,
            rings,
            standby,
            reservations,
            bot_first,
        } = RoutingPolicy::default();
        Self {
            aging_step,
            vip_bonus,
            sticky_wait,
            rings,
            standby,
            reservations,
            bot_first,
        }
    }
}

impl<'de> Deserialize<'de> for RoutingPolicy {
    /// Reads the shape of the [`RoutingPolicy`] example (every field optional) and validates it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let PolicyFile {
            aging_step,
            vip_bonus,
            sticky_wait,
            rings,
            standby,
            reservations,
            bot_first,
        } = PolicyFile::deserialize(deserializer)?;
        let policy = Self {
            aging_step,
            vip_bonus,
            sticky_wait,
            rings,
            standby,
            reservations,
            bot_first,
        };
        policy.validate().map_err(D::Error::custom)?;
        Ok(policy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> RoutingPolicy {
        RoutingPolicyBuilder::new()
            .with_aging_step(Duration::from_secs(90))
            .with_vip_bonus(2)
            .with_sticky_wait(Duration::from_millis(1_500))
            .with_ring(OverflowRing::new(
                Duration::from_secs(30),
                [
                    Relax::LowerLevels(2),
                    Relax::DropSkill("refunds".into()),
                    Relax::AddTeam("logistics".into()),
                ],
            ))
            .with_ring(OverflowRing::new(
                Duration::from_secs(3_600),
                [
                    Relax::PrimaryOnly,
                    Relax::AnySkill,
                    Relax::AnyLanguage,
                    Relax::AnyTeam,
                ],
            ))
            .with_standby(StandbyPool::new("standby"))
            .with_reservations(Duration::from_secs(20), 2)
            .with_bot_first(BotFirst::AboveDepth(10))
            .build()
            .unwrap()
    }

    /// What serializes reads back the same, with durations as people write them.
    #[test]
    fn round_trips_with_humane_durations() {
        let policy = full();
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json["aging_step"], "1m30s");
        assert_eq!(json["sticky_wait"], "1s500ms");
        assert_eq!(json["rings"][1]["after"], "1h");
        assert_eq!(json["standby"]["oldest_wait"], "2m");
        assert_eq!(json["reservations"]["offer_timeout"], "20s");
        assert_eq!(json["bot_first"]["above_depth"], 10);
        let back: RoutingPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, policy);
    }

    /// Left-out fields take the documented defaults, in the policy and in its parts.
    #[test]
    fn fills_in_defaults() {
        let policy: RoutingPolicy = toml::from_str(
            r#"
            bot_first = "always"
            [standby]
            team = "standby"
            [reservations]
            "#,
        )
        .unwrap();
        let expected = RoutingPolicy {
            standby: Some(StandbyPool::new("standby")),
            reservations: Some(Reservations::default()),
            bot_first: BotFirst::Always,
            ..RoutingPolicy::default()
        };
        assert_eq!(policy, expected);
        assert_eq!(
            Reservations::default(),
            Reservations {
                offer_timeout: Duration::from_secs(30),
                max_missed: 3
            }
        );
    }

    /// A config the builder would refuse is refused when read, with the reason; so are typos.
    #[test]
    fn validates_what_it_reads() {
        for (text, reason) in [
            (
                "[[rings]]\nafter = \"2m\"\nrelax = []\n[[rings]]\nafter = \"1m\"\nrelax = []",
                "strictly increasing",
            ),
            ("[reservations]\noffer_timeout = \"0s\"", "time-out above 0"),
            ("[reservations]\nmax_missed = 0", "max_missed"),
            ("[standby]\nteam = \"\"", "needs a team"),
            ("[standby]\ndepth = 3", "missing field `team`"),
            ("aging_stepp = \"5m\"", "unknown field"),
            ("sticky_wait = \"2 minutes\"", "invalid duration"),
            ("sticky_wait = 120", "a duration such as"),
            ("bot_first = \"sometimes\"", "unknown variant"),
            (
                "[[rings]]\nafter = \"1m\"\nrelax = [\"everything\"]",
                "unknown variant",
            ),
        ] {
            let e = toml::from_str::<RoutingPolicy>(text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(reason), "{text:?}: {e}");
        }
    }
}
