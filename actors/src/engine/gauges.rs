//! Gauges read from the store when Prometheus scrapes: connection pool usage (no I/O, fresh at
//! every scrape), tokens per state and pending ledger holds. Counting tokens is a `GROUP BY` over the whole tokens
//! table, so it runs at most once per [`TOKEN_COUNT_INTERVAL`], one at a time, in the
//! background: a scrape never waits for it and gets the counts of the last run.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::Engine;
use crate::metrics as m;

/// Least time between two counts of tokens per state.
pub const TOKEN_COUNT_INTERVAL: Duration = Duration::from_secs(15);

/// When tokens were last counted, and whether a count is running.
#[derive(Debug, Default)]
pub(super) struct TokenCountSchedule {
    state: Mutex<Schedule>,
}

#[derive(Debug, Default)]
struct Schedule {
    last_started: Option<Instant>,
    running: bool,
}

impl TokenCountSchedule {
    /// Claim the next count if one is due and none is running.
    fn start_if_due(&self, now: Instant) -> bool {
        let mut schedule = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let due = match schedule.last_started {
            Some(last) => now.saturating_duration_since(last) >= TOKEN_COUNT_INTERVAL,
            None => true,
        };
        if schedule.running || !due {
            return false;
        }
        schedule.running = true;
        schedule.last_started = Some(now);
        true
    }

    fn finished(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).running = false;
    }
}

impl Engine {
    /// Bring the store gauges up to date before a scrape renders them. Must run inside a tokio
    /// runtime (the token count is spawned onto it).
    pub fn refresh_store_gauges(&self) {
        for usage in self.store.pool_usage() {
            m::set_pool_usage(&usage);
        }
        if !self.token_counts.start_if_due(Instant::now()) {
            return;
        }
        let store = Arc::clone(&self.store);
        let schedule = Arc::clone(&self.token_counts);
        tokio::spawn(async move {
            match store.token_stats(None).await {
                Ok(stats) => m::set_token_counts(stats.into_iter().map(|stat| (stat.state, stat.count))),
                // The gauges keep the last counts; the store's own errors show elsewhere.
                Err(error) => tracing::warn!(%error, "counting tokens per state failed"),
            }
            match store.pending_ledger_holds().await {
                Ok(count) => m::set_ledger_pending_holds(count),
                Err(error) => tracing::warn!(%error, "counting pending ledger holds failed"),
            }
            schedule.finished();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_starts_at_most_once_per_interval_and_never_twice_at_once() {
        let schedule = TokenCountSchedule::default();
        let start = Instant::now();
        assert!(schedule.start_if_due(start));
        assert!(!schedule.start_if_due(start + TOKEN_COUNT_INTERVAL), "still running");
        schedule.finished();
        assert!(!schedule.start_if_due(start + TOKEN_COUNT_INTERVAL / 2), "not due yet");
        assert!(schedule.start_if_due(start + TOKEN_COUNT_INTERVAL));
    }
}
