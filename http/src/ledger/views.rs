//! The Ledger API's JSON: accounts, balances, transfers and journal lines. Amounts are
//! integers of minor units (`decimals` says how many make a major unit); times are ISO 8601
//! UTC with milliseconds.

use cashgrid_actors::domain::ledger::{Account, Balances, PendingState, Transfer, TransferKind};
use cashgrid_actors::store::LedgerEntry;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::time;

#[derive(Serialize, ToSchema)]
pub struct OwnerView {
    /// `customer`, `bitcoin_address`, `wallet_user` or `account_holder`.
    pub kind: &'static str,
    pub id: String,
}

#[derive(Serialize, ToSchema)]
pub struct FlagsView {
    /// Debits (pending and posted) never exceed posted credits: it may not go below zero.
    pub debits_must_not_exceed_credits: bool,
    /// Credits (pending and posted) never exceed posted debits: it may not go above zero.
    pub credits_must_not_exceed_debits: bool,
    /// Takes no new transfer; its holds may still be voided or expire.
    pub frozen: bool,
}

/// An account's four sums, and what they come to.
#[derive(Serialize, ToSchema)]
pub struct BalancesView {
    pub debits_pending: u64,
    pub debits_posted: u64,
    pub credits_pending: u64,
    pub credits_posted: u64,
    /// Posted credits less posted debits.
    #[schema(value_type = i64)]
    pub posted: i128,
    /// `posted` less pending debits: what may still be moved out (for an account that may not
    /// go below zero).
    #[schema(value_type = i64)]
    pub available: i128,
}

impl BalancesView {
    pub fn of(balances: &Balances) -> Self {
        // Every sum is at most 2^63 - 1 (the domain's bound), so each fits.
        let sum = |value: u128| u64::try_from(value).unwrap_or(u64::MAX);
        let posted = balances.net_posted();
        Self {
            debits_pending: sum(balances.debits_pending),
            debits_posted: sum(balances.debits_posted),
            credits_pending: sum(balances.credits_pending),
            credits_posted: sum(balances.credits_posted),
            posted,
            available: posted - balances.debits_pending as i128,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AccountView {
    #[schema(format = Uuid)]
    pub id: String,
    /// The cashgrid customer it is kept for.
    pub customer_id: i64,
    pub owner: OwnerView,
    /// ISO 4217 (or a configured) code.
    pub currency: String,
    /// Decimal places of the currency: minor units per major unit are 10^decimals.
    pub decimals: u8,
    /// `customer`, `float`, `escrow`, `external_rail` or `fees`.
    pub kind: &'static str,
    pub flags: FlagsView,
    pub balances: BalancesView,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created: i64,
}

impl AccountView {
    pub fn of(account: &Account, decimals: u8) -> Self {
        Self {
            id: account.id.to_string(),
            customer_id: account.customer,
            owner: OwnerView { kind: account.owner.kind.as_str(), id: account.owner.id.clone() },
            currency: account.currency.code().to_owned(),
            decimals,
            kind: account.kind.as_str(),
            flags: FlagsView {
                debits_must_not_exceed_credits: account.flags.debits_must_not_exceed_credits,
                credits_must_not_exceed_debits: account.flags.credits_must_not_exceed_debits,
                frozen: account.flags.frozen,
            },
            balances: BalancesView::of(&account.balances),
            created: account.created,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TransferView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub debit_account_id: String,
    #[schema(format = Uuid)]
    pub credit_account_id: String,
    /// Minor units.
    pub amount: u64,
    pub currency: String,
    /// `posted`, `pending` (a hold), `post_pending` or `void_pending`.
    pub kind: &'static str,
    /// The hold it posts or voids.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub pending_id: Option<String>,
    /// When a hold is released unless posted or voided before.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "time::serialize_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<i64>,
    /// A hold's state: `pending`, `posted`, `voided` or `expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// How much of a posted hold was posted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posted_amount: Option<u64>,
    pub code: u16,
    #[schema(required = true)]
    pub reference: Option<String>,
    #[schema(required = true, value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub created: i64,
}

impl TransferView {
    pub fn of(transfer: &Transfer) -> Self {
        let (pending_id, expires_at) = match transfer.kind {
            TransferKind::Pending { expires_at } => (None, Some(expires_at)),
            TransferKind::PostPending { pending } | TransferKind::VoidPending { pending } => {
                (Some(pending.to_string()), None)
            }
            TransferKind::Posted => (None, None),
        };
        let posted_amount = match transfer.pending_state {
            Some(PendingState::Posted { amount }) => Some(amount.get()),
            _ => None,
        };
        Self {
            id: transfer.id.to_string(),
            debit_account_id: transfer.debit.to_string(),
            credit_account_id: transfer.credit.to_string(),
            amount: transfer.amount.get(),
            currency: transfer.currency.code().to_owned(),
            kind: transfer.kind.as_str(),
            pending_id,
            expires_at,
            state: transfer.pending_state.as_ref().map(PendingState::as_str),
            posted_amount,
            code: transfer.memo.code,
            reference: transfer.memo.reference.clone(),
            metadata: transfer.memo.metadata.clone(),
            created: transfer.created,
        }
    }
}

/// A line of an account's journal: what changed it, and its sums after.
#[derive(Serialize, ToSchema)]
pub struct LineView {
    /// The journal's sequence number (also the feed's).
    pub seq: i64,
    #[serde(serialize_with = "time::serialize")]
    #[schema(value_type = String, format = DateTime)]
    pub at: i64,
    /// `opened`, `frozen`, `unfrozen`, `posted`, `pending`, `post_pending`, `void_pending` or
    /// `expired` (a hold released at its time-out).
    pub kind: String,
    #[schema(required = true, format = Uuid)]
    pub transfer_id: Option<String>,
    /// `debit` or `credit`.
    #[schema(required = true)]
    pub side: Option<&'static str>,
    #[schema(required = true)]
    pub amount: Option<u64>,
    pub balances: BalancesView,
}

impl LineView {
    pub fn of(entry: &LedgerEntry) -> Self {
        Self {
            seq: entry.seq,
            at: entry.at,
            kind: entry.kind.clone(),
            transfer_id: entry.transfer.map(|id| id.to_string()),
            side: entry.side.map(|side| side.as_str()),
            amount: entry.amount,
            balances: BalancesView::of(&entry.balances),
        }
    }
}
