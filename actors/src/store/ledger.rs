//! The ledger's tables (`ledger_accounts`, `ledger_transfers`, `ledger_entries`): what a
//! write set writes there, and the reads. Written once for both backends like every query.
//!
//! A write set's ledger part ([`LedgerWrite`]) becomes rows in a fixed order: new accounts,
//! flag changes, one MOVE per account (the changes of all its entries added up), new
//! transfers, resolved holds, then the entries. MOVE adds to the account's sums only where the
//! row keeps the account's limits afterwards, so what the account actors decided in memory
//! can fail its commit (`Conflict`) but never break a limit. Each entry records the account's
//! sums after it: the row after the MOVE less the changes of the entries after it.
//!
//! PostgreSQL folds the ledger parts of a whole pipelined batch into one MOVE per account,
//! all in one statement that walks them in account order ([`MOVES_UNNEST`]): a hot account
//! costs one row update per batch, and two batches in flight lock the accounts they share in
//! the same order, so they cannot deadlock.

use std::collections::BTreeMap;

use super::queries::{statement, Statement};
use super::rows;
use super::sql::{args, Backend, Row, Value};
use super::StoreError;
use crate::domain::ledger::{
    Account, AccountFlags, AccountId, AccountKind, Amount, Balances, Currency, Owner, OwnerKind, Posting, Transfer,
    TransferId, TransferKind,
};
use crate::domain::{CustomerId, Millis};

const ACCOUNT_COLUMNS: &str = "id, customer_id, owner_kind, owner_id, currency, kind, \
     debits_must_not_exceed_credits, credits_must_not_exceed_debits, frozen, \
     debits_pending, debits_posted, credits_pending, credits_posted, version, created";
const ENTRY_COLUMNS: &str = "seq, account, customer_id, transfer, kind, side, amount, \
     debits_pending, debits_posted, credits_pending, credits_posted, at";

pub(super) static INSERT_ACCOUNT: Statement = statement!(
    "insert_ledger_account",
    "INSERT INTO ledger_accounts ({ACCOUNT_COLUMNS}, updated) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, 0, 0, 1, $10, $10) ON CONFLICT (id) DO NOTHING"
);
pub(super) static SET_FROZEN: Statement = statement!(
    "set_ledger_account_frozen",
    "UPDATE ledger_accounts SET frozen = $2, version = version + 1, updated = $3 WHERE id = $1"
);
/// Add a change to an account's sums where the result keeps its limits (`$6` = check them)
/// and, for `$7` = 1, where it is not frozen.
pub(super) static MOVE: Statement = statement!(
    "move_ledger_account",
    "UPDATE ledger_accounts SET debits_pending = debits_pending + $2, debits_posted = debits_posted + $3, \
     credits_pending = credits_pending + $4, credits_posted = credits_posted + $5, \
     version = version + 1, updated = $8 \
     WHERE id = $1 AND debits_pending + $2 >= 0 AND credits_pending + $4 >= 0 \
     AND ($7 = 0 OR NOT frozen) \
     AND ($6 = 0 OR ((NOT debits_must_not_exceed_credits \
                      OR debits_pending + $2 + debits_posted + $3 <= credits_posted + $5) \
                 AND (NOT credits_must_not_exceed_debits \
                      OR credits_pending + $4 + credits_posted + $5 <= debits_posted + $3)))"
);
pub(super) static INSERT_TRANSFER: Statement = statement!(
    "insert_ledger_transfer",
    "INSERT INTO ledger_transfers \
     (id, debit, credit, amount, currency, kind, pending_id, expires_at, pending_state, record, created, updated) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) ON CONFLICT (id) DO NOTHING"
);
/// A hold's new state, only over a hold still pending: two resolutions cannot both commit.
pub(super) static RESOLVE_HOLD: Statement = statement!(
    "resolve_ledger_hold",
    "UPDATE ledger_transfers SET pending_state = $2, record = $3, updated = $4 \
     WHERE id = $1 AND pending_state = 'pending'"
);
/// [`INSERT_TRANSFER`] for many rows at once (PostgreSQL's pipelined commit): one array per
/// parameter, in the same order.
pub(super) const INSERT_TRANSFERS_UNNEST: &str = "INSERT INTO ledger_transfers \
     (id, debit, credit, amount, currency, kind, pending_id, expires_at, pending_state, record, created, updated) \
     SELECT t.*, t.created FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[], \
     $7::TEXT[], $8::BIGINT[], $9::TEXT[], $10::TEXT[], $11::BIGINT[]) \
     AS t(id, debit, credit, amount, currency, kind, pending_id, expires_at, pending_state, record, created) \
     ON CONFLICT (id) DO NOTHING";
/// [`MOVE`] for many accounts at once (each once): an account whose limits or flag refuse its
/// change is not updated, and the statement's row count says so.
pub(super) const MOVES_UNNEST: &str = "UPDATE ledger_accounts a SET debits_pending = a.debits_pending + m.dp, \
     debits_posted = a.debits_posted + m.dpo, credits_pending = a.credits_pending + m.cp, \
     credits_posted = a.credits_posted + m.cpo, version = a.version + 1, updated = m.at \
     FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[], $6::BIGINT[], \
     $7::BIGINT[], $8::BIGINT[]) AS m(id, dp, dpo, cp, cpo, check_limits, must_be_open, at) \
     WHERE a.id = m.id AND a.debits_pending + m.dp >= 0 AND a.credits_pending + m.cp >= 0 \
     AND (m.must_be_open = 0 OR NOT a.frozen) \
     AND (m.check_limits = 0 OR ((NOT a.debits_must_not_exceed_credits \
                      OR a.debits_pending + m.dp + a.debits_posted + m.dpo <= a.credits_posted + m.cpo) \
                 AND (NOT a.credits_must_not_exceed_debits \
                      OR a.credits_pending + m.cp + a.credits_posted + m.cpo <= a.debits_posted + m.dpo)))";
/// Sent before [`MOVES_UNNEST`] (for the rest of the commit's transaction): plan its join as
/// a walk over the array with an index lookup per account, so that it locks the accounts in
/// the array's order (account order) whatever their number.
pub(super) const MOVES_IN_ORDER: &str = "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off";
/// [`INSERT_ENTRY`] for many rows at once, numbered in the arrays' order.
pub(super) const INSERT_ENTRIES_UNNEST: &str = "INSERT INTO ledger_entries (account, customer_id, transfer, kind, \
     side, amount, debits_pending, debits_posted, credits_pending, credits_posted, at) \
     SELECT a.id, a.customer_id, e.transfer, e.kind, e.side, e.amount, a.debits_pending - e.dp, \
     a.debits_posted - e.dpo, a.credits_pending - e.cp, a.credits_posted - e.cpo, e.at \
     FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], \
     $8::BIGINT[], $9::BIGINT[], $10::BIGINT[]) WITH ORDINALITY \
     AS e(account, transfer, kind, side, amount, dp, dpo, cp, cpo, at, ord) \
     JOIN ledger_accounts a ON a.id = e.account ORDER BY e.ord";
/// The types of [`INSERT_TRANSFER`]'s parameters, and of [`INSERT_ENTRY`]'s (`true`: integer).
pub(super) const TRANSFER_INTEGERS: [bool; 11] =
    [false, false, false, true, false, false, false, true, false, false, true];
pub(super) const ENTRY_INTEGERS: [bool; 10] = [false, false, false, false, true, true, true, true, true, true];
/// The types of [`MOVE`]'s parameters.
pub(super) const MOVE_INTEGERS: [bool; 8] = [false, true, true, true, true, true, true, true];

/// Whether a row write moves an account's sums.
pub(super) fn moves_account(row: &RowWrite) -> bool {
    std::ptr::eq(row.statement, &MOVE)
}

/// Whether a row write inserts a transfer, or an entry (rows a pipelined commit inserts at once).
pub(super) fn inserts_transfer(row: &RowWrite) -> bool {
    std::ptr::eq(row.statement, &INSERT_TRANSFER)
}

pub(super) fn inserts_entry(row: &RowWrite) -> bool {
    std::ptr::eq(row.statement, &INSERT_ENTRY)
}

/// An entry with the account's sums after it: the row's now, less the changes after it.
pub(super) static INSERT_ENTRY: Statement = statement!(
    "insert_ledger_entry",
    "INSERT INTO ledger_entries (account, customer_id, transfer, kind, side, amount, \
     debits_pending, debits_posted, credits_pending, credits_posted, at) \
     SELECT id, customer_id, CAST($2 AS TEXT), CAST($3 AS TEXT), CAST($4 AS TEXT), CAST($5 AS BIGINT), \
     debits_pending - $6, debits_posted - $7, credits_pending - $8, credits_posted - $9, CAST($10 AS BIGINT) \
     FROM ledger_accounts WHERE id = $1"
);

static LOAD_ACCOUNT: Statement =
    statement!("load_ledger_account", "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE id = $1");
static ACCOUNTS_OF_CUSTOMER: Statement = statement!(
    "ledger_accounts_of_customer",
    "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE customer_id = $1 AND id > $2 ORDER BY id LIMIT $3"
);
static ACCOUNTS_OF_OWNER: Statement = statement!(
    "ledger_accounts_of_owner",
    "SELECT {ACCOUNT_COLUMNS} FROM ledger_accounts WHERE owner_kind = $1 AND owner_id = $2 AND id > $3 \
     ORDER BY id LIMIT $4"
);
static LOAD_TRANSFER: Statement =
    statement!("load_ledger_transfer", "SELECT record FROM ledger_transfers WHERE id = $1");
/// Ids one read of several transfers names; fewer are padded with the last (one SQL text, so
/// PostgreSQL prepares it once).
const TRANSFERS_PER_READ: usize = 100;
static LOAD_TRANSFERS: Statement = Statement {
    what: "load_ledger_transfers",
    sql: std::sync::LazyLock::new(|| {
        let slots: Vec<String> = (1..=TRANSFERS_PER_READ).map(|slot| format!("${slot}")).collect();
        format!("SELECT record FROM ledger_transfers WHERE id IN ({})", slots.join(", "))
    }),
};
static DUE_HOLDS: Statement = statement!(
    "due_ledger_holds",
    "SELECT record FROM ledger_transfers WHERE pending_state = 'pending' AND expires_at <= $1 \
     ORDER BY expires_at LIMIT $2"
);
static ACCOUNT_ENTRIES: Statement = statement!(
    "ledger_account_entries",
    "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE account = $1 AND at >= $2 AND at < $3 \
     AND (at > $4 OR (at = $4 AND seq > $5)) ORDER BY at, seq LIMIT $6"
);
static ENTRY_BEFORE: Statement = statement!(
    "ledger_entry_before",
    "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE account = $1 AND at < $2 ORDER BY at DESC, seq DESC LIMIT 1"
);
// A hold's expiry names the hold: it is listed once, where it was made.
static ACCOUNT_TRANSFERS: Statement = statement!(
    "ledger_account_transfers",
    "SELECT e.at, e.seq, t.record FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer \
     WHERE e.account = $1 AND e.at >= $2 AND e.at < $3 AND (e.at > $4 OR (e.at = $4 AND e.seq > $5)) \
     AND e.kind <> 'expired' ORDER BY e.at, e.seq LIMIT $6"
);
/// The newest transfers of an account's journal lines, newest first (the index read backwards).
static ACCOUNT_TRANSFERS_LATEST: Statement = statement!(
    "ledger_account_transfers_latest",
    "SELECT e.at, e.seq, t.record FROM ledger_entries e JOIN ledger_transfers t ON t.id = e.transfer \
     WHERE e.account = $1 AND e.kind <> 'expired' ORDER BY e.at DESC, e.seq DESC LIMIT $2"
);
static CUSTOMER_ENTRIES: Statement = statement!(
    "ledger_customer_entries",
    "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
);
static ALL_ENTRIES: Statement = statement!(
    "ledger_entries_after",
    "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq > $1 ORDER BY seq LIMIT $2"
);
static PENDING_HOLDS: Statement =
    statement!("pending_ledger_holds", "SELECT COUNT(*) FROM ledger_transfers WHERE pending_state = 'pending'");
static LAST_ENTRY: Statement = statement!("last_ledger_entry", "SELECT MAX(seq) FROM ledger_entries");

/// The statements a commit may run, for backends that prepare them up front.
pub(super) static COMMIT_STATEMENTS: [&Statement; 6] =
    [&INSERT_ACCOUNT, &SET_FROZEN, &MOVE, &INSERT_TRANSFER, &RESOLVE_HOLD, &INSERT_ENTRY];

/// Which side of a transfer an account is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debit => "debit",
            Self::Credit => "credit",
        }
    }
}

/// One account's line of a change: a transfer's leg, an expiry's release, the opening, a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryWrite {
    /// The change to the account's sums (all zero for an opening or a flag).
    pub posting: Posting,
    pub transfer: Option<TransferId>,
    /// `opened`, `frozen`, `unfrozen`, a transfer kind's text, or `expired`.
    pub kind: &'static str,
    pub side: Option<Side>,
    pub amount: Option<Amount>,
}

impl EntryWrite {
    /// A line that changes no sum.
    pub fn marker(account: AccountId, kind: &'static str) -> Self {
        Self { posting: Posting::zero(account), transfer: None, kind, side: None, amount: None }
    }
}

/// The ledger's part of a write set. Any part that does not apply makes the set a conflict:
/// an account id already taken, a change that would break a limit or touch a frozen account,
/// a transfer id already taken, a hold no longer pending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerWrite {
    pub opened: Vec<Account>,
    pub frozen: Vec<(AccountId, bool)>,
    pub transfers: Vec<Transfer>,
    /// Holds with their new state.
    pub resolved: Vec<Transfer>,
    /// In order; their postings are what the accounts' sums change by.
    pub entries: Vec<EntryWrite>,
    pub at: Millis,
}

impl LedgerWrite {
    pub fn is_empty(&self) -> bool {
        self.opened.is_empty()
            && self.frozen.is_empty()
            && self.transfers.is_empty()
            && self.resolved.is_empty()
            && self.entries.is_empty()
    }
}

/// A statement of a commit with its values; `must_apply`: no row changed makes the set a
/// conflict.
#[derive(Clone)]
pub(super) struct RowWrite {
    pub statement: &'static Statement,
    pub values: Vec<Value>,
    pub must_apply: bool,
}

impl std::fmt::Debug for RowWrite {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RowWrite")
            .field("statement", &self.statement.what)
            .field("values", &self.values)
            .field("must_apply", &self.must_apply)
            .finish()
    }
}

fn text_of<T: serde::Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Internal(anyhow::anyhow!("encoding {what}: {error}")))
}

fn flag(value: bool) -> i64 {
    i64::from(value)
}

/// The rows of `writes`, written as one: every account's changes added up into one MOVE, the
/// MOVEs in account order. One set's part, or a whole batch's.
/// The accounts `writes` move, as stored ids, in account order.
pub(super) fn moved_accounts<'a>(writes: impl IntoIterator<Item = &'a LedgerWrite>) -> Vec<String> {
    let accounts: std::collections::BTreeSet<AccountId> =
        writes.into_iter().flat_map(|write| &write.entries).map(|entry| entry.posting.account).collect();
    accounts.into_iter().map(|account| account.to_string()).collect()
}

pub(super) fn rows<'a>(writes: impl IntoIterator<Item = &'a LedgerWrite>) -> Result<Vec<RowWrite>, StoreError> {
    let writes: Vec<&LedgerWrite> = writes.into_iter().collect();
    let at = writes.iter().map(|write| write.at).max().unwrap_or(0);
    let mut out = Vec::new();
    for account in writes.iter().flat_map(|write| &write.opened) {
        let Account { id, customer, owner, currency, kind, flags, created, .. } = account;
        out.push(RowWrite {
            statement: &INSERT_ACCOUNT,
            values: args![
                id.to_string(),
                *customer,
                owner.kind.as_str(),
                owner.id.as_str(),
                currency.code(),
                kind.as_str(),
                flag(flags.debits_must_not_exceed_credits),
                flag(flags.credits_must_not_exceed_debits),
                flag(flags.frozen),
                *created
            ],
            must_apply: true,
        });
    }
    for (account, frozen) in writes.iter().flat_map(|write| &write.frozen) {
        out.push(RowWrite {
            statement: &SET_FROZEN,
            values: args![account.to_string(), flag(*frozen), at],
            must_apply: true,
        });
    }
    let entries: Vec<&EntryWrite> = writes.iter().flat_map(|write| &write.entries).collect();
    let mut moves: BTreeMap<AccountId, Posting> = BTreeMap::new();
    for entry in &entries {
        let posting = &entry.posting;
        let folded = match moves.get(&posting.account) {
            Some(before) => before.then(posting),
            None => Some(*posting),
        };
        let folded = folded
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("the changes of {} overflow", posting.account)))?;
        moves.insert(posting.account, folded);
    }
    for posting in moves.values().filter(|posting| !posting.is_zero()) {
        out.push(RowWrite {
            statement: &MOVE,
            values: args![
                posting.account.to_string(),
                posting.debits_pending,
                posting.debits_posted,
                posting.credits_pending,
                posting.credits_posted,
                flag(posting.check_limits),
                flag(posting.must_be_open),
                at
            ],
            must_apply: true,
        });
    }
    for transfer in writes.iter().flat_map(|write| &write.transfers) {
        let (pending_id, expires_at) = match transfer.kind {
            TransferKind::Pending { expires_at } => (None, Some(expires_at)),
            TransferKind::PostPending { pending } | TransferKind::VoidPending { pending } => {
                (Some(pending.to_string()), None)
            }
            TransferKind::Posted => (None, None),
        };
        out.push(RowWrite {
            statement: &INSERT_TRANSFER,
            values: args![
                transfer.id.to_string(),
                transfer.debit.to_string(),
                transfer.credit.to_string(),
                amount(transfer.amount),
                transfer.currency.code(),
                transfer.kind.as_str(),
                pending_id,
                expires_at,
                transfer.pending_state.map(|state| state.as_str()),
                text_of(transfer, "a transfer")?,
                transfer.created
            ],
            must_apply: true,
        });
    }
    for hold in writes.iter().flat_map(|write| &write.resolved) {
        let state = hold.pending_state.map_or("pending", |state| state.as_str());
        out.push(RowWrite {
            statement: &RESOLVE_HOLD,
            values: args![hold.id.to_string(), state, text_of(hold, "a hold")?, at],
            must_apply: true,
        });
    }
    // Each entry's sums: the row after its MOVE, less what the entries after it add.
    let mut after: BTreeMap<AccountId, Posting> = BTreeMap::new();
    let mut entry_rows = Vec::with_capacity(entries.len());
    for entry in entries.iter().rev() {
        let account = entry.posting.account;
        let later = after.get(&account).copied().unwrap_or_else(|| Posting::zero(account));
        entry_rows.push(RowWrite {
            statement: &INSERT_ENTRY,
            values: args![
                account.to_string(),
                entry.transfer.map(|id| id.to_string()),
                entry.kind,
                entry.side.map(Side::as_str),
                entry.amount.map(amount),
                later.debits_pending,
                later.debits_posted,
                later.credits_pending,
                later.credits_posted,
                at
            ],
            must_apply: true,
        });
        let sum = later
            .then(&entry.posting)
            .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("the changes of {account} overflow")))?;
        after.insert(account, sum);
    }
    out.extend(entry_rows.into_iter().rev());
    Ok(out)
}

fn amount(amount: Amount) -> i64 {
    // An amount is at most i64::MAX.
    i64::try_from(amount.get()).unwrap_or(i64::MAX)
}

fn corrupt(what: &str, value: &str) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("corrupt {what}: {value:?}"))
}

fn balance(row: &Row, index: usize) -> Result<u128, StoreError> {
    let value = row.i64(index)?;
    u128::try_from(value).map_err(|_| corrupt("ledger balance", &value.to_string()))
}

fn account(row: &Row) -> Result<Account, StoreError> {
    let id = row.text(0)?;
    let owner_kind = row.text(2)?;
    let currency = row.text(4)?;
    let kind = row.text(5)?;
    Ok(Account {
        id: AccountId(uuid::Uuid::parse_str(&id).map_err(|_| corrupt("ledger account id", &id))?),
        customer: row.i64(1)?,
        owner: Owner {
            kind: OwnerKind::parse(&owner_kind).ok_or_else(|| corrupt("owner kind", &owner_kind))?,
            id: row.text(3)?,
        },
        currency: Currency::new(&currency).ok_or_else(|| corrupt("currency", &currency))?,
        kind: AccountKind::parse(&kind).ok_or_else(|| corrupt("account kind", &kind))?,
        flags: AccountFlags {
            debits_must_not_exceed_credits: row.i64(6)? != 0,
            credits_must_not_exceed_debits: row.i64(7)? != 0,
            frozen: row.i64(8)? != 0,
        },
        balances: Balances {
            debits_pending: balance(row, 9)?,
            debits_posted: balance(row, 10)?,
            credits_pending: balance(row, 11)?,
            credits_posted: balance(row, 12)?,
        },
        version: row.i64(13)?,
        created: row.i64(14)?,
    })
}

fn transfer(row: &Row) -> Result<Transfer, StoreError> {
    record_at(row, 0)
}

/// The transfer recorded (as JSON) in column `index`.
fn record_at(row: &Row, index: usize) -> Result<Transfer, StoreError> {
    let record = row.text(index)?;
    serde_json::from_str(&record).map_err(|error| StoreError::Internal(anyhow::anyhow!("corrupt transfer: {error}")))
}

/// A line of an account's journal, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub seq: i64,
    pub account: AccountId,
    pub customer: CustomerId,
    pub transfer: Option<TransferId>,
    pub kind: String,
    pub side: Option<Side>,
    pub amount: Option<u64>,
    /// The account's sums after this line.
    pub balances: Balances,
    pub at: Millis,
}

fn entry(row: &Row) -> Result<LedgerEntry, StoreError> {
    let uuid = |text: String| uuid::Uuid::parse_str(&text).map_err(|_| corrupt("ledger entry uuid", &text));
    let side = match row.opt_text(5)?.as_deref() {
        None => None,
        Some("debit") => Some(Side::Debit),
        Some("credit") => Some(Side::Credit),
        Some(other) => return Err(corrupt("ledger entry side", other)),
    };
    let amount = row.opt_i64(6)?.map(|value| u64::try_from(value).map_err(|_| corrupt("amount", &value.to_string())));
    Ok(LedgerEntry {
        seq: row.i64(0)?,
        account: AccountId(uuid(row.text(1)?)?),
        customer: row.i64(2)?,
        transfer: row.opt_text(3)?.map(uuid).transpose()?.map(TransferId),
        kind: row.text(4)?,
        side,
        amount: amount.transpose()?,
        balances: Balances {
            debits_pending: balance(row, 7)?,
            debits_posted: balance(row, 8)?,
            credits_pending: balance(row, 9)?,
            credits_posted: balance(row, 10)?,
        },
        at: row.i64(11)?,
    })
}

/// Where a list of accounts starts: after this id (exclusive), or from the first.
fn after_id(after: Option<AccountId>) -> String {
    after.map_or_else(String::new, |id| id.to_string())
}

pub(super) async fn load_account<B: Backend>(backend: &B, id: AccountId) -> Result<Option<Account>, StoreError> {
    LOAD_ACCOUNT.first(backend, args![id.to_string()], account).await
}

pub(super) async fn accounts_of_customer<B: Backend>(
    backend: &B,
    customer: CustomerId,
    after: Option<AccountId>,
    limit: usize,
) -> Result<Vec<Account>, StoreError> {
    ACCOUNTS_OF_CUSTOMER.all(backend, args![customer, after_id(after), rows::list_limit(limit)], account).await
}

pub(super) async fn accounts_of_owner<B: Backend>(
    backend: &B,
    owner: &Owner,
    after: Option<AccountId>,
    limit: usize,
) -> Result<Vec<Account>, StoreError> {
    let values = args![owner.kind.as_str(), owner.id.as_str(), after_id(after), rows::list_limit(limit)];
    ACCOUNTS_OF_OWNER.all(backend, values, account).await
}

pub(super) async fn load_transfer<B: Backend>(backend: &B, id: TransferId) -> Result<Option<Transfer>, StoreError> {
    LOAD_TRANSFER.first(backend, args![id.to_string()], transfer).await
}

/// The transfers of these ids that exist, read [`TRANSFERS_PER_READ`] ids at a time.
pub(super) async fn load_transfers<B: Backend>(backend: &B, ids: &[TransferId]) -> Result<Vec<Transfer>, StoreError> {
    let mut found = Vec::new();
    for chunk in ids.chunks(TRANSFERS_PER_READ) {
        let mut values: Vec<String> = chunk.iter().map(TransferId::to_string).collect();
        let last = values.last().cloned().unwrap_or_default();
        values.resize(TRANSFERS_PER_READ, last);
        found.extend(LOAD_TRANSFERS.all(backend, values.into_iter().map(Value::from).collect(), transfer).await?);
    }
    Ok(found)
}

pub(super) async fn due_holds<B: Backend>(backend: &B, now: Millis, limit: usize) -> Result<Vec<Transfer>, StoreError> {
    DUE_HOLDS.all(backend, args![now, rows::list_limit(limit)], transfer).await
}

/// Which entries of an account to read: those at `from..until`, after the cursor `after`
/// (an entry's `(at, seq)`), at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRange {
    pub from: Millis,
    pub until: Millis,
    pub after: Option<(Millis, i64)>,
    pub limit: usize,
}

impl EntryRange {
    /// The parameters of a query of `account`'s journal lines in this range.
    fn values(&self, account: AccountId) -> Vec<Value> {
        let (after_at, after_seq) = self.after.unwrap_or((i64::MIN, i64::MIN));
        args![account.to_string(), self.from, self.until, after_at, after_seq, rows::list_limit(self.limit)]
    }
}

pub(super) async fn account_entries<B: Backend>(
    backend: &B,
    account: AccountId,
    range: EntryRange,
) -> Result<Vec<LedgerEntry>, StoreError> {
    ACCOUNT_ENTRIES.all(backend, range.values(account), entry).await
}

/// The account's last line before `at`: its sums as they stood then.
pub(super) async fn entry_before<B: Backend>(
    backend: &B,
    account: AccountId,
    at: Millis,
) -> Result<Option<LedgerEntry>, StoreError> {
    ENTRY_BEFORE.first(backend, args![account.to_string(), at], entry).await
}

/// A transfer in an account's list, with where it stands in the account's journal (the
/// list's cursor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountTransfer {
    pub at: Millis,
    pub seq: i64,
    pub transfer: Transfer,
}

pub(super) async fn latest_account_transfers<B: Backend>(
    backend: &B,
    account: AccountId,
    limit: usize,
) -> Result<Vec<AccountTransfer>, StoreError> {
    ACCOUNT_TRANSFERS_LATEST
        .all(backend, args![account.to_string(), rows::list_limit(limit)], |row| {
            Ok(AccountTransfer { at: row.i64(0)?, seq: row.i64(1)?, transfer: record_at(row, 2)? })
        })
        .await
}

pub(super) async fn account_transfers<B: Backend>(
    backend: &B,
    account: AccountId,
    range: EntryRange,
) -> Result<Vec<AccountTransfer>, StoreError> {
    ACCOUNT_TRANSFERS
        .all(backend, range.values(account), |row| {
            Ok(AccountTransfer { at: row.i64(0)?, seq: row.i64(1)?, transfer: record_at(row, 2)? })
        })
        .await
}

pub(super) async fn entries_after<B: Backend>(
    backend: &B,
    customer: Option<CustomerId>,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let limit = rows::list_limit(limit);
    match customer {
        Some(customer) => CUSTOMER_ENTRIES.all(backend, args![customer, after_seq, limit], entry).await,
        None => ALL_ENTRIES.all(backend, args![after_seq, limit], entry).await,
    }
}

pub(super) async fn last_entry_seq<B: Backend>(backend: &B) -> Result<i64, StoreError> {
    Ok(LAST_ENTRY.first(backend, args![], |row| row.opt_i64(0)).await?.flatten().unwrap_or(0))
}

pub(super) async fn pending_holds<B: Backend>(backend: &B) -> Result<i64, StoreError> {
    Ok(PENDING_HOLDS.first(backend, args![], |row| row.i64(0)).await?.unwrap_or(0))
}
