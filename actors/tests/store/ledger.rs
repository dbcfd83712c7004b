//! The ledger on the account actors and the store, on both backends: accounts opened once,
//! transfers and their stable result codes, holds posted, voided and expired, linked chains
//! all or none, concurrent transfers in both directions without deadlock, a second node's
//! changes, and the store re-checking every change against the stored row.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use cashgrid_actors::domain::ledger::{
    Account, AccountFlags, AccountId, AccountKind, Amount, Currencies, Currency, Memo, NewAccount, Owner, OwnerKind,
    Posting, Reach, Submitted, TransferId, TransferRequest, TransferResult,
};
use cashgrid_actors::engine::ledger::{LedgerService, Opened};
use cashgrid_actors::entity_actor::Registry;
use cashgrid_actors::store::{EntryRange, EntryWrite, LedgerWrite, NewCustomer, Side, WriteOutcome, WriteSet};
use uuid::Uuid;

use super::harness::Harness;

const TIMEOUT: Duration = Duration::from_secs(10);

/// One node's ledger over `harness`'s store, on `arbiters`.
fn node(harness: &Harness, arbiters: &[Arbiter]) -> anyhow::Result<LedgerService> {
    let context = harness.node_context(TIMEOUT)?;
    let accounts = Arc::new(Registry::new(context, arbiters.iter().map(Arbiter::handle).collect()));
    Ok(LedgerService::new(accounts, Currencies::default(), TIMEOUT))
}

fn id(n: u128) -> AccountId {
    AccountId(Uuid::from_u128(n))
}

fn transfer_id() -> TransferId {
    TransferId(Uuid::new_v4())
}

/// The customer the tests' accounts are kept for: the first one of a fresh database.
const BANK: i64 = 1;

/// Create [`BANK`]: accounts are opened only for customers that exist.
async fn create_bank(harness: &Harness) -> anyhow::Result<()> {
    let new = NewCustomer { email: "bank@example.com".into(), display_name: None, roles: "user".into() };
    let created = harness.store.create_customer(&new).await?;
    anyhow::ensure!(created.id == BANK, "the first customer is {}", created.id);
    Ok(())
}

fn new_account(n: u128, kind: AccountKind, flags: AccountFlags) -> NewAccount {
    NewAccount {
        id: id(n),
        customer: BANK,
        owner: Owner { kind: OwnerKind::Customer, id: BANK.to_string() },
        currency: Currency::new("EUR").unwrap_or_else(|| panic!("EUR is a currency")),
        kind,
        flags,
    }
}

/// An outside rail: it may go below zero (money comes from outside the ledger).
fn rail_flags() -> AccountFlags {
    AccountFlags { debits_must_not_exceed_credits: false, ..AccountFlags::default() }
}

fn amount(minor: u64) -> Amount {
    Amount::new(minor).unwrap_or_else(|| panic!("{minor} is an amount"))
}

fn post(debit: u128, credit: u128, minor: u64) -> TransferRequest {
    TransferRequest::Post {
        id: transfer_id(),
        debit: id(debit),
        credit: id(credit),
        amount: amount(minor),
        memo: Memo::default(),
    }
}

async fn result(ledger: &LedgerService, request: TransferRequest) -> anyhow::Result<TransferResult> {
    Ok(ledger.transfer(request, Reach::Every).await?.result)
}

/// The result codes of a batch whose every chain was decided.
fn results_of(answers: Vec<cashgrid_actors::engine::ledger::Answer>) -> anyhow::Result<Vec<TransferResult>> {
    Ok(answers.into_iter().map(|answer| answer.map(|outcome| outcome.result)).collect::<Result<_, _>>()?)
}

async fn stored(harness: &Harness, n: u128) -> anyhow::Result<Account> {
    harness.store.load_ledger_account(id(n)).await?.ok_or_else(|| anyhow::anyhow!("account {n} missing"))
}

/// (debits pending, debits posted, credits pending, credits posted) as stored.
async fn sums(harness: &Harness, n: u128) -> anyhow::Result<(u128, u128, u128, u128)> {
    let balances = stored(harness, n).await?.balances;
    Ok((balances.debits_pending, balances.debits_posted, balances.credits_pending, balances.credits_posted))
}

pub async fn transfers_holds_and_chains_through_account_actors(harness: Harness) -> anyhow::Result<()> {
    let arbiters = [Arbiter::new(), Arbiter::new()];
    let ledger = node(&harness, &arbiters)?;
    let (rail, alice, bob) = (1, 2, 3);
    create_bank(&harness).await?;
    let stranger = NewAccount { customer: BANK + 1, ..new_account(8, AccountKind::Customer, AccountFlags::default()) };
    assert_eq!(ledger.open(stranger).await?, Opened::UnknownCustomer);

    // Opened once; the same open again answers it, another open under the id is told apart.
    assert!(matches!(
        ledger.open(new_account(rail, AccountKind::ExternalRail, rail_flags())).await?,
        Opened::Created(_)
    ));
    assert!(matches!(
        ledger.open(new_account(alice, AccountKind::Customer, AccountFlags::default())).await?,
        Opened::Created(_)
    ));
    assert!(matches!(
        ledger.open(new_account(bob, AccountKind::Customer, AccountFlags::default())).await?,
        Opened::Created(_)
    ));
    assert!(matches!(
        ledger.open(new_account(alice, AccountKind::Customer, AccountFlags::default())).await?,
        Opened::Exists(_)
    ));
    assert!(matches!(
        ledger.open(new_account(alice, AccountKind::Fees, AccountFlags::default())).await?,
        Opened::ExistsWithDifferentFields(_)
    ));
    let unknown = NewAccount {
        currency: Currency::new("QQQ").unwrap_or_else(|| panic!("a code")),
        ..new_account(9, AccountKind::Customer, AccountFlags::default())
    };
    assert_eq!(ledger.open(unknown).await?, Opened::UnknownCurrency);

    // A customer's caller reaches only that customer's accounts: others do not exist for it.
    let elsewhere = ledger.transfer(post(rail, alice, 1), Reach::Own(BANK + 1)).await?;
    assert_eq!(elsewhere.result, TransferResult::DebitAccountNotFound);

    // A deposit, answered again as `exists` when retried, told apart when the id is reused.
    let deposit = post(rail, alice, 1_000);
    assert_eq!(result(&ledger, deposit.clone()).await?, TransferResult::Created);
    assert_eq!(result(&ledger, deposit.clone()).await?, TransferResult::Exists);
    let TransferRequest::Post { id: deposit_id, .. } = deposit else { unreachable!() };
    let reused = TransferRequest::Post {
        id: deposit_id,
        debit: id(rail),
        credit: id(alice),
        amount: amount(5),
        memo: Memo::default(),
    };
    assert_eq!(result(&ledger, reused).await?, TransferResult::ExistsWithDifferentFields);
    assert_eq!(sums(&harness, alice).await?, (0, 0, 0, 1_000));
    assert_eq!(sums(&harness, rail).await?, (0, 1_000, 0, 0));

    // Refusals change nothing.
    assert_eq!(result(&ledger, post(alice, bob, 1_001)).await?, TransferResult::ExceedsCredits);
    assert_eq!(result(&ledger, post(alice, alice, 1)).await?, TransferResult::AccountsMustBeDifferent);
    assert_eq!(result(&ledger, post(99, alice, 1)).await?, TransferResult::DebitAccountNotFound);
    assert_eq!(result(&ledger, post(alice, 99, 1)).await?, TransferResult::CreditAccountNotFound);
    assert_eq!(result(&ledger, post(0, 99, 1)).await?, TransferResult::DebitAccountNotFound);
    assert_eq!(sums(&harness, alice).await?, (0, 0, 0, 1_000));

    // A hold, posted in part: the rest goes back; a second resolution is refused.
    let hold_id = transfer_id();
    let hold = TransferRequest::Hold {
        id: hold_id,
        debit: id(alice),
        credit: id(bob),
        amount: amount(300),
        memo: Memo { code: 7, reference: Some("order 1".into()), metadata: None },
        timeout_ms: 60_000,
    };
    assert_eq!(result(&ledger, hold).await?, TransferResult::Created);
    assert_eq!(sums(&harness, alice).await?, (300, 0, 0, 1_000));
    let posted = TransferRequest::PostPending { id: transfer_id(), pending: hold_id, amount: Some(amount(200)) };
    assert_eq!(result(&ledger, posted).await?, TransferResult::Created);
    assert_eq!(sums(&harness, alice).await?, (0, 200, 0, 1_000));
    assert_eq!(sums(&harness, bob).await?, (0, 0, 0, 200));
    let void = TransferRequest::VoidPending { id: transfer_id(), pending: hold_id, reason: None };
    assert_eq!(result(&ledger, void).await?, TransferResult::PendingTransferAlreadyPosted);
    let unknown = TransferRequest::VoidPending { id: transfer_id(), pending: transfer_id(), reason: None };
    assert_eq!(result(&ledger, unknown).await?, TransferResult::PendingTransferNotFound);

    // A hold that times out is released by the sweep.
    let short_id = transfer_id();
    let short = TransferRequest::Hold {
        id: short_id,
        debit: id(alice),
        credit: id(bob),
        amount: amount(50),
        memo: Memo::default(),
        timeout_ms: 1,
    };
    assert_eq!(result(&ledger, short).await?, TransferResult::Created);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let due = ledger.due_holds(cashgrid_actors::clock::now_millis(), 100).await?;
    assert_eq!(due.iter().map(|hold| hold.id).collect::<Vec<_>>(), vec![short_id]);
    assert!(ledger.expire(due[0].clone()).await?);
    assert!(!ledger.expire(due[0].clone()).await?, "an expired hold expires once");
    assert_eq!(sums(&harness, alice).await?, (0, 200, 0, 1_000));
    let void = TransferRequest::VoidPending { id: transfer_id(), pending: short_id, reason: None };
    assert_eq!(result(&ledger, void).await?, TransferResult::PendingTransferExpired);

    // A linked chain applies whole or not at all.
    let chain = vec![
        Submitted { request: post(alice, bob, 100), linked: true },
        Submitted { request: post(bob, alice, 10_000), linked: false },
    ];
    let results = results_of(ledger.submit(chain, Reach::Every).await?)?;
    assert_eq!(results, vec![TransferResult::LinkedEventFailed, TransferResult::ExceedsCredits]);
    assert_eq!(sums(&harness, alice).await?, (0, 200, 0, 1_000));
    // A chain's later member may use what an earlier one created, a hold included.
    let chained_hold = transfer_id();
    let chain = vec![
        Submitted { request: post(alice, bob, 100), linked: true },
        Submitted {
            request: TransferRequest::Hold {
                id: chained_hold,
                debit: id(bob),
                credit: id(alice),
                amount: amount(250),
                memo: Memo::default(),
                timeout_ms: 60_000,
            },
            linked: true,
        },
        Submitted {
            request: TransferRequest::PostPending { id: transfer_id(), pending: chained_hold, amount: None },
            linked: false,
        },
        Submitted { request: post(alice, bob, 1), linked: true },
    ];
    let results = results_of(ledger.submit(chain, Reach::Every).await?)?;
    assert_eq!(
        results,
        vec![
            TransferResult::Created,
            TransferResult::Created,
            TransferResult::Created,
            TransferResult::LinkedEventChainOpen
        ]
    );
    assert_eq!(sums(&harness, alice).await?, (0, 300, 0, 1_250));
    assert_eq!(sums(&harness, bob).await?, (0, 250, 0, 300));
    // Chains of one batch commit on their own, all in flight together; a later chain may post
    // a hold that an earlier one made, and a repeated transfer answers `Exists`.
    let batch_hold = transfer_id();
    let repeated = post(bob, alice, 5);
    let batch: Vec<Submitted> = [
        TransferRequest::Hold {
            id: batch_hold,
            debit: id(alice),
            credit: id(bob),
            amount: amount(40),
            memo: Memo::default(),
            timeout_ms: 60_000,
        },
        TransferRequest::PostPending { id: transfer_id(), pending: batch_hold, amount: Some(amount(30)) },
        repeated.clone(),
        repeated,
        post(alice, bob, 1_000_000),
    ]
    .into_iter()
    .map(|request| Submitted { request, linked: false })
    .collect();
    let results = results_of(ledger.submit(batch, Reach::Every).await?)?;
    use TransferResult::{Created, ExceedsCredits, Exists};
    assert_eq!(results, vec![Created, Created, Created, Exists, ExceedsCredits]);
    assert_eq!(sums(&harness, alice).await?, (0, 330, 0, 1_255));
    assert_eq!(sums(&harness, bob).await?, (0, 255, 0, 330));

    // Frozen accounts take no transfer.
    assert!(ledger.set_frozen(id(bob), true).await?.is_some_and(|account| account.flags.frozen));
    assert_eq!(result(&ledger, post(alice, bob, 1)).await?, TransferResult::CreditAccountFrozen);
    assert!(ledger.set_frozen(id(bob), false).await?.is_some());
    assert_eq!(result(&ledger, post(alice, bob, 1)).await?, TransferResult::Created);

    // The journal: every line with the account's sums after it; the last matches the row.
    let range = EntryRange { from: 0, until: i64::MAX, after: None, limit: 1_000 };
    let entries = ledger.entries(id(alice), range).await?;
    assert_eq!(entries.first().map(|entry| entry.kind.as_str()), Some("opened"));
    assert_eq!(entries.last().map(|entry| entry.balances), Some(stored(&harness, alice).await?.balances));
    let page = ledger.entries(id(alice), EntryRange { limit: 2, ..range }).await?;
    let next = ledger
        .entries(id(alice), EntryRange { after: page.last().map(|entry| (entry.at, entry.seq)), limit: 1_000, ..range })
        .await?;
    assert_eq!(page.len() + next.len(), entries.len(), "a cursor pages through the journal");
    let mine = ledger.accounts_of_customer(BANK, None, 10).await?;
    assert_eq!(mine.iter().map(|account| account.id).collect::<Vec<_>>(), vec![id(rail), id(alice), id(bob)]);
    Ok(())
}

pub async fn concurrent_transfers_keep_the_books_balanced(harness: Harness) -> anyhow::Result<()> {
    let arbiters = [Arbiter::new(), Arbiter::new()];
    let first = node(&harness, &arbiters)?;
    let second = node(&harness, &arbiters)?;
    let rail = 1;
    create_bank(&harness).await?;
    first.open(new_account(rail, AccountKind::ExternalRail, rail_flags())).await?;
    let customers: Vec<u128> = (10..20).collect();
    for n in &customers {
        first.open(new_account(*n, AccountKind::Customer, AccountFlags::default())).await?;
        assert_eq!(result(&first, post(rail, *n, 500)).await?, TransferResult::Created);
    }

    // Both nodes, both directions, one hot account (10) in half of them, all at once.
    let mut requests = Vec::new();
    for index in 0..400u64 {
        let a = customers[(index % 10) as usize];
        let b = if index % 2 == 0 { 10 } else { customers[((index * 7 + 3) % 10) as usize] };
        let (debit, credit) = if index % 3 == 0 { (b, a) } else { (a, b) };
        requests.push((index % 2 == 0, post(debit, credit, 1 + index % 120)));
    }
    let answers = futures_util::future::join_all(requests.iter().map(|(on_first, request)| {
        let ledger = if *on_first { &first } else { &second };
        ledger.transfer(request.clone(), Reach::Every)
    }))
    .await;

    // Every accepted transfer moved money exactly once; the refused ones none.
    let mut expected: BTreeMap<u128, i128> = customers.iter().map(|n| (*n, 500)).collect();
    let mut created = 0;
    for ((_, request), answer) in requests.iter().zip(answers) {
        let TransferRequest::Post { debit, credit, amount, .. } = request else { unreachable!() };
        match answer {
            Ok(outcome) if outcome.result == TransferResult::Created => {
                created += 1;
                let minor = i128::from(amount.get());
                *expected.entry(debit.0.as_u128()).or_default() -= minor;
                *expected.entry(credit.0.as_u128()).or_default() += minor;
            }
            Ok(outcome) if outcome.result == TransferResult::AccountsMustBeDifferent => {}
            Ok(outcome) => assert_eq!(outcome.result, TransferResult::ExceedsCredits, "{request:?}"),
            // Retryable: nothing was written.
            Err(error) => assert!(matches!(error, cashgrid_actors::EngineError::Overloaded), "{error:?}"),
        }
    }
    assert!(created > 300, "most transfers are accepted: {created}");
    let mut total: i128 = 0;
    for n in customers.iter().chain([&rail]) {
        let account = stored(&harness, *n).await?;
        let net = account.balances.net_posted();
        assert!(n == &rail || net >= 0, "account {n} went below zero");
        if n != &rail {
            assert_eq!(net, expected[n], "account {n}");
        }
        total += net;
    }
    assert_eq!(total, 0, "money is neither created nor destroyed");

    // A second node's deposit is seen by the first node's actor when it would refuse.
    assert_eq!(result(&second, post(rail, 11, 10_000)).await?, TransferResult::Created);
    let large = post(11, 12, 10_000);
    assert_eq!(result(&first, large).await?, TransferResult::Created);
    Ok(())
}

pub async fn the_store_rechecks_every_change_against_the_row(harness: Harness) -> anyhow::Result<()> {
    // Opened through a write set alone, as the actors do.
    let open = |n: u128, flags: AccountFlags| {
        let account = Account::open(new_account(n, AccountKind::Customer, flags), 1);
        WriteSet {
            ledger: LedgerWrite {
                opened: vec![account.clone()],
                entries: vec![EntryWrite::marker(account.id, "opened")],
                at: 1,
                ..LedgerWrite::default()
            },
            ..WriteSet::default()
        }
    };
    let outcomes = harness.store.commit(&[open(1, rail_flags()), open(2, AccountFlags::default())]).await?;
    assert_eq!(outcomes, vec![WriteOutcome::Committed; 2]);
    assert_eq!(harness.store.commit(&[open(2, AccountFlags::default())]).await?, vec![WriteOutcome::Conflict]);

    let leg = |n: u128, debits: i64, credits: i64| Posting {
        debits_posted: debits,
        credits_posted: credits,
        check_limits: true,
        must_be_open: true,
        ..Posting::zero(id(n))
    };
    let moved = |debit: i64| WriteSet {
        ledger: LedgerWrite {
            entries: vec![
                EntryWrite {
                    posting: leg(1, debit, 0),
                    transfer: None,
                    kind: "posted",
                    side: Some(Side::Debit),
                    amount: None,
                },
                EntryWrite {
                    posting: leg(2, 0, debit),
                    transfer: None,
                    kind: "posted",
                    side: Some(Side::Credit),
                    amount: None,
                },
            ],
            at: 2,
            ..LedgerWrite::default()
        },
        ..WriteSet::default()
    };
    let spend = |credit: i64| WriteSet {
        ledger: LedgerWrite {
            entries: vec![EntryWrite {
                posting: leg(2, credit, 0),
                transfer: None,
                kind: "posted",
                side: Some(Side::Debit),
                amount: None,
            }],
            at: 3,
            ..LedgerWrite::default()
        },
        ..WriteSet::default()
    };
    // Two sets in one batch fold into one change per account; a set that would take account 2
    // below zero is refused by the row and undone alone.
    let outcomes = harness.store.commit(&[moved(100), moved(50), spend(400)]).await?;
    assert_eq!(outcomes, vec![WriteOutcome::Committed, WriteOutcome::Committed, WriteOutcome::Conflict]);
    assert_eq!(sums(&harness, 2).await?, (0, 0, 0, 150));
    assert_eq!(harness.store.commit(&[spend(150)]).await?, vec![WriteOutcome::Committed]);
    assert_eq!(sums(&harness, 2).await?, (0, 150, 0, 150));

    // Each line carries the sums after it, batch-folded or not.
    let range = EntryRange { from: 0, until: i64::MAX, after: None, limit: 100 };
    let lines: Vec<(u128, u128)> = harness
        .store
        .ledger_account_entries(id(2), range)
        .await?
        .iter()
        .map(|entry| (entry.balances.debits_posted, entry.balances.credits_posted))
        .collect();
    assert_eq!(lines, vec![(0, 0), (0, 100), (0, 150), (150, 150)]);
    assert!(harness.store.last_ledger_entry_seq().await? >= 6);
    Ok(())
}

/// Transfers in the large concurrency runs, clients sending them, and accounts they move.
const MANY_TRANSFERS: usize = 10_000;
const CLIENTS: usize = 64;
const MANY_ACCOUNTS: u128 = 100;
/// The hot account of the hot run (account ids 1..=MANY_ACCOUNTS are customers, 0 the rail).
const HOT: u128 = 1_000;

pub async fn ten_thousand_random_transfers_from_64_clients_on_two_nodes_balance(
    harness: Harness,
) -> anyhow::Result<()> {
    many_transfers_balance(harness, false).await
}

pub async fn ten_thousand_transfers_through_one_hot_account_on_two_nodes_balance(
    harness: Harness,
) -> anyhow::Result<()> {
    many_transfers_balance(harness, true).await
}

/// [`MANY_TRANSFERS`] transfers from [`CLIENTS`] clients, half on each of two nodes over one
/// store: between random accounts (funded so that some run dry and are refused), or each to or
/// from one hot account. Afterwards every accepted transfer is stored once, nothing refused or
/// answered with an error is, the balances are the fold of the accepted transfers, no account
/// went below zero, and the sum over all accounts is zero.
async fn many_transfers_balance(harness: Harness, hot: bool) -> anyhow::Result<()> {
    use rand::{Rng as _, SeedableRng as _};

    let arbiters = [Arbiter::new(), Arbiter::new()];
    let nodes = [node(&harness, &arbiters)?, node(&harness, &arbiters)?];
    create_bank(&harness).await?;
    let rail = 0;
    nodes[0].open(new_account(rail, AccountKind::ExternalRail, rail_flags())).await?;
    let funding: u64 = if hot { 1_000_000 } else { 2_000 };
    let mut funded: Vec<u128> = (1..=MANY_ACCOUNTS).collect();
    if hot {
        funded.push(HOT);
    }
    for n in &funded {
        nodes[0].open(new_account(*n, AccountKind::Customer, AccountFlags::default())).await?;
        assert_eq!(result(&nodes[0], post(rail, *n, funding)).await?, TransferResult::Created);
    }

    let mut random = rand::rngs::StdRng::seed_from_u64(if hot { 2 } else { 1 });
    let mut plans: Vec<Vec<TransferRequest>> = vec![Vec::new(); CLIENTS];
    for index in 0..MANY_TRANSFERS {
        let a = random.gen_range(1..=MANY_ACCOUNTS);
        let (debit, credit) = if hot {
            if random.gen_bool(0.5) {
                (a, HOT)
            } else {
                (HOT, a)
            }
        } else {
            let b = 1 + (a + random.gen_range(0..MANY_ACCOUNTS - 1)) % MANY_ACCOUNTS;
            (a, b)
        };
        plans[index % CLIENTS].push(post(debit, credit, random.gen_range(1..=300)));
    }
    let clients = plans.iter().enumerate().map(|(client, plan)| {
        let ledger = &nodes[client % 2];
        async move {
            let mut answers = Vec::with_capacity(plan.len());
            for request in plan {
                answers.push(ledger.transfer(request.clone(), Reach::Every).await);
            }
            answers
        }
    });
    let answers = futures_util::future::join_all(clients).await;

    let mut expected: BTreeMap<u128, i128> = funded.iter().map(|n| (*n, i128::from(funding))).collect();
    expected.insert(rail, -(i128::from(funding) * funded.len() as i128));
    let (mut accepted, mut refused, mut faults) = (0, 0, 0);
    for (plan, answers) in plans.iter().zip(answers) {
        for (request, answer) in plan.iter().zip(answers) {
            let TransferRequest::Post { id: transfer, debit, credit, amount, .. } = request else {
                unreachable!("only posts are planned")
            };
            let stored_transfer = harness.store.load_ledger_transfer(*transfer).await?;
            let created = match answer {
                Ok(outcome) if outcome.result == TransferResult::Created => true,
                Ok(outcome) => {
                    assert_eq!(outcome.result, TransferResult::ExceedsCredits, "{request:?}");
                    refused += 1;
                    false
                }
                // Perhaps written: the store says.
                Err(cashgrid_actors::EngineError::OutcomeUnknown) => stored_transfer.is_some(),
                Err(error) => {
                    assert!(
                        matches!(
                            error,
                            cashgrid_actors::EngineError::Overloaded | cashgrid_actors::EngineError::Unavailable
                        ),
                        "{error:?}"
                    );
                    faults += 1;
                    false
                }
            };
            assert_eq!(stored_transfer.is_some(), created, "stored exactly when accepted: {request:?}");
            if created {
                accepted += 1;
                let minor = i128::from(amount.get());
                *expected.entry(debit.0.as_u128()).or_default() -= minor;
                *expected.entry(credit.0.as_u128()).or_default() += minor;
            }
        }
    }
    assert!(accepted > MANY_TRANSFERS / 2, "accepted {accepted}, refused {refused}, faults {faults}");
    let mut total: i128 = 0;
    for (n, net) in &expected {
        let account = stored(&harness, *n).await?;
        assert_eq!(account.balances.net_posted(), *net, "account {n} is the fold of its accepted transfers");
        assert_eq!((account.balances.debits_pending, account.balances.credits_pending), (0, 0));
        assert!(*n == rail || *net >= 0, "account {n} went below zero");
        total += account.balances.net_posted();
    }
    assert_eq!(total, 0, "money is neither created nor destroyed");
    if !hot {
        assert!(refused > 0, "some accounts ran dry and were refused");
    }
    Ok(())
}
