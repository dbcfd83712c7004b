//! Runs the real `cashgrid` binary: one fresh store (temporary directory, plus on that backend
//! a PostgreSQL database of its own, copied from the migrated template: `crate::database`)
//! and one server process per test.
//!
//! Drop order matters and is encoded in [`TestEnv`]'s field order: the server is killed first,
//! then the store (database dropped, directory removed) goes. A failing test keeps its
//! directory and prints the server's log tail, so the cause is visible in the test output.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::api::{Api, Creds};
use crate::database::TestDatabase;
pub use crate::database::{admin_url, connect};

/// Path of the binary under test, built by cargo for this test target.
const BINARY: &str = env!("CARGO_BIN_EXE_cashgrid");
/// How long a server may take from spawn to its "listening" line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// What the server prints on stdout once its socket is bound.
const LISTENING_PREFIX: &str = "cashgrid listening on ";
/// Lines of server log shown when a test fails.
const LOG_TAIL_LINES: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where one test's data lives: `<tmp>/cashgrid-e2e-<uuid>/{data,logs}`, plus a database.
pub struct Store {
    pub backend: Backend,
    root: PathBuf,
    pub data_dir: PathBuf,
    pub logs_dir: PathBuf,
    pub database: Option<TestDatabase>,
    /// A database the test manages itself (see [`Store::on_database`]).
    external_url: Option<String>,
}

impl Store {
    /// A store on a PostgreSQL server of the test's own (`url`), e.g. a [`PrivateCluster`].
    fn on_database(url: String) -> Self {
        let root = std::env::temp_dir().join(format!("cashgrid-e2e-{}", Uuid::new_v4().simple()));
        let data_dir = root.join("data");
        let logs_dir = root.join("logs");
        fs::create_dir_all(&data_dir).expect("create the test data directory");
        fs::create_dir_all(&logs_dir).expect("create the test log directory");
        Self { backend: Backend::Postgres, root, data_dir, logs_dir, database: None, external_url: Some(url) }
    }

    async fn create(backend: Backend) -> Self {
        let root = std::env::temp_dir().join(format!("cashgrid-e2e-{}", Uuid::new_v4().simple()));
        let data_dir = root.join("data");
        let logs_dir = root.join("logs");
        fs::create_dir_all(&data_dir).expect("create the test data directory");
        fs::create_dir_all(&logs_dir).expect("create the test log directory");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                Some(TestDatabase::migrated().await.unwrap_or_else(|error| panic!("no test database: {error:#}")))
            }
        };
        Self { backend, root, data_dir, logs_dir, database, external_url: None }
    }

    /// `--data-dir DIR [--database-url URL]`, shared by `serve` and every CLI command.
    fn flags(&self) -> Vec<String> {
        let mut flags = vec!["--data-dir".to_owned(), self.data_dir.display().to_string()];
        let url = self.database.as_ref().map(|database| database.url.clone()).or_else(|| self.external_url.clone());
        if let Some(url) = url {
            flags.push("--database-url".to_owned());
            flags.push(url);
        }
        flags
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: its files are kept in {}", self.root.display());
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// A running `cashgrid serve` process. Dropping it kills the process (SIGKILL) and reaps it.
pub struct TestServer {
    child: Child,
    pub base_url: String,
    pub stdout_log: PathBuf,
    pub stderr_log: PathBuf,
}

impl TestServer {
    /// `cashgrid serve` on `store` with `extra_args`, and `env` added to its environment.
    pub async fn spawn(store: &Store, extra_args: &[String], env: &[(String, String)], generation: usize) -> Self {
        let stdout_log = store.logs_dir.join(format!("server-{generation}.stdout.log"));
        let stderr_log = store.logs_dir.join(format!("server-{generation}.stderr.log"));
        let stderr_file = File::create(&stderr_log).expect("create the server stderr log");
        let mut child = Command::new(BINARY)
            .arg("serve")
            .args(["--bind", "127.0.0.1:0"])
            .args(store.flags())
            .args(extra_args)
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {BINARY}: {error}"));

        // A thread drains stdout for the server's whole life, so the pipe never fills.
        let stdout = child.stdout.take().expect("piped stdout");
        let (listening_sender, listening) = tokio::sync::oneshot::channel::<String>();
        let log_path = stdout_log.clone();
        std::thread::spawn(move || {
            let mut sender = Some(listening_sender);
            let mut log = File::create(&log_path).ok();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(log) = log.as_mut() {
                    let _ = writeln!(log, "{line}");
                }
                if let Some(address) = line.split(LISTENING_PREFIX).nth(1) {
                    if let Some(sender) = sender.take() {
                        let _ = sender.send(address.trim().to_owned());
                    }
                }
            }
        });

        let mut server = Self { child, base_url: String::new(), stdout_log, stderr_log };
        match tokio::time::timeout(STARTUP_TIMEOUT, listening).await {
            Ok(Ok(address)) => {
                assert!(
                    address.starts_with("http://127.0.0.1:") || address.starts_with("https://127.0.0.1:"),
                    "unexpected listening line `{LISTENING_PREFIX}{address}`"
                );
                server.base_url = address.trim_end_matches('/').to_owned();
                server
            }
            Ok(Err(_)) => {
                let status = server.child.wait().ok();
                panic!(
                    "cashgrid serve exited before printing `{LISTENING_PREFIX}…` (status {status:?})\n{}",
                    server.log_tail()
                )
            }
            Err(_) => panic!(
                "cashgrid serve printed no `{LISTENING_PREFIX}…` line within {STARTUP_TIMEOUT:?}\n{}",
                server.log_tail()
            ),
        }
    }

    /// The last lines of stdout and stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        format!(
            "--- server stdout ({}) ---\n{}\n--- server stderr ({}) ---\n{}",
            self.stdout_log.display(),
            tail(&self.stdout_log),
            self.stderr_log.display(),
            tail(&self.stderr_log)
        )
    }

    /// SIGKILL (what `Child::kill` sends on unix) and reap.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill_now();
    }
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// One test's world: a store, a server on it, and an HTTP client pointed at the server.
/// Field order is drop order: server, then client, then store.
pub struct TestEnv {
    server: Option<TestServer>,
    pub api: Api,
    extra_args: Vec<String>,
    /// Environment variables of every server process of this test.
    env: Vec<(String, String)>,
    generation: usize,
    pub store: Store,
}

impl TestEnv {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// Start with extra `serve` flags, e.g. `["--error-status", "4xx"]`.
    pub async fn start_with(backend: Backend, extra_args: &[&str]) -> Self {
        Self::start_on(Store::create(backend).await, extra_args, &[]).await
    }

    /// Start with extra `serve` flags and environment variables for the server, e.g.
    /// `[("RUST_LOG", "debug")]`; other nodes and restarts get them too.
    pub async fn start_with_env(backend: Backend, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::start_on(Store::create(backend).await, extra_args, env).await
    }

    /// Start on a PostgreSQL database the test runs itself (a [`PrivateCluster`]).
    pub async fn start_on_database(url: &str, extra_args: &[&str]) -> Self {
        Self::start_on(Store::on_database(url.to_owned()), extra_args, &[]).await
    }

    async fn start_on(store: Store, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let extra_args: Vec<String> = extra_args.iter().map(|arg| (*arg).to_owned()).collect();
        let env: Vec<(String, String)> =
            env.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect();
        let server = TestServer::spawn(&store, &extra_args, &env, 0).await;
        let api = Api::new(&server.base_url);
        Self { server: Some(server), api, extra_args, env, generation: 0, store }
    }

    pub fn backend(&self) -> Backend {
        self.store.backend
    }

    /// The running server's base URL, e.g. `http://127.0.0.1:34567`.
    pub fn base_url(&self) -> &str {
        self.server.as_ref().map_or("", |server| server.base_url.as_str())
    }

    /// Another `cashgrid serve` on the same store (a second node on one PostgreSQL database),
    /// with the same flags plus `extra_args`; dropping it kills it.
    pub async fn start_another_node(&mut self, extra_args: &[&str]) -> (TestServer, Api) {
        self.generation += 1;
        let mut args = self.extra_args.clone();
        args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
        let server = TestServer::spawn(&self.store, &args, &self.env, self.generation).await;
        let api = Api::new(&server.base_url);
        (server, api)
    }

    /// SIGKILL the server (no graceful shutdown) and start a new one on the same store.
    pub async fn kill_and_restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
        self.generation += 1;
        let server = TestServer::spawn(&self.store, &self.extra_args, &self.env, self.generation).await;
        self.api = Api::new(&server.base_url);
        self.server = Some(server);
    }

    /// Run `cashgrid <args> <store flags>` and return its output, whatever its exit status.
    pub fn cli_unchecked(&self, args: &[&str]) -> Output {
        Command::new(BINARY)
            .args(args)
            .args(self.store.flags())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {BINARY} {args:?}: {error}"))
    }

    /// Run `cashgrid <args> <store flags>` and return its output; fails the test on error.
    pub fn cli(&self, args: &[&str]) -> Output {
        let output = self.cli_unchecked(args);
        assert!(
            output.status.success(),
            "`cashgrid {}` failed with {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Run a CLI command that prints one JSON object on stdout, and parse it.
    pub fn cli_json(&self, args: &[&str]) -> Value {
        let output = self.cli(args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let parsed = serde_json::from_str::<Value>(stdout.trim()).ok().or_else(|| {
            // Tolerate log lines around the object.
            stdout.lines().find_map(|line| serde_json::from_str::<Value>(line.trim()).ok().filter(Value::is_object))
        });
        match parsed {
            Some(value) if value.is_object() => value,
            _ => panic!(
                "`cashgrid {}` printed no JSON object on stdout:\n{stdout}\nstderr: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// `cashgrid customer create --email E`; returns the printed customer.
    pub fn customer(&self, email: &str) -> Value {
        let customer = self.cli_json(&["customer", "create", "--email", email]);
        assert!(customer["id"].is_i64(), "customer create printed no numeric id: {customer}");
        assert_eq!(customer["email"], email, "customer create printed {customer}");
        customer
    }

    /// `cashgrid access create --customer E --scope S`; returns the credentials.
    pub fn access(&self, email: &str, scope: &str) -> Creds {
        let access = self.cli_json(&["access", "create", "--customer", email, "--scope", scope]);
        let field = |name: &str| {
            access[name].as_str().unwrap_or_else(|| panic!("access create printed no `{name}`: {access}")).to_owned()
        };
        Creds { apikey: field("apikey"), apisecret: field("apisecret") }
    }

    /// `cashgrid param set --customer E --key K --value V` (V is JSON text).
    pub fn set_param(&self, email: &str, key: &str, value: &str) {
        self.cli(&["param", "set", "--customer", email, "--key", key, "--value", value]);
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(server) = &self.server {
                eprintln!("{}", server.log_tail());
            }
        }
    }
}

/// A PostgreSQL cluster of the test's own, on a free port, for what must never be done to the
/// shared server (stopping it). `initdb` and `pg_ctl` refuse to run as root, so they run as the
/// `postgres` user when the test runs as root. Dropping it resumes and stops the cluster.
pub struct PrivateCluster {
    directory: PathBuf,
    bin: PathBuf,
    pub url: String,
}

impl PrivateCluster {
    pub fn start() -> Self {
        let bin = fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries under /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .find(|bin| bin.join("initdb").is_file())
            .expect("an initdb under /usr/lib/postgresql/*/bin");
        let directory = std::env::temp_dir().join(format!("cashgrid-pg-{}", Uuid::new_v4().simple()));
        fs::create_dir_all(&directory).expect("create the cluster directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self { url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), directory, bin };
        cluster.chown();
        let data = cluster.directory.join("data");
        cluster.run("initdb", &["-D", &data.display().to_string(), "-U", "postgres", "-A", "trust", "--no-sync"]);
        let options =
            format!("-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", cluster.directory.display());
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-o",
                &options,
                "-l",
                &cluster.directory.join("log").display().to_string(),
                "-w",
                "start",
            ],
        );
        cluster
    }

    fn as_root() -> bool {
        Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.starts_with(b"0\n"))
    }

    fn chown(&self) {
        if Self::as_root() {
            let status = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&self.directory).status();
            assert!(status.is_ok_and(|status| status.success()), "chown of the cluster directory failed");
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let binary = self.bin.join(program);
        let output = if Self::as_root() {
            Command::new("runuser").args(["-u", "postgres", "--"]).arg(&binary).args(args).output()
        } else {
            Command::new(&binary).args(args).output()
        }
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", binary.display()));
        assert!(
            output.status.success(),
            "{program} failed: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The postmaster and every backend it forked.
    fn processes(&self) -> Vec<String> {
        let pid_file = fs::read_to_string(self.directory.join("data/postmaster.pid")).unwrap_or_default();
        let Some(postmaster) = pid_file.lines().next().map(str::trim).map(str::to_owned) else {
            return Vec::new();
        };
        let children =
            Command::new("pgrep").args(["-P", &postmaster]).output().map(|output| output.stdout).unwrap_or_default();
        let mut pids: Vec<String> = String::from_utf8_lossy(&children).lines().map(str::to_owned).collect();
        pids.push(postmaster);
        pids
    }

    fn signal(&self, signal: &str) {
        for pid in self.processes() {
            let _ = Command::new("kill").args([signal, &pid]).status();
        }
    }

    /// Freeze every process of the cluster: connections stay open and nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.resume();
        let data = self.directory.join("data").display().to_string();
        let binary = self.bin.join("pg_ctl");
        let _ = if Self::as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&binary)
                .args(["-D", &data, "-m", "immediate", "stop"])
                .output()
        } else {
            Command::new(&binary).args(["-D", &data, "-m", "immediate", "stop"]).output()
        };
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.directory);
        }
    }
}
