//! Active expiry and history retention: the engine's periodic jobs.
//!
//! Expiry: every [`ExpiryConfig::interval`] the sweeper asks the store for OPEN tokens whose
//! `expires` has passed (oldest first, at most [`EXPIRY_BATCH`]) and sends each token's actor
//! an `Expire` request, so the token becomes EXPIRED with an `expired` event at (about) its
//! expiry time, not only when a claim touches it. The actor decides with the pure domain
//! (`TokenCommand::Expire` refuses anything that is not OPEN and past due) and commits with the
//! version fence, so every node of a cluster may run the sweeper: two nodes expiring one token,
//! or a claim racing the sweeper, serialise in the actor and at the fence, and only one
//! transition is committed.
//!
//! Ledger holds ride the same tick: holds still pending whose time-out passed are released
//! through their accounts' actors (`LedgerService::expire`), with an `expired` entry on both
//! accounts. Only a hold still pending in the store is released (`RESOLVE_HOLD`), so a post or
//! void racing the sweeper, here or on another node, leaves exactly one of them committed.
//!
//! Retention: once a day (first shortly after start) tokens in a final state that were created
//! more than `max_history_days` ago are deleted with their events and clearing rows. Every hour,
//! idempotency keys older than a day are forgotten.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{self, StreamExt as _};
use metrics::counter;
use uuid::Uuid;

use crate::clock::now_millis;
use crate::domain::ledger::Transfer;
use crate::domain::token::TokenRejection;
use crate::metrics::{HISTORY_TOKENS_DELETED, TOKENS_EXPIRED};
use crate::outcome::{EngineError, Rejection};
use crate::store::Store;

/// What the periodic jobs need of the engine. `Engine` implements it, so that the jobs do not
/// depend on the facade that starts them.
#[async_trait::async_trait]
pub trait Housekeeping: Send + Sync + 'static {
    fn store(&self) -> &Arc<dyn Store>;
    /// Send the token's actor an `Expire` request.
    async fn expire(&self, token: Uuid) -> Result<(), EngineError>;
    /// Forget idempotency keys past their retention; how many.
    async fn forget_idempotency_keys(&self) -> Result<u64, EngineError>;
    /// Release a ledger hold whose time-out passed; `false` when it was resolved meanwhile.
    async fn expire_hold(&self, hold: Transfer) -> Result<bool, EngineError>;
}

/// Most due tokens read from the store per sweep round.
pub const EXPIRY_BATCH: usize = 500;
/// Expire requests in flight at once.
pub const EXPIRY_CONCURRENCY: usize = 32;
/// Sweep rounds per tick at most; a larger backlog continues on the next tick.
const EXPIRY_ROUNDS_MAX: usize = 20;
/// Time between two retention runs.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Time before a failed retention run is tried again.
pub const RETENTION_RETRY: Duration = Duration::from_secs(60 * 60);
/// Delay from start to the first retention run, so that start-up is not slowed down.
pub const RETENTION_FIRST_DELAY: Duration = Duration::from_secs(60);
/// Time between two runs forgetting old idempotency keys (kept a day, so at most an hour more).
pub const IDEMPOTENCY_CLEANUP_INTERVAL: Duration = Duration::from_secs(60 * 60);
const MILLIS_PER_DAY: i64 = 24 * 60 * 60 * 1000;
/// How often a failing job logs at most.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct ExpiryConfig {
    /// Time between two expiry sweeps.
    pub interval: Duration,
    /// Final tokens older than this many days are deleted; 0 keeps history forever.
    pub max_history_days: u32,
}

impl Default for ExpiryConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(1), max_history_days: 90 }
    }
}

/// The sweeper: runs until the system stops.
pub async fn run_expiry(engine: impl Housekeeping, config: ExpiryConfig) {
    counter!(TOKENS_EXPIRED).increment(0);
    counter!(HISTORY_TOKENS_DELETED).increment(0);
    let mut tick = tokio::time::interval(config.interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error_log: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        sweep(&mut last_error_log, "expiry sweep", || sweep_once(&engine)).await;
        sweep(&mut last_error_log, "hold expiry sweep", || sweep_holds_once(&engine)).await;
    }
}

/// Sweep rounds until one finds less than a full batch due, at most [`EXPIRY_ROUNDS_MAX`].
async fn sweep<F, Round>(last_error_log: &mut Option<std::time::Instant>, what: &str, mut round: F)
where
    F: FnMut() -> Round,
    Round: std::future::Future<Output = Result<usize, EngineError>>,
{
    for _ in 0..EXPIRY_ROUNDS_MAX {
        match round().await {
            Ok(due) if due < EXPIRY_BATCH => break,
            Ok(_) => continue,
            Err(error) => {
                if !matches!(last_error_log, Some(logged) if logged.elapsed() < ERROR_LOG_INTERVAL) {
                    tracing::warn!(%error, "{what} failed; retrying");
                    *last_error_log = Some(std::time::Instant::now());
                }
                break;
            }
        }
    }
}

/// One round of ledger holds: release what is due now. Returns how many holds were due.
async fn sweep_holds_once(engine: &impl Housekeeping) -> Result<usize, EngineError> {
    let due = engine.store().due_ledger_holds(now_millis(), EXPIRY_BATCH).await?;
    let count = due.len();
    let outcomes: Vec<Result<bool, EngineError>> = stream::iter(due)
        .map(|hold| async move { engine.expire_hold(hold).await })
        .buffer_unordered(EXPIRY_CONCURRENCY)
        .collect()
        .await;
    // Released (counted by the ledger), or resolved meanwhile: nothing to do. Every due hold
    // was tried; the first failure is reported once (the caller logs it at a bounded rate and
    // tries again on its next tick: releasing a hold that is no longer pending does nothing).
    match outcomes.into_iter().find_map(Result::err) {
        Some(error) => Err(error),
        None => Ok(count),
    }
}

/// One round: expire what is due now. Returns how many tokens were due.
async fn sweep_once(engine: &impl Housekeeping) -> Result<usize, EngineError> {
    let due = engine.store().due_expiries(now_millis(), EXPIRY_BATCH).await?;
    let count = due.len();
    let outcomes: Vec<Result<(), EngineError>> = stream::iter(due)
        .map(|token| async move { engine.expire(token).await })
        .buffer_unordered(EXPIRY_CONCURRENCY)
        .collect()
        .await;
    let mut expired = 0_u64;
    for outcome in outcomes {
        match outcome {
            Ok(()) => expired += 1,
            // Claimed, deleted or expired meanwhile (here or on another node): nothing to do.
            Err(EngineError::Rejected(Rejection::Token(TokenRejection::NotOpen) | Rejection::UnknownToken)) => {}
            Err(error @ (EngineError::Overloaded | EngineError::Unavailable)) => return Err(error),
            Err(error) => tracing::warn!(%error, "token could not be expired"),
        }
    }
    counter!(TOKENS_EXPIRED).increment(expired);
    Ok(count)
}

/// The retention job: runs until the system stops; does nothing when `max_history_days` is 0.
/// Forget idempotency keys past their day, every [`IDEMPOTENCY_CLEANUP_INTERVAL`].
pub async fn run_idempotency_cleanup(engine: impl Housekeeping) {
    loop {
        tokio::time::sleep(IDEMPOTENCY_CLEANUP_INTERVAL).await;
        match engine.forget_idempotency_keys().await {
            Ok(forgotten) => tracing::info!(forgotten, "old idempotency keys forgotten"),
            Err(error) => {
                tracing::warn!(%error, "forgetting old idempotency keys failed; trying again in an hour")
            }
        }
    }
}

pub async fn run_retention(engine: impl Housekeeping, config: ExpiryConfig) {
    if config.max_history_days == 0 {
        return;
    }
    let mut wait = RETENTION_FIRST_DELAY;
    loop {
        tokio::time::sleep(wait).await;
        let before = now_millis() - i64::from(config.max_history_days) * MILLIS_PER_DAY;
        wait = match engine.store().delete_history(before).await {
            Ok(deleted) => {
                counter!(HISTORY_TOKENS_DELETED).increment(deleted);
                tracing::info!(deleted, max_history_days = config.max_history_days, "history retention ran");
                RETENTION_INTERVAL
            }
            Err(error) => {
                tracing::warn!(%error, "history retention failed; retrying in an hour");
                RETENTION_RETRY
            }
        };
    }
}
