//! Accounts: who owns them, their currency and kind, the limits they keep, and their balances.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::Millis;

/// An account's id: chosen by the client (a uuid), or generated when it names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub Uuid);

impl std::fmt::Display for AccountId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

/// An ISO 4217 currency code: three upper-case ASCII letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Currency(String);

impl Currency {
    /// `None` unless `code` is three upper-case ASCII letters.
    pub fn new(code: &str) -> Option<Self> {
        (code.len() == 3 && code.bytes().all(|byte| byte.is_ascii_uppercase())).then(|| Self(code.to_owned()))
    }

    pub fn code(&self) -> &str {
        &self.0
    }
}

/// Who an account belongs to: a cashgrid customer (a bank or an operator), or an end user of
/// one of the protocols, named as that protocol names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerKind {
    /// A cashgrid customer; the id is its customer number.
    Customer,
    /// A Bitcoin address of the WebSocket account API.
    BitcoinAddress,
    /// A wallet user of the cash-out API.
    WalletUser,
    /// An account holder of the bank API.
    AccountHolder,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    pub kind: OwnerKind,
    pub id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    Customer,
    Float,
    Escrow,
    /// The ledger's side of an outside payment rail (deposits come from it, payouts go to it).
    ExternalRail,
    Fees,
}

/// The limits an account keeps. By default an account may not go below zero: its debits
/// (pending and posted) never exceed its posted credits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountFlags {
    /// Debits, pending and posted, never exceed posted credits (may not go below zero).
    pub debits_must_not_exceed_credits: bool,
    /// Credits, pending and posted, never exceed posted debits (may not go above zero).
    pub credits_must_not_exceed_debits: bool,
    /// Takes no new transfer; its holds may still be voided or expire.
    pub frozen: bool,
}

impl Default for AccountFlags {
    fn default() -> Self {
        Self { debits_must_not_exceed_credits: true, credits_must_not_exceed_debits: false, frozen: false }
    }
}

/// Sums in minor units. 128 bits: no run of transfers of at most `Amount::MAX` each
/// overflows them in practice, and every addition is checked anyway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Balances {
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

impl Balances {
    /// Whether `flags`' limits hold for these balances.
    pub fn within(&self, flags: AccountFlags) -> bool {
        let debits = self.debits_pending.checked_add(self.debits_posted);
        let credits = self.credits_pending.checked_add(self.credits_posted);
        let debits_ok =
            !flags.debits_must_not_exceed_credits || debits.is_some_and(|debits| debits <= self.credits_posted);
        let credits_ok =
            !flags.credits_must_not_exceed_debits || credits.is_some_and(|credits| credits <= self.debits_posted);
        debits_ok && credits_ok
    }
}

/// What a client gives to open an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub id: AccountId,
    pub owner: Owner,
    pub currency: Currency,
    pub kind: AccountKind,
    pub flags: AccountFlags,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    /// Incremented by every change; the store applies a snapshot only over its predecessor.
    pub version: i64,
    pub owner: Owner,
    pub currency: Currency,
    pub kind: AccountKind,
    pub flags: AccountFlags,
    pub balances: Balances,
    pub created: Millis,
}

impl Account {
    pub fn open(new: NewAccount, now: Millis) -> Self {
        Self {
            id: new.id,
            version: 1,
            owner: new.owner,
            currency: new.currency,
            kind: new.kind,
            flags: new.flags,
            balances: Balances::default(),
            created: now,
        }
    }
}
