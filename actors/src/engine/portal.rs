//! Portal (admin API) operations: users, sessions, two-factor, credentials, parameters,
//! accounts, devices, statistics and the journal.

use super::Engine;

impl Engine {}
