//! The double-entry ledger, as pure domain: accounts with pending and posted debits and
//! credits, and transfers between two accounts of one currency — posted at once, held
//! (pending, with a time-out), a hold posted (whole or in part) or voided — in linked chains
//! that apply all or none. Semantics after TigerBeetle's: a posted transfer is never edited
//! (a reversing transfer corrects it), every refusal has a stable result code, and a transfer
//! id given again answers `Exists` with nothing changed.
//!
//! Money is never created or destroyed: every transfer adds the same amount to one account's
//! debits and the other's credits, so per currency the debits and the credits over all
//! accounts are equal after every transfer, pending and posted alike.
//!
//! [`book::Book`] applies requests to accounts and transfers held in memory: the model the
//! account actors follow, and what the property tests check.

pub mod account;
pub mod book;
pub mod currency;
pub mod posting;
pub mod transfer;

pub use account::{
    Account, AccountCommand, AccountEvent, AccountFlags, AccountId, AccountKind, Balances, Currency, NewAccount, Owner,
    OwnerKind, Reach,
};
pub use book::{chain_failed, chains, Book, Submitted};
pub use currency::{major_units, parse_major, Currencies, MajorAmountError};
pub use posting::Posting;
pub use transfer::{
    Amount, Memo, PendingState, Transfer, TransferId, TransferKind, TransferRequest, TransferResult, Transferred,
};

#[cfg(test)]
mod tests;
