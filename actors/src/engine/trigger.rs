//! Trigger codes: a cash device without a scanner gets a one-shot code the phone claims onto it.

use super::Engine;

impl Engine {}
