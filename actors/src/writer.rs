//! Group commit: one task collects the write sets of many actors and commits them together.
//!
//! An actor hands its write set over and waits for the outcome before it answers anyone, so a
//! reply always follows a commit. Throughput comes from batching, never from skipping the
//! commit: the queue, the batch and the linger are all bounded.
//!
//! Up to [`Store::commit_slots`] batches are in flight at once (PostgreSQL: one per commit
//! connection; SQLite: one). While they are, new write sets queue up and form the next batch,
//! so batches grow with load instead of waiting behind one fsync. Batches in flight never
//! conflict on an entity: an actor has at most one write set in flight, and the version fence
//! turns anything else into a `Conflict` outcome rather than a lost update.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::metrics as m;
use crate::store::{Store, StoreError, WriteOutcome, WriteSet};

#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Write sets waiting for the writer; a full queue pushes back on the actors.
    pub queue_capacity: usize,
    /// Most write sets in one transaction.
    pub batch_max: usize,
    /// How long a batch that is not full may wait for more sets before it commits.
    pub linger: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self { queue_capacity: 8192, batch_max: 512, linger: Duration::ZERO }
    }
}

/// Why a write set was not committed; cheap to clone to every waiter of a failed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("store unavailable")]
    Unavailable,
    #[error("commit failed")]
    Failed,
    #[error("writer queue full")]
    Overloaded,
}

struct Job {
    set: WriteSet,
    enqueued: Instant,
    reply: oneshot::Sender<Result<WriteOutcome, WriteError>>,
}

#[derive(Clone)]
pub struct Writer {
    queue: mpsc::Sender<Job>,
    enqueue_timeout: Duration,
    /// Counts successful commits; live feeds wait on it instead of polling.
    commits: watch::Receiver<u64>,
}

impl Writer {
    /// The writer's handle and the task that commits; run the task on a thread of its own.
    pub fn new(
        store: Arc<dyn Store>,
        config: WriterConfig,
        enqueue_timeout: Duration,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (queue, jobs) = mpsc::channel(config.queue_capacity.max(1));
        let (committed, commits) = watch::channel(0);
        (Self { queue, enqueue_timeout, commits }, run(store, config, jobs, committed))
    }

    /// Changes after every successful commit (its value counts them).
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.clone()
    }

    /// Commit one write set; resolves once it is durable (or known not to be).
    pub async fn commit(&self, set: WriteSet) -> Result<WriteOutcome, WriteError> {
        let (reply, outcome) = oneshot::channel();
        let job = Job { set, enqueued: Instant::now(), reply };
        match self.queue.send_timeout(job, self.enqueue_timeout).await {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(WriteError::Overloaded),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(WriteError::Unavailable),
        }
        outcome.await.unwrap_or(Err(WriteError::Failed))
    }
}

async fn run(store: Arc<dyn Store>, config: WriterConfig, mut jobs: mpsc::Receiver<Job>, committed: watch::Sender<u64>) {
    let batch_max = config.batch_max.max(1);
    let slots = store.commit_slots().max(1);
    let free = Arc::new(Semaphore::new(slots));
    let committed = Arc::new(committed);
    loop {
        // Wait for a free slot before taking jobs, so that they gather into one batch meanwhile.
        let Ok(slot) = Arc::clone(&free).acquire_owned().await else { break };
        let Some(first) = jobs.recv().await else { break };
        let mut batch = Vec::with_capacity(batch_max);
        batch.push(first);
        collect(&mut jobs, &mut batch, batch_max, config.linger).await;
        let (store, committed) = (Arc::clone(&store), Arc::clone(&committed));
        tokio::spawn(async move {
            if commit_batch(store.as_ref(), batch).await {
                committed.send_modify(|count| *count = count.wrapping_add(1));
            }
            drop(slot);
        });
    }
    // The queue is closed: let the batches in flight finish before the writer ends.
    let _all_done = free.acquire_many(u32::try_from(slots).unwrap_or(u32::MAX)).await;
}

/// Take what is already queued, then linger (bounded) for stragglers.
async fn collect(jobs: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>, batch_max: usize, linger: Duration) {
    while batch.len() < batch_max {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    if linger.is_zero() {
        return;
    }
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < batch_max {
        match tokio::time::timeout_at(deadline, jobs.recv()).await {
            Ok(Some(job)) => batch.push(job),
            Ok(None) | Err(_) => break,
        }
    }
}

/// Commit the batch and answer every waiter; `true` when the transaction committed.
async fn commit_batch(store: &dyn Store, batch: Vec<Job>) -> bool {
    let started = Instant::now();
    for job in batch.iter() {
        m::record_writer_queue_wait(started.saturating_duration_since(job.enqueued));
    }
    let (sets, replies): (Vec<WriteSet>, Vec<_>) = batch.into_iter().map(|job| (job.set, job.reply)).unzip();
    let result = store.commit(&sets).await;
    let committed = result.is_ok();
    m::record_commit(sets.len(), started.elapsed(), committed);
    let outcomes = match result {
        Ok(outcomes) if outcomes.len() == replies.len() => outcomes.into_iter().map(Ok).collect(),
        Ok(outcomes) => {
            tracing::error!(sets = sets.len(), outcomes = outcomes.len(), "store returned a wrong number of outcomes");
            vec![Err(WriteError::Failed); replies.len()]
        }
        Err(StoreError::Unavailable(reason)) => {
            tracing::warn!(sets = sets.len(), %reason, "commit failed: store unavailable");
            vec![Err(WriteError::Unavailable); replies.len()]
        }
        Err(error) => {
            tracing::error!(sets = sets.len(), %error, "commit failed");
            vec![Err(WriteError::Failed); replies.len()]
        }
    };
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A waiter that gave up is fine: its change is committed (or not) all the same.
        let _ = reply.send(outcome);
    }
    committed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    fn empty_set() -> WriteSet {
        WriteSet { writes: Vec::new(), events: Vec::new(), clearing: None }
    }

    fn store() -> Arc<dyn Store> {
        let dir = std::env::temp_dir().join(format!("cashgrid-writer-{}", uuid::Uuid::new_v4()));
        match SqliteStore::open(&dir) {
            Ok(store) => Arc::new(store),
            Err(error) => panic!("sqlite store: {error}"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_answers_overloaded_instead_of_waiting_forever() {
        let config = WriterConfig { queue_capacity: 1, batch_max: 1, linger: Duration::ZERO };
        // The commit task is not started, so nothing drains the queue.
        let (writer, _idle_task) = Writer::new(store(), config, Duration::from_millis(50));
        let first = writer.clone();
        let parked = tokio::spawn(async move { first.commit(empty_set()).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(writer.commit(empty_set()).await, Err(WriteError::Overloaded));
        parked.abort();
    }

    #[tokio::test]
    async fn queued_sets_are_committed_together_and_each_gets_its_outcome() {
        let config = WriterConfig { queue_capacity: 64, batch_max: 16, linger: Duration::from_millis(5) };
        let (writer, task) = Writer::new(store(), config, Duration::from_secs(5));
        tokio::spawn(task);
        let commits: Vec<_> = (0..20)
            .map(|_| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.commit(empty_set()).await })
            })
            .collect();
        for commit in commits {
            assert_eq!(commit.await.ok(), Some(Ok(WriteOutcome::Committed)));
        }
    }
}
