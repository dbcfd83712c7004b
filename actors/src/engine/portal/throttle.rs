//! The original's brute-force brake: consecutive failed logins per email, each failure answered
//! after (2^(n−1) − 1) s: 0, 1, 3, 7, … A success resets the count. Held in memory per node,
//! bounded in size, entries forgotten after a day without use.

use std::time::{Duration, Instant};

/// A failure count not touched for this long is forgotten.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// Emails tracked at once; when full, the cache evicts the least useful entries first.
pub const TRACKED_EMAILS_MAX: u64 = 100_000;
/// Longest delay of one answer. The original's delay doubles without bound; past this, a
/// request would only tie up a connection for hours.
pub const DELAY_MAX: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Failure counts per e-mail in a bounded cache (`moka`): entries idle for [`FAILURE_MEMORY`]
/// leave it, and it never holds more than its capacity.
pub struct LoginThrottle {
    failures: moka::sync::Cache<String, Failures>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_capacity(TRACKED_EMAILS_MAX)
    }
}

/// (2^(n−1) − 1) seconds after the n-th consecutive failure, at most [`DELAY_MAX`].
pub fn delay_after(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1);
    let seconds = 1_u64.checked_shl(exponent).filter(|power| *power > 0).map_or(u64::MAX, |power| power - 1);
    Duration::from_secs(seconds).min(DELAY_MAX)
}

impl LoginThrottle {
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            failures: moka::sync::Cache::builder().max_capacity(capacity.max(1)).time_to_idle(FAILURE_MEMORY).build(),
        }
    }

    /// Count a failure for `email` at `now` and return how long to wait before answering. The
    /// count restarts after [`FAILURE_MEMORY`] without a failure (judged by `now`, so that the
    /// rule holds whatever the cache has evicted yet).
    pub fn failure(&self, email: &str, now: Instant) -> Duration {
        let entry = self.failures.entry(email.to_lowercase()).and_upsert_with(|previous| {
            let count = match previous.map(|entry| entry.into_value()) {
                Some(failures) if now.saturating_duration_since(failures.last) < FAILURE_MEMORY => failures.count,
                Some(_) | None => 0,
            };
            Failures { count: count.saturating_add(1), last: now }
        });
        delay_after(entry.into_value().count)
    }

    /// A successful login: the count starts over.
    pub fn success(&self, email: &str) {
        self.failures.invalidate(&email.to_lowercase());
    }

    #[cfg(test)]
    fn tracked(&self) -> u64 {
        self.failures.run_pending_tasks();
        self.failures.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_zero_and_stop_at_the_bound() {
        let seconds: Vec<u64> = (1..=5).map(|n| delay_after(n).as_secs()).collect();
        assert_eq!(seconds, [0, 1, 3, 7, 15]);
        assert_eq!(delay_after(0), Duration::ZERO);
        assert_eq!(delay_after(40), DELAY_MAX);
        assert_eq!(delay_after(u32::MAX), DELAY_MAX);
    }

    #[test]
    fn failures_count_per_email_until_a_success() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        assert_eq!(throttle.failure("a@x.de", now), Duration::ZERO);
        assert_eq!(throttle.failure("A@X.DE", now), Duration::from_secs(1));
        assert_eq!(throttle.failure("b@x.de", now), Duration::ZERO);
        assert_eq!(throttle.failure("a@x.de", now), Duration::from_secs(3));
        throttle.success("a@x.de");
        assert_eq!(throttle.failure("a@x.de", now), Duration::ZERO);
    }

    #[test]
    fn a_day_without_failures_forgets_the_count() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        throttle.failure("a@x.de", now);
        throttle.failure("a@x.de", now);
        let later = now + FAILURE_MEMORY;
        assert_eq!(throttle.failure("a@x.de", later), Duration::ZERO);
        assert_eq!(throttle.failure("a@x.de", later), Duration::from_secs(1), "counting again from there");
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let throttle = LoginThrottle::with_capacity(3);
        let start = Instant::now();
        for index in 0..10_u64 {
            throttle.failure(&format!("user{index}@x.de"), start + Duration::from_secs(index));
        }
        assert!(throttle.tracked() <= 3, "{} tracked", throttle.tracked());
    }
}
