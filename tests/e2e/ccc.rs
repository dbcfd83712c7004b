//! The Crypto Capital WebSocket account API (`/ccc/v1`), driven like a client written from
//! the seed document: it signs the challenge with its own Bitcoin key — here with
//! libsecp256k1 (crate `secp256k1`), not the server's implementation — and digests and
//! addresses are computed in this file, from the fact sheet, not with the server's code.

use std::time::Duration;

use base64::Engine as _;
use secp256k1::{Message as Digest, Secp256k1, SecretKey};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::harness::{Backend, TestEnv};
use crate::live_feeds::{FeedClient, Received};

const PATH: &str = "/ccc/v1";

/// A client's key, with the address of its compressed or uncompressed public key.
struct Wallet {
    secret: SecretKey,
    compressed: bool,
}

impl Wallet {
    fn new(compressed: bool) -> Self {
        let secret = loop {
            let bytes: [u8; 32] = rand::random();
            if let Ok(secret) = SecretKey::from_byte_array(bytes) {
                break secret;
            }
        };
        Self { secret, compressed }
    }

    fn public_key(&self) -> Vec<u8> {
        let public = self.secret.public_key(&Secp256k1::new());
        if self.compressed {
            public.serialize().to_vec()
        } else {
            public.serialize_uncompressed().to_vec()
        }
    }

    /// Base58check of 0x00 ‖ RIPEMD-160(SHA-256(key)) (fact sheet §5.3).
    fn address(&self) -> String {
        let hash = ripemd::Ripemd160::digest(Sha256::digest(self.public_key()));
        let mut payload = vec![0u8];
        payload.extend_from_slice(&hash);
        bs58::encode(payload).with_check().into_string()
    }

    /// The 65-byte compact signature of the magic hash, base64 (fact sheet §5.1, §5.2).
    fn sign(&self, message: &str) -> String {
        let mut preimage = b"\x18Bitcoin Signed Message:\n".to_vec();
        assert!(message.len() < 0xFD, "short messages only");
        preimage.push(message.len() as u8);
        preimage.extend_from_slice(message.as_bytes());
        let digest: [u8; 32] = Sha256::digest(Sha256::digest(&preimage)).into();
        let signature = Secp256k1::new().sign_ecdsa_recoverable(Digest::from_digest(digest), &self.secret);
        let (recovery, compact) = signature.serialize_compact();
        let header = if self.compressed { 31 } else { 27 } + i32::from(recovery) as u8;
        let mut bytes = vec![header];
        bytes.extend_from_slice(&compact);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }
}

/// A connected client: the challenge it was sent, the socket, and the unsolicited messages
/// (no nonce) that came while it waited for a reply.
struct Client {
    socket: FeedClient,
    challenge: String,
    unsolicited: std::collections::VecDeque<Value>,
}

impl Client {
    async fn connect(env: &TestEnv) -> Self {
        Self::on(FeedClient::connect(env, PATH).await).await
    }

    async fn on(mut socket: FeedClient) -> Self {
        let first = message(&socket.text().await);
        assert_eq!(first["msg"], "challenge", "the server speaks first: {first}");
        assert!(first.get("nonce").is_none() && first.get("signed").is_none(), "{first}");
        let challenge = first["data"].as_str().expect("a string challenge").to_owned();
        Self { socket, challenge, unsolicited: Default::default() }
    }

    async fn op(&mut self, op: Value) -> Value {
        message(&self.op_text(op).await)
    }

    /// The reply as the text it came as (its `data` is what `signed` signs). An op with a nonce
    /// takes the first message carrying it (keeping unsolicited ones for later); one without
    /// takes the next message.
    async fn op_text(&mut self, op: Value) -> String {
        let nonce = op.get("nonce").cloned();
        self.socket.send_text(op.to_string()).await;
        self.reply(nonce.as_ref()).await
    }

    async fn reply(&mut self, nonce: Option<&Value>) -> String {
        loop {
            let text = self.socket.text().await;
            let parsed = message(&text);
            match (nonce, parsed.get("nonce")) {
                (Some(wanted), Some(got)) if wanted == got => return text,
                (Some(_), None) => self.unsolicited.push_back(parsed),
                // A late message of an earlier op that sent several (history).
                (Some(_), Some(_)) => {}
                (None, _) => return text,
            }
        }
    }

    /// The next unsolicited message of type `msg` (earlier ones of other types are dropped).
    async fn unsolicited(&mut self, msg: &str) -> Value {
        loop {
            let next = match self.unsolicited.pop_front() {
                Some(next) => next,
                None => message(&self.socket.text().await),
            };
            assert!(next.get("nonce").is_none(), "unsolicited messages carry no nonce: {next}");
            if next["msg"] == msg {
                return next;
            }
        }
    }

    async fn auth(&mut self, wallet: &Wallet) -> Value {
        let signature = wallet.sign(&self.challenge);
        self.op(json!({"op": "auth", "nonce": 1, "params": {"key": wallet.address(), "signature": signature}})).await
    }
}

fn message(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// The `data` of a signed message as the exact text it was sent as: between `"data":` and
/// the `signed` field, which comes last (JavaScript's JSON.stringify of the parsed object gives
/// the same text; a map without insertion order would not).
fn data_text(text: &str) -> &str {
    let start = text.find(r#","data":"#).expect("a data field") + r#","data":"#.len();
    let end = text.rfind(r#","signed":""#).expect("a signed field");
    &text[start..end]
}

fn assert_error(reply: &Value, nonce: Option<i64>, contains: &str) {
    assert_eq!(reply["msg"], "error", "{reply}");
    assert_eq!(reply.get("nonce").and_then(Value::as_i64), nonce, "{reply}");
    assert!(reply["data"].as_str().is_some_and(|text| text.contains(contains)), "{reply} mentions {contains}");
    assert!(reply.get("signed").is_none(), "errors are not signed: {reply}");
}

pub async fn a_bitcoin_key_authenticates_registers_and_reads_its_account(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let wallet = Wallet::new(false);
    let mut client = Client::connect(&env).await;
    assert_eq!(client.challenge.len(), 16);

    // Before auth: an error, the connection stays open; malformed frames too.
    assert_error(&client.op(json!({"op": "getinfo", "nonce": 2})).await, Some(2), "Not authenticated");
    client.socket.send_text("{not json".into()).await;
    assert_error(&message(&client.socket.text().await), None, "Malformed");

    // A signature of another connection's challenge, or by another key, is refused.
    let other = Client::connect(&env).await;
    let replayed = wallet.sign(&other.challenge);
    let refused =
        client.op(json!({"op": "auth", "nonce": 3, "params": {"key": wallet.address(), "signature": replayed}})).await;
    assert_error(&refused, Some(3), "Invalid signature");
    let stranger = Wallet::new(true);
    let signature = wallet.sign(&client.challenge);
    let refused = client
        .op(json!({"op": "auth", "nonce": 4, "params": {"key": stranger.address(), "signature": signature}}))
        .await;
    assert_error(&refused, Some(4), "Invalid signature");
    // A tampered signature.
    let mut tampered = base64::engine::general_purpose::STANDARD.decode(&signature).unwrap();
    tampered[40] ^= 1;
    let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
    let refused =
        client.op(json!({"op": "auth", "nonce": 5, "params": {"key": wallet.address(), "signature": tampered}})).await;
    assert_error(&refused, Some(5), "Invalid signature");

    let authenticated = client.auth(&wallet).await;
    assert_eq!(authenticated, json!({"msg": "auth", "nonce": 1, "data": "User Authenticated"}));

    // Any address may authenticate; one that has not registered is told so.
    let info = client.op(json!({"op": "getinfo", "nonce": 6})).await;
    assert_eq!((info["msg"].clone(), info["nonce"].clone()), (json!("account"), json!(6)));
    assert_eq!(info["data"]["isRegistered"], false);
    assert_error(&client.op(json!({"op": "balance", "nonce": 7})).await, Some(7), "Not registered");
    assert_error(&client.op(json!({"op": "setinfo", "params": {"email": "a@b.co"}})).await, None, "Not registered");

    // register: fields checked, then the account.
    let bad = client
        .op(json!({"op": "register", "nonce": 8, "params": {"name": "Ada", "email": "ada", "country": "PA", "currency": "USD"}}))
        .await;
    assert_error(&bad, Some(8), "Invalid email");
    let unknown = client
        .op(json!({"op": "register", "nonce": 9, "params": {"name": "Ada", "email": "ada@example.com", "country": "PA", "currency": "XYZ"}}))
        .await;
    assert_error(&unknown, Some(9), "Invalid currency");
    let registered_text = client
        .op_text(json!({"op": "register", "nonce": 10, "params": {
            "name": "Ada Lovelace", "email": "ada@example.com", "country": "PA", "currency": "USD",
            "phone": "+5071231234"}}))
        .await;
    let registered = message(&registered_text);
    assert_eq!((registered["msg"].clone(), registered["nonce"].clone()), (json!("register"), json!(10)));
    let data = &registered["data"];
    assert_eq!(data["name"], "Ada Lovelace");
    assert_eq!((data["isRegistered"].clone(), data["isVerified"].clone()), (json!(true), json!(false)));
    assert_eq!(data["accounts"], json!([{"currency": "USD", "balance": "0.00"}]));
    assert_server_signed(&env, &registered_text).await;
    let again = client
        .op(json!({"op": "register", "nonce": 11, "params": {"name": "Eve", "email": "eve@example.com", "country": "PA", "currency": "USD"}}))
        .await;
    assert_error(&again, Some(11), "Already registered");

    // setinfo changes only what it names; getinfo and balance read it back.
    let changed = client.op(json!({"op": "setinfo", "nonce": 12, "params": {"email": "ada@example.org"}})).await;
    assert_eq!(
        (changed["msg"].clone(), changed["data"]["email"].clone()),
        (json!("account"), json!("ada@example.org"))
    );
    assert_eq!(changed["data"]["name"], "Ada Lovelace");
    let info = client.op(json!({"op": "getinfo"})).await;
    assert!(info.get("nonce").is_none(), "no nonce sent, none echoed: {info}");
    assert_eq!(info["data"]["email"], "ada@example.org");
    let balance_text = client.op_text(json!({"op": "balance", "nonce": 13})).await;
    let balance = message(&balance_text);
    assert_eq!((balance["msg"].clone(), balance["data"].clone()), (json!("balance"), json!({"USD": "0.00"})));
    assert_server_signed(&env, &balance_text).await;
    let eur = client.op(json!({"op": "balance", "nonce": 14, "params": {"currency": "EUR"}})).await;
    assert_eq!(eur["data"], json!({"EUR": "0.00"}));

    // Unknown ops and repeated auth are errors; the connection stays open through all of it.
    assert_error(&client.op(json!({"op": "withdraw", "nonce": 15})).await, Some(15), "Unknown op");
    assert_error(&client.auth(&wallet).await, Some(1), "Already authenticated");
    assert_eq!(client.op(json!({"op": "getinfo", "nonce": 16})).await["nonce"], 16);

    // The registration is durable: a new connection (after a restart) reads it.
    drop(client);
    let mut env = env;
    env.kill_and_restart().await;
    let mut client = Client::connect(&env).await;
    client.auth(&wallet).await;
    let info = client.op(json!({"op": "getinfo", "nonce": 17})).await;
    assert_eq!(info["data"]["email"], "ada@example.org");
}

/// What the server printed at start after `prefix` (its signing address, its listeners).
fn printed(env: &TestEnv, prefix: &str) -> String {
    let logs = std::fs::read_dir(&env.store.logs_dir).expect("the test's log directory");
    logs.filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".stdout.log"))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|log| log.lines().find_map(|line| line.strip_prefix(prefix).map(str::to_owned)))
        .unwrap_or_else(|| panic!("the server prints '{prefix}…'"))
}

/// The address the server says it signs with.
fn server_address(env: &TestEnv) -> String {
    printed(env, "cashgrid ccc messages are signed by ")
}

/// `signed` is a Bitcoin message signature of the exact `data` text by the server's key: the
/// key it recovers has the address the server published.
async fn assert_server_signed(env: &TestEnv, text: &str) {
    let raw = message(text);
    let data = data_text(text);
    let signature = raw["signed"].as_str().expect("a signed message");
    let bytes = base64::engine::general_purpose::STANDARD.decode(signature).expect("base64");
    assert_eq!(bytes.len(), 65);
    assert!((31..=34).contains(&bytes[0]), "a compressed key's header: {}", bytes[0]);
    let recovery = secp256k1::ecdsa::RecoveryId::try_from(i32::from(bytes[0] - 31)).expect("recovery id");
    let signature = secp256k1::ecdsa::RecoverableSignature::from_compact(&bytes[1..], recovery).expect("compact");
    let mut preimage = b"\x18Bitcoin Signed Message:\n".to_vec();
    let length = data.len();
    if length < 0xFD {
        preimage.push(length as u8);
    } else {
        preimage.push(0xFD);
        preimage.extend_from_slice(&(length as u16).to_le_bytes());
    }
    preimage.extend_from_slice(data.as_bytes());
    let digest: [u8; 32] = Sha256::digest(Sha256::digest(&preimage)).into();
    let key = Secp256k1::new().recover_ecdsa(Digest::from_digest(digest), &signature).expect("recovers a key");
    let verified =
        Secp256k1::verification_only().verify_ecdsa(Digest::from_digest(digest), &signature.to_standard(), &key);
    assert!(verified.is_ok(), "the signature verifies for the key it recovers");
    let hash = ripemd::Ripemd160::digest(Sha256::digest(key.serialize()));
    let mut payload = vec![0u8];
    payload.extend_from_slice(&hash);
    assert_eq!(bs58::encode(payload).with_check().into_string(), server_address(env), "signed by the server");
    // A changed byte of data no longer recovers the server's key.
    let mut forged = preimage.clone();
    let last = forged.len() - 2;
    forged[last] ^= 1;
    let digest: [u8; 32] = Sha256::digest(Sha256::digest(&forged)).into();
    let other = Secp256k1::new().recover_ecdsa(Digest::from_digest(digest), &signature).map(|key| key.serialize());
    assert_ne!(other.ok(), Some(key.serialize()), "the signature covers the data");
}

pub async fn abuse_closes_the_connection_and_nothing_else(backend: Backend) {
    let env = TestEnv::start_with(backend, &["--ccc-bind", "127.0.0.1:0"]).await;
    // The API also answers at the root of a listener of its own, as the original's host did.
    let root = format!("ws://{}/", printed(&env, "cashgrid ccc listening on ws://"));
    let mut at_root = Client::on(FeedClient::connect_url(&root, &[]).await).await;
    assert_eq!(at_root.auth(&Wallet::new(false)).await["data"], "User Authenticated");
    drop(at_root);
    let wallet = Wallet::new(true);
    let mut client = Client::connect(&env).await;
    for attempt in 1..=5 {
        let refused = client
            .op(json!({"op": "auth", "nonce": attempt, "params": {"key": wallet.address(), "signature": "AAAA"}}))
            .await;
        assert_error(&refused, Some(attempt), "Invalid signature");
    }
    match client.socket.receive(Duration::from_secs(10)).await {
        Some(Received::Close(Some(reason))) => assert_eq!(u16::from(reason.code), 1008, "policy violation"),
        other => panic!("expected a close after five failed auths, got {other:?}"),
    }
    // Another connection is served as ever, and a too-large frame closes only its own.
    let mut big = Client::connect(&env).await;
    big.socket.send_text(format!(r#"{{"op":"getinfo","params":{{"x":"{}"}}}}"#, "x".repeat(20_000))).await;
    match big.socket.receive(Duration::from_secs(10)).await {
        Some(Received::Close(_)) | Some(Received::Ended) => {}
        other => panic!("expected a close for an oversized frame, got {other:?}"),
    }
    let mut fine = Client::connect(&env).await;
    assert_eq!(fine.auth(&wallet).await["data"], "User Authenticated");
    // One address holds at most 64 authenticated sockets on a node; an ended one makes room.
    let mut held = vec![fine];
    while held.len() < 64 {
        let mut client = Client::connect(&env).await;
        assert_eq!(client.auth(&wallet).await["data"], "User Authenticated", "socket {}", held.len() + 1);
        held.push(client);
    }
    let mut one_more = Client::connect(&env).await;
    assert_error(&one_more.auth(&wallet).await, Some(1), "Too many sockets for this address");
    held.pop();
    let mut room = Client::connect(&env).await;
    let mut authenticated = false;
    for _ in 0..50 {
        // The ended socket is counted out once the server has seen it close.
        let answer = room.auth(&wallet).await;
        if answer["msg"] == "auth" {
            authenticated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(authenticated, "an ended socket makes room");
    drop(one_more);
    let metrics = env.api.get_anonymous("/metrics").await;
    let sample = |series: &str| crate::api::sample(&metrics.text, series).unwrap_or(0.0);
    assert!(sample(r#"cashgrid_ccc_auths_total{result="refused"}"#) >= 5.0, "auth refusals counted");
    assert!(sample(r#"cashgrid_ccc_refused_sockets_total{reason="per_address"}"#) >= 1.0, "socket refusals counted");
    assert!(metrics.text.contains(r#"cashgrid_ccc_op_duration_seconds_count{op="auth"}"#), "op latencies");
}

/// A registered user on a connection of its own.
async fn registered(env: &TestEnv, wallet: &Wallet, name: &str) -> Client {
    let mut client = Client::connect(env).await;
    assert_eq!(client.auth(wallet).await["data"], "User Authenticated");
    let email = format!("{}@example.com", name.to_lowercase());
    let reply = client
        .op(json!({"op": "register", "params": {"name": name, "email": email, "country": "PA", "currency": "USD"}}))
        .await;
    assert_eq!(reply["msg"], "register", "{reply}");
    client
}

async fn usd(client: &mut Client) -> String {
    let balance = client.op(json!({"op": "balance", "nonce": 99, "params": {"currency": "USD"}})).await;
    balance["data"]["USD"].as_str().unwrap_or_else(|| panic!("a USD balance: {balance}")).to_owned()
}

const BANK_IBAN: &str = "DE44500105175407324931";

/// `cashgrid ccc deposit` of USD from the bank's IBAN, under `reference` when given.
fn deposit_args<'a>(address: &'a str, amount: &'a str, reference: Option<&'a str>) -> Vec<&'a str> {
    let mut args = vec!["ccc", "deposit", "--address", address, "--currency", "USD", "--amount", amount];
    args.extend(["--from-iban", BANK_IBAN]);
    if let Some(reference) = reference {
        args.extend(["--reference", reference]);
    }
    args
}

/// A deposit booked by the operator's CLI; its printed answer.
fn deposit(env: &TestEnv, address: &str, amount: &str, reference: Option<&str>) -> Value {
    env.cli_json(&deposit_args(address, amount, reference))
}

pub async fn deposits_and_transfers_move_money_and_history_replays_them(backend: Backend) {
    let env = TestEnv::start(backend).await;
    let (alice_key, bob_key) = (Wallet::new(false), Wallet::new(true));
    let mut alice = registered(&env, &alice_key, "Alice").await;
    let mut bob = registered(&env, &bob_key, "Bob").await;

    // The operator books a bank payment; the same bank reference again credits nothing.
    let address = alice_key.address();
    let booked = deposit(&env, &address, "100.00", Some("bank-1"));
    assert_eq!((booked["result"].clone(), booked["amount"].clone()), (json!("booked"), json!("100.00")));
    let again = deposit(&env, &address, "100.00", Some("bank-1"));
    assert_eq!((again["result"].clone(), again["txid"].clone()), (json!("already_booked"), booked["txid"].clone()));
    let stranger = Wallet::new(true).address();
    let refused = env.cli_unchecked(&deposit_args(&stranger, "1", None));
    assert!(!refused.status.success(), "a deposit to an unregistered address is refused");
    // Alice, online, is told at once: the transfer from the bank's IBAN, then her balances.
    let told = alice.unsolicited("transfer").await;
    assert_eq!((told["data"]["sender"].clone(), told["data"]["amount"].clone()), (json!(BANK_IBAN), json!("100.00")));
    assert_eq!(told["data"]["txid"], booked["txid"]);
    let fresh = alice.unsolicited("account").await;
    assert_eq!(fresh["data"]["accounts"], json!([{"currency": "USD", "balance": "100.00"}]));
    assert!(fresh["signed"].is_string());
    assert_eq!(usd(&mut alice).await, "100.00");

    // A transfer to another user: one ledger transfer, answered with its nonce and signed.
    let text = alice
        .op_text(json!({"op": "transfer", "nonce": 4, "params": {"recipient": bob_key.address(), "currency": "USD", "amount": "30.50"}}))
        .await;
    let sent = message(&text);
    assert_eq!((sent["msg"].clone(), sent["nonce"].clone()), (json!("transfer"), json!(4)), "{sent}");
    let data = &sent["data"];
    assert_eq!((data["sender"].clone(), data["destination"].clone()), (json!(address), json!(bob_key.address())));
    assert_eq!((data["currency"].clone(), data["amount"].clone()), (json!("USD"), json!("30.50")));
    assert_eq!((data["isCompleted"].clone(), data["isFailed"].clone()), (json!(true), json!(false)));
    assert!(data.get("status").is_none(), "an internal transfer has no status: {data}");
    assert_server_signed(&env, &text).await;
    // Bob is told at once with the same data, without a nonce; Alice gets no copy of her own.
    let received = bob.unsolicited("transfer").await;
    assert_eq!(received["data"], sent["data"]);
    assert_eq!(bob.unsolicited("account").await["data"]["accounts"], json!([{"currency": "USD", "balance": "30.50"}]));
    assert_eq!(
        alice.unsolicited("account").await["data"]["accounts"],
        json!([{"currency": "USD", "balance": "69.50"}])
    );
    // `destination` (the seed's name) and a number amount work too.
    let sent = alice
        .op(json!({"op": "transfer", "nonce": 5, "params": {"destination": bob_key.address(), "currency": "USD", "amount": 1.5}}))
        .await;
    assert_eq!(sent["data"]["amount"], "1.50", "{sent}");

    // Refusals change nothing.
    let refusals = [
        (json!({"currency": "USD", "amount": "0.001"}), "decimal places"),
        (json!({"currency": "USD", "amount": "-1"}), "Invalid amount"),
        (json!({"currency": "USD", "amount": 0}), "positive"),
        (json!({"currency": "USD", "amount": "1000"}), "Insufficient funds"),
        (json!({"currency": "XYZ", "amount": "1"}), "Unknown currency"),
        (json!({"currency": "USD", "amount": true}), "amount must be"),
    ];
    for (params, why) in refusals {
        let mut params = params;
        params["recipient"] = json!(bob_key.address());
        assert_error(&alice.op(json!({"op": "transfer", "nonce": 6, "params": params})).await, Some(6), why);
    }
    let unknown = alice
        .op(json!({"op": "transfer", "nonce": 7, "params": {"recipient": stranger, "currency": "USD", "amount": "1"}}))
        .await;
    assert_error(&unknown, Some(7), "Unknown recipient");
    assert_eq!((usd(&mut alice).await, usd(&mut bob).await), ("68.00".to_owned(), "32.00".to_owned()));

    // history replays every transfer, oldest first, each as a `transfer` with the op's nonce.
    alice.socket.send_text(json!({"op": "history", "nonce": 9}).to_string()).await;
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed.push(message(&alice.reply(Some(&json!(9))).await));
    }
    assert!(replayed.iter().all(|m| m["msg"] == "transfer" && m["nonce"] == 9), "{replayed:?}");
    assert_eq!(replayed[0]["data"]["sender"], BANK_IBAN, "a deposit's sender is the originating IBAN");
    assert_eq!(replayed[0]["data"]["txid"], booked["txid"]);
    assert_eq!(replayed[1]["data"]["amount"], "30.50");
    assert_eq!(replayed[2]["data"]["amount"], "1.50");
    let last = alice.op(json!({"op": "history", "nonce": 10, "params": {"limit": 1}})).await;
    assert_eq!(last["data"]["amount"], "1.50");
    let since_op = json!({"op": "history", "nonce": 11, "params": {"sinceTransaction": replayed[1]["data"]["txid"]}});
    alice.socket.send_text(since_op.to_string()).await;
    let since = [message(&alice.reply(Some(&json!(11))).await), message(&alice.reply(Some(&json!(11))).await)];
    assert_eq!(
        (since[0]["data"]["amount"].clone(), since[1]["data"]["amount"].clone()),
        (json!("30.50"), json!("1.50"))
    );
    // A deposit made while Bob was away is replayed exactly as it would have come live.
    drop(bob);
    let bob_address = bob_key.address();
    let offline = deposit(&env, &bob_address, "5", Some("bank-2"));
    let mut bob = Client::connect(&env).await;
    bob.auth(&bob_key).await;
    let replay = bob.op(json!({"op": "history", "nonce": 12, "params": {"limit": 1}})).await;
    assert_eq!(replay["data"]["txid"], offline["txid"]);
    assert_eq!((replay["data"]["sender"].clone(), replay["data"]["amount"].clone()), (json!(BANK_IBAN), json!("5.00")));
    // Bob's history shows what he received, as it happened.
    let bobs = bob.op(json!({"op": "history", "nonce": 13, "params": {"limit": 2}})).await;
    assert_eq!((bobs["data"]["sender"].clone(), bobs["data"]["amount"].clone()), (json!(address), json!("1.50")));

    // 32 concurrent transfers of 10.00 from Alice's 68.00: six go through, none overdraws.
    let mut clients = Vec::new();
    for _ in 0..32 {
        let mut client = Client::connect(&env).await;
        client.auth(&alice_key).await;
        clients.push(client);
    }
    let recipient = bob_key.address();
    let answers = futures_util::future::join_all(clients.iter_mut().enumerate().map(|(nonce, client)| {
        client.op(json!({"op": "transfer", "nonce": nonce, "params": {"recipient": recipient, "currency": "USD", "amount": "10"}}))
    }))
    .await;
    let accepted = answers.iter().filter(|answer| answer["msg"] == "transfer").count();
    assert_eq!(accepted, 6, "{answers:?}");
    assert!(answers.iter().all(|a| a["msg"] == "transfer" || a["data"] == "Insufficient funds"), "{answers:?}");
    assert_eq!((usd(&mut alice).await, usd(&mut bob).await), ("8.00".to_owned(), "97.00".to_owned()));
}

const PAYEE_IBAN: &str = "DE89370400440532013000";

pub async fn payouts_to_an_iban_are_held_then_complete_fail_or_time_out(backend: Backend) {
    let env = TestEnv::start_with_env(
        backend,
        &[],
        &[("CASHGRID_CCC_PAYOUT_TIMEOUT_MS", "1500"), ("CASHGRID_EXPIRY_INTERVAL_MS", "200")],
    )
    .await;
    let (alice_key, bob_key) = (Wallet::new(true), Wallet::new(false));
    let mut alice = registered(&env, &alice_key, "Alice").await;
    let mut bob = registered(&env, &bob_key, "Bob").await;
    let address = alice_key.address();
    deposit(&env, &address, "50", None);
    let bob_address = bob_key.address();
    deposit(&env, &bob_address, "5", None);

    assert_eq!(alice.unsolicited("transfer").await["data"]["amount"], "50.00", "the deposit, told");

    // Only a verified user sends to an IBAN; verifying gives it an IBAN of its own.
    let payout = |nonce: i64, amount: &str| json!({"op": "transfer", "nonce": nonce, "params": {"recipient": PAYEE_IBAN, "currency": "USD", "amount": amount}});
    assert_error(&bob.op(payout(1, "1")).await, Some(1), "Not verified");
    let verified = env.cli_json(&["ccc", "verify", "--address", &address]);
    let iban = verified["iban"].as_str().expect("an IBAN").to_owned();
    assert!(iban.starts_with("DE") && iban.len() == 22, "{verified}");
    assert_eq!(alice.op(json!({"op": "getinfo", "nonce": 2})).await["data"]["iban"], json!(iban));
    let again = env.cli_unchecked(&["ccc", "verify", "--address", &address]);
    assert!(!again.status.success(), "verified once");
    let invalid = alice
        .op(json!({"op": "transfer", "nonce": 3, "params": {"recipient": "DE00370400440532013000", "currency": "USD", "amount": "1"}}))
        .await;
    assert_error(&invalid, Some(3), "Invalid IBAN");

    // Pending at once: the money is held (not spendable), the reply says so.
    let pending = alice.op(json!({"op": "transfer", "nonce": 4, "params": {"destination": "DE89 3704 0044 0532 0130 00", "currency": "USD", "amount": "10.00"}})).await;
    let data = &pending["data"];
    assert_eq!(
        (data["status"].clone(), data["isCompleted"].clone(), data["isFailed"].clone()),
        (json!("pending"), json!(false), json!(false)),
        "{pending}"
    );
    assert_eq!((data["destination"].clone(), data["sender"].clone()), (json!(PAYEE_IBAN), json!(address)));
    let txid = data["txid"].as_str().unwrap().to_owned();
    assert_eq!(usd(&mut alice).await, "40.00");
    // The bank pays it: the user is told, with the same txid and no nonce.
    let settled = env.cli_json(&["ccc", "settle", "--transfer", &txid, "--outcome", "complete"]);
    assert_eq!((settled["result"].clone(), settled["status"].clone()), (json!("settled"), json!("complete")));
    let complete = alice.unsolicited("transfer").await;
    assert_eq!(
        (complete["data"]["txid"].clone(), complete["data"]["status"].clone()),
        (json!(txid), json!("complete"))
    );
    assert_eq!(
        (complete["data"]["isCompleted"].clone(), complete["data"]["isFailed"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(usd(&mut alice).await, "40.00");
    let twice = env.cli_json(&["ccc", "settle", "--transfer", &txid, "--outcome", "complete"]);
    assert_eq!(twice["result"], "already_settled");
    let otherwise = env.cli_unchecked(&["ccc", "settle", "--transfer", &txid, "--outcome", "failed"]);
    assert!(!otherwise.status.success(), "a paid payout cannot fail");

    // The bank refuses one: the money comes back, the user is told why.
    let second = alice.op(payout(5, "5")).await;
    let second_txid = second["data"]["txid"].as_str().unwrap().to_owned();
    assert_eq!(usd(&mut alice).await, "35.00");
    env.cli_json(&["ccc", "settle", "--transfer", &second_txid, "--outcome", "failed", "--message", "account closed"]);
    let failed = alice.unsolicited("transfer").await;
    assert_eq!(
        (failed["data"]["status"].clone(), failed["data"]["message"].clone()),
        (json!("failed"), json!("account closed"))
    );
    assert_eq!((failed["data"]["isCompleted"].clone(), failed["data"]["isFailed"].clone()), (json!(true), json!(true)));
    assert_eq!(usd(&mut alice).await, "40.00");

    // No answer from the bank in time: it fails by itself.
    let third = alice.op(payout(6, "1.25")).await;
    let third_txid = third["data"]["txid"].clone();
    let timed_out = alice.unsolicited("transfer").await;
    assert_eq!(timed_out["data"]["txid"], third_txid);
    assert_eq!(
        (timed_out["data"]["status"].clone(), timed_out["data"]["message"].clone()),
        (json!("failed"), json!("timed out"))
    );
    assert_eq!(usd(&mut alice).await, "40.00");

    // history replays each step as it was sent live.
    alice.socket.send_text(json!({"op": "history", "nonce": 7}).to_string()).await;
    let mut steps = Vec::new();
    for _ in 0..7 {
        let step = message(&alice.reply(Some(&json!(7))).await);
        steps.push((
            step["data"]["status"].as_str().unwrap_or("-").to_owned(),
            step["data"]["amount"].as_str().unwrap().to_owned(),
        ));
    }
    let expected = [
        ("-", "50.00"),
        ("pending", "10.00"),
        ("complete", "10.00"),
        ("pending", "5.00"),
        ("failed", "5.00"),
        ("pending", "1.25"),
        ("failed", "1.25"),
    ];
    assert_eq!(steps, expected.map(|(status, amount)| (status.to_owned(), amount.to_owned())));
}

fn code(reply: &crate::api::Reply) -> &str {
    reply.json["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code: {}", reply.describe()))
}

pub async fn the_operator_api_books_deposits_verifies_users_and_settles_payouts(backend: Backend) {
    let env = TestEnv::start(backend).await;
    env.customer("ops@example.com");
    let operator = env.access("ops@example.com", "ledger-operator");
    let customer = env.access("ops@example.com", "ledger-api");
    let alice_key = Wallet::new(true);
    let mut alice = registered(&env, &alice_key, "Alice").await;
    let address = alice_key.address();

    // Public: the address that signs.
    let signer = env.api.get_anonymous("/ccc/v1/server-address").await;
    signer.assert_status(200);
    assert_eq!(signer.json["address"], json!(server_address(&env)));

    // A deposit: 201 once, 200 for the same bank reference again; the user is told.
    let deposit =
        json!({"address": address, "currency": "USD", "amount": "20.00", "from_iban": BANK_IBAN, "reference": "r-1"});
    let booked = env.api.post("/ccc/v1/operator/deposits", &operator, deposit.clone()).await;
    booked.assert_status(201);
    assert_eq!((booked.json["result"].clone(), booked.json["amount"].clone()), (json!("booked"), json!("20.00")));
    let again = env.api.post("/ccc/v1/operator/deposits", &operator, deposit.clone()).await;
    again.assert_status(200);
    assert_eq!(
        (again.json["result"].clone(), again.json["txid"].clone()),
        (json!("already_booked"), booked.json["txid"].clone())
    );
    assert_eq!(alice.unsolicited("transfer").await["data"]["txid"], booked.json["txid"]);
    assert_eq!(usd(&mut alice).await, "20.00");

    // Mistakes are 4xx in the Ledger API's format, and change nothing.
    let refusals = [
        (json!({"address": "1nope", "currency": "USD", "amount": "1", "from_iban": BANK_IBAN}), 400, "invalid_request"),
        (
            json!({"address": address, "currency": "USD", "amount": "1.001", "from_iban": BANK_IBAN}),
            400,
            "invalid_request",
        ),
        (
            json!({"address": address, "currency": "XYZ", "amount": "1", "from_iban": BANK_IBAN}),
            400,
            "unknown_currency",
        ),
        (json!({"address": address, "currency": "USD", "amount": "1", "from_iban": "DE00"}), 400, "invalid_request"),
        (
            json!({"address": Wallet::new(true).address(), "currency": "USD", "amount": "1", "from_iban": BANK_IBAN}),
            404,
            "not_found",
        ),
        (
            json!({"address": address, "currency": "USD", "amount": "2", "from_iban": BANK_IBAN, "reference": "r-1"}),
            422,
            "refused",
        ),
        (json!({"address": address, "currency": "USD", "amount": 1, "from_iban": BANK_IBAN}), 400, "invalid_request"),
    ];
    for (body, status, expected) in refusals {
        let reply = env.api.post("/ccc/v1/operator/deposits", &operator, body).await;
        reply.assert_status(status);
        assert_eq!(code(&reply), expected, "{}", reply.describe());
    }
    let not_operator = env.api.post("/ccc/v1/operator/deposits", &customer, deposit.clone()).await;
    not_operator.assert_status(403);
    assert_eq!(
        env.api
            .request(awc::http::Method::POST, "/ccc/v1/operator/deposits", None, crate::api::Body::Json(deposit))
            .await
            .status
            .as_u16(),
        401
    );
    assert_eq!(usd(&mut alice).await, "20.00");

    // KYC once; then a payout, settled as failed with a reason, once.
    let verify = format!("/ccc/v1/operator/users/{address}/verify");
    let verified = env.api.post(&verify, &operator, json!({})).await;
    verified.assert_status(200);
    assert!(verified.json["iban"].as_str().is_some_and(|iban| iban.starts_with("DE")), "{}", verified.describe());
    let twice = env.api.post(&verify, &operator, json!({})).await;
    twice.assert_status(409);
    assert_eq!(code(&twice), "already_verified");
    let unknown = env
        .api
        .post(&format!("/ccc/v1/operator/users/{}/verify", Wallet::new(false).address()), &operator, json!({}))
        .await;
    unknown.assert_status(404);
    let payout = alice
        .op(json!({"op": "transfer", "nonce": 2, "params": {"recipient": PAYEE_IBAN, "currency": "USD", "amount": "7"}}))
        .await;
    let txid = payout["data"]["txid"].as_str().unwrap().to_owned();
    let settle = format!("/ccc/v1/operator/payouts/{txid}/settle");
    let failed = env.api.post(&settle, &operator, json!({"outcome": "failed", "message": "name mismatch"})).await;
    failed.assert_status(200);
    assert_eq!(
        (failed.json["status"].clone(), failed.json["message"].clone()),
        (json!("failed"), json!("name mismatch"))
    );
    let told = alice.unsolicited("transfer").await;
    assert_eq!(
        (told["data"]["status"].clone(), told["data"]["message"].clone()),
        (json!("failed"), json!("name mismatch"))
    );
    let same = env.api.post(&settle, &operator, json!({"outcome": "failed", "message": "name mismatch"})).await;
    assert_eq!((same.status.as_u16(), same.json["result"].clone()), (200, json!("already_settled")));
    let otherwise = env.api.post(&settle, &operator, json!({"outcome": "complete"})).await;
    otherwise.assert_status(409);
    assert_eq!(code(&otherwise), "settled_otherwise");
    let nothing = env
        .api
        .post(
            &format!("/ccc/v1/operator/payouts/{}/settle", booked.json["txid"].as_str().unwrap()),
            &operator,
            json!({"outcome": "complete"}),
        )
        .await;
    nothing.assert_status(404);
    let bad = env.api.post(&settle, &operator, json!({"outcome": "maybe"})).await;
    bad.assert_status(400);
    assert_eq!(usd(&mut alice).await, "20.00");
}

pub async fn notifications_reach_a_users_sockets_on_every_node(backend: Backend) {
    let mut env = TestEnv::start(backend).await;
    let (node_b, _api_b) = env.start_another_node(&[]).await;
    let on_b = format!("{}{PATH}", node_b.base_url.replacen("http", "ws", 1));
    let (alice_key, bob_key) = (Wallet::new(true), Wallet::new(false));
    let mut alice = registered(&env, &alice_key, "Alice").await;
    let mut bob = registered(&env, &bob_key, "Bob").await;
    // A second socket of Bob's, on the other node.
    let mut bob_b = Client::on(FeedClient::connect_url(&on_b, &[]).await).await;
    assert_eq!(bob_b.auth(&bob_key).await["data"], "User Authenticated");
    let address = alice_key.address();
    deposit(&env, &address, "10", None);
    let sent = alice
        .op(json!({"op": "transfer", "nonce": 1, "params": {"recipient": bob_key.address(), "currency": "USD", "amount": "2.50"}}))
        .await;
    // Both of Bob's sockets are told, with the same data as Alice's reply, in order.
    for socket in [&mut bob, &mut bob_b] {
        let told = socket.unsolicited("transfer").await;
        assert_eq!(told["data"], sent["data"]);
        let fresh = socket.unsolicited("account").await;
        assert_eq!(fresh["data"]["accounts"], json!([{"currency": "USD", "balance": "2.50"}]));
    }
    drop(node_b);
}
