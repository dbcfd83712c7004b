//! The store contract of the portal, accounts, clearing, journal, feeds, expiry and history
//! cleanup, backend-independent. Each scenario gets a fresh, empty store.

use cashgrid_actors::domain::{
    CustomerId, Device, DeviceType, Token, TokenEvent, TokenEventKind, TokenState, TokenType,
};
use cashgrid_actors::store::{
    Account, ClearingQuery, ClearingWrite, Customer, CustomerUpdate, JournalQuery, NewAccount, NewCustomer, Scope,
    StoreError, TokenWrite, WriteOutcome, WriteSet,
};
use serde_json::json;
use uuid::Uuid;

use super::fixtures::{self, finished, insert_set, next, T0};
use super::harness::Harness;

use WriteOutcome::Committed;

async fn customer(h: &Harness) -> anyhow::Result<Customer> {
    Ok(h.store.create_customer(&fixtures::new_customer()).await?)
}

async fn device(h: &Harness, customer: CustomerId, refname: &str) -> anyhow::Result<Device> {
    let device = Device { refname: Some(refname.to_owned()), ..fixtures::device(customer, DeviceType::Atm) };
    Ok(h.store.insert_device(&device, None).await?)
}

fn account(value: &str, default: bool) -> NewAccount {
    NewAccount {
        value: value.to_owned(),
        account_type: "BANKACCOUNT".to_owned(),
        default,
        symbol: Some("EUR".to_owned()),
        refname: Some(format!("ref-{value}")),
    }
}

/// An event of `token` (as written) at `at`, caused by `cash` when given.
fn event_at(
    token: &Token,
    kind: TokenEventKind,
    from: Option<TokenState>,
    at: i64,
    cash: Option<CustomerId>,
) -> TokenEvent {
    TokenEvent { cash_customer_id: cash, at, ..fixtures::event(token, kind, from) }
}

/// One set: `writes` with `events`, committed alone; asserts it committed.
async fn commit(
    h: &Harness,
    writes: Vec<TokenWrite>,
    events: Vec<TokenEvent>,
    clearing: Option<ClearingWrite>,
) -> anyhow::Result<()> {
    let outcomes =
        h.store.commit(&[WriteSet { writes, events, clearing, idempotency: None, ..WriteSet::default() }]).await?;
    assert_eq!(outcomes, vec![Committed]);
    Ok(())
}

/// `token` locked by `lock_device` of `cash`, then completed with `amount`, as two commits; the
/// completion writes a clearing row (`debitor` owner, `creditor` cash, as for a CASHOUT).
async fn lock_and_complete(
    h: &Harness,
    token: &Token,
    lock_device: &Device,
    at: i64,
    clearing: bool,
) -> anyhow::Result<Token> {
    let cash = lock_device.customer_id;
    let locked = next(token, |next| {
        next.state = TokenState::Locked;
        next.lock_device = Some(lock_device.uuid);
        next.lock_customer_id = Some(cash);
        next.updated = Some(at);
    });
    commit(
        h,
        vec![TokenWrite::Update(locked.clone())],
        vec![event_at(&locked, TokenEventKind::Locked, Some(TokenState::Open), at, Some(cash))],
        None,
    )
    .await?;
    let completed = next(&finished(&locked, TokenState::Completed), |next| {
        next.version -= 1;
        next.updated = Some(at + 1);
        next.lockrefname = Some("cash-ref".to_owned());
    });
    commit(
        h,
        vec![TokenWrite::Update(completed.clone())],
        vec![event_at(&completed, TokenEventKind::Confirmed, Some(TokenState::Locked), at + 1, Some(cash))],
        clearing.then(|| ClearingWrite {
            token: token.uuid,
            debitor_id: token.owner_id,
            creditor_id: cash,
            created: at + 1,
        }),
    )
    .await?;
    Ok(completed)
}

pub async fn event_payloads_are_token_snapshots(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let token = fixtures::full_token(owner.id);
    commit(&h, vec![TokenWrite::Insert(token.clone())], vec![fixtures::created_event(&token)], None).await?;

    // A partial confirm: the original and its remainder, each event with its own token; two
    // writes of one token in a set: both events carry the last one.
    let confirmed = finished(&token, TokenState::Completed);
    let remainder = fixtures::token(owner.id, token.owner_device, None);
    let again = next(&confirmed, |next| next.clearstate = 42);
    commit(
        &h,
        vec![
            TokenWrite::Update(confirmed.clone()),
            TokenWrite::Insert(remainder.clone()),
            TokenWrite::Update(again.clone()),
        ],
        vec![
            fixtures::event(&confirmed, TokenEventKind::Confirmed, Some(TokenState::Locked)),
            fixtures::created_event(&remainder),
            fixtures::event(&again, TokenEventKind::Updated, Some(TokenState::Completed)),
        ],
        None,
    )
    .await?;

    let events = h.store.events_after(None, 0, 100).await?;
    assert_eq!(events.len(), 4);
    assert_eq!(events[0].snapshot, token.snapshot_json());
    assert_eq!(events[0].kind, TokenEventKind::Created);
    assert_eq!(events[0].from, None);
    assert_eq!(events[0].to, TokenState::Locked);
    assert_eq!(events[0].version, 1);
    assert_eq!(events[0].token, token.uuid);
    assert_eq!(events[1].snapshot, again.snapshot_json());
    assert_eq!(events[1].kind, TokenEventKind::Confirmed);
    assert_eq!(events[1].from, Some(TokenState::Locked));
    assert_eq!(events[2].snapshot, remainder.snapshot_json());
    assert_eq!(events[2].token, remainder.uuid);
    assert_eq!(events[3].snapshot, again.snapshot_json());
    assert_eq!(events[3].snapshot["clearstate"], json!(42));
    assert!(events.windows(2).all(|pair| pair[0].seq < pair[1].seq));
    assert_eq!(h.store.last_event_seq().await?, events[3].seq);
    Ok(())
}

pub async fn clearing_snapshots_default_accounts_at_commit(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let cash = customer(&h).await?;
    let stranger = customer(&h).await?;
    let owner_device = device(&h, owner.id, "phone-1").await?;
    let atm = device(&h, cash.id, "ATM1").await?;
    let cash_account = h.store.insert_account(cash.id, &account("DE01", true)).await?;
    // The owner has no account: its snapshot is NULL.

    let first = fixtures::token(owner.id, owner_device.uuid, Some("100001"));
    let second = Token { amount: 700, ..fixtures::token(owner.id, owner_device.uuid, None) };
    let payment = Token {
        token_type: TokenType::Payment,
        symbol: "USD".to_owned(),
        ..fixtures::token(owner.id, owner_device.uuid, None)
    };
    for token in [&first, &second, &payment] {
        commit(&h, vec![TokenWrite::Insert(token.clone())], vec![], None).await?;
    }
    let first_done = lock_and_complete(&h, &first, &atm, T0 + 100, true).await?;

    // The creditor's default account changes after the commit: the row keeps the old one.
    let mut changed = cash_account.clone();
    changed.value = "DE99".to_owned();
    assert_eq!(h.store.update_account(cash.id, &changed, false).await?, 1);
    let owner_account = h.store.insert_account(owner.id, &account("OWN1", false)).await?;
    lock_and_complete(&h, &second, &atm, T0 + 200, true).await?;
    lock_and_complete(&h, &payment, &atm, T0 + 300, true).await?;

    let all = ClearingQuery { limit: 100, ..ClearingQuery::default() };
    let rows = h.store.clearing_rows(&all).await?;
    assert_eq!(rows.len(), 3);
    let row = &rows[0];
    assert_eq!(row.date, T0 + 101);
    assert_eq!(row.token, first_done);
    assert_eq!(row.token_device_refname.as_deref(), Some("phone-1"));
    assert_eq!(row.lock_device_refname.as_deref(), Some("ATM1"));
    assert_eq!((row.debitor_id, row.creditor_id), (owner.id, cash.id));
    assert_eq!(row.debitor, None);
    assert_eq!(
        row.creditor,
        Some(json!({
            "id": cash_account.id,
            "customer_id": cash.id,
            "value": "DE01",
            "type": "BANKACCOUNT",
            "default": 1,
            "symbol": "EUR",
            "refname": "ref-DE01",
        }))
    );
    // The stored text keeps the original's key order.
    let texts = h.clearing_account_texts().await?;
    assert_eq!(texts.len(), 3);
    assert_eq!(texts[0].0, None);
    let creditor_text = texts[0].1.clone().unwrap_or_default();
    let positions: Vec<Option<usize>> =
        ["\"id\"", "\"customer_id\"", "\"value\"", "\"type\"", "\"default\"", "\"symbol\"", "\"refname\""]
            .iter()
            .map(|key| creditor_text.find(key))
            .collect();
    assert!(positions.iter().all(Option::is_some), "{creditor_text}");
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "{creditor_text}");
    // Later rows snapshot the accounts as they were then.
    assert_eq!(rows[1].token.uuid, second.uuid);
    assert_eq!(rows[1].creditor.as_ref().map(|c| c["value"].clone()), Some(json!("DE99")));
    assert_eq!(rows[1].debitor.as_ref().map(|d| d["id"].clone()), Some(json!(owner_account.id)));

    // Filters: party, token, time range (from inclusive, to exclusive), type.
    let query = |change: fn(&mut ClearingQuery)| {
        let mut query = all.clone();
        change(&mut query);
        query
    };
    let uuids =
        |rows: Vec<cashgrid_actors::store::ClearingRow>| rows.into_iter().map(|row| row.token.uuid).collect::<Vec<_>>();
    let mut mine = all.clone();
    mine.customer = Some(cash.id);
    assert_eq!(h.store.clearing_rows(&mine).await?.len(), 3);
    mine.customer = Some(stranger.id);
    assert!(h.store.clearing_rows(&mine).await?.is_empty());
    let mut one = all.clone();
    one.token = Some(second.uuid);
    assert_eq!(uuids(h.store.clearing_rows(&one).await?), vec![second.uuid]);
    let range = query(|query| {
        query.from = Some(T0 + 201);
        query.to = Some(T0 + 302);
    });
    assert_eq!(uuids(h.store.clearing_rows(&range).await?), vec![second.uuid, payment.uuid]);
    let typed = query(|query| query.token_type = Some(TokenType::Payment));
    assert_eq!(uuids(h.store.clearing_rows(&typed).await?), vec![payment.uuid]);
    let limited = query(|query| query.limit = 1);
    assert_eq!(uuids(h.store.clearing_rows(&limited).await?), vec![first.uuid]);

    // Sums by (type, symbol, debitor, creditor).
    let sums = h.store.clearing_sums(&all).await?;
    assert_eq!(sums.len(), 2);
    let cashout = sums
        .iter()
        .find(|sum| sum.token_type == TokenType::Cashout)
        .ok_or_else(|| anyhow::anyhow!("no CASHOUT sum"))?;
    assert_eq!(
        (cashout.symbol.as_str(), cashout.debitor_id, cashout.creditor_id, cashout.count, cashout.amount),
        ("EUR", owner.id, cash.id, 2, i128::from(first.amount + 700))
    );
    let usd = sums
        .iter()
        .find(|sum| sum.token_type == TokenType::Payment)
        .ok_or_else(|| anyhow::anyhow!("no PAYMENT sum"))?;
    assert_eq!((usd.symbol.as_str(), usd.count, usd.amount), ("USD", 1, 5_000));
    let mut stranger_sums = all.clone();
    stranger_sums.customer = Some(stranger.id);
    assert!(h.store.clearing_sums(&stranger_sums).await?.is_empty());
    Ok(())
}

pub async fn default_account_rule(h: Harness) -> anyhow::Result<()> {
    let me = customer(&h).await?;
    let other = customer(&h).await?;
    let defaults = |accounts: &[Account]| {
        accounts.iter().filter(|account| account.default == 1).map(|account| account.id).collect::<Vec<_>>()
    };

    // Zero defaults: the first account becomes the default even when sent without.
    let a = h.store.insert_account(me.id, &account("A", false)).await?;
    assert_eq!(a.default, 1);
    assert_eq!(a.customer_id, me.id);
    // A second default does not take over: the lowest id stays the default.
    let b = h.store.insert_account(me.id, &account("B", true)).await?;
    assert_eq!(b.default, 0);
    let c = h.store.insert_account(me.id, &account("C", false)).await?;
    assert_eq!(defaults(&h.store.list_accounts(me.id, None).await?), vec![a.id]);

    // Switching the default clears the others.
    assert_eq!(h.store.update_account(me.id, &b, true).await?, 1);
    assert_eq!(defaults(&h.store.list_accounts(me.id, None).await?), vec![b.id]);
    let listed = h.store.list_accounts(me.id, Some(true)).await?;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, b.id);
    assert_eq!(listed[0].value, "B");
    let non_default = h.store.list_accounts(me.id, Some(false)).await?;
    assert_eq!(non_default.iter().map(|a| a.id).collect::<Vec<_>>(), vec![a.id, c.id]);

    // A PUT writes every field; clearing the only default falls back to the lowest id.
    let mut b_update = b.clone();
    b_update.value = "B2".to_owned();
    b_update.default = 0;
    b_update.symbol = None;
    assert_eq!(h.store.update_account(me.id, &b_update, false).await?, 1);
    let stored = h.store.load_account(b.id).await?.ok_or_else(|| anyhow::anyhow!("account b vanished"))?;
    assert_eq!((stored.value.as_str(), stored.symbol.clone(), stored.default), ("B2", None, 0));
    assert_eq!(defaults(&h.store.list_accounts(me.id, None).await?), vec![a.id]);

    // Two defaults by a plain update: reset to the lowest id.
    let mut c_update = c.clone();
    c_update.default = 1;
    assert_eq!(h.store.update_account(me.id, &c_update, false).await?, 1);
    assert_eq!(defaults(&h.store.list_accounts(me.id, None).await?), vec![a.id]);

    // Deleting the default promotes the lowest remaining id.
    assert_eq!(h.store.delete_account(me.id, a.id).await?, 1);
    assert_eq!(defaults(&h.store.list_accounts(me.id, None).await?), vec![b.id]);
    assert_eq!(h.store.load_account(a.id).await?, None);

    // Another customer's accounts: untouched by my calls, and not mine to change.
    let theirs = h.store.insert_account(other.id, &account("X", true)).await?;
    assert_eq!(theirs.default, 1);
    assert_eq!(h.store.update_account(me.id, &theirs, true).await?, 0);
    assert_eq!(h.store.delete_account(me.id, theirs.id).await?, 0);
    assert_eq!(defaults(&h.store.list_accounts(me.id, None).await?), vec![b.id]);
    assert_eq!(defaults(&h.store.list_accounts(other.id, None).await?), vec![theirs.id]);
    // Loading is not scoped (the original's quirk; the frontend decides).
    assert_eq!(h.store.load_account(theirs.id).await?, Some(theirs));
    Ok(())
}

pub async fn journal_entries(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let cash = customer(&h).await?;
    let owner_device = device(&h, owner.id, "phone").await?;
    let atm = device(&h, cash.id, "atm").await?;

    // t: create (T0), update (T0+10), lock (T0+20), confirm (T0+21, cross-customer).
    let token = Token {
        refname: Some("needle-ref".to_owned()),
        ..fixtures::token(owner.id, owner_device.uuid, Some("200001"))
    };
    commit(
        &h,
        vec![TokenWrite::Insert(token.clone())],
        vec![event_at(&token, TokenEventKind::Created, None, T0, None)],
        None,
    )
    .await?;
    let updated = next(&token, |next| next.clearstate = 3);
    commit(
        &h,
        vec![TokenWrite::Update(updated.clone())],
        vec![event_at(&updated, TokenEventKind::Updated, Some(TokenState::Open), T0 + 10, None)],
        None,
    )
    .await?;
    lock_and_complete(&h, &updated, &atm, T0 + 20, false).await?;

    // r: rejected at claim by the cash customer (T0+30); x: expired (T0+40, not journaled);
    // d: deleted (T0+50).
    let rejected_token = fixtures::token(owner.id, owner_device.uuid, None);
    let expiring = fixtures::token(owner.id, owner_device.uuid, None);
    let deleted_token = fixtures::token(owner.id, owner_device.uuid, None);
    for token in [&rejected_token, &expiring, &deleted_token] {
        commit(&h, vec![TokenWrite::Insert(token.clone())], vec![], None).await?;
    }
    let rejected = finished(&rejected_token, TokenState::Rejected);
    commit(
        &h,
        vec![TokenWrite::Update(rejected.clone())],
        vec![event_at(&rejected, TokenEventKind::Rejected, Some(TokenState::Open), T0 + 30, Some(cash.id))],
        None,
    )
    .await?;
    let expired = finished(&expiring, TokenState::Expired);
    commit(
        &h,
        vec![TokenWrite::Update(expired.clone())],
        vec![event_at(&expired, TokenEventKind::Expired, Some(TokenState::Open), T0 + 40, None)],
        None,
    )
    .await?;
    let deleted = finished(&deleted_token, TokenState::Deleted);
    commit(
        &h,
        vec![TokenWrite::Update(deleted.clone())],
        vec![event_at(&deleted, TokenEventKind::Deleted, Some(TokenState::Open), T0 + 50, None)],
        None,
    )
    .await?;

    let all = JournalQuery { limit: 100, ..JournalQuery::default() };
    let summary = |entries: &[cashgrid_actors::store::JournalEntry]| {
        entries.iter().map(|entry| (entry.action, entry.customer_id, entry.created)).collect::<Vec<_>>()
    };

    // Admin: every customer's entries, newest first; lock, reject and confirm twice.
    let admin = h.store.journal(&all).await?;
    assert_eq!(
        summary(&admin),
        vec![
            ("delete", owner.id, T0 + 50),
            ("reject", owner.id, T0 + 30),
            ("reject", cash.id, T0 + 30),
            ("confirm", owner.id, T0 + 21),
            ("confirm", cash.id, T0 + 21),
            ("lock", owner.id, T0 + 20),
            ("lock", cash.id, T0 + 20),
            ("update", owner.id, T0 + 10),
            ("create", owner.id, T0),
        ]
    );
    // Both rows of one event share its sequence number and data.
    assert_eq!(admin[3].id, admin[4].id);
    assert_eq!(admin[3].data, admin[4].data);
    assert!(admin[4].id > admin[5].id);
    assert_eq!(admin[3].data["state"], json!("COMPLETED"));
    assert_eq!(admin[3].data["lockrefname"], json!("cash-ref"));
    assert_eq!(admin[8].data, token.snapshot_json());
    // A reject shows the reason instead of the token's processing_info.
    assert_eq!(admin[1].data["processing_info"], json!({ "reject_reason": "Invalid token code" }));
    assert_eq!(admin[1].data["uuid"], json!(rejected.uuid.to_string()));

    // One customer: the owner sees all its tokens' entries, the cash customer its own three.
    let mine = JournalQuery { customer: Some(owner.id), ..all.clone() };
    assert_eq!(
        summary(&h.store.journal(&mine).await?),
        vec![
            ("delete", owner.id, T0 + 50),
            ("reject", owner.id, T0 + 30),
            ("confirm", owner.id, T0 + 21),
            ("lock", owner.id, T0 + 20),
            ("update", owner.id, T0 + 10),
            ("create", owner.id, T0),
        ]
    );
    let theirs = JournalQuery { customer: Some(cash.id), ..all.clone() };
    assert_eq!(
        summary(&h.store.journal(&theirs).await?),
        vec![("reject", cash.id, T0 + 30), ("confirm", cash.id, T0 + 21), ("lock", cash.id, T0 + 20),]
    );

    // Range: from inclusive, to exclusive.
    let range = JournalQuery { from: Some(T0 + 10), to: Some(T0 + 21), ..mine.clone() };
    assert_eq!(
        summary(&h.store.journal(&range).await?),
        vec![("lock", owner.id, T0 + 20), ("update", owner.id, T0 + 10)]
    );
    // Filter: the action, the data text, or the reject reason shown.
    let filtered = |filter: &str| JournalQuery { filter: Some(filter.to_owned()), ..mine.clone() };
    assert_eq!(summary(&h.store.journal(&filtered("confirm")).await?), vec![("confirm", owner.id, T0 + 21)]);
    assert_eq!(h.store.journal(&filtered("needle-ref")).await?.len(), 4);
    assert_eq!(summary(&h.store.journal(&filtered("Invalid token code")).await?), vec![("reject", owner.id, T0 + 30)]);
    assert!(h.store.journal(&filtered("no such text")).await?.is_empty());
    // Limit: entries, not events.
    let limited = JournalQuery { limit: 2, ..all.clone() };
    assert_eq!(
        summary(&h.store.journal(&limited).await?),
        vec![("delete", owner.id, T0 + 50), ("reject", owner.id, T0 + 30)]
    );
    let limited = JournalQuery { limit: 3, ..all.clone() };
    assert_eq!(h.store.journal(&limited).await?.len(), 3);
    Ok(())
}

pub async fn events_after_resumes_and_filters(h: Harness) -> anyhow::Result<()> {
    assert_eq!(h.store.last_event_seq().await?, 0);
    assert!(h.store.events_after(None, 0, 10).await?.is_empty());
    let a = customer(&h).await?;
    let b = customer(&h).await?;
    let c = customer(&h).await?;
    let a_token = fixtures::token(a.id, Uuid::new_v4(), None);
    let b_token = fixtures::token(b.id, Uuid::new_v4(), None);
    let c_token = fixtures::token(c.id, Uuid::new_v4(), None);
    for token in [&a_token, &b_token, &c_token] {
        h.store.commit(&[insert_set(token)]).await?;
    }
    // b's token locked by a's device: a is its cash customer.
    let locked = next(&b_token, |next| next.state = TokenState::Locked);
    commit(
        &h,
        vec![TokenWrite::Update(locked.clone())],
        vec![event_at(&locked, TokenEventKind::Locked, Some(TokenState::Open), T0 + 5, Some(a.id))],
        None,
    )
    .await?;

    let all = h.store.events_after(None, 0, 100).await?;
    assert_eq!(all.len(), 4);
    let last = h.store.last_event_seq().await?;
    assert_eq!(all[3].seq, last);

    // Resume in pages of two.
    let first = h.store.events_after(None, 0, 2).await?;
    assert_eq!(first, all[..2].to_vec());
    let rest = h.store.events_after(None, first[1].seq, 2).await?;
    assert_eq!(rest, all[2..].to_vec());
    assert!(h.store.events_after(None, last, 2).await?.is_empty());
    assert_eq!(rest[1].cash_customer_id, Some(a.id));
    assert_eq!(rest[1].owner_id, b.id);
    assert_eq!(rest[1].at, T0 + 5);
    assert_eq!(rest[1].snapshot, locked.snapshot_json());

    // Per customer: its own tokens' events and those it caused as cash customer.
    let tokens = |events: Vec<cashgrid_actors::store::EventRecord>| {
        events.into_iter().map(|event| (event.token, event.kind)).collect::<Vec<_>>()
    };
    assert_eq!(
        tokens(h.store.events_after(Some(a.id), 0, 100).await?),
        vec![(a_token.uuid, TokenEventKind::Created), (b_token.uuid, TokenEventKind::Locked)]
    );
    assert_eq!(
        tokens(h.store.events_after(Some(b.id), 0, 100).await?),
        vec![(b_token.uuid, TokenEventKind::Created), (b_token.uuid, TokenEventKind::Locked)]
    );
    assert_eq!(tokens(h.store.events_after(Some(c.id), all[2].seq, 100).await?), vec![]);
    assert_eq!(tokens(h.store.events_after(Some(c.id), 0, 100).await?), vec![(c_token.uuid, TokenEventKind::Created)]);
    Ok(())
}

pub async fn due_expiries_oldest_first(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let expiring = |expires: Option<i64>| Token { expires, ..fixtures::token(owner.id, device, None) };
    let late = expiring(Some(T0 + 30));
    let early = expiring(Some(T0 + 10));
    let middle = expiring(Some(T0 + 20));
    let never = expiring(None);
    let future = expiring(Some(T0 + 1_000));
    let locked = Token { state: TokenState::Locked, ..expiring(Some(T0 + 5)) };
    let gone = finished(&expiring(Some(T0 + 1)), TokenState::Deleted);
    let sets: Vec<WriteSet> =
        [&late, &early, &middle, &never, &future, &locked, &gone].into_iter().map(insert_set).collect();
    assert!(h.store.commit(&sets).await?.iter().all(|outcome| *outcome == Committed));

    let now = T0 + 25;
    assert_eq!(h.store.due_expiries(now, 100).await?, vec![early.uuid, middle.uuid]);
    assert_eq!(h.store.due_expiries(now, 1).await?, vec![early.uuid]);
    // Strictly before: a token expiring now is not due yet.
    assert!(h.store.due_expiries(T0 + 10, 100).await?.is_empty());
    assert_eq!(h.store.due_expiries(T0 + 31, 100).await?, vec![early.uuid, middle.uuid, late.uuid]);
    Ok(())
}

pub async fn delete_history_keeps_live_tokens(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let cash = customer(&h).await?;
    let owner_device = device(&h, owner.id, "phone").await?;
    let atm = device(&h, cash.id, "atm").await?;
    let old =
        |state: TokenState| Token { state, created: T0 - 1_000, ..fixtures::token(owner.id, owner_device.uuid, None) };
    let cleared = old(TokenState::Open);
    let old_open = old(TokenState::Open);
    let old_locked = old(TokenState::Locked);
    let old_deleted = finished(&old(TokenState::Open), TokenState::Deleted);
    let recent = fixtures::token(owner.id, owner_device.uuid, None);
    for token in [&cleared, &old_open, &old_locked, &old_deleted, &recent] {
        h.store.commit(&[insert_set(token)]).await?;
    }
    // The cleared token was completed (events, clearing row) after the cutoff.
    lock_and_complete(&h, &cleared, &atm, T0 + 50, true).await?;
    let recent_done = lock_and_complete(&h, &recent, &atm, T0 + 60, true).await?;
    let events_before = h.count_events().await?;
    assert_eq!(events_before, 9);

    assert_eq!(h.store.delete_history(T0).await?, 2);
    assert_eq!(h.store.load_token(cleared.uuid).await?, None);
    assert_eq!(h.store.load_token(old_deleted.uuid).await?, None);
    assert_eq!(h.store.load_token(old_open.uuid).await?, Some(old_open.clone()));
    assert_eq!(h.store.load_token(old_locked.uuid).await?, Some(old_locked.clone()));
    assert_eq!(h.store.load_token(recent.uuid).await?, Some(recent_done));
    // Their events and clearing rows went with them; the others' stay.
    assert_eq!(h.count_events().await?, events_before - 4);
    let remaining = h.store.events_after(None, 0, 100).await?;
    assert!(remaining.iter().all(|event| event.token != cleared.uuid && event.token != old_deleted.uuid));
    let rows = h.store.clearing_rows(&ClearingQuery { limit: 100, ..ClearingQuery::default() }).await?;
    assert_eq!(rows.iter().map(|row| row.token.uuid).collect::<Vec<_>>(), vec![recent.uuid]);
    // Nothing left to remove.
    assert_eq!(h.store.delete_history(T0).await?, 0);
    Ok(())
}

pub async fn delete_history_in_batches(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    // More than one batch of final tokens.
    let count = 2_345;
    let sets: Vec<WriteSet> = (0..count)
        .map(|index| {
            let token = Token { created: T0 - 10_000 + index, ..fixtures::token(owner.id, device, None) };
            insert_set(&finished(&token, TokenState::Canceled))
        })
        .collect();
    for chunk in sets.chunks(500) {
        h.store.commit(chunk).await?;
    }
    let open = fixtures::token(owner.id, device, None);
    h.store.commit(&[insert_set(&open)]).await?;
    assert_eq!(h.store.delete_history(T0).await?, count as u64);
    assert_eq!(h.count_events().await?, 1);
    assert_eq!(
        h.store
            .list_tokens(owner.id, &Default::default(), 10)
            .await?
            .iter()
            .map(|token| token.uuid)
            .collect::<Vec<_>>(),
        vec![open.uuid]
    );
    Ok(())
}

pub async fn token_stats_by_state_and_type(h: Harness) -> anyhow::Result<()> {
    let me = customer(&h).await?;
    let other = customer(&h).await?;
    let my_phone = device(&h, me.id, "phone").await?;
    let my_atm = device(&h, me.id, "atm").await?;
    let their_phone = device(&h, other.id, "theirs").await?;
    let token = |owner: &Device, amount: i64, token_type: TokenType, state: TokenState| Token {
        amount,
        token_type,
        state,
        ..fixtures::token(owner.customer_id, owner.uuid, None)
    };
    let tokens = [
        token(&my_phone, 100, TokenType::Cashout, TokenState::Open),
        token(&my_phone, 200, TokenType::Cashout, TokenState::Open),
        token(&my_phone, 50, TokenType::Payment, TokenState::Completed),
        // Another customer's token, locked by my ATM: counted for me too.
        Token {
            lock_device: Some(my_atm.uuid),
            lock_customer_id: Some(me.id),
            ..token(&their_phone, 1_000, TokenType::Cashout, TokenState::Locked)
        },
        token(&their_phone, 7, TokenType::Cashout, TokenState::Open),
    ];
    let sets: Vec<WriteSet> = tokens.iter().map(insert_set).collect();
    h.store.commit(&sets).await?;

    let summary = |stats: Vec<cashgrid_actors::store::TokenStat>| {
        let mut stats =
            stats.into_iter().map(|stat| (stat.state, stat.token_type, stat.amount, stat.count)).collect::<Vec<_>>();
        stats.sort_by_key(|(state, token_type, _, _)| (state.as_str(), token_type.as_str()));
        stats
    };
    assert_eq!(
        summary(h.store.token_stats(Some(me.id)).await?),
        vec![
            (TokenState::Completed, TokenType::Payment, 50, 1),
            (TokenState::Locked, TokenType::Cashout, 1_000, 1),
            (TokenState::Open, TokenType::Cashout, 300, 2),
        ]
    );
    assert_eq!(
        summary(h.store.token_stats(Some(other.id)).await?),
        vec![(TokenState::Locked, TokenType::Cashout, 1_000, 1), (TokenState::Open, TokenType::Cashout, 7, 1),]
    );
    assert_eq!(
        summary(h.store.token_stats(None).await?),
        vec![
            (TokenState::Completed, TokenType::Payment, 50, 1),
            (TokenState::Locked, TokenType::Cashout, 1_000, 1),
            (TokenState::Open, TokenType::Cashout, 307, 3),
        ]
    );
    Ok(())
}

pub async fn device_admin(h: Harness) -> anyhow::Result<()> {
    let me = customer(&h).await?;
    let other = customer(&h).await?;
    let phone = device(&h, me.id, "phone").await?;
    let atm = device(&h, me.id, "atm").await?;
    let spare = device(&h, me.id, "spare").await?;
    let theirs = device(&h, other.id, "theirs").await?;

    assert_eq!(h.store.load_device_by_id(phone.id).await?, Some(phone.clone()));
    assert_eq!(h.store.load_device_by_id(-1).await?, None);

    // Type and refname, each alone; `Some(None)` clears the refname.
    assert_eq!(h.store.update_device(me.id, spare.id, Some(DeviceType::CashRegister), None).await?, 1);
    assert_eq!(h.store.update_device(me.id, phone.id, None, Some(Some("renamed".to_owned()))).await?, 1);
    let stored = h.store.load_device_by_id(spare.id).await?;
    assert_eq!(
        stored.map(|device| (device.device_type, device.refname)),
        Some((DeviceType::CashRegister, Some("spare".to_owned())))
    );
    assert_eq!(h.store.update_device(me.id, spare.id, None, Some(None)).await?, 1);
    let stored = h.store.load_device_by_id(spare.id).await?;
    assert_eq!(stored.map(|device| (device.device_type, device.refname)), Some((DeviceType::CashRegister, None)));
    // Nothing to set is an error; another customer's device matches nothing.
    assert!(matches!(h.store.update_device(me.id, spare.id, None, None).await, Err(StoreError::Internal(_))));
    assert_eq!(h.store.update_device(me.id, theirs.id, Some(DeviceType::Other), None).await?, 0);

    // Admin statistics: one row per device, in id order.
    let stats = h.store.device_stats().await?;
    assert_eq!(
        stats.iter().map(|stat| (stat.email.clone(), stat.device_type, stat.refname.clone())).collect::<Vec<_>>(),
        vec![
            (me.email.clone(), DeviceType::Atm, Some("renamed".to_owned())),
            (me.email.clone(), DeviceType::Atm, Some("atm".to_owned())),
            (me.email.clone(), DeviceType::CashRegister, None),
            (other.email.clone(), DeviceType::Atm, Some("theirs".to_owned())),
        ]
    );

    // Devices that tokens reference (as owner device or lock device) cannot be deleted.
    let owned = fixtures::token(me.id, phone.uuid, None);
    let locked_by_atm = Token {
        state: TokenState::Locked,
        lock_device: Some(atm.uuid),
        ..fixtures::token(other.id, theirs.uuid, None)
    };
    h.store.commit(&[insert_set(&owned), insert_set(&locked_by_atm)]).await?;
    for referenced in [&phone, &atm] {
        assert!(matches!(h.store.delete_device(me.id, referenced.id).await, Err(StoreError::Referenced(_))));
        assert!(h.store.load_device_by_id(referenced.id).await?.is_some());
    }
    assert_eq!(h.store.delete_device(me.id, theirs.id).await?, 0);
    assert_eq!(h.store.delete_device(other.id, spare.id).await?, 0);
    assert_eq!(h.store.delete_device(me.id, spare.id).await?, 1);
    assert_eq!(h.store.load_device_by_id(spare.id).await?, None);
    assert_eq!(h.store.delete_device(me.id, spare.id).await?, 0);
    Ok(())
}

pub async fn portal_customers(h: Harness) -> anyhow::Result<()> {
    let cli = customer(&h).await?;
    let user =
        NewCustomer { email: "Portal.User@Example.TEST".to_owned(), display_name: None, roles: "user".to_owned() };
    let created = h.store.create_user(&user, "$argon2id$v=19$hash", 0).await?;
    assert_eq!(created.email, "portal.user@example.test");
    assert_eq!(created.status, 0);
    assert_eq!(created.roles, "user");
    assert!(matches!(h.store.create_user(&user, "$argon2id$other", 1).await, Err(StoreError::Duplicate("email"))));

    let credentials =
        h.store.find_credentials("PORTAL.user@example.test").await?.ok_or_else(|| anyhow::anyhow!("no credentials"))?;
    assert_eq!(credentials.customer, created);
    assert_eq!(credentials.password_hash.as_deref(), Some("$argon2id$v=19$hash"));
    assert_eq!(credentials.twofa_secret, None);
    assert_eq!(h.store.find_credentials("nobody@example.test").await?, None);
    // A CLI customer has no password.
    let cli_credentials = h.store.find_credentials(&cli.email).await?;
    assert_eq!(cli_credentials.map(|credentials| credentials.password_hash), Some(None));

    h.store.set_password(created.id, "$argon2id$new", 1).await?;
    h.store.set_twofa_secret(created.id, Some(&[1, 2, 3][..])).await?;
    let credentials = h.store.find_credentials(&created.email).await?;
    assert_eq!(
        credentials.map(|c| (c.password_hash, c.twofa_secret, c.customer.status)),
        Some((Some("$argon2id$new".to_owned()), Some(vec![1, 2, 3]), 1))
    );
    h.store.set_twofa_secret(created.id, None).await?;
    let credentials = h.store.find_credentials(&created.email).await?;
    assert_eq!(credentials.map(|c| c.twofa_secret), Some(None));

    assert_eq!(
        h.store.list_customers().await?.iter().map(|customer| customer.id).collect::<Vec<_>>(),
        vec![cli.id, created.id]
    );

    // Update overwrites all three fields; a missing roles value is refused.
    let update = CustomerUpdate {
        display_name: None,
        roles: Some("user,admin".to_owned()),
        info: Some(r#"{"a":1}"#.to_owned()),
    };
    assert_eq!(h.store.update_customer(&cli.email, &update).await?, 1);
    let stored = h.store.load_customer(cli.id).await?;
    assert_eq!(
        stored.map(|c| (c.display_name, c.roles, c.info)),
        Some((None, "user,admin".to_owned(), Some(r#"{"a":1}"#.to_owned())))
    );
    assert_eq!(h.store.update_customer("nobody@x.test", &update).await?, 0);
    let no_roles = CustomerUpdate { roles: None, ..update.clone() };
    assert!(matches!(h.store.update_customer(&cli.email, &no_roles).await, Err(StoreError::Internal(_))));

    // Parameters.
    h.store.save_param(cli.id, "PARTIAL_CASHOUTS", &json!(true)).await?;
    assert_eq!(h.store.delete_param(cli.id, "PARTIAL_CASHOUTS").await?, 1);
    assert_eq!(h.store.delete_param(cli.id, "PARTIAL_CASHOUTS").await?, 0);
    assert_eq!(h.store.load_param(cli.id, "PARTIAL_CASHOUTS").await?, None);

    // A customer others still reference is not deleted; an unreferenced one is.
    device(&h, cli.id, "dev").await?;
    assert!(matches!(h.store.delete_customer(&cli.email).await, Err(StoreError::Referenced(_))));
    assert!(h.store.load_customer(cli.id).await?.is_some());
    assert_eq!(h.store.delete_customer("PORTAL.USER@example.test").await?, 1);
    assert_eq!(h.store.load_customer(created.id).await?, None);
    assert_eq!(h.store.delete_customer(&created.email).await?, 0);
    Ok(())
}

pub async fn access_records(h: Harness) -> anyhow::Result<()> {
    let me = customer(&h).await?;
    let other = customer(&h).await?;
    let key = || Uuid::new_v4().simple().to_string();
    let first = h.store.create_access(me.id, Scope::TokenApi, &key(), &[1; 32]).await?;
    let second = h.store.create_access(me.id, Scope::TokenApi, &key(), &[2; 32]).await?;
    let cash = h.store.create_access(me.id, Scope::CashApi, &key(), &[3; 32]).await?;
    let theirs = h.store.create_access(other.id, Scope::TokenApi, &key(), &[4; 32]).await?;

    h.store.set_access_secret_encrypted(second.id, b"sealed secret").await?;
    let loaded = h.store.load_access(second.id).await?.ok_or_else(|| anyhow::anyhow!("no access"))?;
    assert_eq!(loaded.access, second);
    assert_eq!(loaded.secret_encrypted.as_deref(), Some(&b"sealed secret"[..]));
    assert_eq!(h.store.load_access(-5).await?, None);

    let listed = h.store.list_access(me.id, Scope::TokenApi).await?;
    assert_eq!(
        listed.iter().map(|record| (record.access.id, record.secret_encrypted.is_some())).collect::<Vec<_>>(),
        vec![(first.id, false), (second.id, true)]
    );
    let cash_listed = h.store.list_access(me.id, Scope::CashApi).await?;
    assert_eq!(cash_listed.len(), 1);
    assert_eq!(cash_listed[0].access, cash);
    assert!(h.store.list_access(me.id, Scope::ClearingApi).await?.is_empty());

    // Deleting is scoped to the owner.
    assert_eq!(h.store.delete_access(me.id, theirs.id).await?, 0);
    assert_eq!(h.store.delete_access(me.id, first.id).await?, 1);
    assert_eq!(h.store.load_access(first.id).await?, None);
    assert!(h.store.load_access(theirs.id).await?.is_some());
    assert!(h.store.find_access(&first.apikey).await?.is_none());
    Ok(())
}
