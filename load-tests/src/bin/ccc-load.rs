//! Load on the Crypto Capital WebSocket API (`/ccc/v1`): many users, each on a socket of its
//! own, transferring to each other. Set-up first: every user authenticates with a Bitcoin key
//! of its own, registers, and is funded by a bank deposit through the operator API. Then each
//! socket sends `transfer` ops in a closed loop (or at `--rate` ops/s in total) for
//! `--seconds`, to random other users, and waits for each reply (by nonce); the notifications
//! every transfer sends to its recipient's socket arrive meanwhile and are read and dropped.
//! Every reply must be a `transfer`; anything else counts as a failure.
//!
//!   ccc-load --host http://127.0.0.1:8080 --apikey K --apisecret S [--users 64] [--seconds 15]
//!            [--rate OPS] [--summary out.json]
//!
//! Prints, and writes with `--summary`: transfers/s, p50/p99 latency per transfer, failures.
//! Loopback only, bounded by `--seconds`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use k256::ecdsa::SigningKey;
use rand::Rng as _;
use ripemd::Ripemd160;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Most users (sockets) one run opens.
const USERS_MAX: usize = 2_000;
/// Longest one reply may take before the op counts as failed.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// What each user is funded with, and what one transfer moves (USD).
const FUNDING: &str = "1000000.00";
const AMOUNT: &str = "0.01";

#[derive(Parser)]
struct Args {
    /// The server, `http://127.0.0.1:PORT`.
    #[arg(long)]
    host: String,
    /// A `ledger-operator` credential, for the deposits that fund the users.
    #[arg(long)]
    apikey: String,
    #[arg(long)]
    apisecret: String,
    #[arg(long, default_value_t = 64)]
    users: usize,
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Transfers per second in total (all sockets together); closed loop when absent.
    #[arg(long)]
    rate: Option<f64>,
    /// Write the results here as JSON.
    #[arg(long)]
    summary: Option<std::path::PathBuf>,
}

fn address_of(key: &SigningKey) -> String {
    let point = key.verifying_key().to_encoded_point(true);
    let mut payload = vec![0u8];
    payload.extend_from_slice(&Ripemd160::digest(Sha256::digest(point.as_bytes())));
    bs58::encode(payload).with_check().into_string()
}

fn sign(key: &SigningKey, message: &str) -> anyhow::Result<String> {
    let mut preimage = b"\x18Bitcoin Signed Message:\n".to_vec();
    preimage.push(u8::try_from(message.len()).context("a short challenge")?);
    preimage.extend_from_slice(message.as_bytes());
    let digest = Sha256::digest(Sha256::digest(&preimage));
    let (signature, recovery) = key.sign_prehash_recoverable(&digest)?;
    let mut bytes = vec![31 + recovery.to_byte()];
    bytes.extend_from_slice(&signature.to_bytes());
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A connected, authenticated, registered user.
struct User {
    socket: Socket,
    address: String,
    nonce: u64,
}

impl User {
    async fn connect(url: &str) -> anyhow::Result<Self> {
        // Without Nagle's algorithm, as the server: each op is one small frame.
        let (mut socket, _) =
            tokio_tungstenite::connect_async_with_config(url, None, true).await.context("connecting")?;
        let challenge = next_json(&mut socket).await?;
        let challenge = challenge["data"].as_str().context("a challenge")?.to_owned();
        let key = SigningKey::random(&mut rand::rngs::OsRng);
        let address = address_of(&key);
        let mut user = Self { socket, address, nonce: 0 };
        let auth = user.op(json!({"op": "auth", "params": {"key": user.address, "signature": sign(&key, &challenge)?}})).await?;
        if auth["msg"] != "auth" {
            bail!("auth: {auth}");
        }
        let params = json!({"name": "Load", "email": "load@example.com", "country": "PA", "currency": "USD"});
        let registered = user.op(json!({"op": "register", "params": params})).await?;
        if registered["msg"] != "register" {
            bail!("register: {registered}");
        }
        Ok(user)
    }

    /// Send an op with the next nonce and wait for its reply, dropping notifications.
    async fn op(&mut self, mut op: Value) -> anyhow::Result<Value> {
        self.nonce += 1;
        op["nonce"] = json!(self.nonce);
        self.socket.send(Message::text(op.to_string())).await?;
        let deadline = tokio::time::Instant::now() + REPLY_TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, next_json(&mut self.socket)).await.context("no reply")??;
            if message["nonce"] == json!(self.nonce) {
                return Ok(message);
            }
        }
    }
}

async fn next_json(socket: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match socket.next().await.context("the socket closed")?? {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Close(frame) => bail!("closed: {frame:?}"),
            _ => {}
        }
    }
}

#[derive(Default)]
struct Totals {
    ok: AtomicU64,
    failed: AtomicU64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.users < 2 || args.users > USERS_MAX {
        bail!("--users must be 2 to {USERS_MAX}");
    }
    let host = args.host.trim_end_matches('/');
    let url = format!("{}/ccc/v1", host.replacen("http", "ws", 1));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;

    // Set-up: users on sockets, funded by deposits (a few at a time).
    let mut users = Vec::with_capacity(args.users);
    for _ in 0..args.users {
        users.push(User::connect(&url).await?);
    }
    for user in &users {
        let body = json!({"address": user.address, "currency": "USD", "amount": FUNDING, "from_iban": "DE44500105175407324931"});
        let reply = http
            .post(format!("{host}/ccc/v1/operator/deposits"))
            .header("DN-API-KEY", &args.apikey)
            .header("DN-API-SECRET", &args.apisecret)
            .json(&body)
            .send()
            .await?;
        if reply.status().as_u16() != 201 {
            bail!("deposit: {} {}", reply.status(), reply.text().await.unwrap_or_default());
        }
    }
    let addresses: Arc<Vec<String>> = Arc::new(users.iter().map(|user| user.address.clone()).collect());
    eprintln!("ccc-load: {} users registered and funded; {} s of transfers", users.len(), args.seconds);

    let totals = Arc::new(Totals::default());
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    // Each socket's pace when throttled.
    let interval = args.rate.map(|rate| Duration::from_secs_f64(args.users as f64 / rate.max(0.001)));
    let mut tasks = Vec::with_capacity(users.len());
    for (index, mut user) in users.into_iter().enumerate() {
        let (addresses, totals) = (Arc::clone(&addresses), Arc::clone(&totals));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut next = Instant::now() + interval.map_or(Duration::ZERO, |pace| pace.mul_f64(rand::random()));
            while Instant::now() < until {
                if let Some(pace) = interval {
                    tokio::time::sleep_until(next.into()).await;
                    next += pace;
                }
                let other = (index + rand::thread_rng().gen_range(1..addresses.len())) % addresses.len();
                let op = json!({"op": "transfer", "params": {"recipient": addresses[other], "currency": "USD", "amount": AMOUNT}});
                let sent = Instant::now();
                match user.op(op).await {
                    Ok(reply) if reply["msg"] == "transfer" => {
                        latencies.push(sent.elapsed());
                        totals.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("ccc-load: {reply}");
                    }
                    Err(error) => {
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("ccc-load: {error:#}");
                        break;
                    }
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let percentile = |p: f64| {
        latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0, |latency| latency.as_micros() as u64)
    };
    let ok = totals.ok.load(Ordering::Relaxed);
    let summary = json!({
        "scenario": "ccc_transfers",
        "users": args.users,
        "seconds": elapsed,
        "rate": args.rate,
        "transfers": ok,
        "failures": totals.failed.load(Ordering::Relaxed),
        "per_second": ok as f64 / elapsed,
        "p50_us": percentile(0.50),
        "p99_us": percentile(0.99),
    });
    println!("{summary}");
    if let Some(path) = &args.summary {
        std::fs::write(path, summary.to_string()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
