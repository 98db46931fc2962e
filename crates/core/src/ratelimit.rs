//! Keyed token buckets for `M_LIMIT_EXCEEDED`.
//!
//! Failed-login limiting needs to *look* before it spends (a correct password must not be
//! refused by a bucket it never drained, and a drained bucket must refuse before the expensive
//! password check), which general-purpose limiters do not offer; hence this small one.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::config::RateLimit;

pub struct KeyedLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Buckets kept before idle ones (refilled to full) are swept.
const SWEEP_AT: usize = 10_000;

impl KeyedLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.limit.per_second).min(self.burst());
        bucket.updated = now;
    }

    fn burst(&self) -> f64 {
        f64::from(self.limit.burst)
    }

    fn wait_for_one(&self, bucket: &Bucket) -> Duration {
        let missing = (1.0 - bucket.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.limit.per_second).max(Duration::from_millis(1))
    }

    /// What a poisoned lock answers. A panic while the lock was held may have left the buckets
    /// half-updated, and these limits guard password guessing: refusing (until the process is
    /// restarted) is safer than letting every attempt through unlimited.
    fn poisoned(&self) -> Duration {
        tracing::error!("rate limiter lock poisoned by an earlier panic; refusing");
        Duration::from_secs_f64(1.0 / self.limit.per_second).max(Duration::from_secs(1))
    }

    /// `Err(wait)` if the key has no token left; spends nothing.
    pub fn peek(&self, key: &str) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(self.poisoned());
        };
        let Some(bucket) = buckets.get_mut(key) else {
            return Ok(());
        };
        self.refill(bucket, Instant::now());
        if bucket.tokens >= 1.0 {
            Ok(())
        } else {
            Err(self.wait_for_one(bucket))
        }
    }

    /// Spends one token, or `Err(wait)` if none is left.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(self.poisoned());
        };
        let now = Instant::now();
        if buckets.len() >= SWEEP_AT {
            let full = self.burst();
            let rate = self.limit.per_second;
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.updated).as_secs_f64() * rate < full
            });
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst(),
            updated: now,
        });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait_for_one(bucket))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refuse_then_refill() {
        let limiter = KeyedLimiter::new(RateLimit {
            per_second: 1000.0,
            burst: 2,
        });
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        let wait = limiter.check("a").expect_err("third is refused");
        assert!(wait <= Duration::from_millis(2));
        assert!(limiter.peek("b").is_ok(), "keys are independent");
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.peek("a").is_ok());
    }

    #[test]
    fn a_poisoned_lock_refuses_rather_than_lets_everything_through() {
        let limiter = KeyedLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 5,
        });
        let poisoned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = limiter.buckets.lock();
            panic!("a panic while the lock is held poisons it");
        }));
        assert!(poisoned.is_err() && limiter.buckets.is_poisoned());
        assert!(limiter.check("a").is_err(), "check must fail closed");
    }
}
