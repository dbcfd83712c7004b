//! The generic tables: entities of every kind without a table of its own, and their events,
//! written once for both backends like every other query (`queries.rs`).
//!
//! Changes are written by the group commit (`WriteSet::entities`), with the statements and
//! values defined here: the snapshot, fenced by version, then its events.

use serde_json::Value as Json;

use super::queries::{read_rows, statement, Statement};
use super::rows::{self, BoundQuery};
use super::sql::{args, Backend, Row};
use super::{EntityCommit, StoreError, StoredEntity};
use crate::domain::entity::is_plain_name;

static LOAD: Statement =
    statement!("load_entity", "SELECT id, version, state FROM entities WHERE kind = $1 AND id = $2");
pub(super) static INSERT: Statement = statement!(
    "insert_entity",
    "INSERT INTO entities (kind, id, version, state, lookup, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $6) \
     ON CONFLICT (kind, id) DO NOTHING"
);
// `version + 1 = $3`, not `version = $3 - 1`: PostgreSQL would type `$3` by the literal, INTEGER.
pub(super) static UPDATE: Statement = statement!(
    "update_entity",
    "UPDATE entities SET version = $3, state = $4, lookup = $5, updated = $6 \
     WHERE kind = $1 AND id = $2 AND version + 1 = $3"
);
pub(super) static INSERT_EVENT: Statement = statement!(
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
    read_rows(backend, "find_entities", BoundQuery { sql, values: args![kind, value, rows::list_limit(max)] }, stored)
        .await
}

pub(super) async fn events<B: Backend>(
    backend: &B,
    kind: &'static str,
    id: &str,
    max: usize,
) -> Result<Vec<Json>, StoreError> {
    EVENTS.all(backend, args![kind, id, rows::list_limit(max)], event).await
}

fn event(row: &Row) -> Result<Json, StoreError> {
    json(&row.text(0)?, "entity_events.event")
}

/// An entity change as the group commit binds it: the snapshot's parameters (kind, id,
/// version, state, lookup, at) for [`INSERT`] when it is the first version, else [`UPDATE`],
/// and each event's (kind, id, version, at, event) for [`INSERT_EVENT`].
#[derive(Debug, Clone)]
pub(super) struct EntityValues {
    pub kind: &'static str,
    pub id: String,
    pub version: i64,
    pub state: String,
    pub lookup: String,
    pub at: i64,
    pub events: Vec<String>,
}

impl EntityValues {
    pub fn new(commit: &EntityCommit) -> Self {
        let lookup: serde_json::Map<String, Json> =
            commit.lookup.iter().map(|(name, value)| ((*name).to_owned(), Json::String(value.clone()))).collect();
        Self {
            kind: commit.kind,
            id: commit.id.clone(),
            version: commit.version,
            state: commit.state.to_string(),
            lookup: Json::Object(lookup).to_string(),
            at: commit.at,
            events: commit.events.iter().map(Json::to_string).collect(),
        }
    }
}
