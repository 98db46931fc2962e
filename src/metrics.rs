//! Prometheus metrics: the recorder (metrics-exporter-prometheus) with explicit buckets, the
//! names described once, and the listener that serves `GET /metrics` apart from the client
//! listener (a saturated client listener must not take the scrapes down with it).

use std::{net::SocketAddr, sync::Mutex};

use anyhow::Context;
use axum::{Router, routing::get};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::{net::TcpListener, task::JoinHandle};

/// Request latency, from a millisecond to a minute.
const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Long-polls: most wait their whole timeout (30 s by default in clients).
const SYNC_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 20.0, 30.0, 35.0, 60.0, 120.0,
];
/// Database transactions: tens of microseconds to a second.
const DB_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// argon2id with the default parameters takes tens of milliseconds.
const HASH_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// The process's one recorder: tests start many servers in one process.
static HANDLE: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the recorder (once per process) and returns its handle.
fn install() -> anyhow::Result<PrometheusHandle> {
    let mut handle = HANDLE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = handle.as_ref() {
        return Ok(handle.clone());
    }
    let buckets = [
        ("myelin_http_request_duration_seconds", REQUEST_BUCKETS),
        ("myelin_http_sync_duration_seconds", SYNC_BUCKETS),
        ("myelin_db_transaction_duration_seconds", DB_BUCKETS),
        ("myelin_db_write_batch_size", BATCH_BUCKETS),
        ("myelin_password_hash_duration_seconds", HASH_BUCKETS),
    ];
    let mut builder = PrometheusBuilder::new();
    for (name, bounds) in buckets {
        builder = builder.set_buckets_for_metric(Matcher::Full(name.into()), bounds)?;
    }
    let installed = builder
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    metrics_process::Collector::default().describe();
    metrics::gauge!("myelin_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    myelin_api::enable_metrics();
    *handle = Some(installed.clone());
    Ok(installed)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "myelin_http_requests_total",
        "Requests answered, by method, route template and status"
    );
    describe_histogram!(
        "myelin_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer a request, /sync apart"
    );
    describe_histogram!(
        "myelin_http_sync_duration_seconds",
        Unit::Seconds,
        "Time to answer a /sync, long-poll wait included"
    );
    describe_gauge!(
        "myelin_http_requests_in_flight",
        "Requests being answered now"
    );
    describe_gauge!("myelin_sync_waiters", "Long-polls waiting for news now");
    describe_histogram!(
        "myelin_db_transaction_duration_seconds",
        Unit::Seconds,
        "Database transactions, by backend and operation (SQLite: a group commit; \
         PostgreSQL: a unit of work on one user)"
    );
    describe_histogram!(
        "myelin_db_write_batch_size",
        "Writes committed together by SQLite's group commit"
    );
    describe_gauge!(
        "myelin_password_hashes_waiting",
        "Password hashes and checks waiting for a hashing slot"
    );
    describe_histogram!(
        "myelin_password_hash_duration_seconds",
        Unit::Seconds,
        "Time to hash or check one password"
    );
    describe_counter!(
        "myelin_logins_total",
        "Logins, by type (password, application_service, other) and result"
    );
    describe_counter!(
        "myelin_devices_deleted_total",
        "Devices deleted, by reason (user, logout, logout_all, admin, stale, evicted, \
         password_change, deactivation)"
    );
    describe_gauge!("myelin_users", "Accounts, by state");
    describe_gauge!("myelin_devices", "Devices (sessions) of all accounts");
    describe_gauge!(
        "myelin_active_sessions",
        "Devices seen in the last 24 hours"
    );
    describe_gauge!("myelin_build_info", "The running version (always 1)");
}

/// Serves `GET /metrics` on `listen` until the returned task is aborted.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let handle = install()?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the metrics listener {listen}"))?;
    let addr = listener.local_addr()?;
    let collector = metrics_process::Collector::default();
    let render = handle.clone();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            let collector = collector.clone();
            async move {
                collector.collect();
                render.render()
            }
        }),
    );
    let task = tokio::spawn(async move {
        let upkeep = async {
            // Without the exporter's own listener, its upkeep is ours to run.
            let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        };
        tokio::select! {
            served = axum::serve(listener, app) => {
                if let Err(err) = served {
                    tracing::error!(error = %err, "the metrics listener failed");
                }
            }
            () = upkeep => {}
        }
    });
    Ok((addr, task))
}
