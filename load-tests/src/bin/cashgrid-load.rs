//! The goose load generator for cashgrid. Every scenario is registered; pick them with
//! `--scenarios` (see `--scenarios-list`). The fixture written by `setup` is read from
//! `CASHGRID_LOAD_FIXTURE` (default `load-fixture.json`); its host is the default `--host`.
//! With `CASHGRID_LOAD_SUMMARY=FILE` a compact JSON summary is written after the run.

use std::path::PathBuf;
use std::process::ExitCode;

use cashgrid_load_tests::api;
use cashgrid_load_tests::fixture::{Context, Fixture, FIXTURE_DEFAULT, FIXTURE_ENV};
use cashgrid_load_tests::scenarios::{self, HotVerdict};
use cashgrid_load_tests::summary::{Summary, SUMMARY_ENV};
use goose::prelude::*;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("cashgrid-load: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<ExitCode> {
    let fixture_path = PathBuf::from(std::env::var(FIXTURE_ENV).unwrap_or_else(|_| FIXTURE_DEFAULT.to_owned()));
    // The fixture is optional so that `--scenarios ceilingjson` runs without one; the cashgrid
    // scenarios fail with a clear error when it is missing.
    let mut host = None;
    if fixture_path.exists() {
        let context = Context::new(Fixture::load(&fixture_path)?)?;
        host = Some(context.fixture.host.clone());
        api::install(context);
    } else {
        eprintln!("cashgrid-load: no fixture at {} (set {FIXTURE_ENV}); only ceilingjson can run", fixture_path.display());
    }
    let mut attack = GooseAttack::initialize()?;
    for scenario in scenarios::all()? {
        attack = attack.register_scenario(scenario);
    }
    if let Some(host) = &host {
        attack = *attack.set_default(GooseDefault::Host, host.as_str())?;
    }
    let metrics = attack.execute().await?;

    let hot = HotVerdict::collect();
    let mut code = ExitCode::SUCCESS;
    if let Some(verdict) = &hot {
        eprintln!(
            "hot_token_contention: {} tokens; {} with exactly one winning claim, {} claimed without a winner, \
             {} never claimed (issued as the run ended), {} with more than one winner (must be 0); {} claims \
             refused with \"{}\" (expected); {} other answers",
            verdict.tokens,
            verdict.exactly_one_winner,
            verdict.no_winner,
            verdict.unclaimed,
            verdict.several_winners,
            verdict.expected_refusals,
            api::NOT_OPEN,
            verdict.other_answers,
        );
        if verdict.several_winners > 0 {
            eprintln!("hot_token_contention: FAILED: a token was locked by more than one claim");
            code = ExitCode::FAILURE;
        }
    }
    if let Ok(path) = std::env::var(SUMMARY_ENV) {
        let summary = Summary::of(&metrics, hot.as_ref().map(HotVerdict::to_json));
        std::fs::write(&path, serde_json::to_string_pretty(&summary)?)?;
    }
    Ok(code)
}
