//! The Ledger API scenarios: `ledger_transfers` (random pairs of funded accounts),
//! `ledger_hot_account` (every transfer credits one account), `ledger_batch` (batches of
//! [`BATCH`] random transfers) and `ledger_day` (a mix with holds posted, voided and left to
//! expire, refusals and retries: what the dashboards show). Transfers use the fixture's
//! operator credentials; every answer is checked.

use goose::prelude::*;
use rand::Rng as _;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::{call, fail, ledger, Api, Reply};

pub const TRANSFERS_PATH: &str = "/ledger/v1/transfers";
pub const BATCH_PATH: &str = "/ledger/v1/transfers/batch";
/// Transfers per `ledger_batch` request (the API's most).
pub const BATCH: usize = 1_000;
/// Transfers per batch of `ledger_day`.
const DAY_BATCH: usize = 20;

/// Every ledger scenario, for `scenarios::all`.
pub fn scenarios() -> Result<Vec<Scenario>, GooseError> {
    Ok(vec![
        scenario!("ledger_transfers").register_transaction(transaction!(random_transfer).set_name("ledger: transfer")),
        scenario!("ledger_hot_account").register_transaction(transaction!(hot_transfer).set_name("ledger: hot")),
        scenario!("ledger_batch").register_transaction(transaction!(batch).set_name("ledger: batch")),
        scenario!("ledger_day")
            .register_transaction(transaction!(random_transfer).set_name("ledger day: transfer").set_weight(6)?)
            .register_transaction(transaction!(hold_and_post).set_name("ledger day: hold, post").set_weight(1)?)
            .register_transaction(transaction!(hold_and_void).set_name("ledger day: hold, void").set_weight(1)?)
            .register_transaction(transaction!(short_hold).set_name("ledger day: hold expires").set_weight(1)?)
            .register_transaction(transaction!(overdraw).set_name("ledger day: overdraw").set_weight(1)?)
            .register_transaction(transaction!(retry).set_name("ledger day: retry").set_weight(1)?)
            .register_transaction(transaction!(day_batch).set_name("ledger day: batch").set_weight(1)?),
    ])
}

/// Two different accounts of the fixture, at random.
fn pair() -> Result<(&'static str, &'static str), Box<TransactionError>> {
    let accounts = &ledger()?.accounts;
    let mut random = rand::thread_rng();
    let debit = random.gen_range(0..accounts.len());
    let credit = (debit + random.gen_range(1..accounts.len().max(2))) % accounts.len();
    Ok((&accounts[debit], &accounts[credit]))
}

fn transfer_body(debit: &str, credit: &str, amount: u64) -> Value {
    json!({"id": Uuid::new_v4().to_string(), "debit_account_id": debit, "credit_account_id": credit, "amount": amount})
}

async fn post(user: &mut GooseUser, path: &str, name: &str, body: &Value) -> Result<Reply, Box<TransactionError>> {
    call(user, Api::Ledger, GooseMethod::Post, path, name, Some(body)).await
}

/// Require `status` and the result code `result`.
fn expect(user: &mut GooseUser, reply: &mut Reply, status: u16, result: &str) -> Result<Value, Box<TransactionError>> {
    let answer = reply.json().unwrap_or(Value::Null);
    if reply.status == status && answer["result"] == result {
        user.set_success(&mut reply.metric)?;
        Ok(answer)
    } else {
        fail(user, reply, &format!("expected {status} {result}"))
    }
}

async fn random_transfer(user: &mut GooseUser) -> TransactionResult {
    let (debit, credit) = pair()?;
    let amount = rand::thread_rng().gen_range(1..=100);
    let mut reply = post(user, TRANSFERS_PATH, "ledger: transfer", &transfer_body(debit, credit, amount)).await?;
    expect(user, &mut reply, 201, "created").map(|_| ())
}

async fn hot_transfer(user: &mut GooseUser) -> TransactionResult {
    let (debit, _) = pair()?;
    let hot = &ledger()?.hot;
    let mut reply = post(user, TRANSFERS_PATH, "ledger: hot", &transfer_body(debit, hot, 1)).await?;
    expect(user, &mut reply, 201, "created").map(|_| ())
}

fn random_batch(size: usize) -> Result<Value, Box<TransactionError>> {
    let transfers = (0..size)
        .map(|_| {
            let (debit, credit) = pair()?;
            Ok(transfer_body(debit, credit, 1))
        })
        .collect::<Result<Vec<_>, Box<TransactionError>>>()?;
    Ok(json!({ "transfers": transfers }))
}

/// A batch whose every transfer must be created.
async fn send_batch(user: &mut GooseUser, size: usize, name: &str) -> TransactionResult {
    let body = random_batch(size)?;
    let mut reply = post(user, BATCH_PATH, name, &body).await?;
    let answer = reply.json().unwrap_or(Value::Null);
    let created = answer["results"]
        .as_array()
        .is_some_and(|results| results.len() == size && results.iter().all(|item| item["result"] == "created"));
    if reply.status == 200 && created {
        Ok(())
    } else {
        fail(user, &mut reply, "batch: expected every transfer created")
    }
}

async fn batch(user: &mut GooseUser) -> TransactionResult {
    send_batch(user, BATCH, "ledger: batch").await
}

async fn day_batch(user: &mut GooseUser) -> TransactionResult {
    send_batch(user, DAY_BATCH, "ledger day: batch").await
}

/// A hold of `timeout_ms`; its id.
async fn hold(user: &mut GooseUser, timeout_ms: i64, name: &str) -> Result<String, Box<TransactionError>> {
    let (debit, credit) = pair()?;
    let id = Uuid::new_v4().to_string();
    let body = json!({"id": id, "kind": "hold", "debit_account_id": debit, "credit_account_id": credit,
                      "amount": 50, "timeout_ms": timeout_ms});
    let mut reply = post(user, TRANSFERS_PATH, name, &body).await?;
    expect(user, &mut reply, 201, "created")?;
    Ok(id)
}

async fn hold_and_post(user: &mut GooseUser) -> TransactionResult {
    let id = hold(user, 60_000, "ledger day: hold").await?;
    let body = json!({"kind": "post_pending", "pending_id": id, "amount": 30});
    let mut reply = post(user, TRANSFERS_PATH, "ledger day: post hold", &body).await?;
    expect(user, &mut reply, 201, "created").map(|_| ())
}

async fn hold_and_void(user: &mut GooseUser) -> TransactionResult {
    let id = hold(user, 60_000, "ledger day: hold").await?;
    let body = json!({"kind": "void_pending", "pending_id": id});
    let mut reply = post(user, TRANSFERS_PATH, "ledger day: void hold", &body).await?;
    expect(user, &mut reply, 201, "created").map(|_| ())
}

/// A hold nobody resolves: the server releases it after a second.
async fn short_hold(user: &mut GooseUser) -> TransactionResult {
    hold(user, 1_000, "ledger day: short hold").await.map(|_| ())
}

/// More than any account holds: refused as insufficient funds, which is the right answer.
async fn overdraw(user: &mut GooseUser) -> TransactionResult {
    let (debit, credit) = pair()?;
    let amount = ledger()?.funded.saturating_mul(10).max(1);
    let mut reply = post(user, TRANSFERS_PATH, "ledger day: overdraw", &transfer_body(debit, credit, amount)).await?;
    expect(user, &mut reply, 422, "exceeds_credits").map(|_| ())
}

/// The same transfer twice: the second answers `exists`.
async fn retry(user: &mut GooseUser) -> TransactionResult {
    let (debit, credit) = pair()?;
    let body = transfer_body(debit, credit, 1);
    let mut first = post(user, TRANSFERS_PATH, "ledger day: first try", &body).await?;
    expect(user, &mut first, 201, "created")?;
    let mut again = post(user, TRANSFERS_PATH, "ledger day: retry", &body).await?;
    expect(user, &mut again, 200, "exists").map(|_| ())
}
