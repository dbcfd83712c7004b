//! The steps scenarios are made of: register a phone or an ATM, issue, claim, confirm, read.
//! Each step that is not itself under test asserts its own success, so scenarios stay short.

use serde_json::{json, Value};

use crate::api::{Creds, Reply};
use crate::harness::TestEnv;
use crate::phone::{long_radiocode, PhoneKey, PHONE_C_2048};

pub const TOKEN_DEVICES: &str = "/dnapi/token/v1/devices";
pub const TOKENS: &str = "/dnapi/token/v1/tokens";
pub const CASH_DEVICES: &str = "/dnapi/cash/v1/devices";

/// A registered end-user phone.
#[derive(Clone)]
pub struct Phone {
    pub uuid: String,
    pub key: &'static PhoneKey,
}

/// A bank that issues tokens and runs its own ATM: one customer, both API scopes.
pub struct Scene {
    pub email: String,
    pub bank: Creds,
    pub cash: Creds,
    pub phone: Phone,
    pub atm: String,
}

pub fn claim_path(radiocode: &str, cash_device: &str) -> String {
    format!("/dnapi/cash/v1/tokens/{radiocode}?device_uuid={cash_device}")
}

pub fn confirm_path(token: &str, cash_device: &str) -> String {
    format!("/dnapi/cash/v1/tokens/{token}?device_uuid={cash_device}")
}

pub fn token_path(token: &str) -> String {
    format!("{TOKENS}/{token}")
}

/// The `uuid` field of a token or device.
#[track_caller]
pub fn uuid_of(value: &Value) -> String {
    value["uuid"].as_str().unwrap_or_else(|| panic!("no uuid in {value}")).to_owned()
}

impl TestEnv {
    /// Customer `email` with token-api and cash-api credentials, an RSA-2048 phone and an ATM.
    pub async fn scene(&self, email: &str) -> Scene {
        let customer = self.customer(email);
        self.scene_for(customer).await
    }

    /// [`TestEnv::scene`] for a customer that already exists.
    pub async fn scene_for(&self, customer: Value) -> Scene {
        let email = customer["email"].as_str().expect("customer email").to_owned();
        let email = email.as_str();
        let bank = self.access(email, "token-api");
        let cash = self.access(email, "cash-api");
        let phone = self.register_phone(&bank, &PHONE_C_2048, "phone1").await;
        let atm = self.register_cash_device(&cash, "atm1").await;
        Scene { email: email.to_owned(), bank, cash, phone, atm }
    }

    pub async fn register_phone(&self, bank: &Creds, key: &'static PhoneKey, refname: &str) -> Phone {
        let reply = self.api.post(TOKEN_DEVICES, bank, json!({"pubkey": key.public_pem, "refname": refname})).await;
        Phone { uuid: uuid_of(reply.ok()), key }
    }

    pub async fn register_cash_device(&self, cash: &Creds, refname: &str) -> String {
        uuid_of(self.api.post(CASH_DEVICES, cash, json!({"refname": refname})).await.ok())
    }

    /// Issue a EUR CASHOUT token of `amount` cents to `phone`; returns its V-row.
    pub async fn issue(&self, bank: &Creds, phone: &Phone, amount: i64) -> Value {
        self.issue_with(bank, json!({"device_uuid": phone.uuid, "amount": amount, "symbol": "EUR"})).await.ok().clone()
    }

    pub async fn issue_with(&self, bank: &Creds, body: Value) -> Reply {
        self.api.post(TOKENS, bank, body).await
    }

    pub async fn claim(&self, cash: &Creds, cash_device: &str, radiocode: &str) -> Reply {
        self.api.get(&claim_path(radiocode, cash_device), cash).await
    }

    /// Claim with the right long radiocode and expect the lock; returns the V-locked body.
    pub async fn claim_ok(&self, cash: &Creds, cash_device: &str, token: &Value, phone: &Phone) -> Value {
        let reply = self.claim(cash, cash_device, &long_radiocode(token, phone.key)).await;
        let locked = reply.ok().clone();
        assert_eq!(locked["state"], "LOCKED", "claim did not lock: {}", reply.describe());
        locked
    }

    pub async fn confirm(&self, cash: &Creds, cash_device: &str, token: &str, body: Value) -> Reply {
        self.api.put(&confirm_path(token, cash_device), cash, body).await
    }

    /// The owner's V-full view of a token.
    pub async fn token(&self, bank: &Creds, token: &str) -> Value {
        self.api.get(&token_path(token), bank).await.ok().clone()
    }

    pub async fn token_state(&self, bank: &Creds, token: &str) -> String {
        let view = self.token(bank, token).await;
        view["state"].as_str().unwrap_or_else(|| panic!("no state in {view}")).to_owned()
    }

    /// `GET /tokens[?query]` of the owner.
    pub async fn tokens(&self, bank: &Creds, query: &str) -> Vec<Value> {
        let path = if query.is_empty() { TOKENS.to_owned() } else { format!("{TOKENS}?{query}") };
        self.api.get(&path, bank).await.list()
    }

    /// `GET /devices` of the Token API.
    pub async fn devices(&self, bank: &Creds) -> Vec<Value> {
        self.api.get(TOKEN_DEVICES, bank).await.list()
    }
}
