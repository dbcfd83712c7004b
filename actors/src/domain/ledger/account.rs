//! Accounts: who owns them, their currency and kind, the limits they keep, and their balances.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{CustomerId, Millis};

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

impl OwnerKind {
    pub const ALL: [Self; 4] = [Self::Customer, Self::BitcoinAddress, Self::WalletUser, Self::AccountHolder];

    /// Its wire and column text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::BitcoinAddress => "bitcoin_address",
            Self::WalletUser => "wallet_user",
            Self::AccountHolder => "account_holder",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
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

impl AccountKind {
    pub const ALL: [Self; 5] = [Self::Customer, Self::Float, Self::Escrow, Self::ExternalRail, Self::Fees];

    /// Its wire and column text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Float => "float",
            Self::Escrow => "escrow",
            Self::ExternalRail => "external_rail",
            Self::Fees => "fees",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
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

/// Sums in minor units, each at most [`Balances::MAX`] (they are stored as signed 64-bit
/// columns: 9.2 × 10^18 minor units, far beyond any real balance); a transfer that would pass
/// it is refused as `Overflow`. Computed in 128 bits, so no intermediate sum wraps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Balances {
    pub debits_pending: u128,
    pub debits_posted: u128,
    pub credits_pending: u128,
    pub credits_posted: u128,
}

impl Balances {
    pub const MAX: u128 = i64::MAX as u128;

    /// Whether every sum fits its column.
    pub fn fits(&self) -> bool {
        [self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted]
            .iter()
            .all(|sum| *sum <= Self::MAX)
    }

    /// Posted credits less posted debits: what the account holds (negative for an account that
    /// may go below zero and did).
    pub fn net_posted(&self) -> i128 {
        self.credits_posted as i128 - self.debits_posted as i128
    }

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAccount {
    pub id: AccountId,
    /// The cashgrid customer it is kept for: who sees it and moves money from it.
    pub customer: CustomerId,
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
    /// The cashgrid customer it is kept for: who sees it and moves money from it.
    pub customer: CustomerId,
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
            customer: new.customer,
            owner: new.owner,
            currency: new.currency,
            kind: new.kind,
            flags: new.flags,
            balances: Balances::default(),
            created: now,
        }
    }

    /// Whether `new` asks for this account as it was opened (a retry of its creation).
    pub fn opened_as(&self, new: &NewAccount) -> bool {
        self.id == new.id
            && self.customer == new.customer
            && self.owner == new.owner
            && self.currency == new.currency
            && self.kind == new.kind
            && self.flags == new.flags
    }
}

/// Whose accounts a caller may touch: a customer's own (the `ledger-api` scope), or every
/// account (an operator). To a caller, an account out of reach does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    Own(CustomerId),
    Every,
}

impl Reach {
    pub fn covers(self, account: &Account) -> bool {
        match self {
            Self::Own(customer) => account.customer == customer,
            Self::Every => true,
        }
    }
}

/// What changes an account besides transfers: its frozen flag, by an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum AccountCommand {
    SetFrozen { frozen: bool },
}

/// What an account's own changes record (its transfers record entries of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum AccountEvent {
    Opened,
    FrozenSet { frozen: bool },
}

impl crate::domain::Entity for Account {
    const KIND: &'static str = "account";
    type Id = AccountId;
    type Create = NewAccount;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Rejection = std::convert::Infallible;
    type Transition = crate::domain::Change<Account>;

    fn id(&self) -> AccountId {
        self.id
    }

    fn version(&self) -> i64 {
        self.version
    }

    /// An account is never closed here: a closed account is a frozen one at zero.
    fn is_final(&self) -> bool {
        false
    }

    fn create(new: NewAccount, now: Millis) -> Result<Self::Transition, Self::Rejection> {
        Ok(crate::domain::Change { entity: Account::open(new, now), events: vec![AccountEvent::Opened] })
    }

    fn apply(&self, command: &AccountCommand, _: Millis) -> Result<Self::Transition, Self::Rejection> {
        match *command {
            AccountCommand::SetFrozen { frozen } => Ok(crate::domain::Change {
                entity: Account {
                    version: self.version + 1,
                    flags: AccountFlags { frozen, ..self.flags },
                    ..self.clone()
                },
                events: vec![AccountEvent::FrozenSet { frozen }],
            }),
        }
    }

    /// The indexed columns of the `ledger_accounts` table.
    fn index_columns(&self) -> Vec<(&'static str, String)> {
        vec![("customer_id", self.customer.to_string()), ("owner_id", self.owner.id.clone())]
    }
}
