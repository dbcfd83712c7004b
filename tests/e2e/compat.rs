//! Leniencies of the original that clients in the field rely on (§1.1, §1.5, §9.4). Each case
//! is checked and all misses are reported together, since they are independent of each other.

use serde_json::Value;

use crate::api::{Creds, Reply};
use crate::flows::{claim_path, token_path, uuid_of, TOKENS, TOKEN_DEVICES};
use crate::harness::{Backend, TestEnv};
use crate::phone::hex;

/// Collects the cases that did not behave like the original.
#[derive(Default)]
struct Misses(Vec<String>);

impl Misses {
    fn expect_ok(&mut self, case: &str, reply: &Reply) -> Value {
        if reply.status.as_u16() == 200 {
            reply.json.clone()
        } else {
            self.0.push(format!("{case}: {}", reply.describe()));
            Value::Null
        }
    }

    fn expect(&mut self, case: &str, holds: bool, detail: impl FnOnce() -> String) {
        if !holds {
            self.0.push(format!("{case}: {}", detail()));
        }
    }

    #[track_caller]
    fn assert_none(self) {
        assert!(self.0.is_empty(), "differences from the original:\n  {}", self.0.join("\n  "));
    }
}

/// Builds a radiocode from a token uuid and the lower-case hex of its code.
type MakeRadiocode = fn(&str, &str) -> String;

pub async fn radiocodes_are_read_like_the_original_reads_them(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let mut misses = Misses::default();
    let variants: [(&str, MakeRadiocode); 4] = [
        ("upper-case hex", |uuid, code| format!("{uuid}{}", code.to_ascii_uppercase())),
        ("an odd trailing nibble is dropped", |uuid, code| format!("{uuid}{code}7")),
        ("hex decoding stops at the first invalid pair", |uuid, code| format!("{uuid}{code}zz12")),
        ("an upper-case token uuid", |uuid, code| format!("{}{code}", uuid.to_ascii_uppercase())),
    ];
    for (case, radiocode) in variants {
        let token = env.issue(&scene.bank, &scene.phone, 1000).await;
        let uuid = uuid_of(&token);
        let code = hex(&scene.phone.key.decrypt(token["secure_code"].as_str().expect("secure_code")));
        let reply = env.claim(&scene.cash, &scene.atm, &radiocode(&uuid, &code)).await;
        let locked = misses.expect_ok(case, &reply);
        if !locked.is_null() {
            misses.expect(case, locked["uuid"] == uuid.as_str(), || format!("locked {locked} instead of {uuid}"));
        }
    }
    misses.assert_none();
}

pub async fn lookups_and_paths_ignore_case_like_the_original(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let scene = env.scene("bank@example.com").await;
    let token = env.issue(&scene.bank, &scene.phone, 1000).await;
    let uuid = uuid_of(&token);
    let mut misses = Misses::default();

    let shouting =
        Creds { apikey: scene.bank.apikey.to_ascii_uppercase(), apisecret: scene.bank.apisecret.to_ascii_uppercase() };
    misses.expect_ok("upper-cased API key and secret", &env.api.get(TOKENS, &shouting).await);
    let view = misses
        .expect_ok("upper-case token uuid", &env.api.get(&token_path(&uuid.to_ascii_uppercase()), &scene.bank).await);
    if !view.is_null() {
        misses.expect("upper-case token uuid", view["uuid"] == uuid.as_str(), || format!("answered {view}"));
    }
    let path = format!("{TOKEN_DEVICES}/{}", scene.phone.uuid.to_ascii_uppercase());
    misses.expect_ok("upper-case device uuid", &env.api.get(&path, &scene.bank).await);
    misses.expect_ok("a trailing slash", &env.api.get(&format!("{TOKENS}/"), &scene.bank).await);
    misses.expect_ok("an upper-case path", &env.api.get(&TOKENS.to_ascii_uppercase(), &scene.bank).await);

    let radiocode = crate::phone::long_radiocode(&token, scene.phone.key);
    let reply = env.api.get(&claim_path(&radiocode, &scene.atm.to_ascii_uppercase()), &scene.cash).await;
    misses.expect_ok("claim with an upper-case cash device uuid", &reply);
    misses.assert_none();
}
