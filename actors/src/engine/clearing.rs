//! Clearing: settlement rows written with COMPLETED cash-outs and cash-ins, and their queries.

use super::Engine;

impl Engine {}
