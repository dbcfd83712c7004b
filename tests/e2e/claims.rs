//! Claims: exactly one winner under concurrency, on one node or two, and a wrong code kills
//! the token.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::flows::{claim_path, confirm_path, token_path, uuid_of, TOKENS};
use crate::harness::{Backend, TestEnv};
use crate::phone::{corrupted, hex, long_radiocode};
use crate::wire::{assert_claim_error_body, assert_recent_timestamp, INVALID_CODE, NOT_OPEN};

/// How many ATMs race for one token.
const CONCURRENT_CLAIMS: usize = 32;

pub async fn only_one_of_32_concurrent_claims_of_a_token_wins(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 5000).await;
    let uuid = uuid_of(&token);
    let radiocode = long_radiocode(&token, scene.phone.key);

    let claims = (0..CONCURRENT_CLAIMS).map(|_| env.claim(&scene.cash, &scene.atm, &radiocode));
    let replies = join_all(claims).await;

    let winners: Vec<_> = replies.iter().filter(|reply| reply.status.as_u16() == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins; statuses: {:?}", statuses(&replies));
    assert_eq!(winners[0].json["state"], "LOCKED");
    for reply in replies.iter().filter(|reply| reply.status.as_u16() != 200) {
        reply.assert_status(403);
        assert_claim_error_body(reply, NOT_OPEN);
    }

    // The lock stuck, and the winning ATM can finish the cash-out.
    assert_eq!(env.token_state(&scene.bank, &uuid).await, "LOCKED");
    let confirmed = env.confirm(&scene.cash, &scene.atm, &uuid, json!({"state": "COMPLETED"})).await;
    assert_eq!(confirmed.ok()["state"], "COMPLETED");
}

fn statuses(replies: &[crate::api::Reply]) -> Vec<u16> {
    replies.iter().map(|reply| reply.status.as_u16()).collect()
}

pub async fn claim_with_wrong_secure_code_rejects_the_token(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 5000).await;
    let uuid = uuid_of(&token);
    let code = scene.phone.key.decrypt(token["secure_code"].as_str().expect("secure_code"));

    let reply = env.claim(&scene.cash, &scene.atm, &format!("{uuid}{}", hex(&corrupted(&code)))).await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, INVALID_CODE);

    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "REJECTED", "a wrong code kills the token: {view}");
    assert_eq!(view["secure_code"], "", "a rejected token keeps no code: {view}");
    assert_eq!(view["plain_code"], Value::Null);
    assert_recent_timestamp(&view["updated"], "updated after reject");

    // The right code is too late now.
    let reply = env.claim(&scene.cash, &scene.atm, &format!("{uuid}{}", hex(&code))).await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, NOT_OPEN);
    assert_eq!(env.token_state(&scene.bank, &uuid).await, "REJECTED");
}

pub async fn a_locked_token_cannot_be_claimed_again(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 5000).await;
    let uuid = uuid_of(&token);
    let locked = env.claim_ok(&scene.cash, &scene.atm, &token, &scene.phone).await;

    // Neither the right code (from this or another ATM) nor a wrong one changes a LOCKED token.
    let other_atm = env.register_cash_device(&scene.cash, "atm2").await;
    let radiocode = long_radiocode(&token, scene.phone.key);
    for atm in [&scene.atm, &other_atm] {
        let reply = env.claim(&scene.cash, atm, &radiocode).await;
        reply.assert_status(403);
        assert_claim_error_body(&reply, NOT_OPEN);
    }
    let code = scene.phone.key.decrypt(token["secure_code"].as_str().expect("secure_code"));
    let reply = env.claim(&scene.cash, &other_atm, &format!("{uuid}{}", hex(&corrupted(&code)))).await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, NOT_OPEN);

    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "LOCKED");
    assert_eq!(view["updated"], locked["updated"], "the failed claims did not touch the token");
    assert_eq!(view["secure_code"], token["secure_code"], "a LOCKED token keeps its code");
}

/// With several group commits in flight (`--database-commit-connections 4`, PostgreSQL), batches
/// commit concurrently: every lifecycle of many run at once still completes, and concurrent
/// claims of one token still have exactly one winner.
pub async fn concurrent_commits_keep_every_lifecycle_and_one_winner(backend: Backend) {
    const TOKENS: i64 = 24;
    const EXTRA_CLAIMS: usize = 16;
    let env = TestEnv::start_with(backend, &["--database-commit-connections", "4"]).await;
    let scene = env.scene("bank@example.com").await;
    let tokens = join_all((0..TOKENS).map(|index| env.issue(&scene.bank, &scene.phone, 100 + index))).await;
    let radiocodes: Vec<String> = tokens.iter().map(|token| long_radiocode(token, scene.phone.key)).collect();

    let hot = radiocodes[0].clone();
    let claims = radiocodes
        .iter()
        .chain(std::iter::repeat(&hot).take(EXTRA_CLAIMS))
        .map(|radiocode| env.claim(&scene.cash, &scene.atm, radiocode));
    let replies = join_all(claims).await;
    let won = replies.iter().filter(|reply| reply.status.as_u16() == 200).count();
    assert_eq!(won, tokens.len(), "one winner per token; statuses: {:?}", statuses(&replies));

    let uuids: Vec<String> = tokens.iter().map(uuid_of).collect();
    let confirms = uuids.iter().map(|uuid| env.confirm(&scene.cash, &scene.atm, uuid, json!({"state": "COMPLETED"})));
    for (reply, token) in join_all(confirms).await.iter().zip(&tokens) {
        assert_eq!(reply.ok()["state"], "COMPLETED", "{}", reply.describe());
        assert_eq!(reply.json["amount"], token["amount"], "paid out exactly what was issued");
    }
    for uuid in &uuids {
        assert_eq!(env.token_state(&scene.bank, uuid).await, "COMPLETED");
    }
}

/// Tokens the two nodes race for.
const RACED_TOKENS: i64 = 20;
/// Claims of each token sent to each node, all at once.
const CLAIMS_PER_NODE: usize = 3;
/// Confirms of each locked token sent to each node, all at once.
const CONFIRMS_PER_NODE: usize = 2;
const NOT_LOCKED: &str = "Token not in LOCKED state.";

/// Two servers on one PostgreSQL database, each with its own actor for every token, race
/// claims of the same tokens (each node for its own ATM) and then confirms of each winner: one
/// claim wins per token, one confirm completes it, with one clearing row, and every confirm
/// answered 200 is in the store.
pub async fn two_nodes_racing_for_the_same_tokens_give_one_winner_and_lose_no_confirm(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let bank = env.scene("bank@two-nodes.test").await;
    let bank_clearing = env.access("bank@two-nodes.test", "clearing-api");
    env.customer("shop@two-nodes.test");
    let shop = env.access("shop@two-nodes.test", "cash-api");
    let (_node_b, api_b) = env.start_another_node(&[]).await;
    let nodes = [&env.api, &api_b];
    let atms = [env.register_cash_device(&shop, "atm-a").await, env.register_cash_device(&shop, "atm-b").await];

    // Issued on both nodes, so each node holds the warm (seeded) actor of half the tokens and
    // neither wins every race by being first.
    let issues = (0..RACED_TOKENS).map(|n| {
        let (api, bank, phone) = (nodes[usize::from(n % 2 == 1)], &bank.bank, &bank.phone);
        async move {
            api.post(TOKENS, bank, json!({"device_uuid": phone.uuid, "amount": 1_000 + n, "symbol": "EUR"}))
                .await
                .ok()
                .clone()
        }
    });
    let tokens = join_all(issues).await;
    let uuids: Vec<String> = tokens.iter().map(uuid_of).collect();

    // Every claim of every token at once, alternating between the nodes.
    let claims = tokens.iter().enumerate().flat_map(|(index, token)| {
        let radiocode = long_radiocode(token, bank.phone.key);
        (0..CLAIMS_PER_NODE * 2).map(move |attempt| (index, attempt % 2, radiocode.clone()))
    });
    let claims = join_all(claims.map(|(index, node, radiocode)| {
        let (api, atm, shop) = (nodes[node], &atms[node], &shop);
        async move { (index, node, api.get(&claim_path(&radiocode, atm), shop).await) }
    }))
    .await;
    let mut winners: Vec<Vec<usize>> = vec![Vec::new(); tokens.len()];
    for (index, node, reply) in &claims {
        if reply.status.as_u16() == 200 {
            assert_eq!(reply.json["state"], "LOCKED", "{}", reply.describe());
            assert_eq!(reply.json["uuid"], uuids[*index].as_str(), "{}", reply.describe());
            winners[*index].push(*node);
        } else {
            reply.assert_status(403);
            assert_claim_error_body(reply, NOT_OPEN);
        }
    }
    for (uuid, won) in uuids.iter().zip(&winners) {
        assert_eq!(won.len(), 1, "token {uuid}: exactly one claim wins, not {}", won.len());
    }

    // Every confirm of every token at once, from both nodes, by the ATM that won the token.
    let confirms = winners.iter().enumerate().flat_map(|(index, won)| {
        let atm = &atms[won[0]];
        (0..CONFIRMS_PER_NODE * 2).map(move |attempt| (index, attempt % 2, atm))
    });
    let confirms = join_all(confirms.map(|(index, node, atm)| {
        let (api, uuid, shop) = (nodes[node], &uuids[index], &shop);
        async move { (index, api.put(&confirm_path(uuid, atm), shop, json!({"state": "COMPLETED"})).await) }
    }))
    .await;
    let mut completions = vec![0; tokens.len()];
    for (index, reply) in &confirms {
        if reply.status.as_u16() == 200 {
            assert_eq!(reply.json["state"], "COMPLETED", "{}", reply.describe());
            assert_eq!(reply.json["amount"], tokens[*index]["amount"], "{}", reply.describe());
            completions[*index] += 1;
        } else {
            let message = reply.json["message"].as_str().or_else(|| reply.json["error"].as_str());
            assert_eq!(message, Some(NOT_LOCKED), "a losing confirm: {}", reply.describe());
        }
    }

    // The store agrees with the answers, seen from either node.
    for (index, uuid) in uuids.iter().enumerate() {
        assert_eq!(completions[index], 1, "token {uuid}: exactly one confirm completes it");
        for api in nodes {
            let stored = api.get(&token_path(uuid), &bank.bank).await;
            assert_eq!(
                stored.ok()["state"],
                "COMPLETED",
                "token {uuid}: the 200 confirm is stored: {}",
                stored.describe()
            );
        }
    }
    let clearing = env.api.get("/dnapi/clearing/v1/tokens", &bank_clearing).await;
    let mut rows: Vec<(String, i64)> =
        clearing.list().iter().map(|row| (uuid_of(row), row["amount"].as_i64().unwrap_or(-1))).collect();
    rows.sort();
    let mut expected: Vec<(String, i64)> =
        tokens.iter().map(|token| (uuid_of(token), token["amount"].as_i64().unwrap_or(-2))).collect();
    expected.sort();
    assert_eq!(rows, expected, "one clearing row per token, of its amount: {}", clearing.describe());
}
