//! The ledger: accounts, transfers in linked chains, holds and their expiry, and the reads
//! behind balances and statements. Transfers are decided by the account actors
//! (`account_actor`: the lower-id account leads, the other joins) and committed here, a chain
//! in one write set; each request is answered only after its commit.
//!
//! The work of a request runs as a task of its own, so a client that goes away cannot stop it
//! between a decision and its commit: the actors always learn how their decisions settled. The
//! task runs on an arbiter of the account actors, so asking them wakes no other thread.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::EngineError;
use crate::account_actor::{AccountRegistry, AccountReply, AccountRequest, Decision, Plan, Settlement};
use crate::domain::ledger::{
    chain_failed, chains, Account, AccountId, Balances, Currencies, NewAccount, Owner, Posting, Reach, Submitted,
    Transfer, TransferId, TransferKind, TransferRequest, TransferResult,
};
use crate::domain::{CustomerId, Millis};
use crate::entity_actor::{write_error, Start};
use crate::metrics as m;
use crate::store::{AccountTransfer, EntryRange, LedgerEntry, LedgerWrite, Store, WriteOutcome, WriteSet};
use crate::writer::WriteError;

/// Most transfers in one batch.
pub const BATCH_MAX: usize = 1_000;
/// Decide-and-commit rounds of a chain whose commit conflicted (another node, a hold resolved
/// meanwhile, a retry of the same id) before it is answered as retryable.
const ATTEMPTS: usize = 3;
/// How long settling a decision with its actors may take.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Decided chains of a batch committed together: one task hands their write sets to the
/// writer and settles them with one message per account, while later chains are decided.
const COMMIT_GROUP: usize = 64;

/// How an open went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    Created(Account),
    /// The same account was opened before under this id.
    Exists(Account),
    /// Another account has this id.
    ExistsWithDifferentFields(Account),
    /// The currency table (ISO 4217 and the configured ones) does not know its currency.
    UnknownCurrency,
    /// No cashgrid customer has its customer number.
    UnknownCustomer,
}

/// A transfer's answer: its result code, and the transfer as recorded when it was created or
/// exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferOutcome {
    pub result: TransferResult,
    pub transfer: Option<Transfer>,
}

/// A request's answer in a batch.
pub type Answer = Result<TransferOutcome, EngineError>;

impl TransferOutcome {
    fn refused(result: TransferResult) -> Self {
        Self { result, transfer: None }
    }
}

#[derive(Clone)]
pub struct LedgerService {
    accounts: AccountRegistry,
    store: Arc<dyn Store>,
    currencies: Arc<Currencies>,
    send_timeout: Duration,
}

impl LedgerService {
    pub fn new(accounts: AccountRegistry, currencies: Currencies, send_timeout: Duration) -> Self {
        let store = Arc::clone(&accounts.context().store);
        Self { accounts, store, currencies: Arc::new(currencies), send_timeout }
    }

    /// The currencies accounts may hold, with their decimal places.
    pub fn currencies(&self) -> &Currencies {
        &self.currencies
    }

    /// Open an account; an id given again answers the account stored under it.
    pub async fn open(&self, new: NewAccount) -> Result<Opened, EngineError> {
        if self.currencies.decimals(&new.currency).is_none() {
            return Ok(Opened::UnknownCurrency);
        }
        if self.store.load_customer(new.customer).await?.is_none() {
            return Ok(Opened::UnknownCustomer);
        }
        let request = AccountRequest::Open(new.clone());
        match self.accounts.ask(new.id, request, Start::Load, self.send_timeout).await? {
            AccountReply::Account(account) => Ok(Opened::Created(account)),
            AccountReply::Exists(account) if account.opened_as(&new) => Ok(Opened::Exists(account)),
            AccountReply::Exists(account) => Ok(Opened::ExistsWithDifferentFields(account)),
            other => Err(unexpected(&other)),
        }
    }

    /// Freeze or unfreeze an account; `None` when there is none.
    pub async fn set_frozen(&self, id: AccountId, frozen: bool) -> Result<Option<Account>, EngineError> {
        match self.accounts.ask(id, AccountRequest::SetFrozen(frozen), Start::Load, self.send_timeout).await? {
            AccountReply::Account(account) => Ok(Some(account)),
            AccountReply::Unknown => Ok(None),
            other => Err(unexpected(&other)),
        }
    }

    /// The account as committed.
    pub async fn account(&self, id: AccountId) -> Result<Option<Account>, EngineError> {
        Ok(self.store.load_ledger_account(id).await?)
    }

    pub async fn accounts_of_customer(
        &self,
        customer: CustomerId,
        after: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<Account>, EngineError> {
        Ok(self.store.ledger_accounts_of_customer(customer, after, limit).await?)
    }

    pub async fn accounts_of_owner(
        &self,
        owner: &Owner,
        after: Option<AccountId>,
        limit: usize,
    ) -> Result<Vec<Account>, EngineError> {
        Ok(self.store.ledger_accounts_of_owner(owner, after, limit).await?)
    }

    pub async fn transfer_by_id(&self, id: TransferId) -> Result<Option<Transfer>, EngineError> {
        Ok(self.store.load_ledger_transfer(id).await?)
    }

    /// The account as committed, if `reach` covers it.
    pub async fn account_in_reach(&self, id: AccountId, reach: Reach) -> Result<Option<Account>, EngineError> {
        Ok(self.account(id).await?.filter(|account| reach.covers(account)))
    }

    /// A transfer, if `reach` covers one of its accounts (a customer sees what moved money in
    /// or out of its accounts).
    pub async fn transfer_in_reach(&self, id: TransferId, reach: Reach) -> Result<Option<Transfer>, EngineError> {
        let Some(transfer) = self.transfer_by_id(id).await? else {
            return Ok(None);
        };
        if reach == Reach::Every {
            return Ok(Some(transfer));
        }
        for account in [transfer.debit, transfer.credit] {
            if self.account_in_reach(account, reach).await?.is_some() {
                return Ok(Some(transfer));
            }
        }
        Ok(None)
    }

    /// An account's journal: its entries in a time range, with its sums after each.
    pub async fn entries(&self, account: AccountId, range: EntryRange) -> Result<Vec<LedgerEntry>, EngineError> {
        Ok(self.store.ledger_account_entries(account, range).await?)
    }

    /// The account's sums as they stood just before `at` (zero before its first line).
    pub async fn balances_before(&self, account: AccountId, at: Millis) -> Result<Balances, EngineError> {
        Ok(self.store.ledger_entry_before(account, at).await?.map(|entry| entry.balances).unwrap_or_default())
    }

    /// The transfers of an account's journal lines in `range`.
    pub async fn account_transfers(
        &self,
        account: AccountId,
        range: EntryRange,
    ) -> Result<Vec<AccountTransfer>, EngineError> {
        Ok(self.store.ledger_account_transfers(account, range).await?)
    }

    /// The transfers of an account's newest journal lines, newest first.
    pub async fn latest_account_transfers(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AccountTransfer>, EngineError> {
        Ok(self.store.ledger_account_latest_transfers(account, limit).await?)
    }

    /// One transfer by a caller of `reach`.
    pub async fn transfer(&self, request: TransferRequest, reach: Reach) -> Result<TransferOutcome, EngineError> {
        let mut answers = self.submit(vec![Submitted { request, linked: false }], reach).await?;
        answers.pop().unwrap_or_else(|| Err(EngineError::Internal("a transfer without an outcome".into())))
    }

    /// A batch of up to [`BATCH_MAX`] transfers, decided in order, one outcome each. Requests
    /// joined by `linked` form a chain that commits whole or not at all (`Book::submit` is the
    /// model); chains commit independently, so each request has an answer of its own: its
    /// outcome, or the fault that kept its chain from committing (then nothing of the chain was
    /// written, or — `OutcomeUnknown` — it may have been).
    pub async fn submit(&self, batch: Vec<Submitted>, reach: Reach) -> Result<Vec<Answer>, EngineError> {
        if batch.len() > BATCH_MAX {
            return Err(EngineError::Rejected(super::Rejection::BatchTooLarge));
        }
        let work = Submission { ledger: self.clone(), deadline: Instant::now() + self.send_timeout, reach };
        // A task of its own (see the module's comment), beside the account actors it asks.
        self.accounts.run_beside(async move { work.run(batch).await }).await
    }

    /// Release a hold whose time-out passed (the expiry sweep). `false` when it was no longer
    /// due or pending.
    pub async fn expire(&self, hold: Transfer) -> Result<bool, EngineError> {
        let work =
            Submission { ledger: self.clone(), deadline: Instant::now() + self.send_timeout, reach: Reach::Every };
        self.accounts.run_beside(async move { work.expire(hold).await }).await?
    }

    /// Holds due at `now`, soonest first.
    pub async fn due_holds(&self, now: Millis, limit: usize) -> Result<Vec<Transfer>, EngineError> {
        Ok(self.store.due_ledger_holds(now, limit).await?)
    }
}

fn unexpected(reply: &AccountReply) -> EngineError {
    EngineError::Internal(format!("unexpected account reply {reply:?}"))
}

/// One request's work, run to its end whatever its client does.
struct Submission {
    ledger: LedgerService,
    deadline: Instant,
    /// The accounts its caller may touch.
    reach: Reach,
}

/// Transfers decided but perhaps not yet committed: by the chain being decided, and by the
/// batch's earlier chains; and what was stored when the batch began.
struct Known<'a> {
    chain: HashMap<TransferId, Transfer>,
    earlier: &'a HashMap<TransferId, Transfer>,
    stored: &'a Prefetched,
}

/// The stored transfers of the ids a batch names, read before it was decided.
#[derive(Default)]
struct Prefetched {
    asked: HashSet<TransferId>,
    found: HashMap<TransferId, Transfer>,
}

/// A chain of a batch (by its index) decided: its answers if it commits, and its decisions.
type DecidedChain = (usize, Vec<TransferOutcome>, Vec<Decision>);
/// A chain of a batch after its commit: `Ok(true)` committed, `Ok(false)` conflicted.
type CommittedChain = (usize, Vec<TransferOutcome>, Result<bool, EngineError>);

/// What deciding one member of a chain came to.
// One lives briefly per request being decided; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Decided {
    New(Decision),
    /// The same request was created before: answered again, nothing to write.
    Exists(Transfer),
}

impl Submission {
    /// Decide the chains in order and commit each in a write set of its own, handed to the
    /// writer [`COMMIT_GROUP`] chains at a time while later chains are decided (the group commit
    /// joins them, and PostgreSQL folds one batch's changes to an account into one row update). A later chain may build on an earlier one's decisions: the
    /// account actors decide on top of them, and a hold it resolves is taken from `local`.
    async fn run(&self, batch: Vec<Submitted>) -> Vec<Answer> {
        let (ranges, open_from) = chains(&batch);
        let requests: Vec<Vec<&TransferRequest>> = ranges
            .iter()
            .map(|range| batch[range.clone()].iter().map(|submitted| &submitted.request).collect())
            .collect();
        let mut answers: Vec<Option<Result<Vec<TransferOutcome>, EngineError>>> = vec![None; ranges.len()];
        let mut local: HashMap<TransferId, Transfer> = HashMap::new();
        // What the batch names that exists already, in a few reads instead of one per request.
        let stored = match self.prefetch(&batch).await {
            Ok(stored) => stored,
            Err(error) => return batch.iter().map(|_| Err(error.clone())).collect(),
        };
        // Decided chains waiting to be committed (by their index), and the groups committing.
        let mut group: Vec<DecidedChain> = Vec::new();
        let mut commits = Vec::new();
        for (index, chain) in requests.iter().enumerate() {
            if Instant::now() >= self.deadline {
                // Not tried: nothing of it was written, so the client may send it again.
                answers[index] = Some(Err(EngineError::Overloaded));
                continue;
            }
            match self.decide_chain(chain, &local, &stored).await {
                Err(error) => answers[index] = Some(Err(error)),
                Ok((outcomes, decisions)) if decisions.is_empty() => answers[index] = Some(Ok(outcomes)),
                Ok((outcomes, decisions)) => {
                    for decision in &decisions {
                        for transfer in decision.write.transfers.iter().chain(&decision.write.resolved) {
                            local.insert(transfer.id, transfer.clone());
                        }
                    }
                    group.push((index, outcomes, decisions));
                    if group.len() >= COMMIT_GROUP {
                        commits.push(self.spawn_commits(std::mem::take(&mut group)));
                    }
                }
            }
        }
        if !group.is_empty() {
            commits.push(self.spawn_commits(group));
        }
        let mut failed = false;
        for (indexes, commit) in commits {
            let committed = match commit.await {
                Ok(committed) => committed,
                Err(error) => {
                    let error = EngineError::Internal(format!("commit task: {error}"));
                    indexes.into_iter().map(|index| (index, Vec::new(), Err(error.clone()))).collect()
                }
            };
            for (index, outcomes, answer) in committed {
                answers[index] = match answer {
                    Ok(true) => Some(Ok(outcomes)),
                    // Conflicted (nothing written): decided again below, on what is stored.
                    Ok(false) => None,
                    Err(error) => Some(Err(error)),
                };
                failed |= !matches!(answers[index], Some(Ok(_)));
            }
        }
        // A chain that wrote nothing may have answered from an earlier chain's decisions (a
        // retry of a transfer, a hold): when any commit did not go through, it is decided
        // again on what is stored, as are the chains that conflicted (`None`).
        let mut flat = Vec::with_capacity(batch.len());
        for (answer, chain) in answers.into_iter().zip(&requests) {
            let answer = match answer {
                Some(Ok(outcomes))
                    if !(failed && outcomes.iter().all(|outcome| outcome.result != TransferResult::Created)) =>
                {
                    Ok(outcomes)
                }
                Some(Err(error)) => Err(error),
                Some(Ok(_)) | None => self.chain(chain).await,
            };
            match answer {
                Ok(outcomes) => flat.extend(outcomes.into_iter().map(Ok)),
                Err(error) => flat.extend(chain.iter().map(|_| Err(error.clone()))),
            }
        }
        debug_assert_eq!(flat.len(), open_from);
        flat.resize(batch.len(), Ok(TransferOutcome::refused(TransferResult::LinkedEventChainOpen)));
        let currencies = &self.ledger.accounts.context().currencies;
        for answer in &flat {
            match answer {
                Ok(outcome) => {
                    m::record_ledger_transfer(outcome.result.as_str());
                    if let (TransferResult::Created, Some(transfer)) = (outcome.result, &outcome.transfer) {
                        if matches!(transfer.kind, TransferKind::Posted | TransferKind::PostPending { .. }) {
                            m::record_ledger_amount(currencies, transfer.currency.code(), transfer.amount.get());
                        }
                    }
                }
                Err(_) => m::record_ledger_transfer("error"),
            }
        }
        flat
    }

    /// Commit decided chains in a task of their own (queued while later chains are decided):
    /// the chains' indexes, and the task answering each chain's outcomes with how its commit
    /// went.
    fn spawn_commits(&self, group: Vec<DecidedChain>) -> (Vec<usize>, tokio::task::JoinHandle<Vec<CommittedChain>>) {
        let indexes = group.iter().map(|(index, _, _)| *index).collect();
        let work = Submission { ledger: self.ledger.clone(), deadline: self.deadline, reach: self.reach };
        let task = actix::spawn(async move {
            let (keys, chains): (Vec<_>, Vec<_>) =
                group.into_iter().map(|(index, outcomes, decisions)| ((index, outcomes), decisions)).unzip();
            let answers = work.commit_chains(&chains).await;
            keys.into_iter().zip(answers).map(|((index, outcomes), answer)| (index, outcomes, answer)).collect()
        });
        (indexes, task)
    }

    /// Decide and commit one chain on what is stored, again on a conflict.
    async fn chain(&self, requests: &[&TransferRequest]) -> Result<Vec<TransferOutcome>, EngineError> {
        for _ in 0..ATTEMPTS {
            let (outcomes, decisions) = self.decide_chain(requests, &HashMap::new(), &Prefetched::default()).await?;
            if decisions.is_empty() || self.commit(&decisions).await? {
                return Ok(outcomes);
            }
        }
        // Kept conflicting: nothing of the chain was written; the client may retry.
        Err(EngineError::Overloaded)
    }

    /// Commit decisions in one write set and settle them with their accounts: `true` when
    /// committed, `false` on a conflict (nothing written; decide again).
    async fn commit(&self, decisions: &[Decision]) -> Result<bool, EngineError> {
        let mut answers = self.commit_chains(&[decisions]).await;
        answers.pop().unwrap_or_else(|| Err(EngineError::Internal("a commit without an outcome".into())))
    }

    /// Commit chains of decisions, each in a write set of its own (the group commit takes them
    /// together; each commits or not on its own), then settle all of them with their accounts,
    /// one message per account. Per chain: `true` when committed, `false` on a conflict.
    async fn commit_chains<C: AsRef<[Decision]>>(&self, chains: &[C]) -> Vec<Result<bool, EngineError>> {
        let writer = &self.ledger.accounts.context().writer;
        let mut commits = Vec::with_capacity(chains.len());
        for decisions in chains {
            let mut write = LedgerWrite::default();
            for decision in decisions.as_ref() {
                merge(&mut write, &decision.write);
            }
            commits.push(writer.commit(WriteSet { ledger: write, ..WriteSet::default() }, self.deadline));
        }
        let outcomes = join_all(commits).await;
        let (settlements, answers): (Vec<Settlement>, Vec<Result<bool, EngineError>>) = outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok(WriteOutcome::Committed) => (Settlement::Committed, Ok(true)),
                Ok(WriteOutcome::Conflict) => {
                    m::record_fence_conflict();
                    (Settlement::Failed, Ok(false))
                }
                Ok(WriteOutcome::Refused) => {
                    (Settlement::Failed, Err(EngineError::Internal("ledger write refused".into())))
                }
                Err(error @ (WriteError::Overloaded | WriteError::Unavailable)) => {
                    (Settlement::Failed, Err(write_error(error)))
                }
                Err(error) => (Settlement::Unknown, Err(write_error(error))),
            })
            .unzip();
        let settled = by_account(chains.iter().map(AsRef::as_ref).zip(settlements));
        self.settle(settled).await;
        answers
    }

    /// Decide a chain's members in order through their accounts' actors. A member that fails
    /// fails the chain: what its earlier members decided is taken back.
    async fn decide_chain(
        &self,
        requests: &[&TransferRequest],
        earlier: &HashMap<TransferId, Transfer>,
        stored: &Prefetched,
    ) -> Result<(Vec<TransferOutcome>, Vec<Decision>), EngineError> {
        let mut decisions: Vec<Decision> = Vec::new();
        // Transfers of this chain (created, or holds resolved), by id, for its later members;
        // `earlier` has those of the batch's earlier chains.
        let mut local = Known { chain: HashMap::new(), earlier, stored };
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            let decided = match self.decide(request, &local).await {
                Ok(decided) => decided,
                Err(error) => {
                    self.settle(by_account([(decisions.as_slice(), Settlement::Failed)])).await;
                    return Err(error);
                }
            };
            match decided {
                Ok(Decided::New(decision)) => {
                    outcomes.push(TransferOutcome {
                        result: TransferResult::Created,
                        transfer: Some(decision.transfer.clone()),
                    });
                    for resolved in &decision.write.resolved {
                        local.chain.insert(resolved.id, resolved.clone());
                    }
                    local.chain.insert(decision.transfer.id, decision.transfer.clone());
                    decisions.push(decision);
                }
                Ok(Decided::Exists(existing)) => {
                    outcomes.push(TransferOutcome { result: TransferResult::Exists, transfer: Some(existing) });
                }
                Err(result) => {
                    self.settle(by_account([(decisions.as_slice(), Settlement::Failed)])).await;
                    let results = chain_failed(outcomes.len(), result, requests.len());
                    return Ok((results.into_iter().map(TransferOutcome::refused).collect(), Vec::new()));
                }
            }
        }
        Ok((outcomes, decisions))
    }

    /// Decide one transfer, `local` holding what its chain created so far.
    async fn decide(
        &self,
        request: &TransferRequest,
        local: &Known<'_>,
    ) -> Result<Result<Decided, TransferResult>, EngineError> {
        if let Some(existing) = self.transfer(request.id(), local).await? {
            return Ok(if existing.request == *request {
                Ok(Decided::Exists(existing))
            } else {
                Err(TransferResult::ExistsWithDifferentFields)
            });
        }
        let hold = match request.pending() {
            None => None,
            Some(pending) => match self.transfer(pending, local).await? {
                Some(hold) => Some(hold),
                None => return Ok(Err(TransferResult::PendingTransferNotFound)),
            },
        };
        let plan = Plan::Transfer { request: request.clone(), hold, reach: self.reach };
        Ok(self.decide_plan(plan).await?.map(Decided::New))
    }

    /// A transfer of the batch, or else as stored (as read for the whole batch, when it was).
    async fn transfer(&self, id: TransferId, local: &Known<'_>) -> Result<Option<Transfer>, EngineError> {
        if let Some(transfer) = local.chain.get(&id).or_else(|| local.earlier.get(&id)) {
            return Ok(Some(transfer.clone()));
        }
        if local.stored.asked.contains(&id) {
            return Ok(local.stored.found.get(&id).cloned());
        }
        Ok(self.ledger.store.load_ledger_transfer(id).await?)
    }

    /// The stored transfers a batch of more than one request names (its ids and the holds it
    /// resolves). Read before deciding: one created meanwhile makes its chain's commit conflict,
    /// and the chain is decided again on what is then stored.
    async fn prefetch(&self, batch: &[Submitted]) -> Result<Prefetched, EngineError> {
        if batch.len() < 2 {
            return Ok(Prefetched::default());
        }
        let asked: HashSet<TransferId> = batch
            .iter()
            .flat_map(|submitted| std::iter::once(submitted.request.id()).chain(submitted.request.pending()))
            .collect();
        let ids: Vec<TransferId> = asked.iter().copied().collect();
        let found = self.ledger.store.load_ledger_transfers(&ids).await?;
        Ok(Prefetched { asked, found: found.into_iter().map(|transfer| (transfer.id, transfer)).collect() })
    }

    /// Ask the lower-id account to lead the plan with the other.
    async fn decide_plan(&self, plan: Plan) -> Result<Result<Decision, TransferResult>, EngineError> {
        let Some((debit, credit)) = plan.accounts() else {
            return Ok(Err(TransferResult::PendingTransferNotFound));
        };
        if debit == credit {
            return Ok(Err(TransferResult::AccountsMustBeDifferent));
        }
        let (lead, partner) = if debit < credit { (debit, credit) } else { (credit, debit) };
        let accounts = Arc::clone(&self.ledger.accounts);
        let request = AccountRequest::Lead { plan, partner, accounts };
        let timeout = self.deadline.saturating_duration_since(Instant::now());
        match self.ledger.accounts.ask(lead, request, Start::Load, timeout).await? {
            AccountReply::Decided(decision) => Ok(Ok(*decision)),
            AccountReply::Refused(result) => Ok(Err(result)),
            other => Err(unexpected(&other)),
        }
    }

    async fn expire(&self, hold: Transfer) -> Result<bool, EngineError> {
        for _ in 0..ATTEMPTS {
            let Some(current) = self.ledger.store.load_ledger_transfer(hold.id).await? else {
                return Ok(false);
            };
            let Ok(decision) = self.decide_plan(Plan::Expire { hold: current }).await? else {
                return Ok(false);
            };
            if self.commit(&[decision]).await? {
                m::record_ledger_hold_expired();
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Tell the accounts how the commits of their decisions went: one message per account.
    async fn settle(&self, settled: HashMap<AccountId, Vec<(Posting, Settlement)>>) {
        let accounts = &self.ledger.accounts;
        let mut settles = Vec::with_capacity(settled.len());
        for (account, postings) in settled {
            settles.push(accounts.ask(account, AccountRequest::Settle(postings), Start::Load, SETTLE_TIMEOUT));
        }
        for answer in join_all(settles).await {
            if let Err(error) = answer {
                // The actor will find out by its next decision failing its commit.
                tracing::warn!(%error, "a ledger decision could not be settled with its account");
            }
        }
    }
}

/// The postings of decisions with how their commits went, by account.
fn by_account<'d>(
    settled: impl IntoIterator<Item = (&'d [Decision], Settlement)>,
) -> HashMap<AccountId, Vec<(Posting, Settlement)>> {
    let mut by_account: HashMap<AccountId, Vec<(Posting, Settlement)>> = HashMap::new();
    for (decisions, settlement) in settled {
        for posting in decisions.iter().flat_map(|decision| &decision.postings) {
            by_account.entry(posting.account).or_default().push((*posting, settlement));
        }
    }
    by_account
}

fn merge(into: &mut LedgerWrite, write: &LedgerWrite) {
    into.opened.extend(write.opened.iter().cloned());
    into.frozen.extend(write.frozen.iter().copied());
    into.transfers.extend(write.transfers.iter().cloned());
    into.resolved.extend(write.resolved.iter().cloned());
    into.entries.extend(write.entries.iter().cloned());
    into.at = into.at.max(write.at);
}
