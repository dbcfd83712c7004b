//! What every kind of entity has in common, as pure domain: a name for its kind, an id, the
//! commands that create and change it, the events a change records, why a command is refused,
//! and the pure decision itself. The generic actor shell (`crate::entity_actor`) and the
//! generic store tables (`entities`, `entity_events`) are written against this trait, so a new
//! kind is one domain file plus its migration.

use std::fmt::{Debug, Display};
use std::hash::Hash;

use super::ids::Millis;

/// An entity kind's identifier: a uuid for tokens and devices, text for voucher ids or
/// Bitcoin addresses. Displayed, it is the key the generic store files the entity under.
pub trait EntityId: Clone + Eq + Hash + Display + Debug + Send + Sync + Unpin + 'static {}

impl<T: Clone + Eq + Hash + Display + Debug + Send + Sync + Unpin + 'static> EntityId for T {}

pub trait Entity: Clone + Debug + Send + Sync + 'static {
    /// The kind's name: the metric and log label, and the `kind` column of the generic tables.
    /// Lower-case letters and `_`.
    const KIND: &'static str;
    type Id: EntityId;
    /// What brings one into being.
    type Create: Clone + Debug + Send + 'static;
    /// What may change one.
    type Command: Clone + Debug + Send + 'static;
    /// What a decided change records beside the successor snapshot.
    type Event: Debug + Send + 'static;
    /// Why a command is refused; nothing changes.
    type Rejection: Copy + Debug + PartialEq + Send + 'static;
    /// A decided change: the successor snapshot, its events, and anything else the kind
    /// writes with them.
    type Transition: Send + 'static;

    fn id(&self) -> Self::Id;
    /// Incremented by every change; the store applies a snapshot only over its predecessor.
    fn version(&self) -> i64;
    /// Whether no command can change it any more (its actor may leave memory early).
    fn is_final(&self) -> bool;
    /// Decide a creation at `now`; the transition's snapshot has version 1.
    fn create(create: Self::Create, now: Millis) -> Result<Self::Transition, Self::Rejection>;
    /// Decide `command` on this snapshot at `now`.
    fn apply(&self, command: &Self::Command, now: Millis) -> Result<Self::Transition, Self::Rejection>;
    /// The values it is looked up by besides its id, by column name. A kind in the generic
    /// tables is found by these (its migration indexes them); a kind with a table of its own
    /// names the columns that table indexes.
    fn index_columns(&self) -> Vec<(&'static str, String)>;
}

/// The transition of a kind that writes nothing but its successor snapshot and its events:
/// every kind in the generic tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Change<E: Entity> {
    pub entity: E,
    pub events: Vec<E::Event>,
}

/// Whether `kind` may name a kind, or `column` an index column: lower-case letters, digits and
/// `_`, starting with a letter, at most 63 bytes (they appear in SQL and in metric labels).
pub fn is_plain_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::is_plain_name;

    #[test]
    fn plain_names_are_lower_case_words() {
        assert!(is_plain_name("token"));
        assert!(is_plain_name("owner_id2"));
        assert!(!is_plain_name(""));
        assert!(!is_plain_name("2x"));
        assert!(!is_plain_name("Owner"));
        assert!(!is_plain_name("a'b"));
        assert!(!is_plain_name(&"a".repeat(64)));
    }
}
