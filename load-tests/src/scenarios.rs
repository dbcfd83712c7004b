//! The goose scenarios. Select them with `--scenarios` by their machine names (goose drops the
//! underscores): `bankissuestokens`, `atmlifecycle`, `atmtrigger`, `hottokencontention`,
//! `mixedatmday`, the ledger's `ledgertransfers`, `ledgerhotaccount`, `ledgerbatch` and
//! `ledgerday` (`ledger.rs`), and the benchmark-only `ceilingjson` (for the trivial `ceiling-server`, not for
//! cashgrid).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use goose::prelude::*;
use rand::Rng as _;
use serde_json::json;

use crate::api::{
    self, atm_of, call, claim, confirm, context, create_trigger, expect_ok, expect_refusal, fail, issue,
    phone_trigger, spawn_trigger_poll, Api, INVALID_CODE, NOT_OPEN, TOKENS_PATH,
};

/// Every scenario, for `GooseAttack::register_scenario`.
pub fn all() -> Result<Vec<Scenario>, GooseError> {
    let mut all = crate::ledger::scenarios()?;
    all.extend([
        scenario!("bank_issues_tokens").register_transaction(transaction!(bank_issue).set_name("bank: issue")),
        scenario!("atm_lifecycle").register_transaction(transaction!(atm_lifecycle).set_name("lifecycle")),
        scenario!("atm_trigger").register_transaction(transaction!(atm_trigger).set_name("trigger")),
        scenario!("hot_token_contention").register_transaction(transaction!(hot_contend).set_name("hot: contend")),
        scenario!("mixed_atm_day")
            .register_transaction(transaction!(mixed_issue).set_name("mixed: issue only").set_weight(3)?)
            .register_transaction(transaction!(mixed_lifecycle).set_name("mixed: lifecycle").set_weight(5)?)
            .register_transaction(transaction!(mixed_wrong_code).set_name("mixed: wrong code").set_weight(1)?)
            .register_transaction(transaction!(mixed_atm_cancel).set_name("mixed: atm cancels").set_weight(1)?)
            .register_transaction(transaction!(mixed_bank_delete).set_name("mixed: bank deletes").set_weight(1)?)
            .register_transaction(transaction!(mixed_list).set_name("mixed: list").set_weight(2)?),
        scenario!("ceiling_json").register_transaction(transaction!(ceiling_echo).set_name("ceiling")),
    ]);
    Ok(all)
}

// ---- bank_issues_tokens -------------------------------------------------------------------

/// A bank back end issuing cash tokens to its customers' phones.
async fn bank_issue(user: &mut GooseUser) -> TransactionResult {
    issue(user, "bank: create", None).await.map(|_| ())
}

// ---- atm_lifecycle ------------------------------------------------------------------------

/// One full cash-out: the bank issues, the phone decrypts, the ATM claims and confirms. Each
/// step is its own named request, so goose reports per-step latencies; the transaction time is
/// the whole lifecycle.
async fn atm_lifecycle(user: &mut GooseUser) -> TransactionResult {
    let atm = atm_of(user)?;
    let token = issue(user, "lifecycle: 1 create", Some("lifecycle: 2 decrypt")).await?;
    let radiocode = token.radiocode.unwrap_or_default();
    let mut locked = claim(user, atm, &radiocode, "lifecycle: 3 claim").await?;
    expect_ok(user, &mut locked, "claim: expected 200 LOCKED")?;
    let mut done = confirm(user, atm, &token.uuid, "COMPLETED", "lifecycle: 4 confirm").await?;
    expect_ok(user, &mut done, "confirm: expected 200 COMPLETED")
}

// ---- atm_trigger --------------------------------------------------------------------------

/// How long the phone's user takes to scan the trigger code off the ATM's screen. The ATM's poll
/// has long reached the server by then (a poll that arrives after the phone used the trigger is
/// answered "not found", as the original does, and counts as a failure here).
const TRIGGER_SCAN_DELAY: Duration = Duration::from_millis(100);
/// Longest the ATM's poll may wait for the phone before the lifecycle counts as failed.
const TRIGGER_POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// The trigger-code cash-out: the ATM shows a trigger code and long-polls it; the bank issues a
/// token and the phone decrypts it; the phone scans the trigger code and sends it with its
/// radiocode and signature; the waiting poll answers with the locked token; the ATM confirms.
async fn atm_trigger(user: &mut GooseUser) -> TransactionResult {
    let atm = atm_of(user)?;
    let mut created = create_trigger(user, atm, "trigger: 1 create trigger").await?;
    expect_ok(user, &mut created, "create trigger: expected 200")?;
    let code = created
        .json()
        .and_then(|answer| answer.get("triggercode").and_then(serde_json::Value::as_str).map(str::to_owned));
    let Some(code) = code else {
        return fail(user, &mut created, "create trigger: answer without triggercode");
    };
    let polling_since = std::time::Instant::now();
    let poll = spawn_trigger_poll(user, &code, TRIGGER_POLL_TIMEOUT)?;

    let token = issue(user, "trigger: 2 create token", Some("trigger: 3 decrypt")).await?;
    let radiocode = token.radiocode.unwrap_or_default();
    tokio::time::sleep_until((polling_since + TRIGGER_SCAN_DELAY).into()).await;
    let signing = std::time::Instant::now();
    let signature = context()?.trigger_signature(token.phone, &code, &radiocode);
    let signed = signature.is_ok();
    user.record_custom_request_duration("RSA", "trigger: 4 sign", signing.elapsed(), signed, None, None)
        .await?;
    let signature = signature.map_err(|error| Box::new(TransactionError::Custom(format!("{error:#}"))))?;

    let body = json!({ "triggercode": code, "radiocode": radiocode, "signature": signature });
    let sent = std::time::Instant::now();
    let mut used = phone_trigger(user, &body, "trigger: 5 phone uses trigger").await?;
    if used.status != 204 {
        poll.abort();
        return fail(user, &mut used, "phone trigger: expected 204");
    }
    // The poll's latency as the ATM sees it: from the phone's request to the locked token.
    let answer = poll.await.unwrap_or_else(|error| Err(format!("poll task: {error}")));
    let (locked, status, error, waited) = match &answer {
        Ok((status, body, at)) => {
            let state = serde_json::from_str::<serde_json::Value>(body)
                .ok()
                .and_then(|answer| answer.get("state").and_then(serde_json::Value::as_str).map(str::to_owned));
            let locked = *status == 200 && state.as_deref() == Some("LOCKED");
            let error = (!locked).then(|| format!("poll: expected 200 LOCKED, got {status}: {body}"));
            (locked, Some(*status), error, at.saturating_duration_since(sent))
        }
        Err(error) => (false, None, Some(format!("poll: {error}")), sent.elapsed()),
    };
    user.record_custom_request_duration(
        "GET",
        "trigger: 6 poll answered",
        waited,
        locked,
        status,
        error.as_deref(),
    )
    .await?;
    if let Some(error) = error {
        return Err(Box::new(TransactionError::Custom(error)));
    }
    let mut done = confirm(user, atm, &token.uuid, "COMPLETED", "trigger: 7 confirm").await?;
    expect_ok(user, &mut done, "confirm: expected 200 COMPLETED")
}

// ---- hot_token_contention -----------------------------------------------------------------

/// Tokens contended for at once.
const HOT_TOKENS_PER_ROUND: usize = 4;
/// Claims a round's tokens receive (in total, per token on average) before a new round.
const HOT_CLAIMS_PER_TOKEN: usize = 32;
/// Rounds kept for the verdict; a run longer than this many rounds keeps issuing but only
/// the first rounds are checked (bounded memory).
const HOT_ROUNDS_MAX: usize = 100_000;

struct HotToken {
    uuid: String,
    radiocode: String,
    /// Claims answered 200 LOCKED: must end at exactly one.
    wins: AtomicUsize,
    /// Claims answered 403 "Token not in OPEN state." (the expected answer to the losers).
    losses: AtomicUsize,
    claims: AtomicUsize,
}

struct HotRound {
    tokens: Vec<HotToken>,
}

impl HotRound {
    fn exhausted(&self) -> bool {
        let claims: usize = self.tokens.iter().map(|t| t.claims.load(Ordering::Relaxed)).sum();
        claims >= HOT_CLAIMS_PER_TOKEN * self.tokens.len()
    }
}

/// The round being contended for; the refill lock makes one user issue the next round.
static HOT_CURRENT: Mutex<Option<Arc<HotRound>>> = Mutex::new(None);
static HOT_REFILL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static HOT_ROUNDS: Mutex<Vec<Arc<HotRound>>> = Mutex::new(Vec::new());
static HOT_OTHER_ANSWERS: AtomicU64 = AtomicU64::new(0);

fn hot_current() -> Option<Arc<HotRound>> {
    HOT_CURRENT.lock().ok().and_then(|round| round.clone())
}

/// Issue a new round of tokens (one user at a time); others keep contending for the old one.
async fn hot_refill(user: &mut GooseUser) -> Result<Option<Arc<HotRound>>, Box<TransactionError>> {
    let Ok(_guard) = HOT_REFILL.try_lock() else {
        return Ok(hot_current());
    };
    if let Some(round) = hot_current().filter(|round| !round.exhausted()) {
        return Ok(Some(round));
    }
    let mut tokens = Vec::with_capacity(HOT_TOKENS_PER_ROUND);
    for _ in 0..HOT_TOKENS_PER_ROUND {
        let issued = issue(user, "hot: create", Some("hot: decrypt")).await?;
        tokens.push(HotToken {
            uuid: issued.uuid,
            radiocode: issued.radiocode.unwrap_or_default(),
            wins: AtomicUsize::new(0),
            losses: AtomicUsize::new(0),
            claims: AtomicUsize::new(0),
        });
    }
    let round = Arc::new(HotRound { tokens });
    if let Ok(mut rounds) = HOT_ROUNDS.lock() {
        if rounds.len() < HOT_ROUNDS_MAX {
            rounds.push(Arc::clone(&round));
        }
    }
    if let Ok(mut current) = HOT_CURRENT.lock() {
        *current = Some(Arc::clone(&round));
    }
    Ok(Some(round))
}

/// Many ATMs, few tokens: every user claims one of the round's few tokens. Exactly one claim
/// per token may win (200 LOCKED, then the winner confirms); every other claim must be
/// refused with 403 "Token not in OPEN state.", which is counted as an expected success.
async fn hot_contend(user: &mut GooseUser) -> TransactionResult {
    let atm = atm_of(user)?;
    let round = match hot_current() {
        Some(round) if !round.exhausted() => Some(round),
        _ => hot_refill(user).await?,
    };
    let Some(round) = round else {
        // The first round is being issued by another user.
        tokio::time::sleep(Duration::from_millis(5)).await;
        return Ok(());
    };
    let token = &round.tokens[rand::thread_rng().gen_range(0..round.tokens.len())];
    token.claims.fetch_add(1, Ordering::Relaxed);
    let mut reply = claim(user, atm, &token.radiocode, "hot: claim").await?;
    match reply.status {
        200 => {
            token.wins.fetch_add(1, Ordering::Relaxed);
            let mut done = confirm(user, atm, &token.uuid, "COMPLETED", "hot: confirm winner").await?;
            expect_ok(user, &mut done, "hot: the winner's confirm must succeed")
        }
        403 if reply.error_text().as_deref() == Some(NOT_OPEN) => {
            token.losses.fetch_add(1, Ordering::Relaxed);
            user.set_success(&mut reply.metric)
        }
        _ => {
            HOT_OTHER_ANSWERS.fetch_add(1, Ordering::Relaxed);
            fail(user, &mut reply, "hot: claim answered neither 200 nor 403 not-open")
        }
    }
}

/// What the contention run showed; `None` if the scenario did not run.
pub struct HotVerdict {
    pub tokens: usize,
    pub exactly_one_winner: usize,
    /// Claimed, yet no claim won: a claim failed (see goose's errors).
    pub no_winner: usize,
    /// Issued as the run ended, never claimed.
    pub unclaimed: usize,
    pub several_winners: usize,
    pub expected_refusals: usize,
    pub other_answers: u64,
}

impl HotVerdict {
    pub fn collect() -> Option<Self> {
        let rounds = HOT_ROUNDS.lock().ok()?;
        if rounds.is_empty() {
            return None;
        }
        let mut verdict = Self {
            tokens: 0,
            exactly_one_winner: 0,
            no_winner: 0,
            unclaimed: 0,
            several_winners: 0,
            expected_refusals: 0,
            other_answers: HOT_OTHER_ANSWERS.load(Ordering::Relaxed),
        };
        for token in rounds.iter().flat_map(|round| &round.tokens) {
            verdict.tokens += 1;
            verdict.expected_refusals += token.losses.load(Ordering::Relaxed);
            match token.wins.load(Ordering::Relaxed) {
                0 if token.claims.load(Ordering::Relaxed) == 0 => verdict.unclaimed += 1,
                0 => verdict.no_winner += 1,
                1 => verdict.exactly_one_winner += 1,
                _ => verdict.several_winners += 1,
            }
        }
        Some(verdict)
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "tokens": self.tokens,
            "exactly_one_winner": self.exactly_one_winner,
            "no_winner": self.no_winner,
            "unclaimed": self.unclaimed,
            "several_winners": self.several_winners,
            "expected_refusals": self.expected_refusals,
            "other_answers": self.other_answers,
        })
    }
}

// ---- mixed_atm_day ------------------------------------------------------------------------

/// A token issued and never cashed (yet): it stays OPEN and shows up in list queries.
async fn mixed_issue(user: &mut GooseUser) -> TransactionResult {
    issue(user, "mixed: create", None).await.map(|_| ())
}

async fn mixed_lifecycle(user: &mut GooseUser) -> TransactionResult {
    let atm = atm_of(user)?;
    let token = issue(user, "mixed: create", Some("mixed: decrypt")).await?;
    let mut locked = claim(user, atm, &token.radiocode.unwrap_or_default(), "mixed: claim").await?;
    expect_ok(user, &mut locked, "claim: expected 200 LOCKED")?;
    let mut done = confirm(user, atm, &token.uuid, "COMPLETED", "mixed: confirm").await?;
    expect_ok(user, &mut done, "confirm: expected 200 COMPLETED")
}

/// A mistyped code: the claim is refused with "Invalid token code" and the token is rejected;
/// a retry with the right code then finds it no longer OPEN.
async fn mixed_wrong_code(user: &mut GooseUser) -> TransactionResult {
    let atm = atm_of(user)?;
    let token = issue(user, "mixed: create", Some("mixed: decrypt")).await?;
    let radiocode = token.radiocode.unwrap_or_default();
    let wrong = flip_last_hex_digit(&radiocode);
    let mut refused = claim(user, atm, &wrong, "mixed: claim wrong code").await?;
    expect_refusal(user, &mut refused, INVALID_CODE, "wrong code: expected 403 Invalid token code")?;
    let mut again = claim(user, atm, &radiocode, "mixed: claim after reject").await?;
    expect_refusal(user, &mut again, NOT_OPEN, "after reject: expected 403 not OPEN")
}

/// The ATM locks the token but cannot dispense, and cancels.
async fn mixed_atm_cancel(user: &mut GooseUser) -> TransactionResult {
    let atm = atm_of(user)?;
    let token = issue(user, "mixed: create", Some("mixed: decrypt")).await?;
    let mut locked = claim(user, atm, &token.radiocode.unwrap_or_default(), "mixed: claim").await?;
    expect_ok(user, &mut locked, "claim: expected 200 LOCKED")?;
    let mut canceled = confirm(user, atm, &token.uuid, "CANCELED", "mixed: confirm canceled").await?;
    expect_ok(user, &mut canceled, "cancel: expected 200 CANCELED")
}

/// The bank withdraws an OPEN token before it is used.
async fn mixed_bank_delete(user: &mut GooseUser) -> TransactionResult {
    let token = issue(user, "mixed: create", None).await?;
    let path = format!("{TOKENS_PATH}/{}?device_uuid={}", token.uuid, token.phone.uuid);
    let mut deleted = call(user, Api::Token, GooseMethod::Delete, &path, "mixed: bank delete", None).await?;
    expect_ok(user, &mut deleted, "delete: expected 200 DELETED")
}

/// The bank's read side: the OPEN tokens of one phone, and one token by uuid.
async fn mixed_list(user: &mut GooseUser) -> TransactionResult {
    let phone = api::random_phone(api::context()?);
    let path = format!("{TOKENS_PATH}?device_uuid={}", phone.uuid);
    let mut listed = call(user, Api::Token, GooseMethod::Get, &path, "mixed: list open tokens of phone", None).await?;
    expect_ok(user, &mut listed, "list: expected 200")?;
    let first = listed.json().and_then(|list| list.get(0)?.get("uuid")?.as_str().map(str::to_owned));
    if let Some(uuid) = first {
        let path = format!("{TOKENS_PATH}/{uuid}");
        let mut found = call(user, Api::Token, GooseMethod::Get, &path, "mixed: get token", None).await?;
        expect_ok(user, &mut found, "get token: expected 200")?;
    }
    Ok(())
}

/// The radiocode with its last hex digit changed: a valid-looking but wrong code.
fn flip_last_hex_digit(radiocode: &str) -> String {
    let mut text = radiocode.to_owned();
    if let Some(last) = text.pop() {
        text.push(if last == '0' { '1' } else { '0' });
    }
    text
}

// ---- ceiling_json (benchmark only) ----------------------------------------------------------

/// The same client work as a cashgrid request (headers, small JSON body, JSON answer) against
/// the trivial `ceiling-server`, to measure what this machine and goose can do at best.
async fn ceiling_echo(user: &mut GooseUser) -> TransactionResult {
    let body = json!({
        "device_uuid": "0b5e2a4c-7f61-4c55-9c3e-2f1d6b8a9e10",
        "amount": 10000,
        "symbol": "EUR",
        "refname": format!("load-{}", user.weighted_users_index),
    });
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/echo")?
        .header("DN-API-KEY", "ceiling-key-0000000000000000000000")
        .header("DN-API-SECRET", "ceiling-secret-000000000000000000000")
        .header("Content-Type", "application/json")
        .body(body.to_string());
    let request = GooseRequest::builder().method(GooseMethod::Post).path("/echo").name("ceiling: echo").set_request_builder(builder).build();
    let goose = user.request(request).await?;
    if let Ok(response) = goose.response {
        // Read the body as the cashgrid scenarios do.
        let _ = response.bytes().await;
    }
    Ok(())
}
