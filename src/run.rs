//! How `myelin serve` runs: logging (text or JSON, its filter reloadable), the signals it
//! answers (SIGTERM and Ctrl-C stop it, SIGHUP reloads the configuration), and what it tells
//! systemd.

use std::path::PathBuf;

use myelin_core::config::{LogConfig, LogFormat};
use sd_notify::NotifyState;
use tracing_subscriber::{
    EnvFilter, Registry, layer::SubscriberExt, reload, util::SubscriberInitExt,
};

/// What a reload may change of logging: the filter.
pub type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// The filter: `RUST_LOG` when set, else `log.filter`, else `info` (ruma's authorization
/// rules log every check at info: one line per event is noise).
fn log_filter(configured: Option<&str>) -> EnvFilter {
    if let Ok(from_env) = EnvFilter::try_from_default_env() {
        return from_env;
    }
    configured
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new("info,ruma_state_res=warn"))
}

pub fn init_tracing(config: &LogConfig) -> FilterHandle {
    let (filter, handle) = reload::Layer::new(log_filter(config.filter.as_deref()));
    let registry = tracing_subscriber::registry().with(filter);
    match config.format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
            registry
                .with(tracing_subscriber::fmt::layer().with_ansi(ansi))
                .init();
        }
        LogFormat::Json => {
            registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(false),
                )
                .init();
            myelin_api::enable_access_log();
        }
    }
    handle
}

pub async fn serve(
    config: myelin_core::config::Config,
    file: Option<PathBuf>,
    filter: FilterHandle,
) -> anyhow::Result<()> {
    let data = crate::without_password(&config.database.url);
    // The handlers are installed before READY is sent: a SIGTERM or SIGHUP arriving in
    // between would otherwise meet the default action and kill the process ungracefully.
    let terminated = shutdown_signal();
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    let stopping = async {
        terminated.await;
        systemd(&[NotifyState::Stopping]);
    };
    let running = myelin::start(config, stopping).await?;
    tracing::info!(
        "Myelin listening on http://{}, data in {data}",
        running.addr
    );
    // Migrations ran and the listeners are bound: ready for systemd's Type=notify.
    systemd(&[NotifyState::Ready]);
    #[cfg(unix)]
    match hangups {
        Ok(hangups) => {
            tokio::spawn(reload_on_sighup(
                running.services.clone(),
                hangups,
                file,
                filter,
            ));
        }
        Err(err) => tracing::warn!(
            error = %err,
            "cannot listen for SIGHUP: reloading the configuration is off"
        ),
    }
    #[cfg(not(unix))]
    let _ = (file, filter);
    running.wait().await
}

/// Tells systemd, when it started this process with `NOTIFY_SOCKET` (a no-op otherwise).
fn systemd(state: &[NotifyState<'_>]) {
    if let Err(err) = sd_notify::notify(state) {
        tracing::debug!(error = %err, "telling systemd failed");
    }
}

/// SIGHUP reads the configuration again (the same file and environment) and applies what
/// can change while running: `registration`, `rate_limits` and `log.filter`. A configuration
/// that does not load is refused and the running one kept; changes to other keys are named
/// as waiting for a restart.
#[cfg(unix)]
async fn reload_on_sighup(
    services: std::sync::Arc<myelin_core::Services>,
    mut hangups: tokio::signal::unix::Signal,
    file: Option<PathBuf>,
    filter: FilterHandle,
) {
    let mut log_filter_in_force = services.config.log.filter.clone();
    while hangups.recv().await.is_some() {
        // systemd's notify-reload wants the reload's start time with RELOADING=1.
        match NotifyState::monotonic_usec_now() {
            Ok(now) => systemd(&[NotifyState::Reloading, now]),
            Err(_) => systemd(&[NotifyState::Reloading]),
        }
        match myelin::load_config_noting(file.as_deref()) {
            Ok((new, notes)) => {
                for note in notes {
                    tracing::warn!("{note}");
                }
                let mut done = services.reload(&new).await;
                if new.log.filter != log_filter_in_force {
                    match filter.reload(log_filter(new.log.filter.as_deref())) {
                        Ok(()) => {
                            done.applied.push("log.filter");
                            log_filter_in_force = new.log.filter.clone();
                        }
                        Err(err) => tracing::warn!(error = %err, "changing the log filter failed"),
                    }
                }
                if services.config.log.format != new.log.format {
                    done.need_restart.push("log.format");
                }
                for refused in &done.refused {
                    tracing::error!("reload: {refused}; the running setting stays");
                }
                tracing::info!(
                    applied = ?done.applied,
                    need_restart = ?done.need_restart,
                    "configuration reloaded"
                );
            }
            Err(err) => {
                tracing::error!("configuration reload refused, the running one stays: {err:#}");
            }
        }
        systemd(&[NotifyState::Ready]);
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when
/// the future is first polled.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match terminate {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = terminate => {}
        }
    }
}
