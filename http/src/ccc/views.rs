//! What the operator's side of the Crypto Capital API answers, over HTTP (`operator.rs`) and
//! on the CLI (`cashgrid ccc …`) alike.

use cashgrid_actors::domain::ccc::CccUser;
use cashgrid_actors::domain::ledger::{major_units, Transfer};
use cashgrid_actors::engine::ccc::{PayoutStatus, UserTransfer};
use serde::Serialize;
use utoipa::ToSchema;

/// A deposit booked.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CccDeposit)]
pub struct DepositView {
    /// `booked`, or `already_booked` (the same bank reference again: nothing credited).
    pub result: &'static str,
    pub txid: String,
    pub currency: String,
    /// Major units, as on the wire.
    pub amount: String,
}

impl DepositView {
    pub fn of(result: &'static str, transfer: &Transfer, decimals: u8) -> Self {
        Self {
            result,
            txid: transfer.id.to_string(),
            currency: transfer.currency.code().to_owned(),
            amount: major_units(i128::from(transfer.amount.get()), decimals),
        }
    }
}

/// A user verified.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CccVerified)]
pub struct VerifiedView {
    /// `verified`.
    pub result: &'static str,
    pub address: String,
    /// The user's own IBAN.
    pub iban: Option<String>,
}

impl VerifiedView {
    pub fn of(user: &CccUser) -> Self {
        Self { result: "verified", address: user.address.clone(), iban: user.iban.clone() }
    }
}

/// A payout settled.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CccSettled)]
pub struct SettledView {
    /// `settled`, or `already_settled` (the same answer again: nothing changed).
    pub result: &'static str,
    pub txid: String,
    /// `complete` or `failed`.
    pub status: &'static str,
    /// Why it failed.
    pub message: Option<String>,
    pub amount: String,
    pub currency: String,
    /// The IBAN paid to.
    pub destination: String,
}

impl SettledView {
    pub fn of(result: &'static str, shown: &UserTransfer) -> Self {
        let (status, message) = match &shown.status {
            Some(PayoutStatus::Failed(reason)) => ("failed", Some(reason.clone())),
            _ => ("complete", None),
        };
        Self {
            result,
            txid: shown.txid.to_string(),
            status,
            message,
            amount: major_units(i128::from(shown.amount.get()), shown.decimals),
            currency: shown.currency.code().to_owned(),
            destination: shown.destination.clone(),
        }
    }
}

/// A refusal, on the CLI.
#[derive(Debug, Serialize)]
pub struct RefusedView {
    pub result: &'static str,
    pub message: &'static str,
}

impl RefusedView {
    pub fn of(message: &'static str) -> Self {
        Self { result: "refused", message }
    }
}
