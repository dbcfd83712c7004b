//! What every entity actor is handed: the store, the writer, the server key's hasher, the key
//! policy and the metrics' currency labels. It names no actor kind, so actors depend on it and
//! not on the engine facade (which holds the registries besides).

use std::sync::Arc;

use crate::crypto::{KeyPolicy, SecretHasher};
use crate::metrics as m;
use crate::store::Store;
use crate::writer::Writer;

pub struct EntityContext {
    pub store: Arc<dyn Store>,
    pub writer: Writer,
    pub hasher: SecretHasher,
    pub key_policy: KeyPolicy,
    /// The bounded set of currency labels of the cash-out metrics.
    pub currencies: m::CurrencyLabels,
}
