//! Transfers: what a client asks, what is recorded, the pure decision, and its result codes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::account::{Account, AccountId, Balances, Currency};
use crate::domain::Millis;

/// A transfer's id: chosen by the client, so that a retry names the same transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TransferId(pub Uuid);

impl std::fmt::Display for TransferId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(formatter)
    }
}

/// An amount in minor units: 1 to [`Amount::MAX`] (it fits a signed 64-bit column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Amount(u64);

impl Amount {
    pub const MAX: u64 = i64::MAX as u64;

    /// `None` for 0 or above [`Amount::MAX`].
    pub fn new(minor_units: u64) -> Option<Self> {
        (1..=Self::MAX).contains(&minor_units).then_some(Self(minor_units))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    fn wide(self) -> u128 {
        u128::from(self.0)
    }
}

/// What a transfer says of itself, for its client: a code of the client's (what kind of
/// payment), a reference and free metadata. The ledger stores it and never reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memo {
    pub code: u16,
    pub reference: Option<String>,
    pub metadata: Option<Value>,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TransferRequest {
    /// Move `amount` from `debit` to `credit` now.
    Post { id: TransferId, debit: AccountId, credit: AccountId, amount: Amount, memo: Memo },
    /// Reserve `amount` on both accounts until it is posted, voided, or `timeout_ms` passes.
    Hold { id: TransferId, debit: AccountId, credit: AccountId, amount: Amount, memo: Memo, timeout_ms: Millis },
    /// Post a hold: all of it, or `amount` of it (the rest goes back).
    PostPending { id: TransferId, pending: TransferId, amount: Option<Amount> },
    /// Release a hold.
    VoidPending {
        id: TransferId,
        pending: TransferId,
        /// Why the hold is released, for whoever reads the record (a payout that failed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

impl TransferRequest {
    pub fn id(&self) -> TransferId {
        match self {
            Self::Post { id, .. }
            | Self::Hold { id, .. }
            | Self::PostPending { id, .. }
            | Self::VoidPending { id, .. } => *id,
        }
    }

    /// The hold it resolves, if it resolves one.
    pub fn pending(&self) -> Option<TransferId> {
        match self {
            Self::PostPending { pending, .. } | Self::VoidPending { pending, .. } => Some(*pending),
            Self::Post { .. } | Self::Hold { .. } => None,
        }
    }

    /// The accounts it names itself (a hold's resolution takes the hold's).
    pub fn accounts(&self) -> Option<(AccountId, AccountId)> {
        match self {
            Self::Post { debit, credit, .. } | Self::Hold { debit, credit, .. } => Some((*debit, *credit)),
            Self::PostPending { .. } | Self::VoidPending { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TransferKind {
    Posted,
    Pending { expires_at: Millis },
    PostPending { pending: TransferId },
    VoidPending { pending: TransferId },
}

impl TransferKind {
    /// Its column text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Posted => "posted",
            Self::Pending { .. } => "pending",
            Self::PostPending { .. } => "post_pending",
            Self::VoidPending { .. } => "void_pending",
        }
    }
}

/// Where a hold stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum PendingState {
    Pending,
    Posted { amount: Amount },
    Voided,
    Expired,
}

impl PendingState {
    /// Its column text.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Posted { .. } => "posted",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }
}

/// A recorded transfer. Never edited, except a hold's `state` as it is resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: TransferId,
    pub debit: AccountId,
    pub credit: AccountId,
    pub amount: Amount,
    pub currency: Currency,
    pub memo: Memo,
    pub kind: TransferKind,
    /// A hold's state; `None` for every other kind.
    pub pending_state: Option<PendingState>,
    pub created: Millis,
    /// What was asked, to tell a retry (`Exists`) from another request under the same id.
    pub request: TransferRequest,
}

/// Why a transfer was not created, or that it was. Stable: clients match on these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferResult {
    Created,
    /// The same request under this id was created before: nothing changed.
    Exists,
    /// Another request was created under this id.
    ExistsWithDifferentFields,
    /// Another transfer of its linked chain failed; none of the chain applied.
    LinkedEventFailed,
    /// The batch ended inside a linked chain.
    LinkedEventChainOpen,
    AccountsMustBeDifferent,
    DebitAccountNotFound,
    CreditAccountNotFound,
    CurrencyMismatch,
    DebitAccountFrozen,
    CreditAccountFrozen,
    /// The debit account may not go below zero: insufficient funds.
    ExceedsCredits,
    /// The credit account may not go above zero.
    ExceedsDebits,
    /// A hold's time-out must be positive.
    TimeoutMustBePositive,
    PendingTransferNotFound,
    /// The transfer named as the hold is not a hold.
    PendingTransferNotPending,
    PendingTransferAlreadyPosted,
    PendingTransferAlreadyVoided,
    PendingTransferExpired,
    /// A hold is posted for at most its amount.
    ExceedsPendingTransferAmount,
    /// A balance would leave 128 bits.
    Overflow,
}

impl TransferResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Exists => "exists",
            Self::ExistsWithDifferentFields => "exists_with_different_fields",
            Self::LinkedEventFailed => "linked_event_failed",
            Self::LinkedEventChainOpen => "linked_event_chain_open",
            Self::AccountsMustBeDifferent => "accounts_must_be_different",
            Self::DebitAccountNotFound => "debit_account_not_found",
            Self::CreditAccountNotFound => "credit_account_not_found",
            Self::CurrencyMismatch => "currency_mismatch",
            Self::DebitAccountFrozen => "debit_account_frozen",
            Self::CreditAccountFrozen => "credit_account_frozen",
            Self::ExceedsCredits => "exceeds_credits",
            Self::ExceedsDebits => "exceeds_debits",
            Self::TimeoutMustBePositive => "timeout_must_be_positive",
            Self::PendingTransferNotFound => "pending_transfer_not_found",
            Self::PendingTransferNotPending => "pending_transfer_not_pending",
            Self::PendingTransferAlreadyPosted => "pending_transfer_already_posted",
            Self::PendingTransferAlreadyVoided => "pending_transfer_already_voided",
            Self::PendingTransferExpired => "pending_transfer_expired",
            Self::ExceedsPendingTransferAmount => "exceeds_pending_transfer_amount",
            Self::Overflow => "overflow",
        }
    }
}

/// A decided transfer: its record, both accounts after it, and the hold it resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transferred {
    pub transfer: Transfer,
    pub debit: Account,
    pub credit: Account,
    /// The resolved hold with its new state.
    pub pending: Option<Transfer>,
}

/// How a transfer moves the two accounts' balances: (debits, credits) pending and posted,
/// added (`+`) and taken back (`-`).
struct Movement {
    add_pending: u128,
    add_posted: u128,
    release_pending: u128,
}

fn moved(balances: Balances, movement: &Movement, debit_side: bool) -> Option<Balances> {
    let mut next = balances;
    let (pending, posted) = if debit_side {
        (&mut next.debits_pending, &mut next.debits_posted)
    } else {
        (&mut next.credits_pending, &mut next.credits_posted)
    };
    *pending = pending.checked_sub(movement.release_pending)?.checked_add(movement.add_pending)?;
    *posted = posted.checked_add(movement.add_posted)?;
    next.fits().then_some(next)
}

/// Decide `request` on the accounts it touches at `now`: for a hold's resolution, `pending` is
/// the hold and the accounts are the hold's. The caller has checked that the id is new.
pub fn decide(
    request: &TransferRequest,
    debit: &Account,
    credit: &Account,
    pending: Option<&Transfer>,
    now: Millis,
) -> Result<Transferred, TransferResult> {
    if debit.id == credit.id {
        return Err(TransferResult::AccountsMustBeDifferent);
    }
    if debit.currency != credit.currency {
        return Err(TransferResult::CurrencyMismatch);
    }
    let (kind, amount, movement, memo, resolved) = match request {
        TransferRequest::Post { amount, memo, .. } => {
            let movement = Movement { add_pending: 0, add_posted: amount.wide(), release_pending: 0 };
            (TransferKind::Posted, *amount, movement, memo.clone(), None)
        }
        TransferRequest::Hold { amount, memo, timeout_ms, .. } => {
            if *timeout_ms <= 0 {
                return Err(TransferResult::TimeoutMustBePositive);
            }
            let expires_at = now.checked_add(*timeout_ms).ok_or(TransferResult::Overflow)?;
            let movement = Movement { add_pending: amount.wide(), add_posted: 0, release_pending: 0 };
            (TransferKind::Pending { expires_at }, *amount, movement, memo.clone(), None)
        }
        TransferRequest::PostPending { pending: pending_id, amount, .. } => {
            let hold = open_hold(pending, now)?;
            let posted = amount.unwrap_or(hold.amount);
            if posted > hold.amount {
                return Err(TransferResult::ExceedsPendingTransferAmount);
            }
            let movement = Movement { add_pending: 0, add_posted: posted.wide(), release_pending: hold.amount.wide() };
            let state = PendingState::Posted { amount: posted };
            let kind = TransferKind::PostPending { pending: *pending_id };
            (kind, posted, movement, hold.memo.clone(), Some(Transfer { pending_state: Some(state), ..hold.clone() }))
        }
        TransferRequest::VoidPending { pending: pending_id, .. } => {
            let hold = open_hold(pending, now)?;
            let movement = Movement { add_pending: 0, add_posted: 0, release_pending: hold.amount.wide() };
            let kind = TransferKind::VoidPending { pending: *pending_id };
            let voided = Transfer { pending_state: Some(PendingState::Voided), ..hold.clone() };
            (kind, hold.amount, movement, hold.memo.clone(), Some(voided))
        }
    };
    // Releasing a hold is always allowed; anything that moves money needs both accounts open.
    if !matches!(request, TransferRequest::VoidPending { .. }) {
        if debit.flags.frozen {
            return Err(TransferResult::DebitAccountFrozen);
        }
        if credit.flags.frozen {
            return Err(TransferResult::CreditAccountFrozen);
        }
    }
    let debit_balances = moved(debit.balances, &movement, true).ok_or(TransferResult::Overflow)?;
    let credit_balances = moved(credit.balances, &movement, false).ok_or(TransferResult::Overflow)?;
    // Limits are checked only where money is added: a release or a post within a hold
    // never takes an account further from its limit than the hold already did. Each side is
    // checked for the limit a transfer can break there (more debits can only break the debit
    // account's debit limit, more credits the credit account's credit limit).
    if movement.add_pending > 0 || movement.add_posted > movement.release_pending {
        let debit_flags = super::AccountFlags { credits_must_not_exceed_debits: false, ..debit.flags };
        let credit_flags = super::AccountFlags { debits_must_not_exceed_credits: false, ..credit.flags };
        if !debit_balances.within(debit_flags) {
            return Err(TransferResult::ExceedsCredits);
        }
        if !credit_balances.within(credit_flags) {
            return Err(TransferResult::ExceedsDebits);
        }
    }
    let transfer = Transfer {
        id: request.id(),
        debit: debit.id,
        credit: credit.id,
        amount,
        currency: debit.currency.clone(),
        memo,
        kind,
        pending_state: matches!(kind, TransferKind::Pending { .. }).then_some(PendingState::Pending),
        created: now,
        request: request.clone(),
    };
    Ok(Transferred {
        transfer,
        debit: Account { version: debit.version + 1, balances: debit_balances, ..debit.clone() },
        credit: Account { version: credit.version + 1, balances: credit_balances, ..credit.clone() },
        pending: resolved,
    })
}

/// The hold a resolution names, if it can still be resolved at `now`.
fn open_hold(pending: Option<&Transfer>, now: Millis) -> Result<&Transfer, TransferResult> {
    let hold = pending.ok_or(TransferResult::PendingTransferNotFound)?;
    let TransferKind::Pending { expires_at } = hold.kind else {
        return Err(TransferResult::PendingTransferNotPending);
    };
    match hold.pending_state {
        Some(PendingState::Pending) if now >= expires_at => Err(TransferResult::PendingTransferExpired),
        Some(PendingState::Pending) => Ok(hold),
        Some(PendingState::Posted { .. }) => Err(TransferResult::PendingTransferAlreadyPosted),
        Some(PendingState::Voided) => Err(TransferResult::PendingTransferAlreadyVoided),
        Some(PendingState::Expired) | None => Err(TransferResult::PendingTransferExpired),
    }
}

/// A hold whose time-out has passed, released: the hold as expired and both accounts after.
/// `None` when it is not a pending hold due at `now`.
pub fn expire(hold: &Transfer, debit: &Account, credit: &Account, now: Millis) -> Option<(Transfer, Account, Account)> {
    let TransferKind::Pending { expires_at } = hold.kind else {
        return None;
    };
    if hold.pending_state != Some(PendingState::Pending) || now < expires_at {
        return None;
    }
    let movement = Movement { add_pending: 0, add_posted: 0, release_pending: hold.amount.wide() };
    let debit_balances = moved(debit.balances, &movement, true)?;
    let credit_balances = moved(credit.balances, &movement, false)?;
    Some((
        Transfer { pending_state: Some(PendingState::Expired), ..hold.clone() },
        Account { version: debit.version + 1, balances: debit_balances, ..debit.clone() },
        Account { version: credit.version + 1, balances: credit_balances, ..credit.clone() },
    ))
}
