//! Property tests of the ledger over random batches: money is neither created nor destroyed,
//! guarded accounts keep their limits, balances are the fold of the recorded transfers, chains
//! apply whole or not at all, and what was created, asked again, changes nothing.

use std::collections::BTreeMap;

use proptest::prelude::*;
use uuid::Uuid;

use super::*;
use crate::domain::Millis;

const ACCOUNTS: u8 = 6;
const TRANSFER_IDS: u8 = 40;

fn account_id(n: u8) -> AccountId {
    AccountId(Uuid::from_bytes([n; 16]))
}

fn transfer_id(n: u8) -> TransferId {
    TransferId(Uuid::from_bytes([n.wrapping_add(100); 16]))
}

fn currency(code: &str) -> Currency {
    Currency::new(code).unwrap_or_else(|| panic!("{code} is a currency"))
}

/// Accounts 0..ACCOUNTS: 0 is EUR with no limits (the outside world), 5 is in USD, 4 may not
/// go above zero, the rest may not go below zero.
fn opened_book() -> Book {
    let mut book = Book::default();
    for n in 0..ACCOUNTS {
        let flags = match n {
            0 => AccountFlags { debits_must_not_exceed_credits: false, ..AccountFlags::default() },
            4 => AccountFlags {
                debits_must_not_exceed_credits: false,
                credits_must_not_exceed_debits: true,
                frozen: false,
            },
            _ => AccountFlags::default(),
        };
        let new = NewAccount {
            id: account_id(n),
            customer: 1,
            owner: Owner { kind: OwnerKind::Customer, id: n.to_string() },
            currency: currency(if n == 5 { "USD" } else { "EUR" }),
            kind: if n == 0 { AccountKind::ExternalRail } else { AccountKind::Customer },
            flags,
        };
        assert!(book.open(new, 0));
    }
    book
}

fn request() -> impl Strategy<Value = TransferRequest> {
    let amount = (1_u64..=500).prop_map(|units| Amount::new(units).unwrap_or_else(|| panic!("amount")));
    let pair = (0..ACCOUNTS + 1, 0..ACCOUNTS + 1);
    prop_oneof![
        (0..TRANSFER_IDS, pair.clone(), amount.clone(), 0_u16..3).prop_map(|(id, (debit, credit), amount, code)| {
            TransferRequest::Post {
                id: transfer_id(id),
                debit: account_id(debit),
                credit: account_id(credit),
                amount,
                memo: Memo { code, ..Memo::default() },
            }
        }),
        (0..TRANSFER_IDS, pair, amount.clone(), -5_i64..200).prop_map(|(id, (debit, credit), amount, timeout_ms)| {
            TransferRequest::Hold {
                id: transfer_id(id),
                debit: account_id(debit),
                credit: account_id(credit),
                amount,
                memo: Memo { code: 1, reference: Some("hold".into()), metadata: None },
                timeout_ms,
            }
        }),
        (0..TRANSFER_IDS, 0..TRANSFER_IDS, proptest::option::of(amount)).prop_map(|(id, pending, amount)| {
            TransferRequest::PostPending { id: transfer_id(id), pending: transfer_id(pending), amount }
        }),
        (0..TRANSFER_IDS, 0..TRANSFER_IDS).prop_map(|(id, pending)| TransferRequest::VoidPending {
            id: transfer_id(id),
            pending: transfer_id(pending),
            reason: None,
        }),
    ]
}

fn batch() -> impl Strategy<Value = Vec<Submitted>> {
    proptest::collection::vec((request(), proptest::bool::weighted(0.2)), 1..12)
        .prop_map(|requests| requests.into_iter().map(|(request, linked)| Submitted { request, linked }).collect())
}

/// Per currency: (debits pending, debits posted, credits pending, credits posted) summed.
fn totals(book: &Book) -> BTreeMap<Currency, (u128, u128, u128, u128)> {
    let mut totals = BTreeMap::new();
    for account in book.accounts.values() {
        let entry = totals.entry(account.currency.clone()).or_insert((0, 0, 0, 0));
        let balances = account.balances;
        entry.0 += balances.debits_pending;
        entry.1 += balances.debits_posted;
        entry.2 += balances.credits_pending;
        entry.3 += balances.credits_posted;
    }
    totals
}

/// The balances the recorded transfers add up to: posted transfers and posted parts of holds
/// posted; holds still pending pending.
fn folded(book: &Book) -> BTreeMap<AccountId, Balances> {
    let mut balances: BTreeMap<AccountId, Balances> =
        book.accounts.keys().map(|id| (*id, Balances::default())).collect();
    for transfer in book.transfers.values() {
        let amount = u128::from(transfer.amount.get());
        let (pending, posted) = match (transfer.kind, transfer.pending_state) {
            (TransferKind::Posted | TransferKind::PostPending { .. }, _) => (0, amount),
            (TransferKind::Pending { .. }, Some(PendingState::Pending)) => (amount, 0),
            (TransferKind::Pending { .. }, _) | (TransferKind::VoidPending { .. }, _) => (0, 0),
        };
        if let Some(debit) = balances.get_mut(&transfer.debit) {
            debit.debits_pending += pending;
            debit.debits_posted += posted;
        }
        if let Some(credit) = balances.get_mut(&transfer.credit) {
            credit.credits_pending += pending;
            credit.credits_posted += posted;
        }
    }
    balances
}

fn check_invariants(book: &Book) -> Result<(), TestCaseError> {
    for (currency, (debits_pending, debits_posted, credits_pending, credits_posted)) in totals(book) {
        prop_assert_eq!(debits_pending, credits_pending, "pending money created or lost in {:?}", currency);
        prop_assert_eq!(debits_posted, credits_posted, "posted money created or lost in {:?}", currency);
    }
    for account in book.accounts.values() {
        prop_assert!(account.balances.within(account.flags), "{:?} broke its limits", account);
    }
    let folded = folded(book);
    for account in book.accounts.values() {
        prop_assert_eq!(Some(&account.balances), folded.get(&account.id), "balances are not the fold of transfers");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn money_is_kept_limits_hold_and_balances_fold_the_transfers(
        batches in proptest::collection::vec((batch(), 0_i64..150), 1..8),
    ) {
        let mut book = opened_book();
        let mut now = 1_000;
        for (batch, advance) in &batches {
            now += advance;
            let before = book.clone();
            let results = book.submit(batch, now);
            prop_assert_eq!(results.len(), batch.len());
            check_invariants(&book)?;
            let created: Vec<Submitted> = batch
                .iter()
                .zip(&results)
                .filter(|(_, result)| **result == TransferResult::Created)
                .map(|(submitted, _)| Submitted { request: submitted.request.clone(), linked: false })
                .collect();
            // A request whose chain failed created nothing: its id stays unused unless another
            // request of the batch created it.
            for (submitted, result) in batch.iter().zip(&results) {
                let id = submitted.request.id();
                let chain_failed = matches!(result, TransferResult::LinkedEventFailed | TransferResult::LinkedEventChainOpen);
                let new_id = !before.transfers.contains_key(&id);
                if chain_failed && new_id && !created.iter().any(|again| again.request.id() == id) {
                    prop_assert!(!book.transfers.contains_key(&id), "a failed chain created {:?}", id);
                }
            }
            // What was created, asked again, answers `Exists` and changes nothing.
            let settled = book.clone();
            let again = book.submit(&created, now);
            prop_assert!(again.iter().all(|result| *result == TransferResult::Exists), "replayed as {:?}", again);
            prop_assert_eq!(&book, &settled, "a replay changed the book");
            let expired = book.expire_due(now);
            check_invariants(&book)?;
            for id in expired {
                prop_assert_eq!(book.transfers.get(&id).and_then(|hold| hold.pending_state), Some(PendingState::Expired));
            }
        }
    }
}

fn eur(units: u64) -> Amount {
    Amount::new(units).unwrap_or_else(|| panic!("amount"))
}

fn post(id: u8, debit: u8, credit: u8, units: u64) -> Submitted {
    let request = TransferRequest::Post {
        id: transfer_id(id),
        debit: account_id(debit),
        credit: account_id(credit),
        amount: eur(units),
        memo: Memo::default(),
    };
    Submitted { request, linked: false }
}

fn hold(id: u8, units: u64, timeout_ms: Millis) -> Submitted {
    let request = TransferRequest::Hold {
        id: transfer_id(id),
        debit: account_id(1),
        credit: account_id(2),
        amount: eur(units),
        memo: Memo { code: 7, reference: Some("atm".into()), metadata: Some(serde_json::json!({ "atm": "A-17" })) },
        timeout_ms,
    };
    Submitted { request, linked: false }
}

fn resolve(request: TransferRequest) -> Submitted {
    Submitted { request, linked: false }
}

#[test]
fn a_deposit_then_a_transfer_and_insufficient_funds() {
    let mut book = opened_book();
    assert_eq!(
        book.submit(&[post(1, 0, 1, 100), post(2, 1, 2, 60), post(3, 1, 2, 41)], 1),
        vec![TransferResult::Created, TransferResult::Created, TransferResult::ExceedsCredits,]
    );
    let balance = |n: u8| book.accounts.get(&account_id(n)).map(|account| account.balances);
    assert_eq!(balance(1).map(|b| (b.debits_posted, b.credits_posted)), Some((60, 100)));
    assert_eq!(balance(2).map(|b| b.credits_posted), Some(60));
    // Same id, same request: exists; another request under it: refused.
    assert_eq!(book.submit(&[post(2, 1, 2, 60)], 2), vec![TransferResult::Exists]);
    assert_eq!(book.submit(&[post(2, 1, 2, 61)], 2), vec![TransferResult::ExistsWithDifferentFields]);
    // Other currency, same account, unknown accounts.
    assert_eq!(book.submit(&[post(4, 1, 5, 1)], 3), vec![TransferResult::CurrencyMismatch]);
    assert_eq!(book.submit(&[post(5, 1, 1, 1)], 3), vec![TransferResult::AccountsMustBeDifferent]);
    assert_eq!(book.submit(&[post(6, 9, 1, 1)], 3), vec![TransferResult::DebitAccountNotFound]);
    assert_eq!(book.submit(&[post(7, 1, 9, 1)], 3), vec![TransferResult::CreditAccountNotFound]);
}

#[test]
fn a_hold_is_posted_in_part_and_cannot_be_resolved_twice() {
    let mut book = opened_book();
    book.submit(&[post(1, 0, 1, 100)], 1);
    let hold = hold(2, 80, 1_000);
    let results = book.submit(&[hold, post(3, 1, 2, 30)], 10);
    // The hold reserves 80 of 100: 30 more does not fit.
    assert_eq!(results, vec![TransferResult::Created, TransferResult::ExceedsCredits]);
    let post_part = TransferRequest::PostPending { id: transfer_id(4), pending: transfer_id(2), amount: Some(eur(50)) };
    let void = TransferRequest::VoidPending { id: transfer_id(5), pending: transfer_id(2), reason: None };
    let too_much = TransferRequest::PostPending { id: transfer_id(6), pending: transfer_id(2), amount: Some(eur(81)) };
    assert_eq!(book.submit(&[resolve(too_much)], 20), vec![TransferResult::ExceedsPendingTransferAmount]);
    assert_eq!(
        book.submit(&[resolve(post_part), resolve(void)], 20),
        vec![TransferResult::Created, TransferResult::PendingTransferAlreadyPosted]
    );
    let account = book.accounts.get(&account_id(1)).map(|account| account.balances);
    assert_eq!(account.map(|b| (b.debits_pending, b.debits_posted)), Some((0, 50)));
    // The posting carries the hold's memo; the hold records what was posted.
    let posting = book.transfers.get(&transfer_id(4));
    assert_eq!(posting.and_then(|posting| posting.memo.reference.as_deref()), Some("atm"));
    let held = book.transfers.get(&transfer_id(2)).and_then(|hold| hold.pending_state);
    assert_eq!(held, Some(PendingState::Posted { amount: eur(50) }));
}

#[test]
fn a_hold_expires_and_then_cannot_be_posted() {
    let mut book = opened_book();
    book.submit(&[post(1, 0, 1, 100)], 1);
    let hold = hold(2, 80, 100);
    book.submit(&[hold], 10);
    assert!(book.expire_due(109).is_empty());
    assert_eq!(book.expire_due(110), vec![transfer_id(2)]);
    let late = TransferRequest::PostPending { id: transfer_id(3), pending: transfer_id(2), amount: None };
    assert_eq!(book.submit(&[resolve(late)], 111), vec![TransferResult::PendingTransferExpired]);
    assert_eq!(book.accounts.get(&account_id(1)).map(|account| account.balances.debits_pending), Some(0));
}

#[test]
fn a_linked_chain_applies_whole_or_not_at_all() {
    let mut book = opened_book();
    book.submit(&[post(1, 0, 1, 100)], 1);
    let linked = |mut submitted: Submitted| {
        submitted.linked = true;
        submitted
    };
    let results = book.submit(&[linked(post(2, 1, 2, 50)), linked(post(3, 2, 3, 50)), post(4, 3, 1, 51)], 2);
    assert_eq!(
        results,
        vec![TransferResult::LinkedEventFailed, TransferResult::LinkedEventFailed, TransferResult::ExceedsCredits]
    );
    assert!(!book.transfers.contains_key(&transfer_id(2)));
    assert_eq!(book.accounts.get(&account_id(2)).map(|account| account.balances), Some(Balances::default()));
    let results = book.submit(&[linked(post(2, 1, 2, 50)), linked(post(3, 2, 3, 50)), post(4, 3, 1, 50)], 3);
    assert_eq!(results, vec![TransferResult::Created; 3]);
    // A chain still open at the end of a batch does nothing.
    assert_eq!(book.submit(&[linked(post(5, 1, 2, 1))], 4), vec![TransferResult::LinkedEventChainOpen]);
}

#[test]
fn frozen_accounts_take_no_transfer_but_release_holds() {
    let mut book = opened_book();
    book.submit(&[post(1, 0, 1, 100)], 1);
    let hold = hold(2, 10, 1_000);
    book.submit(&[hold], 2);
    if let Some(account) = book.accounts.get_mut(&account_id(1)) {
        account.flags.frozen = true;
    }
    assert_eq!(book.submit(&[post(3, 1, 2, 1)], 3), vec![TransferResult::DebitAccountFrozen]);
    let void = TransferRequest::VoidPending { id: transfer_id(4), pending: transfer_id(2), reason: None };
    assert_eq!(book.submit(&[resolve(void)], 3), vec![TransferResult::Created]);
}

#[test]
fn amounts_and_currencies_are_checked_at_the_edge_of_the_domain() {
    assert!(Amount::new(0).is_none());
    assert!(Amount::new(Amount::MAX + 1).is_none());
    assert_eq!(Amount::new(Amount::MAX).map(Amount::get), Some(Amount::MAX));
    assert!(Currency::new("EUR").is_some());
    assert!(Currency::new("eur").is_none());
    assert!(Currency::new("EURO").is_none());
}

/// The generated batches reach what the property claims about: every kind of transfer is
/// created, chains fail, holds expire. A generator that only produced refusals would make the
/// property pass vacuously.
#[test]
fn the_generated_batches_exercise_every_kind() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let mut runner = TestRunner::deterministic();
    let mut created = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut expired = 0;
    for _ in 0..200 {
        let mut book = opened_book();
        let batches = proptest::collection::vec(batch(), 4)
            .new_tree(&mut runner)
            .unwrap_or_else(|error| panic!("generating: {error}"))
            .current();
        for (step, batch) in batches.iter().enumerate() {
            let now = 1_000 + 60 * i64::try_from(step).unwrap_or(0);
            for (submitted, result) in batch.iter().zip(book.submit(batch, now)) {
                seen.insert(result);
                if result == TransferResult::Created {
                    let kind = match submitted.request {
                        TransferRequest::Post { .. } => "post",
                        TransferRequest::Hold { .. } => "hold",
                        TransferRequest::PostPending { .. } => "post_pending",
                        TransferRequest::VoidPending { .. } => "void_pending",
                    };
                    *created.entry(kind).or_insert(0) += 1;
                }
            }
            expired += book.expire_due(now).len();
        }
    }
    for kind in ["post", "hold", "post_pending", "void_pending"] {
        assert!(created.get(kind).copied().unwrap_or(0) > 0, "no {kind} created: {created:?}");
    }
    for result in
        [TransferResult::ExceedsCredits, TransferResult::LinkedEventFailed, TransferResult::ExistsWithDifferentFields]
    {
        assert!(seen.contains(&result), "{result:?} never happened: {seen:?}");
    }
    assert!(expired > 0, "no hold expired");
}
