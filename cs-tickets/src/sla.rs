//! SLA policies on business calendars, and the per-ticket SLA clock.
//!
//! A [`BusinessCalendar`] says when the team works (a time zone, several periods a day, holidays).
//! An [`SlaPolicy`] gives targets (first response, next response, resolution) per priority, counted
//! in business time on its calendar. Each ticket carries an [`SlaClock`]: one [`SlaTimer`] per
//! target, paused while the ticket waits on the customer, with the instant of the warning and of
//! the breach computed whenever the ticket changes. Nothing here reads the wall clock: every
//! transition is given its time, and [`SlaClock::report`] is asked about a given instant.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use cs_core::Priority;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How far [`BusinessCalendar::add`] looks ahead before giving up (ten years of days).
const MAX_DAYS: i64 = 3_660;

/// Working hours: a time zone, periods per weekday (several a day), and holidays.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessCalendar {
    tz: Tz,
    week: [Vec<(NaiveTime, NaiveTime)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// Builds a [`BusinessCalendar`].
#[derive(Debug, Clone)]
pub struct BusinessCalendarBuilder {
    tz: Tz,
    week: [Vec<(NaiveTime, NaiveTime)>; 7],
    holidays: BTreeSet<NaiveDate>,
}

impl BusinessCalendarBuilder {
    /// A calendar in time zone `tz` with no working hours yet.
    pub fn new(tz: Tz) -> Self {
        Self {
            tz,
            week: Default::default(),
            holidays: BTreeSet::new(),
        }
    }

    /// Adds a working period `start..end` (local time) on `day`.
    pub fn with_period(mut self, day: Weekday, start: NaiveTime, end: NaiveTime) -> Self {
        self.week[day.num_days_from_monday() as usize].push((start, end));
        self
    }

    /// Adds a working period `start..end` on Monday to Friday.
    pub fn with_weekday_period(self, start: NaiveTime, end: NaiveTime) -> Self {
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ]
        .into_iter()
        .fold(self, |b, d| b.with_period(d, start, end))
    }

    /// Marks `date` (local) as a holiday: no business time at all that day.
    pub fn with_holiday(mut self, date: NaiveDate) -> Self {
        self.holidays.insert(date);
        self
    }

    /// Checks the periods and builds the calendar.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when a period is empty or periods of a day overlap, or when there
    /// is no working time in the week at all.
    pub fn build(mut self) -> Result<BusinessCalendar> {
        for day in &mut self.week {
            day.sort();
            if day.iter().any(|(s, e)| s >= e) {
                return Err(Error::invalid("a business period must end after it starts"));
            }
            if day.windows(2).any(|w| w[0].1 > w[1].0) {
                return Err(Error::invalid("business periods of a day overlap"));
            }
        }
        if self.week.iter().all(Vec::is_empty) {
            return Err(Error::invalid("a business calendar needs working hours"));
        }
        Ok(BusinessCalendar {
            tz: self.tz,
            week: self.week,
            holidays: self.holidays,
        })
    }
}

impl BusinessCalendar {
    /// Round the clock, every day, in UTC.
    pub fn always() -> Self {
        let midnight = NaiveTime::MIN;
        let end = NaiveTime::from_hms_nano_opt(23, 59, 59, 999_999_999).unwrap_or(midnight);
        Self {
            tz: Tz::UTC,
            week: std::array::from_fn(|_| vec![(midnight, end)]),
            holidays: BTreeSet::new(),
        }
    }

    /// The calendar's time zone.
    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The working intervals (UTC) of local date `day`, in order.
    fn intervals(&self, day: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.holidays.contains(&day) {
            return Vec::new();
        }
        let local = |t: NaiveTime| {
            // A period edge inside a DST gap or overlap takes the earliest valid instant.
            let naive = day.and_time(t);
            self.tz
                .from_local_datetime(&naive)
                .earliest()
                .or_else(|| {
                    self.tz
                        .from_local_datetime(&(naive + Duration::hours(1)))
                        .earliest()
                })
                .map(|d| d.with_timezone(&Utc))
        };
        self.week[day.weekday().num_days_from_monday() as usize]
            .iter()
            .filter_map(|&(s, e)| Some((local(s)?, local(e)?)))
            .filter(|(s, e)| s < e)
            .collect()
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// Whether `at` falls inside business hours.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.intervals(self.local_date(at))
            .iter()
            .any(|&(s, e)| s <= at && at < e)
    }

    /// The first business instant at or after `at` (`at` itself while open), or `None` when
    /// the calendar has none within ten years.
    pub fn next_open(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.add(at, Duration::zero())
    }

    /// Business time between `from` and `to` (zero when `to` is not after `from`).
    pub fn between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let mut total = Duration::zero();
        if to <= from {
            return total;
        }
        let mut day = self.local_date(from);
        let last = self.local_date(to);
        while day <= last {
            for (s, e) in self.intervals(day) {
                let (s, e) = (s.max(from), e.min(to));
                if s < e {
                    total += e - s;
                }
            }
            day = day.succ_opt().unwrap_or(day);
            if day == NaiveDate::MAX {
                break;
            }
        }
        total
    }

    /// The instant when `amount` of business time has passed after `from`, or `None` when the
    /// calendar has no such time within ten years.
    pub fn add(&self, from: DateTime<Utc>, amount: Duration) -> Option<DateTime<Utc>> {
        let mut left = amount;
        let mut day = self.local_date(from);
        for _ in 0..MAX_DAYS {
            for (s, e) in self.intervals(day) {
                let s = s.max(from);
                if s >= e {
                    continue;
                }
                if left <= e - s {
                    return Some(s + left);
                }
                left -= e - s;
            }
            day = day.succ_opt()?;
        }
        None
    }
}

/// One SLA target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaMetric {
    /// From creation to the first public agent reply.
    FirstResponse,
    /// From a customer reply to the next public agent reply.
    NextResponse,
    /// From creation to solved.
    Resolution,
}

impl SlaMetric {
    /// The stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FirstResponse => "first_response",
            Self::NextResponse => "next_response",
            Self::Resolution => "resolution",
        }
    }
}

/// Targets for one priority, in business time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlaTargets {
    /// Time to the first public agent reply.
    pub first_response: Option<Duration>,
    /// Time from a customer reply to the next public agent reply.
    pub next_response: Option<Duration>,
    /// Time to solved.
    pub resolution: Option<Duration>,
}

impl SlaTargets {
    fn get(&self, m: SlaMetric) -> Option<Duration> {
        match m {
            SlaMetric::FirstResponse => self.first_response,
            SlaMetric::NextResponse => self.next_response,
            SlaMetric::Resolution => self.resolution,
        }
    }
}

/// SLA targets per priority (and optionally per customer tier) on a business calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaPolicy {
    name: String,
    calendar: BusinessCalendar,
    targets: BTreeMap<(Option<String>, u8), SlaTargets>,
    warn_before: Duration,
}

/// Builds an [`SlaPolicy`].
#[derive(Debug, Clone)]
pub struct SlaPolicyBuilder {
    policy: SlaPolicy,
}

fn rank(p: Priority) -> u8 {
    match p {
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
        Priority::Urgent => 3,
    }
}

impl SlaPolicyBuilder {
    /// A policy called `name` counting on `calendar`, warning 30 business minutes before a breach.
    pub fn new(name: impl Into<String>, calendar: BusinessCalendar) -> Self {
        Self {
            policy: SlaPolicy {
                name: name.into(),
                calendar,
                targets: BTreeMap::new(),
                warn_before: Duration::minutes(30),
            },
        }
    }

    /// Targets for tickets of `priority`.
    pub fn with_targets(mut self, priority: Priority, targets: SlaTargets) -> Self {
        self.policy.targets.insert((None, rank(priority)), targets);
        self
    }

    /// Targets for tickets of `priority` whose custom field `tier` is `tier` (e.g. `vip`); these
    /// win over [`SlaPolicyBuilder::with_targets`].
    pub fn with_tier_targets(
        mut self,
        tier: impl Into<String>,
        priority: Priority,
        targets: SlaTargets,
    ) -> Self {
        self.policy
            .targets
            .insert((Some(tier.into()), rank(priority)), targets);
        self
    }

    /// How much business time before a breach the warning comes.
    pub fn with_warning_before(mut self, before: Duration) -> Self {
        self.policy.warn_before = before;
        self
    }

    /// Checks and builds the policy.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a negative or zero target or warning.
    pub fn build(self) -> Result<SlaPolicy> {
        let p = self.policy;
        let bad = p.targets.values().any(|t| {
            [t.first_response, t.next_response, t.resolution]
                .into_iter()
                .flatten()
                .any(|d| d <= Duration::zero())
        });
        if bad || p.warn_before < Duration::zero() {
            return Err(Error::invalid("SLA targets must be positive"));
        }
        Ok(p)
    }
}

impl SlaPolicy {
    /// The policy's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The calendar it counts on.
    pub fn calendar(&self) -> &BusinessCalendar {
        &self.calendar
    }

    /// The targets for a ticket of `priority` and customer `tier`.
    pub fn targets(&self, priority: Priority, tier: Option<&str>) -> SlaTargets {
        tier.and_then(|t| self.targets.get(&(Some(t.to_owned()), rank(priority))))
            .or_else(|| self.targets.get(&(None, rank(priority))))
            .copied()
            .unwrap_or_default()
    }
}

/// One running or finished SLA target of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaTimer {
    /// Which target.
    pub metric: SlaMetric,
    /// The target, in business seconds.
    pub target_secs: i64,
    /// Business seconds used before the current run.
    pub used_secs: i64,
    /// When the current run started; `None` while paused or finished.
    pub running_since: Option<DateTime<Utc>>,
    /// When the warning is due (while running).
    pub warn_at: Option<DateTime<Utc>>,
    /// When the breach is due (while running).
    pub due_at: Option<DateTime<Utc>>,
    /// When the target was met.
    pub met_at: Option<DateTime<Utc>>,
    /// Whether the warning was sent.
    pub warned: bool,
    /// Whether the breach was recorded.
    pub breached: bool,
}

/// Where a ticket stands against its SLA at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaState {
    /// A running target is not yet in its warning window.
    Ok,
    /// A running target is in its warning window.
    Warning,
    /// A running target is overdue.
    Breached,
    /// Every unmet target is paused (waiting on the customer).
    Paused,
    /// Some warning or breach has come due and was not yet recorded (the monitor's work list).
    Due,
}

/// One line of an SLA countdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaLine {
    /// Which target.
    pub metric: SlaMetric,
    /// The deadline while running.
    pub due_at: Option<DateTime<Utc>>,
    /// Business time left (negative when overdue); `None` when met.
    pub remaining_secs: Option<i64>,
    /// Whether the clock is paused.
    pub paused: bool,
    /// When met.
    pub met_at: Option<DateTime<Utc>>,
    /// Whether it was ever breached.
    pub breached: bool,
}

/// A ticket's SLA clock: one timer per target of its policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaClock {
    /// The policy's name.
    pub policy: String,
    /// The timers.
    pub timers: Vec<SlaTimer>,
}

/// What moved on a clock when warnings and breaches were recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlaMark {
    pub(crate) metric: SlaMetric,
    pub(crate) breached: bool,
}

impl SlaClock {
    /// A clock for a ticket created at `at` with `targets`: first response and resolution start.
    pub(crate) fn start(policy: &SlaPolicy, targets: SlaTargets, at: DateTime<Utc>) -> Self {
        let mut c = Self {
            policy: policy.name.clone(),
            timers: Vec::new(),
        };
        for m in [SlaMetric::FirstResponse, SlaMetric::Resolution] {
            if let Some(t) = targets.get(m) {
                c.timers.push(SlaTimer {
                    metric: m,
                    target_secs: t.num_seconds(),
                    used_secs: 0,
                    running_since: None,
                    warn_at: None,
                    due_at: None,
                    met_at: None,
                    warned: false,
                    breached: false,
                });
            }
        }
        for t in &mut c.timers {
            t.run(policy, at);
        }
        c
    }

    fn timer(&mut self, m: SlaMetric) -> Option<&mut SlaTimer> {
        self.timers.iter_mut().find(|t| t.metric == m)
    }

    /// Pauses every running timer (the ticket now waits on the customer).
    pub(crate) fn pause(&mut self, policy: &SlaPolicy, at: DateTime<Utc>) {
        for t in &mut self.timers {
            t.stop(policy, at);
        }
    }

    /// Resumes every unmet timer.
    pub(crate) fn resume(&mut self, policy: &SlaPolicy, at: DateTime<Utc>) {
        for t in self.timers.iter_mut().filter(|t| t.met_at.is_none()) {
            t.run(policy, at);
        }
    }

    /// Stops `m` as met.
    pub(crate) fn meet(&mut self, policy: &SlaPolicy, m: SlaMetric, at: DateTime<Utc>) {
        if let Some(t) = self.timer(m).filter(|t| t.met_at.is_none()) {
            t.stop(policy, at);
            t.met_at = Some(at);
        }
    }

    /// Solved: every target stops as met.
    pub(crate) fn solve(&mut self, policy: &SlaPolicy, at: DateTime<Utc>) {
        for m in [
            SlaMetric::FirstResponse,
            SlaMetric::NextResponse,
            SlaMetric::Resolution,
        ] {
            self.meet(policy, m, at);
        }
    }

    /// Reopened: resolution runs again from where it stopped.
    pub(crate) fn reopen(&mut self, policy: &SlaPolicy, at: DateTime<Utc>) {
        if let Some(t) = self.timer(SlaMetric::Resolution) {
            t.met_at = None;
            t.run(policy, at);
        }
    }

    /// A customer wrote after the first response: next response starts afresh, unless it is
    /// already running.
    pub(crate) fn customer_replied(
        &mut self,
        policy: &SlaPolicy,
        targets: SlaTargets,
        at: DateTime<Utc>,
    ) {
        let first_met = self
            .timers
            .iter()
            .any(|t| t.metric == SlaMetric::FirstResponse && t.met_at.is_some());
        let Some(target) = targets.next_response.filter(|_| first_met) else {
            return;
        };
        if self
            .timers
            .iter()
            .any(|t| t.metric == SlaMetric::NextResponse && t.running_since.is_some())
        {
            return;
        }
        self.timers.retain(|t| t.metric != SlaMetric::NextResponse);
        let mut t = SlaTimer {
            metric: SlaMetric::NextResponse,
            target_secs: target.num_seconds(),
            used_secs: 0,
            running_since: None,
            warn_at: None,
            due_at: None,
            met_at: None,
            warned: false,
            breached: false,
        };
        t.run(policy, at);
        self.timers.push(t);
    }

    /// New targets (the priority or tier changed): unmet timers keep their used time.
    pub(crate) fn retarget(&mut self, policy: &SlaPolicy, targets: SlaTargets) {
        for t in &mut self.timers {
            if let Some(d) = targets.get(t.metric) {
                t.target_secs = d.num_seconds();
                if let Some(since) = t.running_since {
                    t.schedule(policy, since);
                }
            }
        }
    }

    /// Records every warning and breach due by `at`, returning what was recorded.
    pub(crate) fn mark_due(&mut self, at: DateTime<Utc>) -> Vec<SlaMark> {
        let mut marks = Vec::new();
        for t in self.timers.iter_mut().filter(|t| t.running_since.is_some()) {
            if !t.warned && t.warn_at.is_some_and(|w| w <= at) {
                t.warned = true;
                marks.push(SlaMark {
                    metric: t.metric,
                    breached: false,
                });
            }
            if !t.breached && t.due_at.is_some_and(|d| d <= at) {
                t.breached = true;
                t.warned = true;
                marks.push(SlaMark {
                    metric: t.metric,
                    breached: true,
                });
            }
        }
        marks
    }

    /// The earliest deadline of a running timer.
    pub fn due_at(&self) -> Option<DateTime<Utc>> {
        self.timers.iter().filter_map(|t| t.due_at).min()
    }

    /// The earliest warning instant of a running timer.
    pub fn warn_at(&self) -> Option<DateTime<Utc>> {
        self.timers.iter().filter_map(|t| t.warn_at).min()
    }

    /// The next instant a warning or breach must be recorded.
    pub fn next_mark_at(&self) -> Option<DateTime<Utc>> {
        self.timers
            .iter()
            .filter_map(|t| match (t.warned, t.breached) {
                (false, _) => t.warn_at,
                (true, false) => t.due_at,
                (true, true) => None,
            })
            .min()
    }

    /// Whether unmet timers exist and none runs.
    pub fn paused(&self) -> bool {
        let unmet = self.timers.iter().filter(|t| t.met_at.is_none());
        unmet.clone().count() > 0 && unmet.clone().all(|t| t.running_since.is_none())
    }

    /// The state at `at` (never [`SlaState::Due`]); `None` when every target is met.
    pub fn state(&self, at: DateTime<Utc>) -> Option<SlaState> {
        if self.paused() {
            return Some(SlaState::Paused);
        }
        let due = self.due_at()?;
        Some(if due <= at {
            SlaState::Breached
        } else if self.warn_at().is_some_and(|w| w <= at) {
            SlaState::Warning
        } else {
            SlaState::Ok
        })
    }

    /// A countdown per target at `at`, in business time on the policy's calendar.
    pub fn report(&self, policy: &SlaPolicy, at: DateTime<Utc>) -> Vec<SlaLine> {
        self.timers
            .iter()
            .map(|t| {
                let used = t.used_secs
                    + t.running_since
                        .map_or(0, |s| policy.calendar.between(s, at).num_seconds());
                SlaLine {
                    metric: t.metric,
                    due_at: t.due_at,
                    remaining_secs: t.met_at.is_none().then_some(t.target_secs - used),
                    paused: t.met_at.is_none() && t.running_since.is_none(),
                    met_at: t.met_at,
                    breached: t.breached || t.due_at.is_some_and(|d| d <= at),
                }
            })
            .collect()
    }
}

impl SlaTimer {
    fn run(&mut self, policy: &SlaPolicy, at: DateTime<Utc>) {
        if self.running_since.is_none() {
            self.running_since = Some(at);
            self.schedule(policy, at);
        }
    }

    fn stop(&mut self, policy: &SlaPolicy, at: DateTime<Utc>) {
        if let Some(since) = self.running_since.take() {
            self.used_secs += policy.calendar.between(since, at).num_seconds();
        }
        self.warn_at = None;
        self.due_at = None;
    }

    fn schedule(&mut self, policy: &SlaPolicy, since: DateTime<Utc>) {
        let left = Duration::seconds(self.target_secs - self.used_secs);
        let cal = &policy.calendar;
        self.due_at = cal.add(since, left.max(Duration::zero()));
        self.warn_at = cal.add(since, (left - policy.warn_before).max(Duration::zero()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn shanghai() -> BusinessCalendar {
        BusinessCalendarBuilder::new(chrono_tz::Asia::Shanghai)
            .with_weekday_period(hm(9, 0), hm(12, 0))
            .with_weekday_period(hm(13, 0), hm(18, 0))
            .with_period(Weekday::Sat, hm(10, 0), hm(14, 0))
            .with_holiday(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap())
            .build()
            .unwrap()
    }

    /// A local time in Shanghai.
    fn cst(m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, m, d, h, min, 0).unwrap() - Duration::hours(8)
    }

    #[test]
    fn several_periods_a_day_and_a_saturday() {
        let cal = shanghai();
        // Friday 2026-11-13 11:30 + 1 h: 30 min before lunch, 30 min after.
        assert_eq!(
            cal.add(cst(11, 13, 11, 30), Duration::hours(1)),
            Some(cst(11, 13, 13, 30))
        );
        // Friday 17:00 + 3 h: 1 h Friday, 2 h on Saturday's short day.
        assert_eq!(
            cal.add(cst(11, 13, 17, 0), Duration::hours(3)),
            Some(cst(11, 14, 12, 0))
        );
        // Saturday 13:00 + 2 h: 1 h Saturday, Sunday off, Monday 10:00.
        assert_eq!(
            cal.add(cst(11, 14, 13, 0), Duration::hours(2)),
            Some(cst(11, 16, 10, 0))
        );
        // Outside hours, the count starts at the next opening.
        assert_eq!(
            cal.add(cst(11, 15, 3, 0), Duration::minutes(5)),
            Some(cst(11, 16, 9, 5))
        );
        assert_eq!(
            cal.between(cst(11, 13, 11, 0), cst(11, 16, 10, 0)),
            Duration::hours(11)
        );
    }

    #[test]
    fn open_now_and_the_next_opening() {
        let cal = shanghai();
        assert!(cal.is_open(cst(11, 13, 11, 30)));
        assert!(!cal.is_open(cst(11, 13, 12, 30)), "lunch");
        assert!(!cal.is_open(cst(11, 13, 18, 0)), "the end is not open");
        assert!(!cal.is_open(cst(10, 1, 10, 0)), "a holiday");
        assert_eq!(
            cal.next_open(cst(11, 13, 11, 30)),
            Some(cst(11, 13, 11, 30))
        );
        assert_eq!(cal.next_open(cst(11, 13, 12, 30)), Some(cst(11, 13, 13, 0)));
        assert_eq!(cal.next_open(cst(11, 14, 15, 0)), Some(cst(11, 16, 9, 0)));
    }

    #[test]
    fn holidays_have_no_business_time() {
        let cal = shanghai();
        // Wednesday 2026-09-30 17:00 + 2 h skips the national-day holiday (Thursday).
        assert_eq!(
            cal.add(cst(9, 30, 17, 0), Duration::hours(2)),
            Some(cst(10, 2, 10, 0))
        );
        assert_eq!(
            cal.between(cst(10, 1, 0, 0), cst(10, 2, 0, 0)),
            Duration::zero()
        );
    }

    #[test]
    fn add_and_between_agree() {
        let cal = shanghai();
        let start = cst(11, 11, 8, 17);
        for minutes in [1, 59, 180, 181, 600, 2_000, 10_000] {
            let end = cal.add(start, Duration::minutes(minutes)).unwrap();
            assert_eq!(
                cal.between(start, end),
                Duration::minutes(minutes),
                "{minutes}"
            );
        }
    }

    #[test]
    fn daylight_saving_is_respected() {
        // New York leaves DST on Sunday 2026-11-01: 09:00 local is 13:00 UTC before, 14:00 after.
        let cal = BusinessCalendarBuilder::new(chrono_tz::America::New_York)
            .with_weekday_period(hm(9, 0), hm(17, 0))
            .build()
            .unwrap();
        let friday_close = Utc.with_ymd_and_hms(2026, 10, 30, 21, 0, 0).unwrap();
        assert_eq!(
            cal.add(friday_close, Duration::hours(1)),
            Some(Utc.with_ymd_and_hms(2026, 11, 2, 15, 0, 0).unwrap())
        );
    }

    #[test]
    fn bad_calendars_and_policies_are_refused() {
        let b = BusinessCalendarBuilder::new(chrono_tz::UTC);
        assert!(b.clone().build().is_err(), "no hours");
        assert!(
            b.clone()
                .with_weekday_period(hm(12, 0), hm(9, 0))
                .build()
                .is_err()
        );
        assert!(
            b.with_weekday_period(hm(9, 0), hm(12, 0))
                .with_weekday_period(hm(11, 0), hm(13, 0))
                .build()
                .is_err(),
            "overlap"
        );
        let neg = SlaTargets {
            first_response: Some(Duration::minutes(-1)),
            ..Default::default()
        };
        assert!(
            SlaPolicyBuilder::new("x", BusinessCalendar::always())
                .with_targets(Priority::Normal, neg)
                .build()
                .is_err()
        );
    }

    #[test]
    fn tier_targets_win_and_always_counts_wall_time() {
        let vip = SlaTargets {
            first_response: Some(Duration::minutes(10)),
            ..Default::default()
        };
        let normal = SlaTargets {
            first_response: Some(Duration::hours(1)),
            ..Default::default()
        };
        let p = SlaPolicyBuilder::new("tiers", BusinessCalendar::always())
            .with_targets(Priority::Normal, normal)
            .with_tier_targets("vip", Priority::Normal, vip)
            .build()
            .unwrap();
        assert_eq!(p.targets(Priority::Normal, Some("vip")), vip);
        assert_eq!(p.targets(Priority::Normal, Some("gold")), normal);
        assert_eq!(p.targets(Priority::Low, None), SlaTargets::default());
        let t0 = Utc.with_ymd_and_hms(2026, 11, 14, 23, 0, 0).unwrap();
        let clock = SlaClock::start(&p, vip, t0);
        assert_eq!(clock.due_at(), Some(t0 + Duration::minutes(10)));
        assert_eq!(
            clock.warn_at(),
            Some(t0),
            "a warning window longer than the target"
        );
    }
}
