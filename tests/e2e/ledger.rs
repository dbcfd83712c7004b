//! The Ledger API (`/ledger/v1`) as an operator and a bank use it: accounts, a deposit from an
//! outside rail, transfers, a two-phase hold, batches of linked chains, balances, an account's
//! transfers and statement (JSON and CSV), and the answers to bad input and foreign accounts.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::api::{Body, Creds, Reply};
use crate::harness::{Backend, TestEnv};
use crate::live_feeds::FeedClient;

const LEDGER: &str = "/ledger/v1";

fn path(rest: &str) -> String {
    format!("{LEDGER}{rest}")
}

fn id() -> String {
    Uuid::new_v4().to_string()
}

/// An operator (every account) and a bank (its own accounts) with their ledger credentials.
struct Parties {
    operator: Creds,
    operator_id: i64,
    bank: Creds,
    bank_id: i64,
    other_bank: Creds,
}

fn parties(env: &TestEnv) -> Parties {
    let operator_id = env.customer("operator@example.com")["id"].as_i64().unwrap();
    let bank_id = env.customer("bank@example.com")["id"].as_i64().unwrap();
    env.customer("other@example.com");
    Parties {
        operator: env.access("operator@example.com", "ledger-operator"),
        operator_id,
        bank: env.access("bank@example.com", "ledger-api"),
        bank_id,
        other_bank: env.access("other@example.com", "ledger-api"),
    }
}

async fn open(env: &TestEnv, creds: &Creds, body: Value) -> Value {
    let reply = env.api.post(&path("/accounts"), creds, body).await;
    reply.assert_status(201);
    reply.json.clone()
}

/// An operator's outside rail: it may go below zero (money comes from outside the ledger).
async fn open_rail(env: &TestEnv, operator: &Creds) -> String {
    let body = json!({"currency": "EUR", "kind": "external_rail", "flags": {"debits_must_not_exceed_credits": false}});
    open(env, operator, body).await["id"].as_str().unwrap().to_owned()
}

async fn transfer(env: &TestEnv, creds: &Creds, body: Value) -> Reply {
    env.api.post(&path("/transfers"), creds, body).await
}

fn post(debit: &str, credit: &str, amount: u64) -> Value {
    json!({"id": id(), "debit_account_id": debit, "credit_account_id": credit, "amount": amount})
}

async fn balances(env: &TestEnv, creds: &Creds, account: &str) -> Value {
    let reply = env.api.get(&path(&format!("/accounts/{account}")), creds).await;
    reply.assert_status(200);
    reply.json["balances"].clone()
}

fn error_code(reply: &Reply) -> &str {
    reply.json["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code: {}", reply.describe()))
}

pub async fn an_operator_funds_a_bank_that_moves_money_holds_it_and_reads_its_statement(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let p = parties(&env);

    // The operator's rail may go below zero: money comes from outside the ledger.
    let rail = open(
        &env,
        &p.operator,
        json!({"currency": "EUR", "kind": "external_rail", "flags": {"debits_must_not_exceed_credits": false}}),
    )
    .await;
    assert_eq!(rail["customer_id"], p.operator_id);
    assert_eq!(rail["decimals"], 2);
    let rail = rail["id"].as_str().unwrap().to_owned();
    let alice_id = id();
    let alice = open(&env, &p.bank, json!({"id": alice_id, "currency": "EUR"})).await;
    assert_eq!(alice["customer_id"], p.bank_id);
    assert_eq!(alice["kind"], "customer");
    assert_eq!(alice["owner"], json!({"kind": "customer", "id": p.bank_id.to_string()}));
    assert_eq!(alice["flags"]["debits_must_not_exceed_credits"], true);
    // Opening it again answers it; another account under its id is a conflict.
    env.api.post(&path("/accounts"), &p.bank, json!({"id": alice_id, "currency": "EUR"})).await.assert_status(200);
    let clash = env.api.post(&path("/accounts"), &p.bank, json!({"id": alice_id, "currency": "USD"})).await;
    clash.assert_status(409);
    assert_eq!(error_code(&clash), "exists_with_different_fields");
    let bob = open(&env, &p.bank, json!({"currency": "EUR", "owner": {"kind": "account_holder", "id": "bob"}})).await;
    let bob = bob["id"].as_str().unwrap().to_owned();
    let alice = alice_id;

    // A deposit by the operator; the same transfer again answers `exists` and changes nothing.
    let deposit = post(&rail, &alice, 10_000);
    let created = transfer(&env, &p.operator, deposit.clone()).await;
    created.assert_status(201);
    assert_eq!(created.json["result"], "created");
    assert_eq!(created.json["transfer"]["kind"], "posted");
    let again = transfer(&env, &p.operator, deposit).await;
    again.assert_status(200);
    assert_eq!(again.json["result"], "exists");
    assert_eq!(again.json["transfer"], created.json["transfer"]);
    assert_eq!(balances(&env, &p.bank, &alice).await["posted"], 10_000);

    // The bank moves money between its own accounts, never beyond what there is, and never
    // from an account that is not its own (which does not exist for it).
    transfer(&env, &p.bank, post(&alice, &bob, 2_500)).await.assert_status(201);
    let overdrawn = transfer(&env, &p.bank, post(&bob, &alice, 2_501)).await;
    overdrawn.assert_status(422);
    assert_eq!(overdrawn.json, json!({"result": "exceeds_credits", "transfer": null}));
    let foreign = transfer(&env, &p.bank, post(&rail, &alice, 1)).await;
    foreign.assert_status(422);
    assert_eq!(foreign.json["result"], "debit_account_not_found");
    let elsewhere = transfer(&env, &p.other_bank, post(&alice, &bob, 1)).await;
    assert_eq!(elsewhere.json["result"], "debit_account_not_found");

    // A two-phase hold: reserved at once, then posted in part; the rest goes back.
    let hold_id = id();
    let hold = json!({"id": hold_id, "kind": "hold", "debit_account_id": alice, "credit_account_id": bob,
                      "amount": 1_000, "timeout_ms": 60_000, "reference": "order 17", "code": 7});
    let held = transfer(&env, &p.bank, hold).await;
    held.assert_status(201);
    assert_eq!(held.json["transfer"]["state"], "pending");
    assert!(held.json["transfer"]["expires_at"].is_string(), "{}", held.describe());
    let sums = balances(&env, &p.bank, &alice).await;
    assert_eq!((sums["debits_pending"].clone(), sums["available"].clone()), (json!(1_000), json!(6_500)));
    let posted = transfer(&env, &p.bank, json!({"kind": "post_pending", "pending_id": hold_id, "amount": 600})).await;
    posted.assert_status(201);
    assert_eq!(posted.json["transfer"]["amount"], 600);
    assert_eq!(posted.json["transfer"]["reference"], "order 17");
    let twice = transfer(&env, &p.bank, json!({"kind": "void_pending", "pending_id": hold_id})).await;
    assert_eq!(twice.json["result"], "pending_transfer_already_posted");
    let read = env.api.get(&path(&format!("/transfers/{hold_id}")), &p.bank).await;
    read.assert_status(200);
    assert_eq!((read.json["state"].clone(), read.json["posted_amount"].clone()), (json!("posted"), json!(600)));
    env.api.get(&path(&format!("/transfers/{hold_id}")), &p.other_bank).await.assert_status(404);
    let sums = balances(&env, &p.bank, &alice).await;
    assert_eq!((sums["debits_pending"].clone(), sums["posted"].clone()), (json!(0), json!(6_900)));

    // A batch: a linked chain that fails whole, then independent transfers, one of which
    // posts a hold an earlier one made.
    let batch_hold = id();
    let batch = json!({"transfers": [
        {"debit_account_id": alice, "credit_account_id": bob, "amount": 100, "linked": true},
        {"debit_account_id": bob, "credit_account_id": alice, "amount": 1_000_000},
        {"id": batch_hold, "kind": "hold", "debit_account_id": bob, "credit_account_id": alice, "amount": 50, "timeout_ms": 60_000},
        {"kind": "post_pending", "pending_id": batch_hold},
        {"debit_account_id": alice, "credit_account_id": bob, "amount": 1},
    ]});
    let answered = env.api.post(&path("/transfers/batch"), &p.bank, batch).await;
    answered.assert_status(200);
    let results: Vec<&str> =
        answered.json["results"].as_array().unwrap().iter().map(|item| item["result"].as_str().unwrap()).collect();
    assert_eq!(results, ["linked_event_failed", "exceeds_credits", "created", "created", "created"]);
    assert_eq!(answered.json["results"][2]["id"], batch_hold);
    let sums = balances(&env, &p.bank, &alice).await;
    assert_eq!(sums["posted"], 6_900 + 50 - 1);

    // The money is all there: the rail's debit is what the two accounts hold.
    let rail_sums = balances(&env, &p.operator, &rail).await;
    let bob_sums = balances(&env, &p.bank, &bob).await;
    assert_eq!(
        rail_sums["posted"].as_i64().unwrap() + sums["posted"].as_i64().unwrap() + bob_sums["posted"].as_i64().unwrap(),
        0
    );

    // The account's transfers, paged.
    let first = env.api.get(&path(&format!("/accounts/{alice}/transfers?limit=2")), &p.bank).await;
    first.assert_status(200);
    assert_eq!(first.json["transfers"].as_array().unwrap().len(), 2);
    assert_eq!(first.json["transfers"][0]["debit_account_id"], rail);
    let next = first.json["next"].as_str().unwrap().to_owned();
    let rest = env.api.get(&path(&format!("/accounts/{alice}/transfers?after={next}&limit=100")), &p.bank).await;
    rest.assert_status(200);
    // The deposit, the move to bob, the hold, its post, the batch's hold, its post, the last one.
    assert_eq!(rest.json["transfers"].as_array().unwrap().len(), 5);
    assert!(rest.json["next"].is_null());

    // The statement: every line with the sums after it, from the opening to the closing ones.
    let statement = env.api.get(&path(&format!("/accounts/{alice}/statement?from=2000-01-01")), &p.bank).await;
    statement.assert_status(200);
    let lines = statement.json["lines"].as_array().unwrap();
    assert_eq!(lines[0]["kind"], "opened");
    assert_eq!(statement.json["opening"]["posted"], 0);
    assert_eq!(statement.json["closing"], lines.last().unwrap()["balances"]);
    assert_eq!(statement.json["closing"]["posted"], 6_949);
    assert_eq!(statement.json["decimals"], 2);
    let csv = env
        .api
        .request_with_headers(
            awc::http::Method::GET,
            &path(&format!("/accounts/{alice}/statement?format=csv")),
            &[("DN-API-KEY", &p.bank.apikey), ("DN-API-SECRET", &p.bank.apisecret)],
            Body::None,
        )
        .await;
    csv.assert_status(200);
    assert!(csv.content_type.as_deref().unwrap_or_default().starts_with("text/csv"), "{}", csv.describe());
    let rows: Vec<&str> = csv.text.lines().collect();
    assert!(rows[0].starts_with("seq,at,kind,transfer_id,side,amount,"), "{}", csv.text);
    assert_eq!(rows.len(), lines.len() + 1);
    assert!(rows[2].contains(",posted,") && rows[2].contains(",credit,100.00,"), "{}", csv.text);
    assert!(rows.last().unwrap().ends_with(",69.49,69.49"), "{}", csv.text);

    // Balances as they stood before the deposit.
    let created_at = alice_created(&env, &p.bank, &alice).await;
    let then = env.api.get(&path(&format!("/accounts/{alice}/balances?at={created_at}")), &p.bank).await;
    then.assert_status(200);
    assert_eq!(then.json["balances"]["posted"], 0);

    // Lists: a bank sees its own accounts; an operator may name a customer or an owner.
    let mine = env.api.get(&path("/accounts"), &p.bank).await;
    mine.assert_status(200);
    assert_eq!(mine.json["accounts"].as_array().unwrap().len(), 2);
    let named = env.api.get(&path(&format!("/accounts?customer_id={}", p.bank_id)), &p.operator).await;
    assert_eq!(named.json["accounts"].as_array().unwrap().len(), 2);
    let by_owner = env.api.get(&path("/accounts?owner_kind=account_holder&owner_id=bob"), &p.operator).await;
    assert_eq!(by_owner.json["accounts"][0]["id"], bob);
    let by_owner = env.api.get(&path("/accounts?owner_kind=account_holder&owner_id=bob"), &p.other_bank).await;
    assert_eq!(by_owner.json["accounts"], json!([]));
    let refused = env.api.get(&path(&format!("/accounts?customer_id={}", p.operator_id)), &p.bank).await;
    refused.assert_status(403);

    // Freezing is the operator's: a frozen account takes no transfer.
    let frozen = env.api.put(&path(&format!("/accounts/{bob}/frozen")), &p.bank, json!({"frozen": true})).await;
    frozen.assert_status(403);
    let frozen = env.api.put(&path(&format!("/accounts/{bob}/frozen")), &p.operator, json!({"frozen": true})).await;
    frozen.assert_status(200);
    assert_eq!(frozen.json["flags"]["frozen"], true);
    let refused = transfer(&env, &p.bank, post(&alice, &bob, 1)).await;
    assert_eq!(refused.json["result"], "credit_account_frozen");
}

async fn alice_created(env: &TestEnv, creds: &Creds, account: &str) -> String {
    let reply = env.api.get(&path(&format!("/accounts/{account}")), creds).await;
    reply.json["created"].as_str().unwrap().to_owned()
}

pub async fn the_ledger_answers_bad_input_in_its_own_format_and_changes_nothing(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let p = parties(&env);
    let account = open(&env, &p.bank, json!({"currency": "EUR"})).await;
    let account = account["id"].as_str().unwrap().to_owned();

    let anonymous = env.api.get_anonymous(&path("/accounts")).await;
    anonymous.assert_status(401);
    assert_eq!(error_code(&anonymous), "invalid_credentials");
    let token_api = env.access("bank@example.com", "token-api");
    env.api.get(&path("/accounts"), &token_api).await.assert_status(401);

    let cases = [
        (json!({"currency": "QQQ"}), 400, "unknown_currency"),
        (json!({"currency": "EUR", "kind": "float"}), 403, "forbidden"),
        (json!({"currency": "EUR", "customer_id": p.operator_id}), 403, "forbidden"),
        (json!({"currency": "EUR", "colour": "red"}), 400, "invalid_request"),
        (json!({"currency": 978}), 400, "invalid_request"),
        (json!({"currency": "EUR", "owner": {"kind": "customer", "id": "a\u{0}b"}}), 400, "invalid_request"),
        (json!({"currency": "EUR", "flags": {"credits_must_not_exceed_debits": true}}), 400, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let reply = env.api.post(&path("/accounts"), &p.bank, body.clone()).await;
        assert_eq!(reply.status.as_u16(), status, "{body}: {}", reply.describe());
        assert_eq!(error_code(&reply), code, "{body}");
    }
    let unknown_customer =
        env.api.post(&path("/accounts"), &p.operator, json!({"currency": "EUR", "customer_id": 999_999})).await;
    unknown_customer.assert_status(400);
    assert_eq!(error_code(&unknown_customer), "unknown_customer");

    let transfers = [
        json!({"debit_account_id": account, "credit_account_id": account}),
        json!({"debit_account_id": account, "credit_account_id": id(), "amount": 0}),
        json!({"debit_account_id": account, "credit_account_id": id(), "amount": -5}),
        json!({"debit_account_id": account, "credit_account_id": id(), "amount": 9_223_372_036_854_775_808_u64}),
        json!({"debit_account_id": account, "credit_account_id": id(), "amount": 1e30}),
        json!({"debit_account_id": "nope", "credit_account_id": id(), "amount": 1}),
        json!({"kind": "hold", "debit_account_id": account, "credit_account_id": id(), "amount": 1}),
        json!({"kind": "void_pending"}),
        json!({"kind": "post_pending", "pending_id": id(), "debit_account_id": account}),
        json!({"debit_account_id": account, "credit_account_id": id(), "amount": 1, "linked": true}),
        json!({"debit_account_id": account, "credit_account_id": id(), "amount": 1, "metadata": [1]}),
        json!({"debit_account_id": account, "credit_account_id": id(), "amount": 1, "reference": "x".repeat(256)}),
    ];
    for body in transfers {
        let reply = transfer(&env, &p.bank, body.clone()).await;
        reply.assert_status(400);
        assert_eq!(error_code(&reply), "invalid_request", "{body}");
    }
    let malformed = env
        .api
        .request(
            awc::http::Method::POST,
            &path("/transfers"),
            Some(&p.bank),
            Body::Raw { content_type: "application/json", bytes: b"{\"amount\": ".to_vec() },
        )
        .await;
    malformed.assert_status(400);
    let empty = env.api.post(&path("/transfers/batch"), &p.bank, json!({"transfers": []})).await;
    empty.assert_status(400);
    let too_many: Vec<Value> = (0..1_001).map(|_| post(&account, &account, 1)).collect();
    let reply = env.api.post(&path("/transfers/batch"), &p.bank, json!({"transfers": too_many})).await;
    reply.assert_status(400);
    let huge = "x".repeat(3 * 1024 * 1024);
    let reply = env.api.post(&path("/transfers"), &p.bank, json!({"reference": huge})).await;
    reply.assert_status(413);

    for (target, status) in [
        (format!("/accounts/{}", id()), 404),
        ("/accounts/not-a-uuid".to_owned(), 400),
        (format!("/transfers/{}", id()), 404),
        (format!("/accounts/{account}/statement?from=yesterday"), 400),
        (format!("/accounts/{account}/statement?format=xml"), 400),
        (format!("/accounts/{account}/transfers?limit=0"), 400),
        (format!("/accounts/{account}/transfers?after=x"), 400),
        ("/accounts?owner_kind=customer&owner_id=a%00b".to_owned(), 400),
        ("/nothing".to_owned(), 404),
    ] {
        let reply = env.api.get(&path(&target), &p.bank).await;
        assert_eq!(reply.status.as_u16(), status, "{target}: {}", reply.describe());
        assert!(reply.json["error"]["code"].is_string(), "{target}: {}", reply.describe());
    }
    let wrong_method = env.api.delete(&path("/accounts"), &p.bank).await;
    wrong_method.assert_status(405);
    assert_eq!(error_code(&wrong_method), "method_not_allowed");
    // Another bank's account does not exist for it.
    env.api.get(&path(&format!("/accounts/{account}")), &p.other_bank).await.assert_status(404);
    // Nothing of the above changed the account.
    let sums = balances(&env, &p.bank, &account).await;
    assert_eq!(sums["posted"], 0);
    let statement = env.api.get(&path(&format!("/accounts/{account}/statement")), &p.bank).await;
    assert_eq!(statement.json["lines"].as_array().unwrap().len(), 1);
}

pub async fn the_cli_opens_accounts_and_moves_money_beside_the_running_server(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let p = parties(&env);
    let rail = env.cli_json(&[
        "account",
        "create",
        "--customer",
        "operator@example.com",
        "--currency",
        "EUR",
        "--kind",
        "external_rail",
        "--may-go-negative",
    ]);
    assert_eq!(rail["kind"], "external_rail");
    assert_eq!(rail["flags"]["debits_must_not_exceed_credits"], false);
    let rail = rail["id"].as_str().unwrap().to_owned();
    let alice = env.cli_json(&["account", "create", "--customer", "bank@example.com", "--currency", "EUR"]);
    assert_eq!(alice["customer_id"], p.bank_id);
    let alice = alice["id"].as_str().unwrap().to_owned();
    let bob = open(&env, &p.bank, json!({"currency": "EUR"})).await["id"].as_str().unwrap().to_owned();

    let deposit = id();
    let moved = env.cli_json(&["transfer", "--id", &deposit, "--debit", &rail, "--credit", &alice, "--amount", "500"]);
    assert_eq!(moved["result"], "created");
    let again = env.cli_json(&["transfer", "--id", &deposit, "--debit", &rail, "--credit", &alice, "--amount", "500"]);
    assert_eq!(again["result"], "exists");
    // The server's actor for alice now holds her balance; money the CLI brings in afterwards
    // is found when the server's next decision would otherwise refuse.
    transfer(&env, &p.bank, post(&alice, &bob, 500)).await.assert_status(201);
    let more = env.cli_json(&["transfer", "--debit", &rail, "--credit", &alice, "--amount", "300"]);
    assert_eq!(more["result"], "created");
    transfer(&env, &p.bank, post(&alice, &bob, 300)).await.assert_status(201);
    // A refusal prints its result and exits with 1, so scripts can tell.
    let refused = env.cli_unchecked(&["transfer", "--debit", &alice, "--credit", &bob, "--amount", "1"]);
    assert_eq!(refused.status.code(), Some(1));
    let printed: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(printed, json!({"result": "exceeds_credits", "transfer": null}));

    // A hold from the command line, voided there too.
    let hold = id();
    let held = env.cli_json(&[
        "transfer",
        "--id",
        &hold,
        "--debit",
        &bob,
        "--credit",
        &alice,
        "--amount",
        "80",
        "--hold-timeout-ms",
        "60000",
    ]);
    assert_eq!(held["transfer"]["state"], "pending");
    assert_eq!(balances(&env, &p.bank, &bob).await["available"], 720);
    let voided = env.cli_json(&["transfer", "--void-pending", &hold]);
    assert_eq!(voided["result"], "created");
    assert_eq!(balances(&env, &p.bank, &bob).await["available"], 800);
    assert_eq!(balances(&env, &p.operator, &rail).await["posted"], -800);
}

fn credential_headers(creds: &Creds) -> [(&str, &str); 2] {
    [("DN-API-KEY", creds.apikey.as_str()), ("DN-API-SECRET", creds.apisecret.as_str())]
}

/// The next `count` journal lines of a feed (heartbeats skipped).
async fn lines(feed: &mut FeedClient, count: usize) -> Vec<Value> {
    let mut lines = Vec::with_capacity(count);
    while lines.len() < count {
        lines.push(feed.event().await);
    }
    lines
}

pub async fn the_ledger_feed_streams_each_customers_journal_lines_and_resumes_without_a_gap(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let p = parties(&env);
    let not_a_socket = env.api.get(&path("/feed"), &p.bank).await;
    not_a_socket.assert_status(400);
    assert_eq!(env.api.get_anonymous(&path("/feed")).await.status.as_u16(), 401);

    let mut bank_feed = FeedClient::connect_with_headers(&env, &path("/feed"), &credential_headers(&p.bank)).await;
    let mut operator_feed =
        FeedClient::connect_with_headers(&env, &path("/feed"), &credential_headers(&p.operator)).await;
    let rail = open_rail(&env, &p.operator).await;
    let alice = open(&env, &p.bank, json!({"currency": "EUR"})).await["id"].as_str().unwrap().to_owned();
    let bob = open(&env, &p.bank, json!({"currency": "EUR"})).await["id"].as_str().unwrap().to_owned();
    transfer(&env, &p.operator, post(&rail, &alice, 1_000)).await.assert_status(201);
    for _ in 0..5 {
        transfer(&env, &p.bank, post(&alice, &bob, 10)).await.assert_status(201);
    }

    // The bank sees its two accounts' lines: two openings, the deposit's credit, and both legs
    // of each of its five transfers, in sequence order, each with the sums after it.
    let seen = lines(&mut bank_feed, 13).await;
    let seqs: Vec<i64> = seen.iter().map(|line| line["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "in order: {seqs:?}");
    assert!(seen.iter().all(|line| line["account_id"] == alice || line["account_id"] == bob), "only its own");
    assert_eq!(seen[2]["kind"], "posted");
    assert_eq!((seen[2]["side"].clone(), seen[2]["amount"].clone()), (json!("credit"), json!(1_000)));
    let last_alice = seen.iter().rev().find(|line| line["account_id"] == alice).unwrap();
    assert_eq!(last_alice["balances"]["posted"], 950);
    // The operator sees every line: the rail's opening and debit too.
    let everything = lines(&mut operator_feed, 15).await;
    assert!(everything.iter().any(|line| line["account_id"] == rail && line["side"] == "debit"));

    // Resuming after the fifth line replays the rest, then continues live.
    let resume = seqs[4];
    drop(bank_feed);
    let mut resumed =
        FeedClient::connect_with_headers(&env, &path(&format!("/feed?since={resume}")), &credential_headers(&p.bank))
            .await;
    let replayed = lines(&mut resumed, 8).await;
    let replayed_seqs: Vec<i64> = replayed.iter().map(|line| line["seq"].as_i64().unwrap()).collect();
    assert_eq!(replayed_seqs, seqs[5..].to_vec());
    transfer(&env, &p.bank, post(&bob, &alice, 7)).await.assert_status(201);
    let live = lines(&mut resumed, 2).await;
    assert!(live[0]["seq"].as_i64().unwrap() > *seqs.last().unwrap());
    assert_eq!(live.iter().map(|line| line["amount"].as_i64().unwrap()).collect::<Vec<_>>(), [7, 7]);
}

/// Acknowledged transfers before the kill (the load goes on past it until the server dies).
const ACKNOWLEDGED_BEFORE_KILL: usize = 300;
const CRASH_CLIENTS: usize = 16;
const CRASH_ACCOUNTS: usize = 10;

/// A transfer the server acknowledged: its id, kind and amount.
#[derive(Debug, Clone)]
struct Acknowledged {
    id: String,
    kind: &'static str,
    amount: u64,
}

/// POST a transfer without failing on a dead server: `None` when no answer came.
async fn try_transfer(client: &awc::Client, base: &str, creds: &Creds, body: &Value) -> Option<(u16, Value)> {
    let mut response = client
        .post(format!("{base}{LEDGER}/transfers"))
        .insert_header(("DN-API-KEY", creds.apikey.as_str()))
        .insert_header(("DN-API-SECRET", creds.apisecret.as_str()))
        .send_json(body)
        .await
        .ok()?;
    let bytes = response.body().await.ok()?;
    Some((response.status().as_u16(), serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
}

/// One client's loop: transfers, holds and posts of holds, until the server stops answering.
async fn crash_client(
    base: String,
    creds: Creds,
    accounts: Vec<String>,
    seed: usize,
    acknowledged: std::rc::Rc<std::cell::RefCell<Vec<Acknowledged>>>,
) {
    let client = awc::Client::builder().timeout(std::time::Duration::from_secs(5)).finish();
    for round in 0.. {
        let debit = &accounts[(seed + round) % accounts.len()];
        let credit = &accounts[(seed + round * 3 + 1) % accounts.len()];
        if debit == credit {
            continue;
        }
        let id = id();
        let amount = 1 + ((seed * 31 + round * 7) % 100) as u64;
        let (kind, body) = if round % 5 == 0 {
            let body = json!({"id": id, "kind": "hold", "debit_account_id": debit, "credit_account_id": credit,
                              "amount": amount, "timeout_ms": 600_000});
            ("pending", body)
        } else {
            ("posted", json!({"id": id, "debit_account_id": debit, "credit_account_id": credit, "amount": amount}))
        };
        let Some((status, answer)) = try_transfer(&client, &base, &creds, &body).await else {
            return;
        };
        assert_eq!(status, 201, "{answer}");
        acknowledged.borrow_mut().push(Acknowledged { id: id.clone(), kind, amount });
        if kind == "pending" && round % 2 == 0 {
            let post_id = self::id();
            let body = json!({"id": post_id, "kind": "post_pending", "pending_id": id, "amount": amount / 2 + 1});
            let Some((status, answer)) = try_transfer(&client, &base, &creds, &body).await else {
                return;
            };
            assert_eq!(status, 201, "{answer}");
            acknowledged.borrow_mut().push(Acknowledged { id: post_id, kind: "post_pending", amount: amount / 2 + 1 });
        }
    }
}

pub async fn a_kill_under_load_loses_no_acknowledged_transfer_and_leaves_no_half_one(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let p = parties(&env);
    let rail = open_rail(&env, &p.operator).await;
    let mut accounts = Vec::new();
    for _ in 0..CRASH_ACCOUNTS {
        let account = open(&env, &p.bank, json!({"currency": "EUR"})).await["id"].as_str().unwrap().to_owned();
        transfer(&env, &p.operator, post(&rail, &account, 1_000_000)).await.assert_status(201);
        accounts.push(account);
    }

    // Clients keep transferring while the server is killed with SIGKILL.
    let acknowledged = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let base = env.base_url().to_owned();
    let clients = (0..CRASH_CLIENTS).map(|seed| {
        crash_client(base.clone(), p.bank.clone(), accounts.clone(), seed, std::rc::Rc::clone(&acknowledged))
    });
    let load = futures_util::future::join_all(clients);
    let killer = async {
        while acknowledged.borrow().len() < ACKNOWLEDGED_BEFORE_KILL {
            actix_web::rt::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        env.kill_and_restart().await;
    };
    futures_util::future::join(load, killer).await;
    let acknowledged = acknowledged.borrow().clone();
    assert!(acknowledged.len() >= ACKNOWLEDGED_BEFORE_KILL);

    // Every acknowledged transfer is there as it was answered.
    for ack in &acknowledged {
        let read = env.api.get(&path(&format!("/transfers/{}", ack.id)), &p.bank).await;
        read.assert_status(200);
        assert_eq!((read.json["amount"].as_u64(), read.json["kind"].as_str()), (Some(ack.amount), Some(ack.kind)));
    }
    // No half transfer: every account's sums are the fold of the transfers stored for it, each
    // hold pending or posted, and the sums over all accounts are zero.
    let mut total_posted: i64 = 0;
    for account in accounts.iter().chain([&rail]) {
        let creds = if account == &rail { &p.operator } else { &p.bank };
        let mut transfers = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let cursor = after.as_ref().map(|next| format!("&after={next}")).unwrap_or_default();
            let page = env.api.get(&path(&format!("/accounts/{account}/transfers?limit=1000{cursor}")), creds).await;
            page.assert_status(200);
            transfers.extend(page.json["transfers"].as_array().unwrap().iter().cloned());
            match page.json["next"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let (mut debits_posted, mut credits_posted, mut debits_pending, mut credits_pending) = (0, 0, 0, 0);
        for transfer in &transfers {
            let amount = transfer["amount"].as_i64().unwrap();
            let debit = transfer["debit_account_id"] == account.as_str();
            match (transfer["kind"].as_str().unwrap(), transfer["state"].as_str()) {
                ("posted" | "post_pending", _) if debit => debits_posted += amount,
                ("posted" | "post_pending", _) => credits_posted += amount,
                ("pending", Some("pending")) if debit => debits_pending += amount,
                ("pending", Some("pending")) => credits_pending += amount,
                ("pending", Some("posted" | "voided" | "expired")) => {}
                other => panic!("unexpected transfer {other:?}: {transfer}"),
            }
        }
        let sums = balances(&env, creds, account).await;
        assert_eq!(
            [&sums["debits_posted"], &sums["credits_posted"], &sums["debits_pending"], &sums["credits_pending"]],
            [&json!(debits_posted), &json!(credits_posted), &json!(debits_pending), &json!(credits_pending)],
            "account {account} is the fold of its stored transfers"
        );
        total_posted += sums["posted"].as_i64().unwrap();
    }
    assert_eq!(total_posted, 0, "money is neither created nor destroyed");
    // A hold's post exists exactly when the hold says it was posted.
    for ack in acknowledged.iter().filter(|ack| ack.kind == "pending") {
        let hold = env.api.get(&path(&format!("/transfers/{}", ack.id)), &p.bank).await;
        assert!(matches!(hold.json["state"].as_str(), Some("pending" | "posted")), "{}", hold.describe());
    }
}
