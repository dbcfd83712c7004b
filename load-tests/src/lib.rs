//! cashgrid load tests: goose scenarios against the dncash-io Token and Cash APIs and the Ledger API, the set-up
//! that creates their customers and devices, and the helpers of `scripts/bench.sh`.
//! See README.md in this directory.

pub mod api;
pub mod fixture;
pub mod ledger;
pub mod scenarios;
pub mod summary;
