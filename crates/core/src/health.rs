//! Readiness: whether this process can serve requests now. Liveness (`/health`) needs no
//! check at all: restarting a process cannot cure a database outage, so only readiness
//! looks at the database.

use std::time::Duration;

use crate::Services;

/// How long the database may take to answer before the process counts as not ready.
const DATABASE_DEADLINE: Duration = Duration::from_secs(2);

/// `Ok` when the database answers within [`DATABASE_DEADLINE`]; otherwise what failed, for
/// the operator's log.
pub async fn check_database(services: &Services) -> Result<(), String> {
    match tokio::time::timeout(DATABASE_DEADLINE, services.store.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!(
            "no answer within {} ms",
            DATABASE_DEADLINE.as_millis()
        )),
    }
}
