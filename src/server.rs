//! Wiring: open the store, start the engine, serve HTTP.

use std::io::Write as _;
use std::sync::Arc;

use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use cashgrid_actors::crypto::{SecretHasher, ServerKey};
use cashgrid_actors::metrics::{BATCH_SIZE_BUCKETS, COMMIT_BATCH_SIZE, LATENCY_BUCKETS_SECONDS, LEDGER_PIPELINE_DEPTH};
use cashgrid_actors::store::{PostgresStore, SqliteStore, Store};
use cashgrid_actors::Engine;
use cashgrid_http::AppState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use secrecy::ExposeSecret as _;

use crate::config::{ServeSettings, StoreSettings};

/// Open the configured store: PostgreSQL when a URL is given, embedded SQLite otherwise.
pub async fn open_store(settings: &StoreSettings) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match &settings.database_url {
        Some(url) => Arc::new(
            PostgresStore::connect(url.expose_secret(), settings.pool_size, settings.commit_connections)
                .await
                .context("opening PostgreSQL")?
                .with_deadline(settings.store_timeout),
        ),
        None => Arc::new(
            SqliteStore::open(&settings.data_dir)
                .context("opening the embedded store")?
                .with_deadline(settings.store_timeout),
        ),
    })
}

pub fn secret_hasher(settings: &StoreSettings) -> anyhow::Result<SecretHasher> {
    let key = match std::env::var("CASHGRID_SERVER_KEY") {
        Ok(text) => ServerKey::from_base64(&text).context("CASHGRID_SERVER_KEY")?,
        Err(_) => ServerKey::load_or_create(&settings.server_key_file)?,
    };
    Ok(SecretHasher::new(key))
}

fn install_prometheus() -> anyhow::Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECONDS)?
        .set_buckets_for_metric(Matcher::Full(COMMIT_BATCH_SIZE.into()), BATCH_SIZE_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full(LEDGER_PIPELINE_DEPTH.into()), BATCH_SIZE_BUCKETS)?
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Descriptors kept free of client connections: database connections, the data files, the
/// listening sockets, logs, and room to answer while full.
const DESCRIPTOR_HEADROOM: u64 = 256;

/// The most client connections to keep open at once: the setting, and never so many that the
/// process runs out of descriptors (then it could not even open a database connection or
/// accept `/health`). The descriptor limit is raised to the hard limit first, where allowed.
fn connection_bound(settings: &ServeSettings) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not read or raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    };
    let pools = (settings.store.pool_size + settings.store.commit_connections) as u64;
    let room = limit.saturating_sub(DESCRIPTOR_HEADROOM + pools).max(1);
    let bound = settings.max_connections.min(usize::try_from(room).unwrap_or(usize::MAX));
    if bound < settings.max_connections {
        tracing::warn!(
            open_file_limit = limit,
            max_connections = bound,
            "the open-file limit caps client connections below the configured max_connections"
        );
    }
    tracing::info!(open_file_limit = limit, max_connections = bound, "connection bound");
    bound
}

pub fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(run(settings))
}

async fn run(settings: ServeSettings) -> anyhow::Result<()> {
    let prometheus = install_prometheus()?;
    let hasher = secret_hasher(&settings.store)?;
    let store = open_store(&settings.store).await?;
    let backend = if settings.store.database_url.is_some() { "postgres" } else { "sqlite" };
    let engine = Engine::start(store, hasher, settings.engine.clone());
    // Clients of the Crypto Capital API check the server's messages against this address.
    println!("cashgrid ccc messages are signed by {}", engine.ccc().server_address());
    cashgrid_http::register_initial_series();
    let state = web::Data::new(AppState {
        engine,
        error_status: settings.error_status,
        prometheus,
        body_timeout: settings.body_timeout,
        trusted_proxies: settings.trusted_proxies.clone(),
        ccc_sockets: Default::default(),
    });
    let connections = connection_bound(&settings);
    let state_for_ccc = state.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(cashgrid_http::dncash::paths::canonical_path))
            .wrap(actix_web::middleware::from_fn(cashgrid_http::metrics::record_request))
            .configure(cashgrid_http::configure)
            .default_service(web::to(cashgrid_http::system::not_found))
    })
    .workers(settings.workers)
    // Replies go out at once: a WebSocket op's reply and its notifications are several small
    // writes, which Nagle's algorithm would hold back until the client's delayed ACK (40 ms).
    .tcp_nodelay(true)
    .max_connections(connections.div_ceil(settings.workers).max(1));
    let (server, scheme) = match &settings.tls {
        Some(files) => {
            let config = crate::tls::server_config(files)?;
            (server.bind_rustls_0_23(settings.bind, config), "https")
        }
        None => (server.bind(settings.bind), "http"),
    };
    let server = server.with_context(|| format!("binding {}", settings.bind))?;
    let ccc = match settings.ccc_bind {
        None => None,
        Some(address) => {
            let state = state_for_ccc;
            let ccc = HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .configure(cashgrid_http::ccc::configure_root)
                    .default_service(web::to(cashgrid_http::system::not_found))
            })
            .workers(1)
            .tcp_nodelay(true)
            .max_connections(connections)
            .bind(address)
            .with_context(|| format!("binding the Crypto Capital listener {address}"))?;
            // Printed before the main listening line, which scripts and tests wait for.
            for address in ccc.addrs() {
                println!("cashgrid ccc listening on ws://{address}");
            }
            Some(ccc.run())
        }
    };
    for address in server.addrs() {
        tracing::info!(%address, backend, scheme, "listening");
        // Scripts and tests wait for this line to learn the port when binding port 0.
        println!("cashgrid listening on {scheme}://{address}");
    }
    std::io::stdout().flush().context("writing to stdout")?;
    match ccc {
        None => server.run().await.context("serving HTTP"),
        Some(ccc) => {
            let (main, root) = tokio::join!(server.run(), ccc);
            main.context("serving HTTP")?;
            root.context("serving the Crypto Capital listener")
        }
    }
}
