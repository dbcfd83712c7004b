//! Group commit: one task collects the write sets of many actors and commits them together.
//!
//! An actor hands its write set over and waits for the outcome before it answers anyone, so a
//! reply always follows a commit. Throughput comes from batching, never from skipping the
//! commit: the queue, the batch and the linger are all bounded.
//!
//! Every write set carries its sender's deadline. One still queued when the deadline passes is
//! abandoned and never written (the sender answers "not done"); one already taken into a batch
//! that has not committed by then has an unknown outcome, and its sender says so. The store
//! call itself has a deadline too (`sql::Backend`), so a hung database frees the writer.
//!
//! Up to [`Store::commit_slots`] batches are in flight at once (PostgreSQL: one per commit
//! connection; SQLite: one). While they are, new write sets queue up and form the next batch,
//! so batches grow with load instead of waiting behind one fsync. Batches in flight never
//! conflict on an entity: an actor has at most one write set in flight, and the version fence
//! turns anything else into a `Conflict` outcome rather than a lost update.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::handoff::Handoff;
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
    /// Not written: the store could not be reached.
    #[error("store unavailable")]
    Unavailable,
    /// Not written: the store refused the commit or this set.
    #[error("commit failed")]
    Failed,
    /// Not written, and never will be: the queue was full, or the deadline passed while the set
    /// waited in it.
    #[error("writer queue full")]
    Overloaded,
    /// Handed to the database, but no outcome by the deadline: it may have been written.
    #[error("commit outcome unknown")]
    OutcomeUnknown,
}

struct Job {
    set: WriteSet,
    enqueued: Instant,
    reply: oneshot::Sender<Result<WriteOutcome, WriteError>>,
    /// Taken by the writer when it puts the set into a batch, or abandoned by its sender.
    handoff: Arc<Handoff>,
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

    /// Commit one write set; resolves once it is durable, known not to be, or at `deadline`
    /// with the outcome unknown if the set was already on its way to the database.
    pub async fn commit(&self, set: WriteSet, deadline: Instant) -> Result<WriteOutcome, WriteError> {
        let (reply, mut outcome) = oneshot::channel();
        let handoff = Arc::new(Handoff::default());
        let job = Job { set, enqueued: Instant::now(), reply, handoff: Arc::clone(&handoff) };
        let wait = deadline.saturating_duration_since(Instant::now()).min(self.enqueue_timeout);
        match self.queue.send_timeout(job, wait).await {
            Ok(()) => {}
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(WriteError::Overloaded),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => return Err(WriteError::Unavailable),
        }
        match tokio::time::timeout_at(deadline.into(), &mut outcome).await {
            Ok(Ok(result)) => result,
            // The writer dropped the set unanswered: it stopped (a batch is never dropped
            // while the writer runs).
            Ok(Err(_)) if handoff.abandon() => Err(WriteError::Unavailable),
            Ok(Err(_)) => Err(WriteError::OutcomeUnknown),
            Err(_) if handoff.abandon() => {
                m::record_overload("writer");
                Err(WriteError::Overloaded)
            }
            // Taken into a batch: its answer may have arrived just now.
            Err(_) => outcome.try_recv().unwrap_or(Err(WriteError::OutcomeUnknown)),
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    config: WriterConfig,
    mut jobs: mpsc::Receiver<Job>,
    committed: watch::Sender<u64>,
) {
    let batch_max = config.batch_max.max(1);
    let slots = store.commit_slots().max(1);
    let free = Arc::new(Semaphore::new(slots));
    let committed = Arc::new(committed);
    loop {
        // Wait for a free slot before taking jobs, so that they gather into one batch meanwhile.
        let Ok(slot) = Arc::clone(&free).acquire_owned().await else {
            break;
        };
        let mut batch = Vec::with_capacity(batch_max);
        while batch.is_empty() {
            let Some(first) = jobs.recv().await else {
                return drain(free, slots).await;
            };
            take(first, &mut batch);
        }
        collect(&mut jobs, &mut batch, batch_max, config.linger).await;
        let (store, committed) = (Arc::clone(&store), Arc::clone(&committed));
        tokio::spawn(async move {
            if commit_batch(store.as_ref(), batch).await {
                committed.send_modify(|count| *count = count.wrapping_add(1));
            }
            drop(slot);
        });
    }
    drain(free, slots).await;
}

/// The queue is closed: let the batches in flight finish before the writer ends.
async fn drain(free: Arc<Semaphore>, slots: usize) {
    let _all_done = free.acquire_many(u32::try_from(slots).unwrap_or(u32::MAX)).await;
}

/// Put a job into the batch unless its sender gave up on it (then it is never written).
fn take(job: Job, batch: &mut Vec<Job>) {
    if job.handoff.take() {
        batch.push(job);
    }
}

/// Take what is already queued, then linger (bounded) for stragglers.
async fn collect(jobs: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>, batch_max: usize, linger: Duration) {
    while batch.len() < batch_max {
        match jobs.try_recv() {
            Ok(job) => take(job, batch),
            Err(_) => break,
        }
    }
    if linger.is_zero() {
        return;
    }
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < batch_max {
        match tokio::time::timeout_at(deadline, jobs.recv()).await {
            Ok(Some(job)) => take(job, batch),
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
        Ok(outcomes) if outcomes.len() == replies.len() => outcomes
            .into_iter()
            .map(|outcome| match outcome {
                // The set's own value was refused; the rest of the batch committed.
                WriteOutcome::Refused => Err(WriteError::Failed),
                outcome => Ok(outcome),
            })
            .collect(),
        Ok(outcomes) => {
            tracing::error!(sets = sets.len(), outcomes = outcomes.len(), "store returned a wrong number of outcomes");
            vec![Err(WriteError::Failed); replies.len()]
        }
        Err(StoreError::Unavailable(reason)) => {
            tracing::warn!(sets = sets.len(), %reason, "commit failed: store unavailable");
            vec![Err(WriteError::Unavailable); replies.len()]
        }
        Err(StoreError::OutcomeUnknown(reason)) => {
            tracing::error!(sets = sets.len(), %reason, "commit outcome unknown");
            vec![Err(WriteError::OutcomeUnknown); replies.len()]
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
        WriteSet::default()
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(5)
    }

    fn store() -> Arc<dyn Store> {
        let dir = std::env::temp_dir().join(format!("cashgrid-writer-{}", uuid::Uuid::new_v4()));
        match SqliteStore::open(&dir) {
            Ok(store) => Arc::new(store),
            Err(error) => panic!("sqlite store: {error}"),
        }
    }

    /// Yield until `queued` write sets wait in the writer's queue (at most 5 s).
    async fn until_queued(writer: &Writer, queued: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while writer.queue.max_capacity() - writer.queue.capacity() < queued {
            assert!(Instant::now() < deadline, "{queued} sets never reached the queue");
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_full_queue_answers_overloaded_instead_of_waiting_forever() {
        let config = WriterConfig { queue_capacity: 1, batch_max: 1, linger: Duration::ZERO };
        // The commit task is not started, so nothing drains the queue.
        let (writer, _idle_task) = Writer::new(store(), config, Duration::from_millis(50));
        let first = writer.clone();
        let parked = tokio::spawn(async move { first.commit(empty_set(), soon()).await });
        until_queued(&writer, 1).await;
        assert_eq!(writer.commit(empty_set(), soon()).await, Err(WriteError::Overloaded));
        parked.abort();
    }

    #[tokio::test]
    async fn a_set_whose_deadline_passes_in_the_queue_is_never_written() {
        let config = WriterConfig { queue_capacity: 4, batch_max: 4, linger: Duration::ZERO };
        let store = store();
        let (writer, task) = Writer::new(Arc::clone(&store), config, Duration::from_secs(5));
        // Nothing takes the set before its deadline: the writer task starts only afterwards.
        let token = crate::domain::token::issued_for_tests(0);
        let set = WriteSet { writes: vec![crate::store::TokenWrite::Insert(token.clone())], ..WriteSet::default() };
        let answer = writer.commit(set, Instant::now() + Duration::from_millis(30)).await;
        assert_eq!(answer, Err(WriteError::Overloaded));
        tokio::spawn(task);
        // A later set commits, so the writer has looked at the queue and skipped the first.
        assert_eq!(writer.commit(empty_set(), soon()).await, Ok(WriteOutcome::Committed));
        assert_eq!(store.load_token(token.uuid).await.ok().flatten(), None, "the abandoned set was written");
    }

    #[tokio::test]
    async fn queued_sets_are_committed_together_and_each_gets_its_outcome() {
        const SETS: usize = 20;
        const BATCH_MAX: usize = 16;
        let config = WriterConfig { queue_capacity: 64, batch_max: BATCH_MAX, linger: Duration::ZERO };
        let store = store();
        let customer =
            crate::store::NewCustomer { email: "bank@writer.test".into(), display_name: None, roles: "user".into() };
        let owner = match store.create_customer(&customer).await {
            Ok(customer) => customer.id,
            Err(error) => panic!("customer: {error}"),
        };
        let mut tokens: Vec<_> = (0..SETS - 1)
            .map(|_| crate::domain::token::Token { owner_id: owner, ..crate::domain::token::issued_for_tests(0) })
            .collect();
        // The last set inserts the first one's token again: that set alone is a conflict.
        tokens.push(tokens[0].clone());
        let (writer, task) = Writer::new(Arc::clone(&store), config, Duration::from_secs(5));
        let mut commits = writer.commits();
        let sets = tokens.iter().map(|token| {
            let writer = writer.clone();
            let set = WriteSet { writes: vec![crate::store::TokenWrite::Insert(token.clone())], ..WriteSet::default() };
            async move { writer.commit(set, soon()).await }
        });
        // join_all polls them in order, so they are queued in order; all of them before the
        // writer starts, so no timing decides the batches.
        let answers = tokio::spawn(futures_util::future::join_all(sets));
        until_queued(&writer, SETS).await;
        tokio::spawn(task);

        let mut expected = vec![Ok(WriteOutcome::Committed); SETS - 1];
        expected.push(Ok(WriteOutcome::Conflict));
        assert_eq!(answers.await.ok(), Some(expected));
        for token in &tokens {
            let stored = store.load_token(token.uuid).await.ok().flatten();
            assert_eq!(stored.map(|stored| stored.uuid), Some(token.uuid));
        }
        // The counter moves just after a batch's answers: wait for it, bounded.
        let counted = tokio::time::timeout(Duration::from_secs(5), commits.wait_for(|count| *count >= 2))
            .await
            .map(|count| count.map(|count| *count).ok());
        assert_eq!(
            counted.ok().flatten(),
            Some(2),
            "{SETS} queued sets go in two commits: a full batch of {BATCH_MAX}, then the rest"
        );
    }
}
