//! The generic tables: entities of every kind without a table of its own, and their events,
//! written once for both backends like every other query (`queries.rs`).
//!
//! A change commits in one transaction of its own: the snapshot, fenced by version, and its
//! events. A kind that needs group commits (a ledger's postings) gets them through the writer
//! when it arrives; until then the generic tables serve kinds with modest write rates.

use serde_json::Value as Json;

use super::queries::{job, read_rows, statement, Statement};
use super::rows::BoundQuery;
use super::sql::{args, Backend, Row};
use super::{EntityCommit, StoreError, StoredEntity, WriteOutcome};
use crate::domain::entity::is_plain_name;

static LOAD: Statement =
    statement!("load_entity", "SELECT id, version, state FROM entities WHERE kind = $1 AND id = $2");
static INSERT: Statement = statement!(
    "insert_entity",
    "INSERT INTO entities (kind, id, version, state, lookup, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $6) \
     ON CONFLICT (kind, id) DO NOTHING"
);
static UPDATE: Statement = statement!(
    "update_entity",
    "UPDATE entities SET version = $3, state = $4, lookup = $5, updated = $6 \
     WHERE kind = $1 AND id = $2 AND version = $3 - 1"
);
static INSERT_EVENT: Statement = statement!(
    "insert_entity_event",
    "INSERT INTO entity_events (kind, id, version, at, event) VALUES ($1, $2, $3, $4, $5)"
);
static EVENTS: Statement =
    statement!("entity_events", "SELECT event FROM entity_events WHERE kind = $1 AND id = $2 ORDER BY seq LIMIT $3");

fn json(text: &str, what: &str) -> Result<Json, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Internal(anyhow::anyhow!("corrupt {what}: {error}")))
}

fn stored(row: &Row) -> Result<StoredEntity, StoreError> {
    Ok(StoredEntity { id: row.text(0)?, version: row.i64(1)?, state: json(&row.text(2)?, "entities.state")? })
}

fn limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) async fn load<B: Backend>(
    backend: &B,
    kind: &'static str,
    id: &str,
) -> Result<Option<StoredEntity>, StoreError> {
    LOAD.first(backend, args![kind, id], stored).await
}

pub(super) async fn find<B: Backend>(
    backend: &B,
    kind: &'static str,
    column: &'static str,
    value: &str,
    max: usize,
) -> Result<Vec<StoredEntity>, StoreError> {
    if !is_plain_name(column) {
        return Err(StoreError::Internal(anyhow::anyhow!("{column:?} is no lookup column name")));
    }
    // The column name is a plain word from the kind's code, never from a request.
    let field = backend.dialect().json_text_field("lookup", column);
    let sql = format!("SELECT id, version, state FROM entities WHERE kind = $1 AND {field} = $2 ORDER BY id LIMIT $3");
    read_rows(backend, "find_entities", BoundQuery { sql, values: args![kind, value, limit(max)] }, stored).await
}

pub(super) async fn events<B: Backend>(
    backend: &B,
    kind: &'static str,
    id: &str,
    max: usize,
) -> Result<Vec<Json>, StoreError> {
    let sql: &'static str = &EVENTS.sql;
    let values = args![kind, id, limit(max)];
    let work = job(move |db| Box::pin(async move { db.query(sql, &values).await?.iter().map(event).collect() }));
    backend.read("entity_events", work).await
}

fn event(row: &Row) -> Result<Json, StoreError> {
    json(&row.text(0)?, "entity_events.event")
}

pub(super) async fn commit<B: Backend>(backend: &B, commit: &EntityCommit) -> Result<WriteOutcome, StoreError> {
    let lookup: serde_json::Map<String, Json> =
        commit.lookup.iter().map(|(name, value)| ((*name).to_owned(), Json::String(value.clone()))).collect();
    let snapshot = if commit.version == 1 { &INSERT } else { &UPDATE };
    let (write, write_sql, event_sql): (&'static str, &'static str, &'static str) =
        (snapshot.what, &snapshot.sql, &INSERT_EVENT.sql);
    let values = args![
        commit.kind,
        commit.id.as_str(),
        commit.version,
        commit.state.to_string(),
        Json::Object(lookup).to_string(),
        commit.at
    ];
    let events: Vec<_> = commit
        .events
        .iter()
        .map(|event| args![commit.kind, commit.id.as_str(), commit.version, commit.at, event.to_string()])
        .collect();
    let work = job(move |db| {
        Box::pin(async move {
            // Nothing written when the fence holds the snapshot back: the events stay unwritten.
            if db.execute(write_sql, &values).await? == 0 {
                return Ok(WriteOutcome::Conflict);
            }
            for event in &events {
                db.execute(event_sql, event).await?;
            }
            Ok(WriteOutcome::Committed)
        })
    });
    backend.write(write, work).await
}
