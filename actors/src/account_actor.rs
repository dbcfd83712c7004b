//! Ledger accounts on the entity actor shell: one actor per account owns its balances in memory
//! and decides every transfer that touches it, one at a time.
//!
//! A transfer needs its two accounts to agree. The coordinator (`engine::ledger`) asks the
//! account with the lower id to *lead*; the lead asks the other to *join*, handing over its own
//! account as it stands. The joining actor decides the whole transfer with the pure
//! `transfer::decide` on both accounts and answers the decision; each keeps its side. While
//! the lead waits it takes no other message, and a lead only ever waits on a higher id, so no
//! cycle of waits — no deadlock — can form, whatever transfers run at once (A→B beside B→A).
//!
//! Hot accounts: an actor answers a decision as soon as it is made and decides the next
//! transfer on top of it, before either is committed (the coordinator commits and answers the
//! client). Its balances are then the committed ones plus the decided-but-uncommitted changes
//! (`in_flight`). The store re-checks every change against the stored row (`store/ledger.rs`,
//! MOVE), so a decision on top of one that fails can fail its own commit but never break a
//! limit. When a commit fails, the coordinator tells both actors to take its change back
//! (`Settle`); an actor whose decisions may be stale (a failed commit: another node may have
//! moved the account) reloads the row before its next decision once nothing of its own is in
//! flight. ARCHITECTURE.md, "The ledger", says why this departs from the brief's rule 2.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::clock::now_millis;
use crate::context::EntityContext;
use crate::domain::ledger::{
    transfer, Account, AccountCommand, AccountId, NewAccount, Posting, Reach, Transfer, TransferRequest,
    TransferResult, Transferred,
};
use crate::domain::{Entity, Millis};
use crate::entity_actor::{after_failed_write, After, Kind, Registry, Settled, Start};
use crate::outcome::EngineError;
use crate::store::{EntryWrite, LedgerWrite, Side, StoreError, WriteOutcome, WriteSet};

/// The shell's kind for ledger accounts.
pub struct Accounts;

pub type AccountRegistry = Arc<Registry<Accounts>>;

/// What an account actor holds: the account with the changes it decided and that are not yet
/// settled, and whether the stored row may have moved on without it.
#[derive(Debug, Clone)]
pub struct AccountState {
    pub account: Account,
    /// Decisions answered whose commit has not been settled yet.
    pub in_flight: usize,
    /// Reload from the store before the next decision, once nothing is in flight.
    pub stale: bool,
    /// When a decision was last made or settled: decisions unsettled this long after it were
    /// lost (a coordinator that never learnt of them), and the actor reloads.
    pub touched: Instant,
}

impl AccountState {
    fn loaded(account: Account) -> Self {
        Self { account, in_flight: 0, stale: false, touched: Instant::now() }
    }

    /// Count a decision made on top of the others in flight.
    fn decided(&mut self, account: Account) {
        self.account = account;
        self.in_flight += 1;
        self.touched = Instant::now();
        crate::metrics::record_ledger_pipeline_depth(self.in_flight);
    }
}

/// How long decisions may stay unsettled with nothing else happening before the actor treats
/// them as lost and reloads: far beyond any commit's deadline.
const UNSETTLED_MAX: Duration = Duration::from_secs(60);

/// What moves money between two accounts.
#[derive(Debug, Clone)]
pub enum Plan {
    /// A client's transfer; `hold` is the hold it resolves (as stored); `reach` the accounts
    /// its caller may touch.
    Transfer { request: TransferRequest, hold: Option<Transfer>, reach: Reach },
    /// Release a hold whose time-out passed.
    Expire { hold: Transfer },
}

impl Plan {
    /// The (debit, credit) accounts; `None` for a resolution whose hold was not found.
    pub fn accounts(&self) -> Option<(AccountId, AccountId)> {
        match self {
            Self::Transfer { request, hold, .. } => {
                request.accounts().or_else(|| hold.as_ref().map(|hold| (hold.debit, hold.credit)))
            }
            Self::Expire { hold } => Some((hold.debit, hold.credit)),
        }
    }

    /// Whether its caller may touch `account`.
    fn reaches(&self, account: &Account) -> bool {
        match self {
            Self::Transfer { reach, .. } => reach.covers(account),
            Self::Expire { .. } => true,
        }
    }

    /// Whether it resolves a hold.
    fn resolves(&self) -> bool {
        matches!(self, Self::Transfer { request, .. } if request.pending().is_some())
    }
}

/// A decided transfer (or expiry): what the store writes, and the transfer as recorded.
#[derive(Debug, Clone)]
pub struct Decision {
    pub transfer: Transfer,
    pub debit: Account,
    pub credit: Account,
    pub postings: [Posting; 2],
    pub write: LedgerWrite,
}

#[derive(Clone)]
pub enum AccountRequest {
    Open(NewAccount),
    SetFrozen(bool),
    /// Lead a transfer with `partner`, the higher-id account.
    Lead {
        plan: Plan,
        partner: AccountId,
        accounts: AccountRegistry,
    },
    /// Decide a transfer led by the lower-id account, as it stands (`None`: it does not exist).
    Join {
        plan: Plan,
        lead: Option<Account>,
    },
    /// The commits of decisions this account took part in are settled: each with the
    /// account's posting in it (a batch settles all of an account's decisions in one message).
    Settle(Vec<(Posting, Settlement)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Committed,
    /// Not written: take the change back.
    Failed,
    /// Perhaps written: reload.
    Unknown,
}

#[derive(Debug, Clone)]
pub enum AccountReply {
    /// The account as committed (opened, or its flag set).
    Account(Account),
    /// An open of an id that is taken: the account stored under it.
    Exists(Account),
    /// No such account.
    Unknown,
    Decided(Box<Decision>),
    Refused(TransferResult),
    Settled,
}

impl Kind for Accounts {
    type Entity = Account;
    type State = AccountState;
    type Request = AccountRequest;
    type Reply = AccountReply;

    const MAILBOX_CAPACITY: usize = 4096;
    const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
    const IDLE_CHECK_INTERVAL: Duration = Duration::from_secs(30);
    const FINAL_LINGER: Duration = Duration::from_secs(2);

    fn load(
        context: Arc<EntityContext>,
        id: AccountId,
    ) -> BoxFuture<'static, Result<Option<AccountState>, StoreError>> {
        async move { load(&context, id).await }.boxed()
    }

    fn is_final(_: &AccountState) -> bool {
        false
    }

    fn handle(
        context: Arc<EntityContext>,
        id: AccountId,
        known: Option<AccountState>,
        request: AccountRequest,
        deadline: Instant,
    ) -> BoxFuture<'static, Settled<Self>> {
        async move {
            match request {
                AccountRequest::Open(new) => open(&context, known, new, deadline).await,
                AccountRequest::SetFrozen(frozen) => set_frozen(&context, known, frozen, deadline).await,
                AccountRequest::Lead { plan, partner, accounts } => {
                    lead(&context, id, known, plan, partner, &accounts, deadline).await
                }
                AccountRequest::Join { plan, lead } => join(&context, id, known, &plan, lead).await,
                AccountRequest::Settle(settled) => settle(known, &settled),
            }
        }
        .boxed()
    }
}

async fn load(context: &EntityContext, id: AccountId) -> Result<Option<AccountState>, StoreError> {
    Ok(context.store.load_ledger_account(id).await?.map(AccountState::loaded))
}

fn kept(state: Option<AccountState>) -> After<AccountState> {
    state.map_or(After::Missing, After::Keep)
}

async fn open(
    context: &EntityContext,
    known: Option<AccountState>,
    new: NewAccount,
    deadline: Instant,
) -> Settled<Accounts> {
    if let Some(state) = known {
        let account = state.account.clone();
        return (After::Keep(state), Ok(AccountReply::Exists(account)));
    }
    let now = now_millis();
    let Ok(change) = Account::create(new, now);
    let account = change.entity;
    let write = LedgerWrite {
        opened: vec![account.clone()],
        entries: vec![EntryWrite::marker(account.id, "opened")],
        at: now,
        ..LedgerWrite::default()
    };
    match context.writer.commit(WriteSet { ledger: write, ..WriteSet::default() }, deadline).await {
        Ok(WriteOutcome::Committed) => {
            let state = AccountState::loaded(account.clone());
            (After::Keep(state), Ok(AccountReply::Account(account)))
        }
        // Taken meanwhile (another node): answer what is stored.
        Ok(WriteOutcome::Conflict) => match load(context, account.id).await {
            Ok(Some(state)) => {
                let stored = state.account.clone();
                (After::Keep(state), Ok(AccountReply::Exists(stored)))
            }
            Ok(None) => (After::Missing, Err(EngineError::Internal("account insert conflicted with nothing".into()))),
            Err(error) => (After::Missing, Err(error.into())),
        },
        Ok(WriteOutcome::Refused) => (After::Reload, Err(EngineError::Internal("account write refused".into()))),
        Err(error) => {
            let (after, answer) = after_failed_write(error, After::Missing);
            (after, Err(answer))
        }
    }
}

async fn set_frozen(
    context: &EntityContext,
    known: Option<AccountState>,
    frozen: bool,
    deadline: Instant,
) -> Settled<Accounts> {
    let Some(state) = known else {
        return (After::Missing, Ok(AccountReply::Unknown));
    };
    let now = now_millis();
    let Ok(change) = state.account.apply(&AccountCommand::SetFrozen { frozen }, now);
    let id = state.account.id;
    let write = LedgerWrite {
        frozen: vec![(id, frozen)],
        entries: vec![EntryWrite::marker(id, if frozen { "frozen" } else { "unfrozen" })],
        at: now,
        ..LedgerWrite::default()
    };
    match context.writer.commit(WriteSet { ledger: write, ..WriteSet::default() }, deadline).await {
        Ok(WriteOutcome::Committed) => {
            let account = change.entity;
            let answer = Ok(AccountReply::Account(account.clone()));
            (After::Keep(AccountState { account, ..state }), answer)
        }
        Ok(WriteOutcome::Conflict | WriteOutcome::Refused) => {
            (After::Reload, Err(EngineError::Internal("account flag write did not apply".into())))
        }
        Err(error) => {
            let (after, answer) = after_failed_write(error, After::Keep(state));
            (after, Err(answer))
        }
    }
}

/// What the actor holds, reloaded when the row may have moved on and nothing of this actor's
/// is in flight (or what is in flight was lost).
async fn fresh(context: &EntityContext, known: Option<AccountState>) -> Result<Option<AccountState>, StoreError> {
    let Some(state) = known else {
        return Ok(None);
    };
    let lost = state.in_flight > 0 && state.touched.elapsed() >= UNSETTLED_MAX;
    if lost {
        tracing::warn!(account = %state.account.id, in_flight = state.in_flight, "unsettled ledger decisions; reloading");
    }
    if (state.stale && state.in_flight == 0) || lost {
        return load(context, state.account.id).await;
    }
    Ok(Some(state))
}

/// Whether the stored row holds other balances or flags than the actor decided on. (Versions
/// cannot tell: the store counts a batch's folded changes to an account as one.)
fn differs(stored: &AccountState, held: &AccountState) -> bool {
    stored.account.balances != held.account.balances || stored.account.flags != held.account.flags
}

/// A refusal that a fresher row of `id` might turn into an acceptance.
fn limit_refusal(id: AccountId, plan: &Plan, refusal: TransferResult) -> bool {
    match (plan.accounts(), refusal) {
        (Some((debit, _)), TransferResult::ExceedsCredits) => debit == id,
        (Some((_, credit)), TransferResult::ExceedsDebits) => credit == id,
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
async fn lead(
    context: &EntityContext,
    id: AccountId,
    known: Option<AccountState>,
    plan: Plan,
    partner: AccountId,
    accounts: &AccountRegistry,
    deadline: Instant,
) -> Settled<Accounts> {
    let mut state = match fresh(context, known).await {
        Ok(state) => state,
        Err(error) => return (After::Reload, Err(error.into())),
    };
    for attempt in 0..2 {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let join = AccountRequest::Join { plan: plan.clone(), lead: state.as_ref().map(|state| state.account.clone()) };
        let answer = match accounts.ask(partner, join, Start::Load, timeout).await {
            Ok(answer) => answer,
            Err(error) => return (kept(state), Err(error)),
        };
        match (answer, state.take()) {
            (AccountReply::Decided(decision), Some(mut mine)) => {
                mine.decided(if decision.debit.id == id { decision.debit.clone() } else { decision.credit.clone() });
                return (After::Keep(mine), Ok(AccountReply::Decided(decision)));
            }
            (AccountReply::Refused(refusal), Some(mine))
                if attempt == 0 && mine.in_flight == 0 && limit_refusal(id, &plan, refusal) =>
            {
                // Perhaps another node added money since this actor read the row.
                state = match load(context, id).await {
                    Ok(Some(current)) if differs(&current, &mine) => Some(current),
                    Ok(current) => return (kept(current), Ok(AccountReply::Refused(refusal))),
                    Err(error) => return (After::Reload, Err(error.into())),
                };
            }
            (answer, mine) => return (kept(mine), Ok(answer)),
        }
    }
    (kept(state), Err(EngineError::Internal("lead ended without an answer".into())))
}

async fn join(
    context: &EntityContext,
    id: AccountId,
    known: Option<AccountState>,
    plan: &Plan,
    lead: Option<Account>,
) -> Settled<Accounts> {
    let mut state = match fresh(context, known).await {
        Ok(state) => state,
        Err(error) => return (After::Reload, Err(error.into())),
    };
    let Some((debit_id, _)) = plan.accounts() else {
        return (kept(state), Ok(AccountReply::Refused(TransferResult::PendingTransferNotFound)));
    };
    // An account out of the caller's reach does not exist for it (nor does a hold on one).
    let mine_reached = state.as_ref().is_some_and(|mine| plan.reaches(&mine.account));
    let lead_reached = lead.as_ref().is_some_and(|lead| plan.reaches(lead));
    let (mine, lead) = match (state.take(), lead) {
        (Some(mine), Some(lead)) if mine_reached && lead_reached => (mine, lead),
        (mine, _) if plan.resolves() => {
            return (kept(mine), Ok(AccountReply::Refused(TransferResult::PendingTransferNotFound)));
        }
        (mine, _) => {
            // The domain reports a missing debit account before a missing credit account.
            let debit_exists = if id == debit_id { mine_reached } else { lead_reached };
            let refusal =
                if debit_exists { TransferResult::CreditAccountNotFound } else { TransferResult::DebitAccountNotFound };
            return (kept(mine), Ok(AccountReply::Refused(refusal)));
        }
    };
    let mut mine = mine;
    for attempt in 0..2 {
        let now = now_millis();
        match decide(plan, &mine.account, &lead, now) {
            Ok(decision) => {
                let own = if decision.debit.id == mine.account.id { &decision.debit } else { &decision.credit };
                mine.decided(own.clone());
                return (After::Keep(mine), Ok(AccountReply::Decided(Box::new(decision))));
            }
            Err(refusal) if attempt == 0 && mine.in_flight == 0 && limit_refusal(mine.account.id, plan, refusal) => {
                match load(context, mine.account.id).await {
                    Ok(Some(current)) if differs(&current, &mine) => mine = current,
                    Ok(current) => return (kept(current), Ok(AccountReply::Refused(refusal))),
                    Err(error) => return (After::Reload, Err(error.into())),
                }
            }
            Err(refusal) => return (After::Keep(mine), Ok(AccountReply::Refused(refusal))),
        }
    }
    (After::Keep(mine), Err(EngineError::Internal("join ended without an answer".into())))
}

/// Decide `plan` on the two accounts (which is which, the plan says).
fn decide(plan: &Plan, one: &Account, other: &Account, now: Millis) -> Result<Decision, TransferResult> {
    let (debit_id, _) = plan.accounts().ok_or(TransferResult::PendingTransferNotFound)?;
    let (debit, credit) = if one.id == debit_id { (one, other) } else { (other, one) };
    match plan {
        Plan::Transfer { request, hold, .. } => {
            let transferred = transfer::decide(request, debit, credit, hold.as_ref(), now)?;
            let must_be_open = !matches!(request, TransferRequest::VoidPending { .. });
            decision(debit, credit, transferred, must_be_open, now)
        }
        Plan::Expire { hold } => {
            let (expired, debit_after, credit_after) =
                transfer::expire(hold, debit, credit, now).ok_or(TransferResult::PendingTransferExpired)?;
            let transferred = Transferred {
                transfer: expired.clone(),
                debit: debit_after,
                credit: credit_after,
                pending: Some(expired),
            };
            decision(debit, credit, transferred, false, now)
        }
    }
}

fn decision(
    debit: &Account,
    credit: &Account,
    transferred: Transferred,
    must_be_open: bool,
    now: Millis,
) -> Result<Decision, TransferResult> {
    let debit_posting = Posting::between(debit, &transferred.debit, must_be_open).ok_or(TransferResult::Overflow)?;
    let credit_posting = Posting::between(credit, &transferred.credit, must_be_open).ok_or(TransferResult::Overflow)?;
    let record = &transferred.transfer;
    // An expiry records no transfer of its own: its entries name the hold.
    let expiry = transferred.pending.as_ref().is_some_and(|hold| hold.id == record.id);
    let kind = if expiry { "expired" } else { record.kind.as_str() };
    let entry = |posting: Posting, side| EntryWrite {
        posting,
        transfer: Some(record.id),
        kind,
        side: Some(side),
        amount: Some(record.amount),
    };
    let write = LedgerWrite {
        transfers: if expiry { Vec::new() } else { vec![record.clone()] },
        resolved: transferred.pending.iter().cloned().collect(),
        entries: vec![entry(debit_posting, Side::Debit), entry(credit_posting, Side::Credit)],
        at: now,
        ..LedgerWrite::default()
    };
    Ok(Decision {
        transfer: record.clone(),
        debit: transferred.debit,
        credit: transferred.credit,
        postings: [debit_posting, credit_posting],
        write,
    })
}

fn settle(known: Option<AccountState>, settled: &[(Posting, Settlement)]) -> Settled<Accounts> {
    let Some(mut state) = known else {
        // A fresh activation loaded the row after the commits: nothing to settle.
        return (After::Missing, Ok(AccountReply::Settled));
    };
    state.in_flight = state.in_flight.saturating_sub(settled.len());
    state.touched = Instant::now();
    for (posting, outcome) in settled {
        match outcome {
            Settlement::Committed => {}
            Settlement::Failed => match posting.undo(&state.account) {
                Some(account) => {
                    state.account = account;
                    state.stale = true;
                }
                None => return (After::Reload, Ok(AccountReply::Settled)),
            },
            Settlement::Unknown => return (After::Reload, Ok(AccountReply::Settled)),
        }
    }
    (After::Keep(state), Ok(AccountReply::Settled))
}
