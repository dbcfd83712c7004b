//! Live feeds: committed records fanned out to subscribers, in sequence order, with bounded
//! buffers. One mechanism for every sequenced table: a [`FeedSource`] says how to read its
//! records ([`TokenEvents`]: `token_events`; [`LedgerEntries`]: the ledger's journal), and a
//! hub runs per source.
//!
//! The hub reads every new range of its source once from the store (all customers) and hands
//! each record to the subscribers it concerns through a bounded channel per subscriber. It
//! learns of new commits two ways: this node's writer signals after every successful commit
//! (`Writer::commits`), and a poll of the source's last sequence number every
//! [`POLL_INTERVAL`] finds records that other nodes sharing the database committed.
//!
//! The hub knows no protocol's feeds. An event concerns an [`Audience`] (its owner, its cash
//! customer, and `All`); which of those events a feed carries is the [`FeedSpec`]'s filter,
//! supplied by the frontend that owns the feed (the dncash feeds' recipient table is in
//! `http/src/dncash/feeds.rs`).
//!
//! Ordering: the hub delivers events strictly in sequence order. A gap in the sequence may be a
//! transaction of another node that took its number but has not committed yet, or a number
//! that a rolled-back transaction burnt; the hub waits [`HOLE_GRACE`] for it before moving on.
//!
//! A subscriber whose buffer is full is dropped, never waited for: its channel closes with the
//! `lagged` flag set, and its session tells the client where to resume (`since=<last seq>`).
//! Dropping a [`Subscription`] unsubscribes it.

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use tokio::sync::{mpsc, watch};

use crate::domain::disclosure::Viewer;
use crate::domain::CustomerId;
use crate::metrics::{SLOW_CONSUMERS_DROPPED, WEBSOCKET_SUBSCRIBERS};
use crate::store::{EventRecord, LedgerEntry, Store, StoreError};

/// How often the hub asks the store for events committed by other nodes.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Most events read from the store in one query, by the hub and by a replay.
pub const READ_BATCH: usize = 1_000;
/// How long the hub waits for a missing sequence number before it skips it.
pub const HOLE_GRACE: Duration = Duration::from_secs(2);
/// Events buffered per subscriber before it counts as too slow and is dropped.
pub const DEFAULT_SUBSCRIBER_BUFFER: usize = 1_024;
/// Most subscribers one node serves at once; more are refused.
pub const SUBSCRIBERS_MAX: usize = 10_000;

/// A sequenced table whose records feeds carry.
#[async_trait::async_trait]
pub trait FeedSource: Send + Sync + 'static {
    type Record: Send + Sync + std::fmt::Debug + 'static;

    fn seq(record: &Self::Record) -> i64;
    /// The customers a record concerns (every record also concerns [`Audience::All`]).
    fn customers(record: &Self::Record) -> [Option<CustomerId>; 2];
    /// The highest sequence number committed.
    async fn last_seq(store: &dyn Store) -> Result<i64, StoreError>;
    /// Records after `after`, in order, at most `limit`: of one customer, or of all.
    async fn after(
        store: &dyn Store,
        customer: Option<CustomerId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<Self::Record>, StoreError>;
}

/// Token state changes (`token_events`): they concern the token's owner and its cash customer.
pub struct TokenEvents;

#[async_trait::async_trait]
impl FeedSource for TokenEvents {
    type Record = EventRecord;

    fn seq(record: &EventRecord) -> i64 {
        record.seq
    }

    fn customers(record: &EventRecord) -> [Option<CustomerId>; 2] {
        [Some(record.owner_id), record.cash_customer_id.filter(|cash| *cash != record.owner_id)]
    }

    async fn last_seq(store: &dyn Store) -> Result<i64, StoreError> {
        store.last_event_seq().await
    }

    async fn after(
        store: &dyn Store,
        customer: Option<CustomerId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        store.events_after(customer, after, limit).await
    }
}

/// The ledger's journal (`ledger_entries`): a line concerns the customer its account is kept for.
pub struct LedgerEntries;

#[async_trait::async_trait]
impl FeedSource for LedgerEntries {
    type Record = LedgerEntry;

    fn seq(record: &LedgerEntry) -> i64 {
        record.seq
    }

    fn customers(record: &LedgerEntry) -> [Option<CustomerId>; 2] {
        [Some(record.customer), None]
    }

    async fn last_seq(store: &dyn Store) -> Result<i64, StoreError> {
        store.last_ledger_entry_seq().await
    }

    async fn after(
        store: &dyn Store,
        customer: Option<CustomerId>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        store.ledger_entries_after(customer, after, limit).await
    }
}

/// Whose events a subscriber receives: subscribers are indexed by it, so an event costs a
/// lookup of its owner, its cash customer and `All`, not a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// Events of tokens the customer owns or is the cash customer of.
    Customer(CustomerId),
    /// Every customer's events (admins).
    All,
}

impl Audience {
    /// The store's filter for this audience.
    pub fn customer(self) -> Option<CustomerId> {
        match self {
            Self::Customer(customer) => Some(customer),
            Self::All => None,
        }
    }

    /// Who looks at the events' snapshots: a customer sees only its own devices in them.
    pub fn viewer(self) -> Viewer {
        match self {
            Self::Customer(customer) => Viewer::Customer(customer),
            Self::All => Viewer::Admin,
        }
    }
}

/// Whether a feed delivers a record to an audience the record concerns. The hub calls it on its
/// own thread, under its lock, for every record of a subscriber's audience, and for every
/// replayed one: it must be a cheap, pure check.
pub type RecordFilter<R> = Arc<dyn Fn(Audience, &R) -> bool + Send + Sync>;

/// A frontend's feed as the hub sees it: its name and which records it carries.
pub struct FeedSpec<S: FeedSource> {
    /// The `feed` label of the subscriber metrics: one of a small fixed set, each registered
    /// once with [`register_feed_series`].
    pub label: &'static str,
    pub filter: RecordFilter<S::Record>,
}

impl<S: FeedSource> Clone for FeedSpec<S> {
    fn clone(&self) -> Self {
        Self { label: self.label, filter: Arc::clone(&self.filter) }
    }
}

impl<S: FeedSource> FeedSpec<S> {
    pub fn new(label: &'static str, filter: impl Fn(Audience, &S::Record) -> bool + Send + Sync + 'static) -> Self {
        Self { label, filter: Arc::new(filter) }
    }
}

impl<S: FeedSource> std::fmt::Debug for FeedSpec<S> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("FeedSpec").field("label", &self.label).finish_non_exhaustive()
    }
}

/// Create a feed's metric series at zero, so dashboards show 0 rather than nothing before its
/// first subscriber. Harmless to repeat.
pub fn register_feed_series(label: &'static str) {
    gauge!(WEBSOCKET_SUBSCRIBERS, "feed" => label).increment(0.0);
    counter!(SLOW_CONSUMERS_DROPPED, "feed" => label).increment(0);
}

/// Why a subscription could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// The hub has not read the store's position yet (the store is unreachable).
    #[error("feed not ready")]
    NotReady,
    /// [`SUBSCRIBERS_MAX`] reached.
    #[error("too many subscribers")]
    Full,
}

/// What a subscription yields next.
#[derive(Debug, Clone)]
pub enum FeedItem<R> {
    Event(Arc<R>),
    /// The subscriber fell too far behind and was dropped; resume from the last seq delivered.
    Lagged,
    /// The hub stopped (the server is shutting down).
    Closed,
}

struct Subscriber<S: FeedSource> {
    feed: FeedSpec<S>,
    sender: mpsc::Sender<Arc<S::Record>>,
    lagged: Arc<AtomicBool>,
}

struct HubState<S: FeedSource> {
    /// Every event up to this sequence number has been fanned out (or skipped as a hole).
    horizon: i64,
    /// The horizon has been read from the store.
    ready: bool,
    subscribers: HashMap<Audience, HashMap<u64, Subscriber<S>>>,
    count: usize,
}

struct HubInner<S: FeedSource> {
    state: Mutex<HubState<S>>,
    buffer: usize,
    next_id: AtomicU64,
}

impl<S: FeedSource> HubInner<S> {
    fn lock(&self) -> MutexGuard<'_, HubState<S>> {
        // Nothing panics while holding the lock; if something did, the map is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remove(&self, audience: Audience, id: u64) {
        let mut state = self.lock();
        remove_locked(&mut state, audience, id);
    }
}

fn remove_locked<S: FeedSource>(state: &mut HubState<S>, audience: Audience, id: u64) -> Option<Subscriber<S>> {
    let subscribers = state.subscribers.get_mut(&audience)?;
    let removed = subscribers.remove(&id)?;
    if subscribers.is_empty() {
        state.subscribers.remove(&audience);
    }
    state.count = state.count.saturating_sub(1);
    gauge!(WEBSOCKET_SUBSCRIBERS, "feed" => removed.feed.label).decrement(1.0);
    Some(removed)
}

/// The node's feed hub of one source; cheap to clone.
pub struct FeedHub<S: FeedSource> {
    inner: Arc<HubInner<S>>,
    store: Arc<dyn Store>,
}

impl<S: FeedSource> Clone for FeedHub<S> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner), store: Arc::clone(&self.store) }
    }
}

impl<S: FeedSource> FeedHub<S> {
    /// A hub with `buffer` events of room per subscriber, and the task that feeds it: run the
    /// task on a thread of its own. `commits` changes after every commit of this node.
    pub fn new(
        store: Arc<dyn Store>,
        commits: watch::Receiver<u64>,
        buffer: usize,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let inner = Arc::new(HubInner {
            state: Mutex::new(HubState { horizon: 0, ready: false, subscribers: HashMap::new(), count: 0 }),
            buffer: buffer.max(1),
            next_id: AtomicU64::new(1),
        });
        let hub = Self { inner: Arc::clone(&inner), store: Arc::clone(&store) };
        (hub, run::<S>(inner, store, commits))
    }

    /// Subscribe `audience` to the events of `feed`. With `since`, first replay the audience's
    /// events after that sequence number from the store, then continue live without a gap or a
    /// duplicate.
    pub fn subscribe(
        &self,
        feed: FeedSpec<S>,
        audience: Audience,
        since: Option<i64>,
    ) -> Result<Subscription<S>, SubscribeError> {
        let (sender, receiver) = mpsc::channel(self.inner.buffer);
        let lagged = Arc::new(AtomicBool::new(false));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let horizon = {
            let mut state = self.inner.lock();
            if !state.ready {
                return Err(SubscribeError::NotReady);
            }
            if state.count >= SUBSCRIBERS_MAX {
                return Err(SubscribeError::Full);
            }
            let subscriber = Subscriber { feed: feed.clone(), sender, lagged: Arc::clone(&lagged) };
            state.subscribers.entry(audience).or_default().insert(id, subscriber);
            state.count += 1;
            state.horizon
        };
        gauge!(WEBSOCKET_SUBSCRIBERS, "feed" => feed.label).increment(1.0);
        // Events up to `horizon` never reach the channel; events after it all do.
        let replay = match since {
            Some(since) if since < horizon => Some(Replay { until: horizon, page: VecDeque::new(), exhausted: false }),
            Some(_) | None => None,
        };
        let last_seq = match since {
            Some(since) => since.max(0),
            None => horizon,
        };
        Ok(Subscription {
            inner: Arc::clone(&self.inner),
            store: Arc::clone(&self.store),
            id,
            feed,
            audience,
            receiver,
            lagged,
            replay,
            last_seq,
        })
    }

    /// Subscribers currently registered (all feeds).
    pub fn subscribers(&self) -> usize {
        self.inner.lock().count
    }
}

/// Count a subscriber of the feed labelled `label` that was dropped for not keeping up (by the
/// hub, or by its frontend when it stopped reading its socket).
pub fn record_slow_consumer(label: &'static str) {
    counter!(SLOW_CONSUMERS_DROPPED, "feed" => label).increment(1);
}

/// Replay state: the audience's stored records after `last_seq` up to `until`.
struct Replay<R> {
    until: i64,
    page: VecDeque<R>,
    exhausted: bool,
}

/// One subscriber's stream of records. Dropping it unsubscribes.
pub struct Subscription<S: FeedSource> {
    inner: Arc<HubInner<S>>,
    store: Arc<dyn Store>,
    id: u64,
    feed: FeedSpec<S>,
    audience: Audience,
    receiver: mpsc::Receiver<Arc<S::Record>>,
    lagged: Arc<AtomicBool>,
    replay: Option<Replay<S::Record>>,
    last_seq: i64,
}

impl<S: FeedSource> Subscription<S> {
    /// The feed's metric label.
    pub fn label(&self) -> &'static str {
        self.feed.label
    }

    /// Whose events these are; render snapshots with `audience().viewer()`.
    pub fn audience(&self) -> Audience {
        self.audience
    }

    /// The sequence number of the last event yielded (or where the subscription started).
    /// Resuming with `since` set to it misses nothing and repeats nothing.
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// The next event: replayed ones first, then live ones. Cancel-safe: an event is consumed
    /// only when this returns it.
    pub async fn next(&mut self) -> Result<FeedItem<S::Record>, StoreError> {
        loop {
            if let Some(replay) = &mut self.replay {
                if let Some(event) = replay.page.pop_front() {
                    self.last_seq = S::seq(&event);
                    if (self.feed.filter)(self.audience, &event) {
                        return Ok(FeedItem::Event(Arc::new(event)));
                    }
                    continue;
                }
                if !replay.exhausted {
                    let events =
                        S::after(self.store.as_ref(), self.audience.customer(), self.last_seq, READ_BATCH).await?;
                    let full_page = events.len() >= READ_BATCH;
                    let until = replay.until;
                    let last_seq = self.last_seq;
                    replay
                        .page
                        .extend(events.into_iter().filter(|event| S::seq(event) > last_seq && S::seq(event) <= until));
                    let reached_end = replay.page.back().is_some_and(|event| S::seq(event) >= until);
                    replay.exhausted = !full_page || reached_end || replay.page.is_empty();
                    continue;
                }
                self.last_seq = self.last_seq.max(replay.until);
                self.replay = None;
            }
            return Ok(match self.receiver.recv().await {
                Some(event) if S::seq(&event) <= self.last_seq => continue,
                Some(event) => {
                    self.last_seq = S::seq(&event);
                    FeedItem::Event(event)
                }
                None if self.lagged.load(Ordering::Acquire) => FeedItem::Lagged,
                None => FeedItem::Closed,
            });
        }
    }
}

impl<S: FeedSource> Drop for Subscription<S> {
    fn drop(&mut self) {
        self.inner.remove(self.audience, self.id);
    }
}

/// The hub's task: wake on this node's commits or the poll, read what is new, fan it out.
async fn run<S: FeedSource>(inner: Arc<HubInner<S>>, store: Arc<dyn Store>, commits: watch::Receiver<u64>) {
    let mut commits = Some(commits);
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reader = Reader { hole: None, last_error: None, source: PhantomData::<S> };
    loop {
        tokio::select! {
            changed = wait_for_commit(&mut commits) => {
                if changed.is_err() {
                    // The writer is gone; the poll still finds other nodes' events.
                    commits = None;
                }
                if inner.lock().count == 0 {
                    // Nobody listens: the poll keeps the horizon fresh enough.
                    continue;
                }
            }
            _ = poll.tick() => {}
        }
        reader.catch_up(&inner, store.as_ref()).await;
    }
}

async fn wait_for_commit(commits: &mut Option<watch::Receiver<u64>>) -> Result<(), watch::error::RecvError> {
    match commits {
        Some(receiver) => receiver.changed().await,
        None => std::future::pending().await,
    }
}

/// How often a failing store read is logged at most.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(30);

struct Reader<S> {
    /// The first missing sequence number and when it was first seen missing.
    hole: Option<(i64, Instant)>,
    last_error: Option<Instant>,
    source: PhantomData<S>,
}

impl<S: FeedSource> Reader<S> {
    async fn catch_up(&mut self, inner: &HubInner<S>, store: &dyn Store) {
        if let Err(error) = self.try_catch_up(inner, store).await {
            if !matches!(self.last_error, Some(logged) if logged.elapsed() < ERROR_LOG_INTERVAL) {
                tracing::warn!(%error, "live feeds cannot read new events");
                self.last_error = Some(Instant::now());
            }
        }
    }

    async fn try_catch_up(&mut self, inner: &HubInner<S>, store: &dyn Store) -> Result<(), StoreError> {
        let mut horizon = inner.lock().horizon;
        let last = S::last_seq(store).await?;
        {
            let mut state = inner.lock();
            if !state.ready || state.count == 0 {
                // Subscribers start at the present; what came before is for replays. Without
                // subscribers there is nobody to read events for.
                state.horizon = state.horizon.max(last);
                state.ready = true;
                return Ok(());
            }
        }
        while last > horizon {
            let events = S::after(store, None, horizon, READ_BATCH).await?;
            let complete = events.len() < READ_BATCH;
            let deliverable = self.contiguous_prefix(horizon, &events, Instant::now());
            if deliverable == 0 {
                return Ok(());
            }
            let events: Vec<Arc<S::Record>> = events.into_iter().take(deliverable).map(Arc::new).collect();
            horizon = fan_out(inner, &events);
            if deliverable < READ_BATCH && complete {
                break;
            }
        }
        Ok(())
    }

    /// How many of `events` (sorted by seq, all after `horizon`) may be delivered now: up to
    /// the first gap, unless that gap has been waited for [`HOLE_GRACE`] already.
    fn contiguous_prefix(&mut self, horizon: i64, events: &[S::Record], now: Instant) -> usize {
        let mut expected = horizon + 1;
        for (index, event) in events.iter().enumerate() {
            let seq = S::seq(event);
            if seq > expected {
                match self.hole {
                    Some((missing, since)) if missing == expected => {
                        if now.saturating_duration_since(since) < HOLE_GRACE {
                            return index;
                        }
                        tracing::debug!(from = expected, to = seq - 1, "skipping sequence numbers never committed");
                        self.hole = None;
                    }
                    Some(_) | None => {
                        self.hole = Some((expected, now));
                        return index;
                    }
                }
            }
            expected = seq + 1;
        }
        events.len()
    }
}

/// Hand `events` (sorted, contiguous) to every subscriber they concern; subscribers whose
/// buffer is full are dropped. Returns the new horizon.
fn fan_out<S: FeedSource>(inner: &HubInner<S>, events: &[Arc<S::Record>]) -> i64 {
    let mut state = inner.lock();
    let mut dropped: Vec<(Audience, u64)> = Vec::new();
    for event in events {
        let [first, second] = S::customers(event);
        let audiences = [Some(Audience::All), first.map(Audience::Customer), second.map(Audience::Customer)];
        for audience in audiences.into_iter().flatten() {
            let Some(subscribers) = state.subscribers.get(&audience) else {
                continue;
            };
            for (id, subscriber) in subscribers {
                if !(subscriber.feed.filter)(audience, event) || dropped.contains(&(audience, *id)) {
                    continue;
                }
                match subscriber.sender.try_send(Arc::clone(event)) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        subscriber.lagged.store(true, Ordering::Release);
                        record_slow_consumer(subscriber.feed.label);
                        dropped.push((audience, *id));
                    }
                    // The session has ended; its `Drop` is about to unsubscribe.
                    Err(mpsc::error::TrySendError::Closed(_)) => dropped.push((audience, *id)),
                }
            }
        }
        state.horizon = S::seq(event);
    }
    for (audience, id) in dropped {
        remove_locked(&mut state, audience, id);
    }
    state.horizon
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::domain::token::{TokenEventKind, TokenState};

    /// A feed that carries every event of its audience.
    fn every_event() -> FeedSpec<TokenEvents> {
        FeedSpec::new("test", |_, _| true)
    }

    fn event(
        seq: i64,
        kind: TokenEventKind,
        to: TokenState,
        owner: CustomerId,
        cash: Option<CustomerId>,
    ) -> EventRecord {
        EventRecord {
            seq,
            token: Uuid::new_v4(),
            kind,
            from: None,
            to,
            at: 0,
            owner_id: owner,
            cash_customer_id: cash,
            version: 1,
            snapshot: json!({"type": "CASHOUT"}),
        }
    }

    #[test]
    fn a_gap_in_the_sequence_is_waited_for_before_it_is_skipped() {
        let mut reader = Reader { hole: None, last_error: None, source: PhantomData::<TokenEvents> };
        let at = |seq| event(seq, TokenEventKind::Created, TokenState::Open, 1, None);
        let start = Instant::now();
        let events = vec![at(11), at(12), at(14), at(15)];
        assert_eq!(reader.contiguous_prefix(10, &events, start), 2);
        assert_eq!(reader.contiguous_prefix(12, &events[2..], start), 0, "the hole is new");
        assert_eq!(reader.contiguous_prefix(12, &events[2..], start + HOLE_GRACE / 2), 0);
        assert_eq!(reader.contiguous_prefix(12, &events[2..], start + HOLE_GRACE), 2, "waited long enough");
        // The missing event arriving in time fills the hole.
        let mut reader = Reader { hole: None, last_error: None, source: PhantomData::<TokenEvents> };
        assert_eq!(reader.contiguous_prefix(12, &[at(14)], start), 0);
        assert_eq!(reader.contiguous_prefix(12, &[at(13), at(14)], start), 2);
    }

    fn inner(buffer: usize) -> Arc<HubInner<TokenEvents>> {
        Arc::new(HubInner {
            state: Mutex::new(HubState { horizon: 0, ready: true, subscribers: HashMap::new(), count: 0 }),
            buffer,
            next_id: AtomicU64::new(1),
        })
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_dropped_and_told_so_after_its_buffered_events() {
        let inner = inner(2);
        let hub = FeedHub { inner: Arc::clone(&inner), store: test_store() };
        let subscribe =
            |audience| hub.subscribe(every_event(), audience, None).unwrap_or_else(|error| panic!("{error}"));
        let mut slow = subscribe(Audience::Customer(1));
        let mut other = subscribe(Audience::Customer(2));
        let events: Vec<_> =
            (1..=3).map(|seq| Arc::new(event(seq, TokenEventKind::Created, TokenState::Open, 1, None))).collect();
        assert_eq!(fan_out(&inner, &events), 3);
        assert_eq!(hub.subscribers(), 1, "the slow one is gone, the other stays");
        for expected in 1..=2 {
            match slow.next().await {
                Ok(FeedItem::Event(event)) => assert_eq!(event.seq, expected),
                other => panic!("expected event {expected}, got {other:?}"),
            }
        }
        assert!(matches!(slow.next().await, Ok(FeedItem::Lagged)));
        assert_eq!(slow.last_seq(), 2);
        drop(slow);
        assert_eq!(hub.subscribers(), 1);
        fan_out(&inner, &[Arc::new(event(4, TokenEventKind::Created, TokenState::Open, 2, None))]);
        assert!(matches!(other.next().await, Ok(FeedItem::Event(event)) if event.seq == 4));
        drop(other);
        assert_eq!(hub.subscribers(), 0, "dropping a subscription unsubscribes it");
    }

    #[tokio::test]
    async fn a_subscriber_gets_the_events_of_its_audience_that_its_feed_lets_through() {
        let inner = inner(16);
        let hub = FeedHub { inner: Arc::clone(&inner), store: test_store() };
        let subscribe = |feed, audience| hub.subscribe(feed, audience, None).unwrap_or_else(|error| panic!("{error}"));
        let locks_only =
            FeedSpec::<TokenEvents>::new("locks", |_, event: &EventRecord| event.kind == TokenEventKind::Locked);
        let owners_only = FeedSpec::<TokenEvents>::new("owners", |audience, event: &EventRecord| {
            audience == Audience::All || audience == Audience::Customer(event.owner_id)
        });
        let mut owner = subscribe(every_event(), Audience::Customer(1));
        let mut cash = subscribe(every_event(), Audience::Customer(2));
        let mut cash_owners_only = subscribe(owners_only, Audience::Customer(2));
        let mut bystander = subscribe(every_event(), Audience::Customer(3));
        let mut admin_locks = subscribe(locks_only, Audience::All);
        let events = [
            event(1, TokenEventKind::Created, TokenState::Open, 1, None),
            event(2, TokenEventKind::Locked, TokenState::Locked, 1, Some(2)),
            event(3, TokenEventKind::Created, TokenState::Open, 2, None),
        ];
        fan_out(&inner, &events.map(Arc::new));
        let received = |subscription: &mut Subscription<TokenEvents>| {
            let mut seqs = Vec::new();
            while let Ok(event) = subscription.receiver.try_recv() {
                seqs.push(event.seq);
            }
            seqs
        };
        assert_eq!(received(&mut owner), [1, 2]);
        assert_eq!(received(&mut cash), [2, 3]);
        assert_eq!(received(&mut cash_owners_only), [3], "the filter sees the audience it is asked for");
        assert_eq!(received(&mut bystander), Vec::<i64>::new());
        assert_eq!(received(&mut admin_locks), [2]);
    }

    fn test_store() -> Arc<dyn Store> {
        let dir = std::env::temp_dir().join(format!("cashgrid-feed-{}", Uuid::new_v4()));
        match crate::store::SqliteStore::open(&dir) {
            Ok(store) => Arc::new(store),
            Err(error) => panic!("sqlite store: {error}"),
        }
    }
}
