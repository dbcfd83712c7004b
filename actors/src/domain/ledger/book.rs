//! Accounts and transfers in memory, and requests applied to them in batches of linked
//! chains: the model every ledger shell follows, and what the property tests check.

use std::collections::BTreeMap;

use super::account::{Account, AccountId, NewAccount};
use super::transfer::{self, Transfer, TransferId, TransferRequest, TransferResult, Transferred};
use crate::domain::Millis;

/// A request in a batch; `linked` joins it with the next one: a chain applies all or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub request: TransferRequest,
    pub linked: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    pub accounts: BTreeMap<AccountId, Account>,
    pub transfers: BTreeMap<TransferId, Transfer>,
}

impl Book {
    /// Open an account; `false` (and nothing changes) when the id is taken.
    pub fn open(&mut self, new: NewAccount, now: Millis) -> bool {
        if self.accounts.contains_key(&new.id) {
            return false;
        }
        self.accounts.insert(new.id, Account::open(new, now));
        true
    }

    /// Apply a batch in order, one result per request. A chain (requests joined by `linked`)
    /// applies whole or not at all: its first failure is reported where it happened and every
    /// other request of the chain answers `LinkedEventFailed`. A chain still open at the end of
    /// the batch fails whole with `LinkedEventChainOpen`.
    pub fn submit(&mut self, batch: &[Submitted], now: Millis) -> Vec<TransferResult> {
        let (chains, open_from) = chains(batch);
        let mut results = Vec::with_capacity(batch.len());
        for chain in chains {
            results.extend(self.apply_chain(&batch[chain], now));
        }
        debug_assert_eq!(results.len(), open_from);
        results.resize(batch.len(), TransferResult::LinkedEventChainOpen);
        results
    }

    fn apply_chain(&mut self, chain: &[Submitted], now: Millis) -> Vec<TransferResult> {
        // Decide on a scratch copy of what the chain touches; keep it only if all succeed.
        let mut scratch = self.clone_for(chain);
        let mut results = Vec::with_capacity(chain.len());
        for submitted in chain {
            let result = scratch.apply_one(&submitted.request, now);
            let failed = !matches!(result, TransferResult::Created | TransferResult::Exists);
            results.push(result);
            if failed && chain.len() > 1 {
                return chain_failed(results.len() - 1, result, chain.len());
            }
        }
        self.accounts.extend(scratch.accounts);
        self.transfers.extend(scratch.transfers);
        results
    }

    /// The accounts and transfers `chain` may read or write.
    fn clone_for(&self, chain: &[Submitted]) -> Book {
        let mut scratch = Book::default();
        for submitted in chain {
            let request = &submitted.request;
            let mut touched = Vec::new();
            if let Some(existing) = self.transfers.get(&request.id()) {
                scratch.transfers.insert(existing.id, existing.clone());
            }
            if let Some(hold) = request.pending().and_then(|id| self.transfers.get(&id)) {
                scratch.transfers.insert(hold.id, hold.clone());
                touched.extend([hold.debit, hold.credit]);
            }
            touched.extend(request.accounts().into_iter().flat_map(|(debit, credit)| [debit, credit]));
            for id in touched {
                if let Some(account) = self.accounts.get(&id) {
                    scratch.accounts.insert(id, account.clone());
                }
            }
        }
        scratch
    }

    fn apply_one(&mut self, request: &TransferRequest, now: Millis) -> TransferResult {
        if let Some(existing) = self.transfers.get(&request.id()) {
            return if existing.request == *request {
                TransferResult::Exists
            } else {
                TransferResult::ExistsWithDifferentFields
            };
        }
        let hold = request.pending().map(|id| self.transfers.get(&id));
        let (debit, credit) = match (request.accounts(), hold) {
            (Some(accounts), _) => accounts,
            (None, Some(Some(hold))) => (hold.debit, hold.credit),
            (None, _) => return TransferResult::PendingTransferNotFound,
        };
        let Some(debit) = self.accounts.get(&debit) else {
            return TransferResult::DebitAccountNotFound;
        };
        let Some(credit) = self.accounts.get(&credit) else {
            return TransferResult::CreditAccountNotFound;
        };
        match transfer::decide(request, debit, credit, hold.flatten(), now) {
            Ok(Transferred { transfer, debit, credit, pending }) => {
                if let Some(pending) = pending {
                    self.transfers.insert(pending.id, pending);
                }
                self.transfers.insert(transfer.id, transfer);
                self.accounts.insert(debit.id, debit);
                self.accounts.insert(credit.id, credit);
                TransferResult::Created
            }
            Err(result) => result,
        }
    }

    /// Release every hold whose time-out passed by `now`; the ids expired.
    pub fn expire_due(&mut self, now: Millis) -> Vec<TransferId> {
        let due: Vec<Transfer> = self.transfers.values().filter(|transfer| is_due(transfer, now)).cloned().collect();
        let mut expired = Vec::with_capacity(due.len());
        for hold in due {
            let (Some(debit), Some(credit)) = (self.accounts.get(&hold.debit), self.accounts.get(&hold.credit)) else {
                continue;
            };
            if let Some((hold, debit, credit)) = transfer::expire(&hold, debit, credit, now) {
                expired.push(hold.id);
                self.transfers.insert(hold.id, hold);
                self.accounts.insert(debit.id, debit);
                self.accounts.insert(credit.id, credit);
            }
        }
        expired
    }
}

fn is_due(transfer: &Transfer, now: Millis) -> bool {
    matches!(transfer.kind, super::TransferKind::Pending { expires_at } if now >= expires_at)
        && transfer.pending_state == Some(super::PendingState::Pending)
}

/// A batch cut into its chains (requests joined by `linked`, each ending with one that is
/// not), as index ranges in order, and where a chain still open at the end of the batch begins
/// (the batch's length when there is none): its requests answer `LinkedEventChainOpen`.
pub fn chains(batch: &[Submitted]) -> (Vec<std::ops::Range<usize>>, usize) {
    let mut chains = Vec::new();
    let mut start = 0;
    for (index, submitted) in batch.iter().enumerate() {
        if !submitted.linked {
            chains.push(start..index + 1);
            start = index + 1;
        }
    }
    (chains, start)
}

/// A failed chain's results: `failure` at `at`, `LinkedEventFailed` elsewhere.
pub fn chain_failed(at: usize, failure: TransferResult, length: usize) -> Vec<TransferResult> {
    (0..length).map(|index| if index == at { failure } else { TransferResult::LinkedEventFailed }).collect()
}
