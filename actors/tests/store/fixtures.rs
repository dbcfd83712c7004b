//! Sample rows for the store scenarios.

use cashgrid_actors::domain::{
    CustomerId, Device, DeviceType, Token, TokenEvent, TokenEventKind, TokenState, TokenType,
};
use cashgrid_actors::store::{NewCustomer, TokenWrite, WriteSet};
use serde_json::json;
use uuid::Uuid;

pub const T0: i64 = 1_700_000_000_000;

pub fn new_customer() -> NewCustomer {
    NewCustomer {
        email: format!("bank-{}@Example.TEST", Uuid::new_v4().simple()),
        display_name: Some("A Bank".to_owned()),
        roles: "user".to_owned(),
    }
}

/// An OPEN token with only the required fields.
pub fn token(owner: CustomerId, device: Uuid, plain_code: Option<&str>) -> Token {
    Token {
        uuid: Uuid::new_v4(),
        version: 1,
        created: T0,
        updated: None,
        token_type: TokenType::Cashout,
        plain_code: plain_code.map(str::to_owned),
        secure_code: "c2VjdXJlLWNvZGU=".to_owned(),
        code_hash: Some(vec![0xde, 0xad, 0xbe, 0xef]),
        amount: 5_000,
        symbol: "EUR".to_owned(),
        state: TokenState::Open,
        clearstate: 0,
        expires: None,
        refname: None,
        lockrefname: None,
        info: None,
        processing_info: None,
        owner_id: owner,
        owner_device: device,
        lock_device: None,
        lock_customer_id: None,
    }
}

/// A token with every optional field set.
pub fn full_token(owner: CustomerId) -> Token {
    Token {
        updated: Some(T0 + 5),
        token_type: TokenType::Payment,
        plain_code: Some(format!("{:06}", Uuid::new_v4().as_u128() % 1_000_000)),
        code_hash: Some((0..=255).collect()),
        amount: 123_456_789_012,
        state: TokenState::Locked,
        clearstate: 7,
        expires: Some(T0 + 86_400_000),
        refname: Some("ref-Ä".to_owned()),
        lockrefname: Some("lock-ref".to_owned()),
        info: Some(json!({ "note": "ünïcode \"quoted\"", "n": [1, 2.5, null], "nested": { "ok": true } })),
        processing_info: Some(json!("plain string")),
        lock_device: Some(Uuid::new_v4()),
        lock_customer_id: Some(owner + 1_000),
        ..token(owner, Uuid::new_v4(), None)
    }
}

/// The successor snapshot of `token`, changed by `change`.
pub fn next(token: &Token, change: impl FnOnce(&mut Token)) -> Token {
    let mut next = token.clone();
    next.version += 1;
    change(&mut next);
    next
}

/// `token` moved to a final state: codes cleared, as the domain does.
pub fn finished(token: &Token, state: TokenState) -> Token {
    next(token, |next| {
        next.state = state;
        next.plain_code = None;
        next.secure_code.clear();
        next.code_hash = None;
        next.updated = Some(T0 + 10);
    })
}

pub fn event(token: &Token, kind: TokenEventKind, from: Option<TokenState>) -> TokenEvent {
    TokenEvent {
        token: token.uuid,
        kind,
        from,
        to: token.state,
        at: token.updated.unwrap_or(token.created),
        owner_id: token.owner_id,
        cash_customer_id: None,
        version: token.version,
    }
}

pub fn created_event(token: &Token) -> TokenEvent {
    event(token, TokenEventKind::Created, None)
}

/// A set issuing `token` with its creation event.
pub fn insert_set(token: &Token) -> WriteSet {
    WriteSet {
        writes: vec![TokenWrite::Insert(token.clone())],
        events: vec![created_event(token)],
        clearing: None,
        idempotency: None,
        ..WriteSet::default()
    }
}

/// A set writing `token` over its predecessor `from`, with an update event.
pub fn update_set(token: &Token, from: TokenState) -> WriteSet {
    WriteSet {
        writes: vec![TokenWrite::Update(token.clone())],
        events: vec![event(token, TokenEventKind::Updated, Some(from))],
        clearing: None,
        idempotency: None,
        ..WriteSet::default()
    }
}

pub fn device(customer: CustomerId, device_type: DeviceType) -> Device {
    Device {
        id: 0,
        uuid: Uuid::new_v4(),
        customer_id: customer,
        created: T0,
        device_type,
        pubkey: Some("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n".to_owned()),
        lat: Some(48.137_154),
        lon: Some(-11.576_124),
        refname: Some("atm-1".to_owned()),
        info: Some(r#"{"raw": "json text"}"#.to_owned()),
    }
}
