//! Turn one `scripts/bench.sh` run directory into the report printed at its end (Markdown):
//! the ceilings, cashgrid's figures per backend, and cashgrid as ratios of the ceilings.
//!
//! Layout read (all written by bench.sh):
//! - `ceiling-http.json`: goose summary of the best trivial-handler run (`ceiling-http-u<N>.json`
//!   for every user count swept, `ceiling-http.cpu-all` for its CPU use);
//! - `ceiling-pg.jsonl`: one JSON object per pg-ceiling mode;
//! - `<backend>/peak.json`, `<backend>/p80.json`: goose summaries of the best closed-loop run
//!   (`peak-u<N>.json` for every user count swept) and of the run throttled to 80 % of it;
//! - `<backend>/metrics-{0,1,2}.txt`: cashgrid's `/metrics` before the peak run, after it, and
//!   after the 80 % run;
//! - `<backend>/cpu-peak.txt`, `cpu-p80.txt`: CPU seconds used during those runs (`name seconds`
//!   lines: server, postgres, goose, others, machine).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cashgrid_load_tests::summary::{RequestSummary, Summary};
use clap::Parser;
use serde_json::Value;

/// Row writes of one durable lifecycle: the token insert and two updates (claim, confirm),
/// plus one event row with each.
const ROWS_PER_LIFECYCLE: f64 = 6.0;
/// The targets.
const TARGET_LIFECYCLES_PER_SECOND: f64 = 2500.0;
const TARGET_P99_MS: f64 = 25.0;
const TARGET_REQUEST_RATIO: f64 = 0.5;
const STEPS: [&str; 4] = ["lifecycle: 1 create", "lifecycle: 2 decrypt", "lifecycle: 3 claim", "lifecycle: 4 confirm"];

#[derive(Debug, Parser)]
struct Args {
    /// The run directory bench.sh wrote.
    dir: PathBuf,
}

fn read_summary(path: &Path) -> anyhow::Result<Summary> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Sum of every sample of a Prometheus metric (all label sets).
fn prometheus_sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            let bare = name.split('{').next()?;
            (bare == metric).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

fn read_metrics(dir: &Path, n: usize) -> String {
    std::fs::read_to_string(dir.join(format!("metrics-{n}.txt"))).unwrap_or_default()
}

/// `name seconds` lines.
fn read_cpu(path: &Path) -> BTreeMap<String, f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (name, seconds) = line.split_once(' ')?;
            Some((name.to_owned(), seconds.trim().parse().ok()?))
        })
        .collect()
}

/// The summaries of a user sweep (`<prefix>-u<N>.json`), by user count.
fn read_sweep(dir: &Path, prefix: &str) -> Vec<(usize, Summary)> {
    let mut runs: Vec<(usize, Summary)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let users = name.strip_prefix(prefix)?.strip_prefix("-u")?.strip_suffix(".json")?.parse().ok()?;
            Some((users, read_summary(&entry.path()).ok()?))
        })
        .collect();
    runs.sort_by_key(|(users, _)| *users);
    runs
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn request<'a>(summary: &'a Summary, name: &str) -> Option<&'a RequestSummary> {
    summary.requests.iter().find(|request| request.name == name)
}

fn lifecycles_per_second(summary: &Summary) -> f64 {
    summary
        .transactions
        .iter()
        .find(|transaction| transaction.scenario == "atm_lifecycle")
        .map_or(0.0, |transaction| transaction.success as f64 / summary.seconds)
}

fn worst_p99_ms(summary: &Summary) -> f64 {
    summary
        .requests
        .iter()
        .filter(|request| request.method != "RSA")
        .map(|request| request.timing.p99_us as f64 / 1000.0)
        .fold(0.0, f64::max)
}

struct Backend {
    name: &'static str,
    peak: Summary,
    p80: Option<Summary>,
    batch_mean: f64,
    commit_mean_ms: f64,
    commits_per_second: f64,
    cpu: BTreeMap<String, f64>,
    sweep: Vec<(usize, Summary)>,
}

/// CPU accounting of one run: who used how many CPU seconds, and per unit of work.
fn write_cpu(w: &mut String, cpu: &BTreeMap<String, f64>, seconds: f64, unit: &str, units: f64) -> std::fmt::Result {
    if cpu.is_empty() || units <= 0.0 {
        return Ok(());
    }
    let get = |name: &str| cpu.get(name).copied().unwrap_or(0.0);
    // The accounting window includes goose's start and stop around the measured seconds.
    let seconds = if get("wall") > 0.0 { get("wall") } else { seconds };
    writeln!(
        w,
        "CPU used during that run, start and stop included ({seconds:.1} s wall × 2 cores = {:.1} CPU-s): server {:.1} s, \
         PostgreSQL {:.1} s, goose {:.1} s, other processes on the machine {:.1} s (total {:.1} s). \
         Per {unit}: server {:.3} ms, PostgreSQL {:.3} ms, goose {:.3} ms.",
        2.0 * seconds,
        get("server"),
        get("postgres"),
        get("goose"),
        get("others").max(0.0),
        get("machine"),
        1000.0 * get("server") / units,
        1000.0 * get("postgres") / units,
        1000.0 * get("goose") / units,
    )
}

fn backend(dir: &Path, name: &'static str) -> anyhow::Result<Option<Backend>> {
    let dir = dir.join(name);
    if !dir.join("peak.json").exists() {
        return Ok(None);
    }
    let peak = read_summary(&dir.join("peak.json"))?;
    let p80 = read_summary(&dir.join("p80.json")).ok();
    let (before, after) = (read_metrics(&dir, 0), read_metrics(&dir, 1));
    let delta = |metric: &str| prometheus_sum(&after, metric) - prometheus_sum(&before, metric);
    let commits = delta("cashgrid_store_commit_batch_size_count");
    let batch_mean = if commits > 0.0 { delta("cashgrid_store_commit_batch_size_sum") / commits } else { 0.0 };
    let commit_mean_ms =
        if commits > 0.0 { 1000.0 * delta("cashgrid_store_commit_duration_seconds_sum") / commits } else { 0.0 };
    let cpu = read_cpu(&dir.join("cpu-peak.txt"));
    let sweep = read_sweep(&dir, "peak");
    Ok(Some(Backend {
        name,
        sweep,
        commits_per_second: commits / peak.seconds,
        peak,
        p80,
        batch_mean,
        commit_mean_ms,
        cpu,
    }))
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "met"
    } else {
        "NOT met"
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = read_summary(&args.dir.join("ceiling-http.json"))?;
    let pg_modes: Vec<Value> = std::fs::read_to_string(args.dir.join("ceiling-pg.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let pg_rows = |mode: &str| {
        pg_modes
            .iter()
            .find(|m| m.get("mode").and_then(Value::as_str) == Some(mode))
            .and_then(|m| m.get("rows_per_second")?.as_f64())
            .unwrap_or(0.0)
    };
    let (unnest, pipelined) = (pg_rows("unnest"), pg_rows("pipelined"));
    let backends: Vec<Backend> =
        ["postgres", "sqlite"].into_iter().filter_map(|name| backend(&args.dir, name).transpose()).collect::<Result<_, _>>()?;

    let mut out = String::new();
    let w = &mut out;
    writeln!(w, "## Ceilings (same run)\n")?;
    writeln!(
        w,
        "- trivial actix-web JSON handler (`ceiling-server`), goose, {} users: **{:.0} requests/s** (p50 {} ms, p99 {} ms)",
        http.users,
        http.http_per_second,
        request(&http, "ceiling: echo").map_or("-".into(), |r| ms(r.timing.p50_us)),
        request(&http, "ceiling: echo").map_or("-".into(), |r| ms(r.timing.p99_us)),
    )?;
    let ceiling_sweep = read_sweep(&args.dir, "ceiling-http");
    if ceiling_sweep.len() > 1 {
        let parts: Vec<String> =
            ceiling_sweep.iter().map(|(users, s)| format!("{users} users {:.0}/s", s.http_per_second)).collect();
        writeln!(w, "  (users swept: {})", parts.join(", "))?;
    }
    writeln!(
        w,
        "- PostgreSQL, token-shaped rows, 256 per transaction, one connection: **{unnest:.0} rows/s** as one \
         multi-row `UNNEST` insert per batch; {pipelined:.0} rows/s as pipelined single-row inserts (cashgrid's way)\n"
    )?;
    write_cpu(w, &read_cpu(&args.dir.join("ceiling-http.cpu-all")), http.seconds, "request", http.http_requests as f64)?;
    writeln!(w)?;

    for b in &backends {
        let lifecycles = lifecycles_per_second(&b.peak);
        writeln!(w, "## cashgrid on {}\n", b.name)?;
        writeln!(
            w,
            "Peak (closed loop, {} users, {:.1} s): **{lifecycles:.0} durable lifecycles/s**, {:.0} HTTP requests/s, \
             {} failed requests.\n",
            b.peak.users, b.peak.seconds, b.peak.http_per_second, b.peak.http_failures
        )?;
        if b.sweep.len() > 1 {
            writeln!(w, "| users (closed loop) | lifecycles/s | HTTP requests/s | worst per-request p99 ms | failed requests |")?;
            writeln!(w, "|---|---|---|---|---|")?;
            for (users, run) in &b.sweep {
                writeln!(
                    w,
                    "| {users} | {:.0} | {:.0} | {:.2} | {} |",
                    lifecycles_per_second(run),
                    run.http_per_second,
                    worst_p99_ms(run),
                    run.http_failures
                )?;
            }
            writeln!(w)?;
        }
        writeln!(w, "| step | p50 ms at peak | p99 ms at peak | p50 ms at 80 % | p99 ms at 80 % |")?;
        writeln!(w, "|---|---|---|---|---|")?;
        for step in STEPS {
            let at = |s: Option<&Summary>, f: fn(&RequestSummary) -> u64| {
                s.and_then(|s| request(s, step)).map_or("-".into(), |r| ms(f(r)))
            };
            writeln!(
                w,
                "| {step}{} | {} | {} | {} | {} |",
                if step.contains("decrypt") { " (client, RSA)" } else { "" },
                at(Some(&b.peak), |r| r.timing.p50_us),
                at(Some(&b.peak), |r| r.timing.p99_us),
                at(b.p80.as_ref(), |r| r.timing.p50_us),
                at(b.p80.as_ref(), |r| r.timing.p99_us),
            )?;
        }
        let lifecycle = |s: Option<&Summary>, p99: bool| {
            s.and_then(|s| s.transactions.iter().find(|t| t.scenario == "atm_lifecycle"))
                .map_or("-".into(), |t| ms(if p99 { t.timing.p99_us } else { t.timing.p50_us }))
        };
        writeln!(
            w,
            "| whole lifecycle (transaction) | {} | {} | – ¹ | – ¹ |\n",
            lifecycle(Some(&b.peak), false),
            lifecycle(Some(&b.peak), true),
        )?;
        writeln!(w, "¹ goose's throttle delays requests inside the transaction, so at 80 % the whole-lifecycle time includes throttle waits.\n")?;
        if let Some(p80) = &b.p80 {
            writeln!(
                w,
                "At 80 % of peak ({} users, goose throttled to {:.0} requests/s): {:.0} requests/s achieved, \
                 {:.0} lifecycles/s, worst per-request p99 {:.2} ms, {} failed requests.\n",
                p80.users,
                0.8 * b.peak.http_per_second,
                p80.http_per_second,
                lifecycles_per_second(p80),
                worst_p99_ms(p80),
                p80.http_failures
            )?;
        }
        writeln!(
            w,
            "Server side during the peak run: {:.0} group commits/s, {:.1} write sets per commit on average, \
             {:.2} ms per commit on average.",
            b.commits_per_second, b.batch_mean, b.commit_mean_ms
        )?;
        let lifecycles_done = lifecycles_per_second(&b.peak) * b.peak.seconds;
        write_cpu(w, &b.cpu, b.peak.seconds, "lifecycle", lifecycles_done)?;
        writeln!(w)?;
    }

    writeln!(w, "## Ratios (cashgrid ÷ ceiling, same run)\n")?;
    writeln!(w, "| backend | per-request ratio (cashgrid req/s ÷ trivial handler req/s) | lifecycles/s ÷ (PG UNNEST rows/s ÷ {ROWS_PER_LIFECYCLE}) | lifecycles/s ÷ (PG pipelined rows/s ÷ {ROWS_PER_LIFECYCLE}) |")?;
    writeln!(w, "|---|---|---|---|")?;
    for b in &backends {
        let lifecycles = lifecycles_per_second(&b.peak);
        let ratio = |rows: f64| if rows > 0.0 { format!("{:.1} %", 100.0 * lifecycles / (rows / ROWS_PER_LIFECYCLE)) } else { "-".into() };
        writeln!(
            w,
            "| {} | {:.1} % | {} | {} |",
            b.name,
            100.0 * b.peak.http_per_second / http.http_per_second.max(1.0),
            ratio(unnest),
            ratio(pipelined)
        )?;
    }
    // The same comparison in CPU time per unit of work, which other load on the machine
    // disturbs far less than throughput: what the two cores could do if they were ours alone.
    let ceiling_cpu = read_cpu(&args.dir.join("ceiling-http.cpu-all"));
    let per_request_ceiling_ms = {
        let get = |name: &str| ceiling_cpu.get(name).copied().unwrap_or(0.0);
        1000.0 * (get("server") + get("goose")) / (http.http_requests.max(1) as f64)
    };
    writeln!(w, "\n### The same in CPU time per unit of work\n")?;
    writeln!(
        w,
        "Other processes took CPU during some runs (see \"other processes\" above). CPU seconds per unit of work are \
         much less sensitive to that than throughput; from them, the throughput the two cores would give if nothing \
         else ran (server + PostgreSQL + goose sharing them):\n"
    )?;
    writeln!(w, "| | CPU ms per request (server + PostgreSQL + goose) | of which server | CPU-bound capacity on 2 cores | CPU per-request ratio (trivial ÷ cashgrid) |")?;
    writeln!(w, "|---|---|---|---|---|")?;
    writeln!(
        w,
        "| trivial handler | {per_request_ceiling_ms:.3} | {:.3} | {:.0} requests/s | 100 % |",
        1000.0 * ceiling_cpu.get("server").copied().unwrap_or(0.0) / (http.http_requests.max(1) as f64),
        2000.0 / per_request_ceiling_ms.max(1e-9)
    )?;
    for b in &backends {
        let requests = b.peak.http_requests.max(1) as f64;
        let lifecycles = (lifecycles_per_second(&b.peak) * b.peak.seconds).max(1.0);
        let get = |name: &str| b.cpu.get(name).copied().unwrap_or(0.0);
        let per_request_ms = 1000.0 * (get("server") + get("postgres") + get("goose")) / requests;
        let per_lifecycle_ms = 1000.0 * (get("server") + get("postgres") + get("goose")) / lifecycles;
        writeln!(
            w,
            "| cashgrid on {} | {per_request_ms:.3} | {:.3} | {:.0} lifecycles/s ({:.0} requests/s) | {:.1} % |",
            b.name,
            1000.0 * get("server") / requests,
            2000.0 / per_lifecycle_ms.max(1e-9),
            2000.0 / per_request_ms.max(1e-9),
            100.0 * per_request_ceiling_ms / per_request_ms.max(1e-9)
        )?;
    }
    writeln!(w, "\n(CPU is counted over each run's whole window, start and stop included, so per-unit costs are slightly high.)")?;
    writeln!(w, "\n## Targets\n")?;
    for b in &backends {
        let lifecycles = lifecycles_per_second(&b.peak);
        let ratio = b.peak.http_per_second / http.http_per_second.max(1.0);
        if b.name == "postgres" {
            writeln!(
                w,
                "- ≥ {TARGET_LIFECYCLES_PER_SECOND:.0} lifecycles/s on PostgreSQL: {lifecycles:.0} — {}",
                verdict(lifecycles >= TARGET_LIFECYCLES_PER_SECOND)
            )?;
        }
        if let Some(p80) = &b.p80 {
            let p99 = worst_p99_ms(p80);
            writeln!(w, "- p99 < {TARGET_P99_MS:.0} ms per request at 80 % of peak ({}): {p99:.2} ms — {}", b.name, verdict(p99 < TARGET_P99_MS))?;
        }
        writeln!(
            w,
            "- per-request ratio > {:.0} % (long-term aim, {}): {:.1} % — {}",
            100.0 * TARGET_REQUEST_RATIO,
            b.name,
            100.0 * ratio,
            verdict(ratio > TARGET_REQUEST_RATIO)
        )?;
    }
    print!("{out}");
    Ok(())
}
