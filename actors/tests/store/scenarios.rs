//! The store contract, backend-independent. Each scenario gets a fresh, empty store.

use cashgrid_actors::domain::{Device, DeviceType, Token, TokenEventKind, TokenState};
use cashgrid_actors::store::{
    Customer, EntityCommit, IdempotencyKey, IdempotencyRecord, Scope, StoreError, TokenFilter, TokenWrite,
    WriteOutcome, WriteSet, IDEMPOTENCY_KEY, LIST_LIMIT_MAX,
};
use serde_json::json;
use uuid::Uuid;

use super::fixtures::{self, event, finished, insert_set, next, update_set};
use super::harness::Harness;

use WriteOutcome::{Committed, Conflict, Refused};

async fn customer(h: &Harness) -> anyhow::Result<Customer> {
    Ok(h.store.create_customer(&fixtures::new_customer()).await?)
}

pub async fn token_round_trip(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let token = fixtures::full_token(owner.id);
    assert_eq!(h.store.commit(&[insert_set(&token)]).await?, vec![Committed]);

    assert_eq!(h.store.load_token(token.uuid).await?, Some(token.clone()));
    assert_eq!(h.store.load_token(Uuid::new_v4()).await?, None);
    let plain_code = token.plain_code.clone().unwrap_or_default();
    assert_eq!(h.store.find_token_by_plain_code(&plain_code).await?, Some(token.uuid));
    assert_eq!(h.store.find_token_by_plain_code("no-such-code").await?, None);
    assert_eq!(h.count_events().await?, 1);

    // Every field is written by an update too, including back to NULL.
    let cleared = next(&token, |next| {
        next.updated = None;
        next.plain_code = None;
        next.code_hash = None;
        next.secure_code.clear();
        next.state = TokenState::Completed;
        next.expires = None;
        next.refname = None;
        next.lockrefname = None;
        next.info = None;
        next.processing_info = Some(json!({ "atm": 1 }));
        next.lock_device = None;
        next.lock_customer_id = None;
        next.amount = 1;
        next.clearstate = 2;
    });
    assert_eq!(h.store.commit(&[update_set(&cleared, TokenState::Locked)]).await?, vec![Committed]);
    assert_eq!(h.store.load_token(token.uuid).await?, Some(cleared));
    assert_eq!(h.store.find_token_by_plain_code(&plain_code).await?, None);
    assert_eq!(h.count_events().await?, 2);

    // An empty commit is a no-op.
    assert_eq!(h.store.commit(&[]).await?, vec![]);
    Ok(())
}

pub async fn version_fence(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let token = fixtures::token(owner.id, Uuid::new_v4(), Some("111111"));
    assert_eq!(h.store.commit(&[insert_set(&token)]).await?, vec![Committed]);

    // Version 3 over stored version 1: the fence refuses it, and its events.
    let v2 = next(&token, |next| next.clearstate = 1);
    let v3 = next(&v2, |next| next.clearstate = 2);
    assert_eq!(h.store.commit(&[update_set(&v3, TokenState::Open)]).await?, vec![Conflict]);
    assert_eq!(h.store.load_token(token.uuid).await?, Some(token.clone()));
    assert_eq!(h.count_events().await?, 1);

    // The right successor applies; then a stale one (another v2) conflicts.
    assert_eq!(h.store.commit(&[update_set(&v2, TokenState::Open)]).await?, vec![Committed]);
    let stale = next(&token, |next| next.clearstate = 99);
    assert_eq!(h.store.commit(&[update_set(&stale, TokenState::Open)]).await?, vec![Conflict]);
    assert_eq!(h.store.commit(&[update_set(&v3, TokenState::Open)]).await?, vec![Committed]);
    assert_eq!(h.store.load_token(token.uuid).await?, Some(v3));
    assert_eq!(h.count_events().await?, 3);

    // An update of a token that does not exist conflicts too.
    let ghost = next(&fixtures::token(owner.id, Uuid::new_v4(), None), |_| {});
    assert_eq!(h.store.commit(&[update_set(&ghost, TokenState::Open)]).await?, vec![Conflict]);
    assert_eq!(h.store.load_token(ghost.uuid).await?, None);
    assert_eq!(h.count_events().await?, 3);
    Ok(())
}

pub async fn batch_with_conflicts(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let existing = fixtures::token(owner.id, device, Some("222222"));
    assert_eq!(h.store.commit(&[insert_set(&existing)]).await?, vec![Committed]);

    let a = fixtures::token(owner.id, device, Some("333333"));
    let b = fixtures::token(owner.id, device, None);
    let wrong_version = next(&next(&existing, |_| {}), |next| next.clearstate = 5);
    let right_version = next(&existing, |next| next.clearstate = 6);
    let same_uuid = fixtures::token(owner.id, device, None);
    let same_uuid = Token { uuid: a.uuid, ..same_uuid };
    let same_code = fixtures::token(owner.id, device, Some("222222"));

    let outcomes = h
        .store
        .commit(&[
            insert_set(&a),                               // new: commits
            update_set(&wrong_version, TokenState::Open), // version fence: conflicts
            insert_set(&same_code),                       // plain code of `existing`: conflicts
            insert_set(&b),                               // new: commits
            insert_set(&same_uuid),                       // uuid of `a`, earlier in the batch
            update_set(&right_version, TokenState::Open), // commits
            WriteSet::default(),                          // nothing to do: commits
        ])
        .await?;
    assert_eq!(outcomes, vec![Committed, Conflict, Conflict, Committed, Conflict, Committed, Committed]);

    assert_eq!(h.store.load_token(a.uuid).await?, Some(a));
    assert_eq!(h.store.load_token(b.uuid).await?, Some(b));
    assert_eq!(h.store.load_token(existing.uuid).await?, Some(right_version));
    assert_eq!(h.store.load_token(same_code.uuid).await?, None);
    assert_eq!(h.store.find_token_by_plain_code("222222").await?, Some(existing.uuid));
    // 1 before, then a, b and the right update.
    assert_eq!(h.count_events().await?, 4);
    Ok(())
}

/// A batch naming every token once: PostgreSQL decides it set-based (one INSERT and one UPDATE
/// over arrays), and each set must still get the outcome the in-order reference gives it,
/// including two new tokens of the batch wanting the same plain code (the first one wins).
pub async fn batch_of_distinct_tokens_decides_each_set(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let existing = fixtures::token(owner.id, device, Some("444444"));
    let other = fixtures::token(owner.id, device, None);
    assert_eq!(h.store.commit(&[insert_set(&existing), insert_set(&other)]).await?, vec![Committed, Committed]);

    let fresh = fixtures::token(owner.id, device, Some("555555"));
    let twin_code = fixtures::token(owner.id, device, Some("555555"));
    let taken_code = fixtures::token(owner.id, device, Some("444444"));
    let stale = next(&next(&other, |_| {}), |next| next.clearstate = 7);
    let right = next(&existing, |next| next.clearstate = 8);
    let plain = fixtures::token(owner.id, device, None);
    let outcomes = h
        .store
        .commit(&[
            insert_set(&fresh),                   // commits
            update_set(&stale, TokenState::Open), // version fence: conflicts
            insert_set(&twin_code),               // plain code of `fresh`, same batch: conflicts
            update_set(&right, TokenState::Open), // commits
            insert_set(&taken_code),              // plain code of `existing`: conflicts
            insert_set(&plain),                   // commits
        ])
        .await?;
    assert_eq!(outcomes, vec![Committed, Conflict, Conflict, Committed, Conflict, Committed]);
    assert_eq!(h.store.load_token(fresh.uuid).await?, Some(fresh.clone()));
    assert_eq!(h.store.load_token(twin_code.uuid).await?, None);
    assert_eq!(h.store.load_token(taken_code.uuid).await?, None);
    assert_eq!(h.store.load_token(other.uuid).await?, Some(other));
    assert_eq!(h.store.load_token(existing.uuid).await?, Some(right));
    assert_eq!(h.store.load_token(plain.uuid).await?, Some(plain));
    assert_eq!(h.store.find_token_by_plain_code("555555").await?, Some(fresh.uuid));
    // 2 before, then fresh, the right update and plain: only committed sets leave events.
    assert_eq!(h.count_events().await?, 5);
    Ok(())
}

pub async fn a_failing_set_is_undone_alone_and_its_batch_commits(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let fine = fixtures::token(owner.id, device, None);
    let first = fixtures::token(owner.id, device, None);
    // The second write of a set must apply; this one updates a token that does not exist, so
    // the set is undone (its insert too) and answered as a conflict.
    let missing = next(&fixtures::token(owner.id, device, None), |_| {});
    let broken = WriteSet {
        writes: vec![TokenWrite::Insert(first.clone()), TokenWrite::Update(missing)],
        events: vec![fixtures::created_event(&first)],
        ..WriteSet::default()
    };
    let outcomes = h.store.commit(&[insert_set(&fine), broken]).await?;
    assert_eq!(outcomes, vec![Committed, Conflict]);
    assert_eq!(h.store.load_token(fine.uuid).await?, Some(fine.clone()));
    assert_eq!(h.store.load_token(first.uuid).await?, None);
    assert_eq!(h.count_events().await?, 1, "only the committed set's event");

    // A write the database refuses (an owner that does not exist) undoes its own set only:
    // one customer's bad write never fails another's.
    let orphan = fixtures::token(owner.id + 1_000_000, device, None);
    let neighbour = fixtures::token(owner.id, device, None);
    let outcomes = h.store.commit(&[insert_set(&orphan), insert_set(&neighbour)]).await?;
    assert_eq!(outcomes, vec![Refused, Committed]);
    assert_eq!(h.store.load_token(orphan.uuid).await?, None);
    assert_eq!(h.store.load_token(neighbour.uuid).await?, Some(neighbour));
    assert_eq!(h.count_events().await?, 2);
    Ok(())
}

pub async fn an_idempotency_key_commits_once_with_its_set(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let key = IdempotencyKey { customer_id: owner.id, key: "retry-1".into(), fingerprint: "f".into(), created: 1 };
    let keyed = |token: &Token| WriteSet {
        idempotency: Some(IdempotencyRecord { key: key.clone(), result: format!("\"{}\"", token.uuid) }),
        ..insert_set(token)
    };
    let first = fixtures::token(owner.id, device, None);
    let second = fixtures::token(owner.id, device, None);
    // Two sets with one key in one batch: the first wins, the second is undone whole.
    let outcomes = h.store.commit(&[keyed(&first), keyed(&second)]).await?;
    assert_eq!(outcomes, vec![Committed, Conflict]);
    assert!(h.store.load_token(second.uuid).await?.is_none());
    let stored = h.store.find_idempotency(owner.id, "retry-1").await?;
    assert_eq!(stored.map(|record| record.result), Some(format!("\"{}\"", first.uuid)));
    // A later batch with the key conflicts too; another customer's same key is its own.
    let third = fixtures::token(owner.id, device, None);
    assert_eq!(h.store.commit(&[keyed(&third)]).await?, vec![Conflict]);
    assert!(h.store.find_idempotency(owner.id + 1, "retry-1").await?.is_none());
    // Keys older than the cut-off are forgotten.
    assert_eq!(h.store.delete_idempotency_before(2).await?, 1);
    assert!(h.store.find_idempotency(owner.id, "retry-1").await?.is_none());
    Ok(())
}

pub async fn a_device_with_an_idempotency_key_is_stored_once(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let key = IdempotencyKey { customer_id: owner.id, key: "device-1".into(), fingerprint: "f".into(), created: 1 };
    let phone = fixtures::device(owner.id, DeviceType::Mobile);
    let stored = h.store.insert_device(&phone, Some(&key)).await?;
    let record = h.store.find_idempotency(owner.id, "device-1").await?.ok_or_else(|| anyhow::anyhow!("no key"))?;
    let answered: Device = serde_json::from_str(&record.result)?;
    assert_eq!(answered, stored);
    let again = fixtures::device(owner.id, DeviceType::Mobile);
    let result = h.store.insert_device(&again, Some(&key)).await;
    assert!(matches!(result, Err(StoreError::Duplicate(IDEMPOTENCY_KEY))), "{result:?}");
    assert_eq!(h.store.load_device(again.uuid).await?, None, "the second device was rolled back");
    Ok(())
}

pub async fn partial_cashout_set(h: Harness) -> anyhow::Result<()> {
    // A confirm under the amount: the token completes and a remainder with the same plain code
    // is issued, in one set.
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let token = fixtures::token(owner.id, device, Some("444444"));
    assert_eq!(h.store.commit(&[insert_set(&token)]).await?, vec![Committed]);
    let completed = finished(&token, TokenState::Completed);
    let remainder = Token {
        uuid: Uuid::new_v4(),
        amount: 1_000,
        info: Some(json!({ "partial_from_uuid": token.uuid.to_string() })),
        ..token.clone()
    };
    let set = WriteSet {
        writes: vec![TokenWrite::Update(completed.clone()), TokenWrite::Insert(remainder.clone())],
        events: vec![
            event(&completed, TokenEventKind::Confirmed, Some(TokenState::Locked)),
            fixtures::created_event(&remainder),
        ],
        ..WriteSet::default()
    };
    assert_eq!(h.store.commit(&[set]).await?, vec![Committed]);
    assert_eq!(h.store.load_token(token.uuid).await?, Some(completed));
    assert_eq!(h.store.load_token(remainder.uuid).await?, Some(remainder.clone()));
    assert_eq!(h.store.find_token_by_plain_code("444444").await?, Some(remainder.uuid));
    assert_eq!(h.count_events().await?, 3);
    Ok(())
}

pub async fn set_order_decides_within_a_batch(h: Harness) -> anyhow::Result<()> {
    // Set A frees plain code P and hands it to its remainder; set B, later in the same batch,
    // issues a new token with P. Sets apply in order: A commits, B conflicts.
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let token = fixtures::token(owner.id, device, Some("555555"));
    assert_eq!(h.store.commit(&[insert_set(&token)]).await?, vec![Committed]);
    let completed = finished(&token, TokenState::Completed);
    let remainder = Token { uuid: Uuid::new_v4(), amount: 1, ..token.clone() };
    let a = WriteSet {
        writes: vec![TokenWrite::Update(completed.clone()), TokenWrite::Insert(remainder.clone())],
        events: vec![fixtures::created_event(&remainder)],
        ..WriteSet::default()
    };
    let newcomer = fixtures::token(owner.id, device, Some("555555"));
    let other = fixtures::token(owner.id, device, None);
    let outcomes = h.store.commit(&[a, insert_set(&newcomer), insert_set(&other)]).await?;
    assert_eq!(outcomes, vec![Committed, Conflict, Committed]);
    assert_eq!(h.store.load_token(token.uuid).await?, Some(completed));
    assert_eq!(h.store.load_token(remainder.uuid).await?, Some(remainder.clone()));
    assert_eq!(h.store.load_token(newcomer.uuid).await?, None);
    assert_eq!(h.store.load_token(other.uuid).await?, Some(other));
    assert_eq!(h.store.find_token_by_plain_code("555555").await?, Some(remainder.uuid));
    assert_eq!(h.count_events().await?, 3);
    Ok(())
}

pub async fn duplicate_plain_code(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let first = fixtures::token(owner.id, device, Some("666666"));
    let second = fixtures::token(owner.id, device, Some("666666"));
    assert_eq!(h.store.commit(&[insert_set(&first)]).await?, vec![Committed]);
    // Taken while the first is OPEN...
    assert_eq!(h.store.commit(&[insert_set(&second)]).await?, vec![Conflict]);
    assert_eq!(h.store.load_token(second.uuid).await?, None);
    assert_eq!(h.count_events().await?, 1);
    // ... and while it is LOCKED.
    let locked = next(&first, |next| next.state = TokenState::Locked);
    assert_eq!(h.store.commit(&[update_set(&locked, TokenState::Open)]).await?, vec![Committed]);
    assert_eq!(h.store.find_token_by_plain_code("666666").await?, Some(first.uuid));
    assert_eq!(h.store.commit(&[insert_set(&second)]).await?, vec![Conflict]);
    // Free again once the first is final (the domain clears its codes).
    let done = finished(&locked, TokenState::Completed);
    assert_eq!(h.store.commit(&[update_set(&done, TokenState::Locked)]).await?, vec![Committed]);
    assert_eq!(h.store.find_token_by_plain_code("666666").await?, None);
    assert_eq!(h.store.commit(&[insert_set(&second)]).await?, vec![Committed]);
    assert_eq!(h.store.find_token_by_plain_code("666666").await?, Some(second.uuid));
    assert_eq!(h.count_events().await?, 4);
    Ok(())
}

pub async fn list_tokens_filters_and_order(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let stranger = customer(&h).await?;
    let phone = Uuid::new_v4();
    let tablet = Uuid::new_v4();

    // Issue order differs from uuid order; lists follow issue order.
    let mut issued = Vec::new();
    for index in 0..6_u8 {
        let mut token = fixtures::token(owner.id, if index % 2 == 0 { phone } else { tablet }, None);
        token.clearstate = i64::from(index % 3);
        token.uuid = Uuid::from_u128((u128::from(6 - index) << 64) | u128::from(index));
        issued.push(token);
    }
    let sets: Vec<WriteSet> = issued.iter().map(insert_set).collect();
    assert_eq!(h.store.commit(&sets).await?, vec![Committed; 6]);
    let foreign = fixtures::token(stranger.id, phone, None);
    assert_eq!(h.store.commit(&[insert_set(&foreign)]).await?, vec![Committed]);

    // Token 1 is deleted: its snapshot changes, its place in the list does not.
    let deleted = finished(&issued[1], TokenState::Deleted);
    assert_eq!(h.store.commit(&[update_set(&deleted, TokenState::Open)]).await?, vec![Committed]);
    issued[1] = deleted;

    let uuids = |tokens: &[Token]| tokens.iter().map(|token| token.uuid).collect::<Vec<_>>();
    let list = |filter: TokenFilter, limit: usize| {
        let store = h.store.clone();
        let owner = owner.id;
        async move { store.list_tokens(owner, &filter, limit).await }
    };

    let all = list(TokenFilter::default(), LIST_LIMIT_MAX).await?;
    assert_eq!(all, issued);
    assert_eq!(uuids(&list(TokenFilter::default(), 2).await?), uuids(&issued[..2]));
    assert_eq!(list(TokenFilter::default(), 0).await?, vec![]);
    assert_eq!(list(TokenFilter::default(), usize::MAX).await?.len(), 6);

    let open = TokenFilter { state: Some(TokenState::Open), ..TokenFilter::default() };
    assert_eq!(uuids(&list(open.clone(), 100).await?), uuids(&[0, 2, 3, 4, 5].map(|i| issued[i].clone())));
    let deleted_only = TokenFilter { state: Some(TokenState::Deleted), ..TokenFilter::default() };
    assert_eq!(uuids(&list(deleted_only, 100).await?), vec![issued[1].uuid]);

    let clear_1 = TokenFilter { clearstate: Some(1), ..TokenFilter::default() };
    assert_eq!(uuids(&list(clear_1, 100).await?), vec![issued[1].uuid, issued[4].uuid]);

    let one = TokenFilter { uuid: Some(issued[3].uuid), ..TokenFilter::default() };
    assert_eq!(uuids(&list(one, 100).await?), vec![issued[3].uuid]);
    let not_mine = TokenFilter { uuid: Some(foreign.uuid), ..TokenFilter::default() };
    assert_eq!(list(not_mine, 100).await?, vec![]);

    let on_phone = TokenFilter { device: Some(phone), ..TokenFilter::default() };
    assert_eq!(uuids(&list(on_phone, 100).await?), uuids(&[0, 2, 4].map(|i| issued[i].clone())));

    let combined = TokenFilter { state: Some(TokenState::Open), clearstate: Some(0), uuid: None, device: Some(tablet) };
    assert_eq!(uuids(&list(combined, 100).await?), vec![issued[3].uuid]);
    let everything = TokenFilter {
        state: Some(TokenState::Open),
        clearstate: Some(2),
        uuid: Some(issued[5].uuid),
        device: Some(tablet),
    };
    assert_eq!(uuids(&list(everything.clone(), 100).await?), vec![issued[5].uuid]);
    let wrong_device = TokenFilter { device: Some(phone), ..everything };
    assert_eq!(list(wrong_device, 100).await?, vec![]);

    assert_eq!(h.store.list_tokens(stranger.id, &TokenFilter::default(), 100).await?, vec![foreign]);
    assert_eq!(h.store.list_tokens(stranger.id + 1_000, &open, 100).await?, vec![]);
    Ok(())
}

pub async fn customers_access_params(h: Harness) -> anyhow::Result<()> {
    let new = fixtures::new_customer();
    let created = h.store.create_customer(&new).await?;
    assert_eq!(created.email, new.email.to_lowercase());
    assert_eq!(created.display_name, new.display_name);
    assert_eq!(created.roles, "user");
    assert_eq!(created.status, 1);
    assert_eq!(created.info, None);
    assert!(created.created > fixtures::T0, "created is now in epoch ms: {}", created.created);

    assert_eq!(h.store.load_customer(created.id).await?, Some(created.clone()));
    assert_eq!(h.store.load_customer(created.id + 1_000).await?, None);
    assert_eq!(h.store.find_customer_by_email(&new.email.to_uppercase()).await?, Some(created.clone()));
    assert_eq!(h.store.find_customer_by_email("nobody@example.test").await?, None);

    let mut again = new.clone();
    again.email = new.email.to_uppercase();
    let duplicate = h.store.create_customer(&again).await;
    assert!(matches!(duplicate, Err(StoreError::Duplicate("email"))), "{duplicate:?}");

    let admin = h
        .store
        .create_customer(&cashgrid_actors::store::NewCustomer {
            email: "admin@example.test".to_owned(),
            display_name: None,
            roles: "user,admin".to_owned(),
        })
        .await?;
    assert_ne!(admin.id, created.id);
    assert_eq!(admin.roles, "user,admin");
    assert_eq!(admin.display_name, None);

    // Access: the key is stored and found lower-cased; only the secret's hash is kept.
    let apikey = format!("Key-{}", Uuid::new_v4().simple()).to_uppercase();
    let hash = vec![0_u8, 1, 2, 254, 255];
    let access = h.store.create_access(created.id, Scope::CashApi, &apikey, &hash).await?;
    assert_eq!(access.customer_id, created.id);
    assert_eq!(access.scope, Scope::CashApi);
    assert_eq!(access.apikey, apikey.to_lowercase());
    assert_eq!(access.secret_hash, hash);
    assert!(access.created > fixtures::T0);
    assert_eq!(h.store.find_access(&apikey).await?, Some(access.clone()));
    assert_eq!(h.store.find_access(&apikey.to_lowercase()).await?, Some(access.clone()));
    assert_eq!(h.store.find_access("no-such-key").await?, None);
    let duplicate = h.store.create_access(admin.id, Scope::TokenApi, &apikey.to_lowercase(), &hash).await;
    assert!(matches!(duplicate, Err(StoreError::Duplicate("apikey"))), "{duplicate:?}");
    for scope in [Scope::TokenApi, Scope::ClearingApi] {
        let key = format!("k-{}", Uuid::new_v4().simple());
        let access = h.store.create_access(admin.id, scope, &key, b"h").await?;
        assert_eq!(h.store.find_access(&key).await?.map(|found| found.scope), Some(scope));
        assert_eq!(access.scope, scope);
    }

    // Params: JSON values per customer and key, upserted.
    assert_eq!(h.store.load_param(created.id, "USE_PLAIN_CODES").await?, None);
    h.store.save_param(created.id, "USE_PLAIN_CODES", &json!(true)).await?;
    h.store.save_param(created.id, "PARTIAL_CASHOUTS", &json!({ "on": [1, "x"] })).await?;
    assert_eq!(h.store.load_param(created.id, "USE_PLAIN_CODES").await?, Some(json!(true)));
    assert_eq!(h.store.load_param(admin.id, "USE_PLAIN_CODES").await?, None);
    h.store.save_param(created.id, "USE_PLAIN_CODES", &json!(0)).await?;
    assert_eq!(h.store.load_param(created.id, "USE_PLAIN_CODES").await?, Some(json!(0)));
    assert_eq!(h.store.load_param(created.id, "PARTIAL_CASHOUTS").await?, Some(json!({ "on": [1, "x"] })));
    h.store.save_param(created.id, "NULL", &json!(null)).await?;
    assert_eq!(h.store.load_param(created.id, "NULL").await?, Some(json!(null)));
    Ok(())
}

pub async fn devices(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let other = customer(&h).await?;
    let atm = fixtures::device(owner.id, DeviceType::Atm);
    let stored = h.store.insert_device(&atm, None).await?;
    assert!(stored.id > 0);
    assert_eq!(stored, Device { id: stored.id, ..atm.clone() });
    assert_eq!(h.store.load_device(atm.uuid).await?, Some(stored.clone()));
    assert_eq!(h.store.load_device(Uuid::new_v4()).await?, None);

    let duplicate = h.store.insert_device(&Device { customer_id: other.id, ..atm.clone() }, None).await;
    assert!(matches!(duplicate, Err(StoreError::Duplicate("device uuid"))), "{duplicate:?}");

    let bare = Device {
        pubkey: None,
        lat: None,
        lon: None,
        refname: None,
        info: None,
        ..fixtures::device(owner.id, DeviceType::Mobile)
    };
    let bare = h.store.insert_device(&bare, None).await?;
    let register = h.store.insert_device(&fixtures::device(owner.id, DeviceType::CashRegister), None).await?;
    let foreign = h.store.insert_device(&fixtures::device(other.id, DeviceType::Other), None).await?;
    assert!(stored.id < bare.id && bare.id < register.id);

    assert_eq!(h.store.list_devices(owner.id, 100).await?, vec![stored.clone(), bare.clone(), register]);
    assert_eq!(h.store.list_devices(owner.id, 2).await?, vec![stored, bare]);
    assert_eq!(h.store.list_devices(other.id, 100).await?, vec![foreign]);
    assert_eq!(h.store.list_devices(other.id + 1_000, 100).await?, vec![]);

    // Devices of unknown customers are refused (foreign key), not stored.
    let orphan = fixtures::device(other.id + 1_000, DeviceType::Atm);
    assert!(matches!(h.store.insert_device(&orphan, None).await, Err(StoreError::Internal(_))));
    Ok(())
}

pub async fn ping(h: Harness) -> anyhow::Result<()> {
    h.store.ping().await?;
    Ok(())
}

pub async fn large_batch_keeps_set_order(h: Harness) -> anyhow::Result<()> {
    // Many sets in one commit (PostgreSQL pipelines them): the earlier of two sets issuing the
    // same uuid wins, whatever the batch size.
    const HALF: usize = 150;
    let owner = customer(&h).await?;
    let device = Uuid::new_v4();
    let tokens: Vec<Token> = (0..HALF).map(|_| fixtures::token(owner.id, device, None)).collect();
    let twins: Vec<Token> = tokens
        .iter()
        .map(|token| Token { uuid: token.uuid, amount: 1, ..fixtures::token(owner.id, device, None) })
        .collect();
    let sets: Vec<WriteSet> = tokens.iter().chain(&twins).map(insert_set).collect();
    let outcomes = h.store.commit(&sets).await?;
    let mut expected = vec![Committed; HALF];
    expected.extend(vec![Conflict; HALF]);
    assert_eq!(outcomes, expected);
    assert_eq!(h.count_events().await?, i64::try_from(HALF)?);

    // Then a batch of successors, half of them stale.
    let sets: Vec<WriteSet> = tokens
        .iter()
        .enumerate()
        .map(|(index, token)| {
            let successor = next(token, |next| next.clearstate = 1);
            let successor = if index % 2 == 0 { successor } else { next(&successor, |_| {}) };
            update_set(&successor, TokenState::Open)
        })
        .collect();
    let outcomes = h.store.commit(&sets).await?;
    let expected: Vec<WriteOutcome> =
        (0..HALF).map(|index| if index % 2 == 0 { Committed } else { Conflict }).collect();
    assert_eq!(outcomes, expected);
    assert_eq!(h.count_events().await?, i64::try_from(HALF + HALF / 2)?);
    let cleared = TokenFilter { clearstate: Some(1), ..TokenFilter::default() };
    let listed = h.store.list_tokens(owner.id, &cleared, 1_000).await?;
    assert_eq!(listed.len(), HALF / 2);
    assert!(listed.iter().all(|token| token.amount == 5_000 && token.version == 2));
    Ok(())
}

/// A change of entity `id` of the generic tables to `version`, with one event.
fn entity_set(id: &str, version: i64, state: serde_json::Value) -> WriteSet {
    WriteSet {
        entities: vec![EntityCommit {
            kind: "probe",
            id: id.to_owned(),
            version,
            state: state.clone(),
            lookup: vec![("owner", "alice".to_owned())],
            at: 1_000 + version,
            events: vec![json!({ "version": version, "state": state })],
        }],
        ..WriteSet::default()
    }
}

pub async fn entity_changes_commit_in_batches_fenced_by_version(h: Harness) -> anyhow::Result<()> {
    let owner = customer(&h).await?;
    let token = fixtures::full_token(owner.id);
    // Entity and token sets share a batch; each decides for itself.
    let outcomes = h.store.commit(&[entity_set("a", 1, json!({ "n": 1 })), insert_set(&token)]).await?;
    assert_eq!(outcomes, vec![Committed, Committed]);
    // A creation of a taken id and a second successor of one version conflict, whole.
    let outcomes = h
        .store
        .commit(&[
            entity_set("a", 2, json!({ "n": 2 })),
            entity_set("a", 2, json!({ "n": 99 })),
            entity_set("a", 1, json!({ "n": 98 })),
            entity_set("b", 1, json!({ "n": 1 })),
        ])
        .await?;
    assert_eq!(outcomes, vec![Committed, Conflict, Conflict, Committed]);
    // A set whose token write conflicts writes none of its entity changes.
    let mut stale = insert_set(&token);
    stale.entities = entity_set("c", 1, json!({})).entities;
    assert_eq!(h.store.commit(&[stale]).await?, vec![Conflict]);

    let stored = h.store.load_entity("probe", "a").await?.map(|found| (found.version, found.state));
    assert_eq!(stored, Some((2, json!({ "n": 2 }))));
    assert_eq!(h.store.load_entity("probe", "c").await?, None);
    assert_eq!(h.store.load_entity("other_kind", "a").await?, None);
    let events = h.store.entity_events("probe", "a", 10).await?;
    assert_eq!(
        events,
        vec![json!({ "version": 1, "state": { "n": 1 } }), json!({ "version": 2, "state": { "n": 2 } })]
    );
    assert!(h.store.entity_events("probe", "c", 10).await?.is_empty());
    // Found by a lookup column, in id order; a column name that is no plain word is refused.
    let found = h.store.find_entities("probe", "owner", "alice", 10).await?;
    assert_eq!(found.iter().map(|entity| entity.id.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
    assert!(h.store.find_entities("probe", "owner", "bob", 10).await?.is_empty());
    assert!(h.store.find_entities("probe", "owner') OR ('1", "alice", 10).await.is_err());
    Ok(())
}
