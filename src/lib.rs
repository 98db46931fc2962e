//! Myelin, a Matrix homeserver: configuration loading and the server's life cycle. The binary
//! (`main.rs`) is the command line around this; tests start servers through [`start`].

mod metrics;
mod outbound;
mod push_gateway;
mod url_preview;

use std::{net::SocketAddr, path::Path, pin::pin, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, extract::ConnectInfo};
use figment::{
    Figment,
    providers::{Env, Format, Toml},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use myelin_core::{
    Services,
    config::{Backend, Config, LimitsConfig},
};
use myelin_store::{
    Store,
    postgres::{PgOptions, PostgresStore},
    sqlite::SqliteStore,
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, oneshot, watch},
    task::JoinHandle,
};
use tower::ServiceExt;

/// Loads the configuration: defaults, then the TOML file, then `MYELIN_*` environment
/// variables (`__` separates nesting: `MYELIN_DATABASE__URL` sets `database.url`).
///
/// Unknown keys in the file are refused. In the environment, variables that name no
/// top-level key are ignored with a warning: deployments set `MYELIN_*` variables Myelin does
/// not own (Kubernetes gives every pod `MYELIN_PORT`, `MYELIN_SERVICE_HOST`, ... when a
/// Service is named `myelin`). One that looks like a misspelt key is refused, naming the key.
pub fn load_config(file: Option<&Path>) -> anyhow::Result<Config> {
    let (config, notes) = load_config_noting(file)?;
    for note in notes {
        tracing::warn!("{note}");
    }
    Ok(config)
}

/// [`load_config`], returning what it would warn about instead of logging it (for a caller
/// that sets up logging from the configuration).
pub fn load_config_noting(file: Option<&Path>) -> anyhow::Result<(Config, Vec<String>)> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        anyhow::ensure!(
            file.exists(),
            "config file {} does not exist",
            file.display()
        );
        figment = figment.merge(Toml::file_exact(file));
    }
    let keys = top_level_keys();
    let notes = check_environment(&keys, std::env::vars_os().map(|(name, _)| name))?;
    figment = figment.merge(
        Env::prefixed("MYELIN_")
            .filter(move |key| keys.iter().any(|k| k == &top_level_of(key.as_str())))
            .split("__"),
    );
    let mut config: Config = figment.extract().map_err(|e| {
        let lines: Vec<String> = e.into_iter().map(|err| describe(&err)).collect();
        anyhow::anyhow!(lines.join("\n"))
    })?;
    read_secret_files(&mut config)?;
    if let Some(directives) = &config.log.filter {
        tracing_subscriber::EnvFilter::try_new(directives)
            .map_err(|e| anyhow::anyhow!("invalid configuration key `log.filter`: {e}"))?;
    }
    config.validate()?;
    Ok((config, notes))
}

/// Fills each secret whose `*_file` key is set from that file's first line, so secrets can
/// stay out of the environment and the configuration (Docker and Kubernetes secrets, systemd
/// credentials). Setting both a value and its file is refused: which one wins would be a
/// guess.
fn read_secret_files(config: &mut Config) -> anyhow::Result<()> {
    fn read(
        key: &str,
        file: &Option<std::path::PathBuf>,
        value: &mut Option<String>,
    ) -> anyhow::Result<()> {
        let Some(path) = file else {
            return Ok(());
        };
        anyhow::ensure!(
            value.is_none(),
            "invalid configuration key `{key}_file`: `{key}` is set too; set one of them"
        );
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "invalid configuration key `{key}_file`: reading {}",
                path.display()
            )
        })?;
        let first = text.lines().next().unwrap_or_default().trim_end();
        anyhow::ensure!(
            !first.is_empty(),
            "invalid configuration key `{key}_file`: {} is empty",
            path.display()
        );
        *value = Some(first.to_owned());
        Ok(())
    }
    let registration = &mut config.registration;
    read(
        "registration.token",
        &registration.token_file,
        &mut registration.token,
    )?;
    read(
        "registration.shared_secret",
        &registration.shared_secret_file,
        &mut registration.shared_secret,
    )?;
    let voip = &mut config.voip;
    read(
        "voip.turn_shared_secret",
        &voip.turn_shared_secret_file,
        &mut voip.turn_shared_secret,
    )?;
    // The database URL always has a value (the default): the file replaces it.
    if config.database.url_file.is_some() {
        let mut url = None;
        read("database.url", &config.database.url_file, &mut url)?;
        config.database.url = url.unwrap_or_default();
    }
    Ok(())
}

/// The configuration's top-level keys, as its deserializer knows them: asked with a key no
/// configuration has, it refuses it and lists them, so the list cannot drift from `Config`.
fn top_level_keys() -> Vec<String> {
    let probe = Figment::from(figment::providers::Serialized::default(
        "myelin_probe_of_the_keys",
        0,
    ));
    let Err(err) = probe.extract::<Config>() else {
        return Vec::new();
    };
    err.into_iter()
        .find_map(|e| match e.kind {
            figment::error::Kind::UnknownField(_, expected) => {
                Some(expected.iter().map(|k| (*k).to_owned()).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}

/// The top-level key an environment variable's name (without `MYELIN_`) sets.
fn top_level_of(name: &str) -> String {
    name.split("__").next().unwrap_or_default().to_lowercase()
}

/// Refuses `MYELIN_*` variables that look like a misspelt key; notes the others that name no
/// key.
fn check_environment(
    keys: &[String],
    names: impl Iterator<Item = std::ffi::OsString>,
) -> anyhow::Result<Vec<String>> {
    let mut ignored = Vec::new();
    for name in names {
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("MYELIN_")) else {
            continue;
        };
        // The command line's own: the configuration file's path.
        if rest == "CONFIG" {
            continue;
        }
        let top = top_level_of(rest);
        if keys.contains(&top) {
            continue;
        }
        let close = keys
            .iter()
            .find(|key| edit_distance(&top, key) <= if key.len() >= 6 { 2 } else { 1 });
        if let Some(key) = close {
            anyhow::bail!(
                "environment variable {} names no configuration key; did you mean MYELIN_{}?",
                name.to_string_lossy(),
                key.to_uppercase()
            );
        }
        ignored.push(name.to_string_lossy().into_owned());
    }
    if ignored.is_empty() {
        return Ok(Vec::new());
    }
    ignored.sort();
    Ok(vec![format!(
        "ignoring environment variables that name no configuration key: {}",
        ignored.join(", ")
    )])
}

/// Levenshtein distance (keys are short ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// One configuration error as an operator should read it, naming the key. figment's own text
/// for unknown keys and values wraps its backticked list of names in more backticks, which
/// garbles it.
fn describe(err: &figment::Error) -> String {
    use figment::error::Kind;
    let key = err.path.join(".");
    match &err.kind {
        Kind::UnknownField(_, expected) => {
            format!(
                "unknown key `{key}`; expected one of: {}",
                expected.join(", ")
            )
        }
        Kind::UnknownVariant(value, expected) => format!(
            "invalid configuration key `{key}`: unknown value `{value}`; expected one of: {}",
            expected.join(", ")
        ),
        _ if key.is_empty() => err.to_string(),
        kind => format!("invalid configuration key `{key}`: {kind}"),
    }
}

/// Opens the configured database, applying pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    let db = &config.database;
    match config.database_backend()? {
        Backend::Sqlite(path) => {
            let store = SqliteStore::open(&path, db.readers, &db.synchronous)
                .with_context(|| format!("opening database {}", path.display()))?;
            Ok(Arc::new(store))
        }
        Backend::Postgres(url) => {
            let options = PgOptions {
                url,
                pool_size: db.pool_size,
                statement_timeout_ms: db.statement_timeout_ms,
                tls: db.tls.clone(),
            };
            let store = PostgresStore::connect(&options)
                .await
                .context("connecting to PostgreSQL")?;
            Ok(Arc::new(store))
        }
    }
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served (`metrics.listen`).
    pub metrics_addr: Option<SocketAddr>,
    pub services: Arc<Services>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops accepting connections, lets requests in flight finish, flushes pending state and
    /// closes the database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.await?
    }

    /// Waits until the server stops by itself (after a shutdown signal).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

/// Binds the listener and serves until `stop` is called or `shutdown_signal` resolves.
pub async fn start(
    config: Config,
    shutdown_signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let listen = config.listen_addr()?;
    let public_base_url = config.public_base_url()?;
    let store = open_store(&config).await?;
    let services = Services::start(config, store)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    let metrics = match &services.config.metrics.listen {
        Some(listen) => Some(metrics::serve(listen.parse()?).await?),
        None => None,
    };
    let (metrics_addr, metrics_task) = metrics.unzip();
    let base_url = public_base_url.unwrap_or_else(|| format!("http://{addr}"));
    let app = myelin_api::router(services.clone(), &base_url);

    let (tx, rx) = oneshot::channel::<()>();
    let (stop_background, background_stopped) = oneshot::channel::<()>();
    let background = tokio::spawn(myelin_core::devices::background(
        services.clone(),
        async move {
            let _ = background_stopped.await;
        },
    ));
    services
        .previews
        .set_fetcher(Arc::new(url_preview::HttpFetcher::new(
            services.config.media.url_preview.allow_private,
        )));
    services
        .delivery
        .set_client(Arc::new(push_gateway::HttpGateway::new(
            services.config.push.allow_private_gateways,
        )));
    let (stop_delivery, delivery_stopped) = oneshot::channel::<()>();
    let delivery = tokio::spawn(myelin_core::push::gateway::run(
        services.clone(),
        async move {
            let _ = delivery_stopped.await;
        },
    ));
    let served = services.clone();
    let task = tokio::spawn(async move {
        let notifier_services = served.clone();
        let shutdown = async move {
            tokio::select! {
                _ = rx => {}
                _ = shutdown_signal => {}
            }
            tracing::info!("shutting down: finishing requests in flight");
            notifier_services.notifier.close();
        };
        serve(listener, app, &served.config.limits, shutdown).await;
        let _ = stop_background.send(());
        let _ = background.await;
        let _ = stop_delivery.send(());
        let _ = delivery.await;
        if let Some(task) = metrics_task {
            task.abort();
        }
        served.store.close().await;
        tracing::info!("database closed");
        Ok(())
    });
    Ok(Running {
        addr,
        metrics_addr,
        services,
        shutdown: Some(tx),
        task,
    })
}

/// Accepts connections and serves HTTP/1.1 on them until `shutdown` resolves, then lets the
/// requests in flight finish.
///
/// Our own loop rather than `axum::serve`, which has neither a header read timeout nor a
/// connection cap: any number of clients could each hold a connection open forever by sending
/// their headers a byte at a time (slowloris). Here at most `limits.max_connections` are
/// served at once (the next waits in the listen backlog until one closes), and hyper closes a
/// connection whose headers take longer than `limits.header_read_timeout_ms`. The body's
/// deadline is the extractor's (`RawBody`); nothing limits the response, so long-polls last.
async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &LimitsConfig,
    shutdown: impl Future<Output = ()>,
) {
    // Above `MAX_PERMITS` (2^61) a semaphore panics; no machine holds that many anyway.
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.min(Semaphore::MAX_PERMITS),
    ));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms));
    // `stop` tells connections to finish; every connection holds a clone of `running`, so
    // `closed()` on its sender resolves once the last one has ended.
    let (stop, stopped) = watch::channel(false);
    let (running, running_rx) = watch::channel(());
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((tcp, remote, slot)) = accepted else {
            continue;
        };
        // No Nagle delay: every response is written whole, and waiting for the previous
        // segment's acknowledgement only adds latency.
        let _ = tcp.set_nodelay(true);
        let service = app
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            });
        let connection =
            http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let mut stopped = stopped.clone();
        let running = running_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _running = running;
            let mut connection = pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopped.wait_for(|stop| *stop) => {}
            }
            // Finishes the request in flight, if any, then closes.
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(running_rx);
    running.closed().await;
}

/// Waits for a free connection slot, then for a connection. `None` after an accept error that
/// only concerns one connection, or (after a pause, so as not to spin) one that concerns the
/// process, such as running out of file descriptors.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(
    tokio::net::TcpStream,
    SocketAddr,
    tokio::sync::OwnedSemaphorePermit,
)> {
    // The semaphore is never closed, so this only waits.
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((tcp, remote)) => Some((tcp, remote, slot)),
        Err(err) => {
            use std::io::ErrorKind as K;
            if !matches!(
                err.kind(),
                K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
            ) {
                tracing::error!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            None
        }
    }
}
