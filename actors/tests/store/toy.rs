//! The toy counter kind (`toy_kind/domain.rs`) on the generic actor shell and store: created,
//! changed, refused, serialised, fenced against a second node, found by its lookup column and
//! durable across activations — with no code for it outside its domain file and migrations.

use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use cashgrid_actors::domain::Entity;
use cashgrid_actors::entity_actor::Registry;
use cashgrid_actors::entity_actor::Start;
use cashgrid_actors::stored_kind::{Refusal, Stored, StoredRequest};

use super::harness::Harness;
use super::toy_kind::domain::{Counter, CounterCommand, CounterEvent, CounterRejection, Open};

const TIMEOUT: Duration = Duration::from_secs(5);

type Counters = Arc<Registry<Stored<Counter>>>;

/// One node's registry of counters over `harness`'s store, on `arbiters`.
fn node(harness: &Harness, arbiters: &[Arbiter]) -> anyhow::Result<Counters> {
    let context = harness.node_context(TIMEOUT)?;
    Ok(Arc::new(Registry::new(context, arbiters.iter().map(Arbiter::handle).collect())))
}

async fn open(
    counters: &Counters,
    id: &str,
    owner: &str,
) -> anyhow::Result<Result<Counter, Refusal<CounterRejection>>> {
    let request = StoredRequest::Create(Open { id: id.into(), owner: owner.into() });
    Ok(counters.ask(id.to_owned(), request, Start::Absent, TIMEOUT).await?)
}

async fn command(
    counters: &Counters,
    id: &str,
    command: CounterCommand,
) -> anyhow::Result<Result<Counter, Refusal<CounterRejection>>> {
    Ok(counters.ask(id.to_owned(), StoredRequest::Command(command), Start::Load, TIMEOUT).await?)
}

pub async fn a_toy_kind_runs_on_the_generic_shell_and_store(harness: Harness) -> anyhow::Result<()> {
    harness.migrate(include_str!("toy_kind/postgres.sql"), include_str!("toy_kind/sqlite.sql")).await?;
    let arbiters = [Arbiter::new(), Arbiter::new()];
    let counters = node(&harness, &arbiters)?;

    // Created once; a second creation of the id is refused and changes nothing.
    let created = open(&counters, "c1", "alice").await?.map_err(|refusal| anyhow::anyhow!("{refusal:?}"))?;
    assert_eq!((created.version, created.total, created.closed), (1, 0, false));
    assert_eq!(open(&counters, "c1", "mallory").await?, Err(Refusal::Exists));
    assert_eq!(open(&counters, "c2", "bob").await?.map(|counter| counter.owner), Ok("bob".to_owned()));

    // A refusal of the kind's own changes nothing; an unknown id is answered as such.
    assert_eq!(
        command(&counters, "c1", CounterCommand::Add(-1)).await?,
        Err(Refusal::Rejected(CounterRejection::NotPositive))
    );
    assert_eq!(command(&counters, "nobody", CounterCommand::Add(1)).await?, Err(Refusal::Unknown));

    // Concurrent requests to one entity are serialised by its actor: none is lost.
    let adds = (0..20).map(|_| command(&counters, "c1", CounterCommand::Add(1)));
    for answer in futures_util::future::join_all(adds).await {
        assert!(answer?.is_ok());
    }

    // A second node on the same store moves the counter on; the first node's actor still holds
    // version 21, so its write is fenced, reloads and applies on the stored version.
    let other = node(&harness, &arbiters)?;
    let moved = command(&other, "c1", CounterCommand::Add(100)).await?;
    assert_eq!(moved.map(|counter| (counter.version, counter.total)), Ok((22, 120)));
    let fenced = command(&counters, "c1", CounterCommand::Add(1)).await?;
    assert_eq!(fenced.map(|counter| (counter.version, counter.total)), Ok((23, 121)));

    // Durable: a fresh activation loads what was committed.
    counters.forget(&"c1".to_owned());
    let closed = command(&counters, "c1", CounterCommand::Close).await?;
    assert_eq!(closed.map(|counter| (counter.version, counter.total, counter.closed)), Ok((24, 121, true)));
    assert_eq!(command(&other, "c1", CounterCommand::Add(1)).await?, Err(Refusal::Rejected(CounterRejection::Closed)));

    // Found by its lookup column; its events were committed with each change, in order.
    let alices = harness.store.find_entities(Counter::KIND, "owner", "alice", 10).await?;
    assert_eq!(alices.iter().map(|found| (found.id.as_str(), found.version)).collect::<Vec<_>>(), vec![("c1", 24)]);
    let events = harness.store.entity_events(Counter::KIND, "c1", 100).await?;
    let events: Vec<CounterEvent> = events.into_iter().map(serde_json::from_value).collect::<Result<_, _>>()?;
    assert_eq!(events.len(), 24, "one event per committed change");
    assert!(matches!(events.first(), Some(CounterEvent::Opened { owner, .. }) if owner == "alice"));
    assert!(matches!(events.get(22), Some(CounterEvent::Added { amount: 1, total: 121, .. })));
    assert!(matches!(events.last(), Some(CounterEvent::Closed { .. })));
    Ok(())
}
