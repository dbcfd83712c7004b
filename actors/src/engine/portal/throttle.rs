//! The original's brute-force brake: consecutive failed logins per email, each failure answered
//! after (2^(n−1) − 1) s: 0, 1, 3, 7, … A success resets the count. Held in memory per node,
//! bounded in size, entries forgotten after a day without use.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A failure count not touched for this long is forgotten.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// Emails tracked at once. When full, forgotten entries go first, then the least recently used.
pub const TRACKED_EMAILS_MAX: usize = 100_000;
/// Longest delay of one answer. The original's delay doubles without bound; past this, a
/// request would only tie up a connection for hours.
pub const DELAY_MAX: Duration = Duration::from_secs(300);
/// How often stale entries are swept out even when the map is not full.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

struct Failures {
    count: u32,
    last: Instant,
}

struct State {
    failures: HashMap<String, Failures>,
    last_sweep: Instant,
}

pub struct LoginThrottle {
    state: Mutex<State>,
    capacity: usize,
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
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State { failures: HashMap::new(), last_sweep: Instant::now() }),
            capacity: capacity.max(1),
        }
    }

    /// Count a failure for `email` and return how long to wait before answering.
    pub fn failure(&self, email: &str, now: Instant) -> Duration {
        let key = email.to_lowercase();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if now.saturating_duration_since(state.last_sweep) >= SWEEP_INTERVAL {
            state.failures.retain(|_, entry| now.saturating_duration_since(entry.last) < FAILURE_MEMORY);
            state.last_sweep = now;
        }
        if !state.failures.contains_key(&key) && state.failures.len() >= self.capacity {
            state.failures.retain(|_, entry| now.saturating_duration_since(entry.last) < FAILURE_MEMORY);
            if state.failures.len() >= self.capacity {
                let oldest = state.failures.iter().min_by_key(|(_, entry)| entry.last).map(|(email, _)| email.clone());
                if let Some(oldest) = oldest {
                    state.failures.remove(&oldest);
                }
            }
        }
        let entry = state.failures.entry(key).or_insert(Failures { count: 0, last: now });
        if now.saturating_duration_since(entry.last) >= FAILURE_MEMORY {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = now;
        delay_after(entry.count)
    }

    /// A successful login: the count starts over.
    pub fn success(&self, email: &str) {
        let key = email.to_lowercase();
        self.state.lock().unwrap_or_else(PoisonError::into_inner).failures.remove(&key);
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).failures.len()
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
        throttle.failure("b@x.de", later + SWEEP_INTERVAL + FAILURE_MEMORY);
        assert_eq!(throttle.tracked(), 1, "the sweep dropped the stale entry");
    }

    #[test]
    fn the_map_never_grows_past_its_capacity() {
        let throttle = LoginThrottle::with_capacity(3);
        let start = Instant::now();
        for index in 0..10_u64 {
            throttle.failure(&format!("user{index}@x.de"), start + Duration::from_secs(index));
        }
        assert_eq!(throttle.tracked(), 3);
        // The most recent ones are kept.
        assert_eq!(throttle.failure("user9@x.de", start + Duration::from_secs(20)), Duration::from_secs(1));
    }
}
