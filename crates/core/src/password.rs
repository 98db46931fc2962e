//! Password hashing with argon2id on a bounded pool.
//!
//! Each hash in flight holds `memory_kib` of memory (19 MiB by default), so the number of
//! hashes computed at once is capped: unbounded concurrent logins would otherwise be a cheap way
//! to exhaust the server's memory.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};
use tokio::sync::Semaphore;

use crate::{
    config::PasswordConfig,
    error::{Error, Result},
};

#[derive(Clone)]
pub struct Passwords {
    params: Params,
    slots: Arc<Semaphore>,
}

impl Passwords {
    pub fn new(config: &PasswordConfig) -> Result<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}").into()))?;
        let slots = config.max_concurrent_hashes.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        Ok(Self {
            params,
            slots: Arc::new(Semaphore::new(slots.max(1))),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String> {
        let _slot = self.slot().await?;
        let params = self.params.clone();
        let started = std::time::Instant::now();
        let hashed = tokio::task::spawn_blocking(move || hash_with(&params, &password))
            .await
            .map_err(|_| closed())?;
        record(started);
        hashed
    }

    /// A hashing slot; the wait for it is the password queue operators watch.
    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>> {
        let _waiting = crate::telemetry::Raised::new("myelin_password_hashes_waiting");
        self.slots.acquire().await.map_err(|_| closed())
    }

    /// Verifies `password` against `hash`. With `hash = None` (no such user, or no password)
    /// it hashes the password anyway and fails, so both cases take as long as a wrong password.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool> {
        let _slot = self.slot().await?;
        let params = self.params.clone();
        let started = std::time::Instant::now();
        let verified = tokio::task::spawn_blocking(move || match hash {
            Some(hash) => Ok(PasswordHash::new(&hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false)),
            None => hash_with(&params, &password).map(|_| false),
        })
        .await
        .map_err(|_| closed())?;
        record(started);
        verified
    }
}

fn record(started: std::time::Instant) {
    metrics::histogram!("myelin_password_hash_duration_seconds")
        .record(started.elapsed().as_secs_f64());
}

fn closed() -> Error {
    Error::Internal("password hashing is unavailable".into())
}

fn hash_with(params: &Params, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("hashing failed: {e}").into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() {
        let pw = Passwords::new(&PasswordConfig {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent_hashes: Some(1),
        })
        .expect("params");
        let hash = pw.hash("hunter2".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            pw.verify("hunter2".into(), Some(hash.clone()))
                .await
                .expect("verify")
        );
        assert!(
            !pw.verify("hunter3".into(), Some(hash))
                .await
                .expect("verify")
        );
        assert!(!pw.verify("anything".into(), None).await.expect("verify"));
    }
}
