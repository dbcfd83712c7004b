//! A compact, machine-readable summary of a goose run (throughput and latency percentiles per
//! named request and transaction), written when `CASHGRID_LOAD_SUMMARY` names a file.
//! `scripts/bench.sh` reads these; goose's own `--report-file` reports are for people.

use goose::metrics::{GooseMetrics, GooseRequestMetricTimingData};
use goose::test_plan::TestPlanStepAction;
use serde::{Deserialize, Serialize};

/// Environment variable naming the summary file.
pub const SUMMARY_ENV: &str = "CASHGRID_LOAD_SUMMARY";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timing {
    pub count: usize,
    pub per_second: f64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Timing {
    fn of(data: &GooseRequestMetricTimingData, seconds: f64) -> Self {
        let count = data.counter;
        Self {
            count,
            per_second: if seconds > 0.0 { count as f64 / seconds } else { 0.0 },
            mean_us: if count > 0 { data.total_time_us as f64 / count as f64 } else { 0.0 },
            p50_us: data.percentile_us(0.50),
            p90_us: data.percentile_us(0.90),
            p99_us: data.percentile_us(0.99),
            max_us: data.maximum_time_us,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestSummary {
    pub name: String,
    /// HTTP method, or "RSA" for the client-side decryption recorded as a custom request.
    pub method: String,
    pub success: usize,
    pub fail: usize,
    pub status_codes: std::collections::BTreeMap<u16, usize>,
    pub timing: Timing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransactionSummary {
    pub scenario: String,
    pub name: String,
    pub success: usize,
    pub fail: usize,
    pub timing: Timing,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Seconds of the measured window: from all users launched to the end of the run.
    pub seconds: f64,
    pub users: usize,
    /// All HTTP requests (custom "RSA" records excluded).
    pub http_requests: usize,
    pub http_failures: usize,
    pub http_per_second: f64,
    pub requests: Vec<RequestSummary>,
    pub transactions: Vec<TransactionSummary>,
    /// The hot_token_contention verdict, when that scenario ran.
    pub hot: Option<serde_json::Value>,
}

/// The measured window: goose resets its metrics once every user is launched (the start of
/// "maintaining"), so the window runs from there to the next step; goose's own `duration`
/// is whole seconds, which is too coarse for 20-second phases.
fn window_seconds(metrics: &GooseMetrics) -> f64 {
    let history = &metrics.history;
    let maintaining = history.iter().rposition(|step| matches!(step.action, TestPlanStepAction::Maintaining));
    if let Some(index) = maintaining {
        if let Some(next) = history.get(index + 1) {
            let millis = (next.timestamp - history[index].timestamp).num_milliseconds();
            if millis > 0 {
                return millis as f64 / 1000.0;
            }
        }
    }
    metrics.duration as f64
}

impl Summary {
    pub fn of(metrics: &GooseMetrics, hot: Option<serde_json::Value>) -> Self {
        let seconds = window_seconds(metrics);
        let mut requests: Vec<RequestSummary> = metrics
            .requests
            .values()
            .map(|aggregate| {
                let method = if aggregate.custom_method.is_empty() {
                    format!("{:?}", aggregate.method).to_uppercase()
                } else {
                    aggregate.custom_method.clone()
                };
                RequestSummary {
                    name: aggregate.path.clone(),
                    method,
                    success: aggregate.success_count,
                    fail: aggregate.fail_count,
                    status_codes: aggregate.status_code_counts.iter().map(|(k, v)| (*k, *v)).collect(),
                    timing: Timing::of(&aggregate.raw_data, seconds),
                }
            })
            .collect();
        requests.sort_by(|a, b| a.name.cmp(&b.name));
        let http = requests.iter().filter(|request| request.method != "RSA");
        let (http_requests, http_failures) =
            http.fold((0, 0), |(count, fails), request| (count + request.timing.count, fails + request.fail));
        let transactions = metrics
            .transactions
            .iter()
            .flatten()
            .filter(|transaction| transaction.run_times.counter > 0)
            .map(|transaction| TransactionSummary {
                scenario: transaction.scenario_name.to_string(),
                name: transaction.transaction_name.name_for_transaction().to_owned(),
                success: transaction.success_count,
                fail: transaction.fail_count,
                timing: Timing::of(&transaction.run_times, seconds),
            })
            .collect();
        Self {
            seconds,
            users: metrics.maximum_users,
            http_requests,
            http_failures,
            http_per_second: if seconds > 0.0 { http_requests as f64 / seconds } else { 0.0 },
            requests,
            transactions,
            hot,
        }
    }
}
