//! Any entity kind kept in the generic tables (`entities`, `entity_events`), on the entity
//! actor shell: its snapshot and events are stored as JSON, so a new kind is its domain file
//! (an [`Entity`] whose transition is a [`Change`]) and a migration indexing its lookups.
//!
//! A request is decided by the kind's pure `create` or `apply` and committed, fenced by
//! version, through the group-committing writer before it is answered. A fenced write, or a refusal that depends on a snapshot
//! another node may have moved on, reloads the stored version and decides again.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::now_millis;
use crate::context::EntityContext;
use crate::domain::{Change, Entity};
use crate::entity_actor::{after_failed_write, After, Kind, Settled};
use crate::metrics as m;
use crate::outcome::EngineError;
use crate::store::{EntityCommit, StoreError, WriteOutcome, WriteSet};

/// Decide-and-write rounds after a version fence or a stale refusal before giving up.
const ATTEMPTS: usize = 3;

/// An entity kind in the generic tables.
pub trait StoredEntity: Entity<Transition = Change<Self>> + Serialize + DeserializeOwned + Unpin
where
    Self::Event: Serialize,
{
}

impl<E> StoredEntity for E
where
    E: Entity<Transition = Change<E>> + Serialize + DeserializeOwned + Unpin,
    E::Event: Serialize,
{
}

/// The shell's kind for `E`.
pub struct Stored<E>(PhantomData<fn() -> E>);

#[derive(Debug, Clone)]
pub enum StoredRequest<E: Entity> {
    Create(E::Create),
    Command(E::Command),
}

/// Why a decided request changed nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<R> {
    /// The kind's own refusal.
    Rejected(R),
    /// A creation under an id that is taken.
    Exists,
    /// A command to an id with no entity.
    Unknown,
}

impl<E> Kind for Stored<E>
where
    E: StoredEntity,
    E::Event: Serialize,
{
    type Entity = E;
    type State = E;
    type Request = StoredRequest<E>;
    /// The entity as committed after the request, or why nothing changed.
    type Reply = Result<E, Refusal<E::Rejection>>;

    const MAILBOX_CAPACITY: usize = 256;
    const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(15);
    const FINAL_LINGER: Duration = Duration::from_secs(2);

    fn load(context: Arc<EntityContext>, id: E::Id) -> BoxFuture<'static, Result<Option<E>, StoreError>> {
        async move { load::<E>(&context, &id).await }.boxed()
    }

    fn is_final(entity: &E) -> bool {
        entity.is_final()
    }

    fn handle(
        context: Arc<EntityContext>,
        id: E::Id,
        known: Option<E>,
        request: StoredRequest<E>,
        deadline: Instant,
    ) -> BoxFuture<'static, Settled<Self>> {
        async move { decide_and_commit(&context, &id, known, request, deadline).await }.boxed()
    }
}

async fn load<E: StoredEntity>(context: &EntityContext, id: &E::Id) -> Result<Option<E>, StoreError>
where
    E::Event: Serialize,
{
    let Some(stored) = context.store.load_entity(E::KIND, &id.to_string()).await? else {
        return Ok(None);
    };
    serde_json::from_value(stored.state)
        .map(Some)
        .map_err(|error| StoreError::Internal(anyhow::anyhow!("corrupt {} {id}: {error}", E::KIND)))
}

async fn decide_and_commit<E: StoredEntity>(
    context: &EntityContext,
    id: &E::Id,
    mut known: Option<E>,
    request: StoredRequest<E>,
    deadline: Instant,
) -> Settled<Stored<E>>
where
    E::Event: Serialize,
{
    let unavailable = |error: StoreError, keep: Option<E>| {
        tracing::warn!(kind = E::KIND, %id, %error, "could not read the stored snapshot");
        (kept(keep), Err(EngineError::Unavailable))
    };
    if known.is_none() && matches!(request, StoredRequest::Command(_)) {
        // Another node may have created it since this actor looked.
        known = match load::<E>(context, id).await {
            Ok(found) => found,
            Err(error) => return unavailable(error, None),
        };
    }
    for _ in 0..ATTEMPTS {
        let now = now_millis();
        let decided = match (&request, &known) {
            (StoredRequest::Create(_), Some(entity)) => return (After::Keep(entity.clone()), Ok(Err(Refusal::Exists))),
            (StoredRequest::Create(create), None) => E::create(create.clone(), now),
            (StoredRequest::Command(_), None) => return (After::Missing, Ok(Err(Refusal::Unknown))),
            (StoredRequest::Command(command), Some(entity)) => entity.apply(command, now),
        };
        let change = match decided {
            Ok(change) => change,
            Err(rejection) => match &known {
                // A refusal of a snapshot that may have moved on: answer what the store says.
                Some(entity) if !entity.is_final() => match load::<E>(context, id).await {
                    Ok(Some(current)) if current.version() != entity.version() => {
                        known = Some(current);
                        continue;
                    }
                    Ok(current) => return (kept(current), Ok(Err(Refusal::Rejected(rejection)))),
                    Err(error) => return unavailable(error, known),
                },
                _ => return (kept(known), Ok(Err(Refusal::Rejected(rejection)))),
            },
        };
        let commit = match entity_commit(&change, now) {
            Ok(commit) => commit,
            Err(error) => return (kept(known), Err(error)),
        };
        let set = WriteSet { entities: vec![commit], ..WriteSet::default() };
        match context.writer.commit(set, deadline).await {
            Ok(WriteOutcome::Committed) => return (After::Keep(change.entity.clone()), Ok(Ok(change.entity))),
            Ok(WriteOutcome::Conflict) if matches!(request, StoredRequest::Create(_)) => {
                return (After::Missing, Ok(Err(Refusal::Exists)))
            }
            Ok(WriteOutcome::Conflict) => {
                m::record_fence_conflict();
                known = match load::<E>(context, id).await {
                    Ok(found) => found,
                    Err(error) => return unavailable(error, None),
                };
            }
            Ok(WriteOutcome::Refused) => {
                return (After::Reload, Err(EngineError::Internal("entity write refused".into())))
            }
            Err(error) => {
                let (after, answer) = after_failed_write(error, kept(known));
                return (after, Err(answer));
            }
        }
    }
    (After::Reload, Err(EngineError::Internal("version fence kept failing".into())))
}

/// What the actor keeps of what it knows: the entity, or that there is none.
fn kept<E>(known: Option<E>) -> After<E> {
    known.map_or(After::Missing, After::Keep)
}

fn entity_commit<E: StoredEntity>(change: &Change<E>, at: i64) -> Result<EntityCommit, EngineError>
where
    E::Event: Serialize,
{
    let encode = |error: serde_json::Error| EngineError::Internal(format!("encoding a {}: {error}", E::KIND));
    let entity = &change.entity;
    Ok(EntityCommit {
        kind: E::KIND,
        id: entity.id().to_string(),
        version: entity.version(),
        state: serde_json::to_value(entity).map_err(encode)?,
        lookup: entity.index_columns(),
        at,
        events: change.events.iter().map(serde_json::to_value).collect::<Result<_, _>>().map_err(encode)?,
    })
}
