//! Claims: exactly one winner under concurrency, and a wrong code kills the token.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::flows::uuid_of;
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

    let winners: Vec<_> = replies
        .iter()
        .filter(|reply| reply.status.as_u16() == 200)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one claim wins; statuses: {:?}",
        statuses(&replies)
    );
    assert_eq!(winners[0].json["state"], "LOCKED");
    for reply in replies.iter().filter(|reply| reply.status.as_u16() != 200) {
        reply.assert_status(403);
        assert_claim_error_body(reply, NOT_OPEN);
    }

    // The lock stuck, and the winning ATM can finish the cash-out.
    assert_eq!(env.token_state(&scene.bank, &uuid).await, "LOCKED");
    let confirmed = env
        .confirm(
            &scene.cash,
            &scene.atm,
            &uuid,
            json!({"state": "COMPLETED"}),
        )
        .await;
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
    let code = scene
        .phone
        .key
        .decrypt(token["secure_code"].as_str().expect("secure_code"));

    let reply = env
        .claim(
            &scene.cash,
            &scene.atm,
            &format!("{uuid}{}", hex(&corrupted(&code))),
        )
        .await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, INVALID_CODE);

    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(
        view["state"], "REJECTED",
        "a wrong code kills the token: {view}"
    );
    assert_eq!(
        view["secure_code"], "",
        "a rejected token keeps no code: {view}"
    );
    assert_eq!(view["plain_code"], Value::Null);
    assert_recent_timestamp(&view["updated"], "updated after reject");

    // The right code is too late now.
    let reply = env
        .claim(&scene.cash, &scene.atm, &format!("{uuid}{}", hex(&code)))
        .await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, NOT_OPEN);
    assert_eq!(env.token_state(&scene.bank, &uuid).await, "REJECTED");
}

pub async fn a_locked_token_cannot_be_claimed_again(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 5000).await;
    let uuid = uuid_of(&token);
    let locked = env
        .claim_ok(&scene.cash, &scene.atm, &token, &scene.phone)
        .await;

    // Neither the right code (from this or another ATM) nor a wrong one changes a LOCKED token.
    let other_atm = env.register_cash_device(&scene.cash, "atm2").await;
    let radiocode = long_radiocode(&token, scene.phone.key);
    for atm in [&scene.atm, &other_atm] {
        let reply = env.claim(&scene.cash, atm, &radiocode).await;
        reply.assert_status(403);
        assert_claim_error_body(&reply, NOT_OPEN);
    }
    let code = scene
        .phone
        .key
        .decrypt(token["secure_code"].as_str().expect("secure_code"));
    let reply = env
        .claim(
            &scene.cash,
            &other_atm,
            &format!("{uuid}{}", hex(&corrupted(&code))),
        )
        .await;
    reply.assert_status(403);
    assert_claim_error_body(&reply, NOT_OPEN);

    let view = env.token(&scene.bank, &uuid).await;
    assert_eq!(view["state"], "LOCKED");
    assert_eq!(
        view["updated"], locked["updated"],
        "the failed claims did not touch the token"
    );
    assert_eq!(
        view["secure_code"], token["secure_code"],
        "a LOCKED token keeps its code"
    );
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
    let confirms = uuids
        .iter()
        .map(|uuid| env.confirm(&scene.cash, &scene.atm, uuid, json!({"state": "COMPLETED"})));
    for (reply, token) in join_all(confirms).await.iter().zip(&tokens) {
        assert_eq!(reply.ok()["state"], "COMPLETED", "{}", reply.describe());
        assert_eq!(reply.json["amount"], token["amount"], "paid out exactly what was issued");
    }
    for uuid in &uuids {
        assert_eq!(env.token_state(&scene.bank, uuid).await, "COMPLETED");
    }
}
