//! Metrics the domain reports (the HTTP ones are the API layer's). Recorded through the
//! `metrics` facade: without a recorder installed (`metrics.listen` unset) every call is a
//! no-op.

use std::sync::Weak;
use std::time::Duration;

use crate::Services;

/// How often the account and device gauges are counted again: a few queries each time, and
/// capacity changes slowly.
const POPULATION_EVERY: Duration = Duration::from_secs(60);

/// Devices seen within this long count as active sessions.
const ACTIVE_WITHIN_MS: i64 = 24 * 3600 * 1000;

/// Raises a gauge for as long as it lives (a cancelled future lowers it too).
pub(crate) struct Raised(&'static str);

impl Raised {
    pub(crate) fn new(gauge: &'static str) -> Self {
        metrics::gauge!(gauge).increment(1.0);
        Self(gauge)
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        metrics::gauge!(self.0).decrement(1.0);
    }
}

/// Counts accounts and devices every [`POPULATION_EVERY`] until the services are gone.
pub async fn population(services: Weak<Services>) {
    let mut every = tokio::time::interval(POPULATION_EVERY);
    loop {
        every.tick().await;
        let Some(services) = services.upgrade() else {
            return;
        };
        let since = crate::now_ms() - ACTIVE_WITHIN_MS;
        match services.store.population(since).await {
            Ok(p) => {
                let users = |state: &'static str, n: u64| {
                    metrics::gauge!("myelin_users", "state" => state).set(n as f64);
                };
                users("active", p.active_users);
                users("deactivated", p.deactivated_users);
                users("locked", p.locked_users);
                users("suspended", p.suspended_users);
                metrics::gauge!("myelin_devices").set(p.devices as f64);
                metrics::gauge!("myelin_active_sessions").set(p.active_devices as f64);
            }
            Err(err) => tracing::warn!(error = %err, "counting users and devices failed"),
        }
    }
}
