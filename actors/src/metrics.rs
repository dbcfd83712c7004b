//! Every metric cashgrid records (the engine here, the frontends' HTTP metrics by these names),
//! in one place. Names use base units and `_total` counters;
//! labels never carry entity ids. docs/METRICS.md explains each one.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::domain::token::TokenState;
use crate::store::PoolUsage;

pub const COMMIT_BATCH_SIZE: &str = "cashgrid_store_commit_batch_size";
pub const COMMIT_DURATION: &str = "cashgrid_store_commit_duration_seconds";
pub const COMMITS: &str = "cashgrid_store_commits_total";
pub const WRITER_QUEUE_WAIT: &str = "cashgrid_store_writer_queue_wait_seconds";
pub const TOKEN_TRANSITIONS: &str = "cashgrid_token_transitions_total";
pub const TOKEN_REJECTIONS: &str = "cashgrid_token_rejections_total";
pub const ACTORS_LIVE: &str = "cashgrid_actors_live";
pub const ACTOR_ACTIVATIONS: &str = "cashgrid_actor_activations_total";
pub const ACTOR_PASSIVATIONS: &str = "cashgrid_actor_passivations_total";
pub const ACTOR_RESTARTS: &str = "cashgrid_actor_restarts_total";
pub const MAILBOX_WAIT: &str = "cashgrid_actor_mailbox_wait_seconds";
pub const OVERLOAD_REJECTIONS: &str = "cashgrid_overload_rejections_total";
pub const FENCE_CONFLICTS: &str = "cashgrid_store_fence_conflicts_total";
pub const LEDGER_TRANSFERS: &str = "cashgrid_ledger_transfers_total";
pub const LEDGER_HOLDS_EXPIRED: &str = "cashgrid_ledger_holds_expired_total";
/// Minor units moved by created transfers (posted ones and posted holds), by currency.
pub const LEDGER_AMOUNT: &str = "cashgrid_ledger_amount_minor_total";
/// Holds pending now (counted from the store with the token counts).
pub const LEDGER_PENDING_HOLDS: &str = "cashgrid_ledger_pending_holds";
/// Decisions an account actor had in flight (decided, not yet settled) after each decision.
pub const LEDGER_PIPELINE_DEPTH: &str = "cashgrid_ledger_pipeline_depth";
pub const CASHOUT_AMOUNT: &str = "cashgrid_cashout_amount_minor_total";
pub const CASHOUTS: &str = "cashgrid_cashouts_total";
pub const CLEARING_ROWS: &str = "cashgrid_clearing_rows_total";
pub const TRIGGERS_CREATED: &str = "cashgrid_triggers_created_total";
pub const TRIGGERS_LIVE: &str = "cashgrid_triggers_live";
pub const TRIGGER_ENDS: &str = "cashgrid_trigger_ends_total";
pub const TRIGGER_WAITERS: &str = "cashgrid_trigger_waiters";
pub const TRIGGER_WAIT_ANSWERS: &str = "cashgrid_trigger_wait_answers_total";
pub const TRIGGER_PUSHES: &str = "cashgrid_trigger_pushes_total";
pub const MQTT_PUSHES: &str = "cashgrid_mqtt_pushes_total";
pub const MQTT_CONNECTED: &str = "cashgrid_mqtt_connected";
pub const TOKENS: &str = "cashgrid_tokens";
pub const POOL_CONNECTIONS: &str = "cashgrid_store_pool_connections";
pub const POOL_MAX_CONNECTIONS: &str = "cashgrid_store_pool_max_connections";
pub const POOL_WAITING: &str = "cashgrid_store_pool_waiting";
/// Live WebSocket subscribers by feed.
pub const WEBSOCKET_SUBSCRIBERS: &str = "cashgrid_websocket_subscribers";
/// WebSocket subscribers dropped because they did not keep up.
pub const SLOW_CONSUMERS_DROPPED: &str = "cashgrid_websocket_slow_consumers_dropped_total";
/// Portal logins by outcome.
pub const PORTAL_LOGINS: &str = "cashgrid_portal_logins_total";
/// Tokens the expiry sweeper expired.
pub const TOKENS_EXPIRED: &str = "cashgrid_tokens_expired_total";
/// Tokens the retention job deleted.
pub const HISTORY_TOKENS_DELETED: &str = "cashgrid_history_tokens_deleted_total";
/// HTTP requests by protocol, route pattern, method and status (recorded by the frontends).
pub const HTTP_REQUESTS: &str = "cashgrid_http_requests_total";
pub const HTTP_REQUEST_DURATION: &str = "cashgrid_http_request_duration_seconds";
/// Answers with status 500 or above: our faults, or the original's business 500s.
pub const HTTP_SERVER_ERRORS: &str = "cashgrid_http_server_errors_total";

/// Label values that exist from the start, so that rates and alerts see a 0 before the first
/// event instead of no series at all.
const ACTOR_KINDS: [&str; 2] = ["token", "device"];
const OVERLOAD_KINDS: [&str; 6] = ["mailbox", "writer", "token", "password_hashing", "trigger", "feed"];
const REJECTION_REASONS: [&str; 7] = [
    "not_open",
    "not_locked",
    "invalid_code",
    "unknown_token",
    "unknown_device",
    "locked_by_another_device",
    "illegal_radiocode",
];

/// Bucket bounds (seconds) for latencies measured inside the engine: 50 µs to 2.5 s.
pub const LATENCY_BUCKETS_SECONDS: &[f64] =
    &[0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
/// Bucket bounds for the number of write sets in one commit.
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Register the counters and gauges that would otherwise appear only with their first event.
pub fn register_initial_series() {
    for kind in ACTOR_KINDS {
        gauge!(ACTORS_LIVE, "kind" => kind).increment(0.0);
        counter!(ACTOR_ACTIVATIONS, "kind" => kind).absolute(0);
        counter!(ACTOR_PASSIVATIONS, "kind" => kind).absolute(0);
        counter!(ACTOR_RESTARTS, "kind" => kind).absolute(0);
    }
    for kind in OVERLOAD_KINDS {
        counter!(OVERLOAD_REJECTIONS, "kind" => kind).absolute(0);
    }
    for reason in REJECTION_REASONS {
        counter!(TOKEN_REJECTIONS, "reason" => reason).absolute(0);
    }
    for result in ["ok", "error"] {
        counter!(COMMITS, "result" => result).absolute(0);
    }
    counter!(FENCE_CONFLICTS).absolute(0);
    counter!(LEDGER_HOLDS_EXPIRED).absolute(0);
    gauge!(LEDGER_PENDING_HOLDS).set(0.0);
    counter!(TRIGGERS_CREATED).absolute(0);
    for reason in ["used", "expired", "replaced"] {
        counter!(TRIGGER_ENDS, "reason" => reason).absolute(0);
    }
    for answer in ["locked", "expired", "replaced", "timeout"] {
        counter!(TRIGGER_WAIT_ANSWERS, "answer" => answer).absolute(0);
    }
    for result in ["sent", "dropped"] {
        counter!(TRIGGER_PUSHES, "result" => result).absolute(0);
    }
    for result in ["published", "dropped", "failed"] {
        counter!(MQTT_PUSHES, "result" => result).absolute(0);
    }
    gauge!(MQTT_CONNECTED).set(0.0);
    for token_type in ["CASHOUT", "CASHIN"] {
        counter!(CLEARING_ROWS, "type" => token_type).absolute(0);
    }
    for result in ["ok", "wrong_credentials", "need_twofa", "wrong_twofa"] {
        counter!(PORTAL_LOGINS, "result" => result).absolute(0);
    }
    for state in TokenState::ALL {
        gauge!(TOKENS, "state" => state.as_str()).increment(0.0);
    }
}

/// Tokens in the store per state; states without tokens are set to 0.
pub fn set_token_counts(counts: impl IntoIterator<Item = (TokenState, i64)>) {
    let mut by_state = [0_i64; TokenState::ALL.len()];
    for (state, count) in counts {
        if let Some(index) = TokenState::ALL.iter().position(|known| *known == state) {
            by_state[index] = by_state[index].saturating_add(count);
        }
    }
    for (state, count) in TokenState::ALL.iter().zip(by_state) {
        gauge!(TOKENS, "state" => state.as_str()).set(count as f64);
    }
}

pub fn set_pool_usage(usage: &PoolUsage) {
    let idle = usage.open.saturating_sub(usage.in_use);
    gauge!(POOL_CONNECTIONS, "pool" => usage.pool, "state" => "in_use").set(usage.in_use as f64);
    gauge!(POOL_CONNECTIONS, "pool" => usage.pool, "state" => "idle").set(idle as f64);
    gauge!(POOL_MAX_CONNECTIONS, "pool" => usage.pool).set(usage.max as f64);
    gauge!(POOL_WAITING, "pool" => usage.pool).set(usage.waiting as f64);
}

pub fn record_commit(sets: usize, elapsed: Duration, ok: bool) {
    histogram!(COMMIT_BATCH_SIZE).record(sets as f64);
    histogram!(COMMIT_DURATION).record(elapsed.as_secs_f64());
    counter!(COMMITS, "result" => if ok { "ok" } else { "error" }).increment(1);
}

pub fn record_writer_queue_wait(waited: Duration) {
    histogram!(WRITER_QUEUE_WAIT).record(waited.as_secs_f64());
}

pub fn record_transition(from: &'static str, to: &'static str) {
    counter!(TOKEN_TRANSITIONS, "from" => from, "to" => to).increment(1);
}

pub fn record_rejection(reason: &'static str) {
    counter!(TOKEN_REJECTIONS, "reason" => reason).increment(1);
}

pub fn actor_started(kind: &'static str) {
    gauge!(ACTORS_LIVE, "kind" => kind).increment(1.0);
    counter!(ACTOR_ACTIVATIONS, "kind" => kind).increment(1);
}

pub fn actor_stopped(kind: &'static str) {
    gauge!(ACTORS_LIVE, "kind" => kind).decrement(1.0);
    counter!(ACTOR_PASSIVATIONS, "kind" => kind).increment(1);
}

pub fn actor_restarted(kind: &'static str) {
    counter!(ACTOR_RESTARTS, "kind" => kind).increment(1);
}

pub fn record_mailbox_wait(kind: &'static str, waited: Duration) {
    histogram!(MAILBOX_WAIT, "kind" => kind).record(waited.as_secs_f64());
}

pub fn record_overload(kind: &'static str) {
    counter!(OVERLOAD_REJECTIONS, "kind" => kind).increment(1);
}

pub fn record_fence_conflict() {
    counter!(FENCE_CONFLICTS).increment(1);
}

/// A ledger transfer's answer, by its stable result code (a closed set of labels).
pub fn record_ledger_transfer(result: &'static str) {
    counter!(LEDGER_TRANSFERS, "result" => result).increment(1);
}

pub fn record_ledger_hold_expired() {
    counter!(LEDGER_HOLDS_EXPIRED).increment(1);
}

/// A created transfer that moved `amount` minor units of `currency`.
pub fn record_ledger_amount(currencies: &CurrencyLabels, currency: &str, amount: u64) {
    counter!(LEDGER_AMOUNT, "currency" => currencies.label(currency)).increment(amount);
}

pub fn set_ledger_pending_holds(count: i64) {
    gauge!(LEDGER_PENDING_HOLDS).set(count as f64);
}

/// How deep an account actor's pipeline of uncommitted decisions is after a decision.
pub fn record_ledger_pipeline_depth(in_flight: usize) {
    histogram!(LEDGER_PIPELINE_DEPTH).record(in_flight as f64);
}

/// A completed cash-out: its amount in minor units by currency. The currency is free text from
/// clients, so only three-letter codes become labels; anything else counts as `other`.
pub fn record_cashout(currencies: &CurrencyLabels, symbol: &str, amount_minor: i64) {
    let currency = currencies.label(symbol);
    counter!(CASHOUT_AMOUNT, "currency" => currency.clone()).increment(u64::try_from(amount_minor).unwrap_or(0));
    counter!(CASHOUTS, "currency" => currency).increment(1);
}

/// Currencies with a label of their own: the first [`CURRENCY_LABELS_MAX`] three-letter symbols
/// seen in completed cash-outs; any other is `other`. Symbols are the clients' choice, so
/// without a bound every invented one would be a new series (17,576 of three letters).
pub const CURRENCY_LABELS_MAX: usize = 32;

#[derive(Debug, Default)]
pub struct CurrencyLabels(std::sync::Mutex<std::collections::HashSet<String>>);

impl CurrencyLabels {
    pub fn label(&self, symbol: &str) -> String {
        if symbol.len() != 3 || !symbol.bytes().all(|byte| byte.is_ascii_alphabetic()) {
            return "other".to_owned();
        }
        let currency = symbol.to_ascii_uppercase();
        let mut known = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.contains(&currency) || known.len() < CURRENCY_LABELS_MAX {
            known.insert(currency.clone());
            currency
        } else {
            "other".to_owned()
        }
    }
}

/// A clearing row committed with a COMPLETED cash-out or cash-in.
pub fn record_clearing(token_type: &'static str) {
    counter!(CLEARING_ROWS, "type" => token_type).increment(1);
}

pub fn record_trigger_created() {
    counter!(TRIGGERS_CREATED).increment(1);
}

/// Why a trigger code left memory: `used`, `expired` or `replaced` (a fixed code re-created).
pub fn record_trigger_end(reason: &'static str) {
    counter!(TRIGGER_ENDS, "reason" => reason).increment(1);
}

/// Trigger codes held, and waiting long polls and device sockets, after a change.
pub fn set_trigger_gauges(live: usize, polls: usize, sockets: usize) {
    gauge!(TRIGGERS_LIVE).set(live as f64);
    gauge!(TRIGGER_WAITERS, "channel" => "poll").set(polls as f64);
    gauge!(TRIGGER_WAITERS, "channel" => "socket").set(sockets as f64);
}

/// How a trigger long poll ended: `locked`, `expired`, `replaced` or `timeout`.
pub fn record_trigger_wait_answer(answer: &'static str) {
    counter!(TRIGGER_WAIT_ANSWERS, "answer" => answer).increment(1);
}

/// A locked token pushed to a device socket (`sent`), or not, because its buffer was full
/// (`dropped`; the socket is closed).
pub fn record_trigger_push(result: &'static str) {
    counter!(TRIGGER_PUSHES, "result" => result).increment(1);
}

/// An MQTT trigger push: acknowledged by the broker (`published`), dropped because a bounded
/// queue was full (`dropped`), or not sent for another reason (`failed`: signing, shutdown).
pub fn record_mqtt_push(result: &'static str) {
    counter!(MQTT_PUSHES, "result" => result).increment(1);
}

/// Whether the MQTT publisher has a broker connection (1) or not (0; also when MQTT is off).
pub fn set_mqtt_connected(connected: bool) {
    gauge!(MQTT_CONNECTED).set(if connected { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod currency_tests {
    use super::*;

    #[test]
    fn currency_labels_are_bounded() {
        let labels = CurrencyLabels::default();
        assert_eq!(labels.label("eur"), "EUR");
        assert_eq!(labels.label("EURO"), "other");
        let invented: Vec<String> =
            (0..100_u8).map(|n| format!("Q{}{}", (b'A' + n / 26) as char, (b'A' + n % 26) as char)).collect();
        let own = invented.iter().map(|symbol| labels.label(symbol)).filter(|label| label != "other").count();
        assert_eq!(own, CURRENCY_LABELS_MAX - 1, "EUR took one label");
        assert_eq!(labels.label("EUR"), "EUR", "a known currency keeps its label");
    }
}
