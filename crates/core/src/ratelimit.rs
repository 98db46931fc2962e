//! Keyed token buckets for `M_LIMIT_EXCEEDED`.
//!
//! Failed-login limiting spends a token *before* the expensive password check and gives it
//! back when the password was right ([`KeyedLimiter::refund`]). Looking first and spending only
//! after a failure let any number of parallel guesses through while the first ones were still
//! being checked. General-purpose limiters offer no refund; hence this small one.
//!
//! Memory is bounded: a limiter remembers at most [`MAX_KEYS`] keys. Buckets that have refilled
//! hold no information and are forgotten first; if that is not enough, the fullest ones go, so
//! filling the table with fresh keys cannot lift a limit that is actually biting.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{
        Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::config::RateLimit;

/// Keys one limiter remembers at most.
pub const MAX_KEYS: usize = 10_000;

pub struct KeyedLimiter {
    /// The limit, changeable while running (a configuration reload): `per_second` as the bits
    /// of an `f64`, and `burst`.
    per_second: AtomicU64,
    burst: AtomicU32,
    max_keys: usize,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl KeyedLimiter {
    pub fn new(limit: RateLimit) -> Self {
        Self::with_max_keys(limit, MAX_KEYS)
    }

    fn with_max_keys(limit: RateLimit, max_keys: usize) -> Self {
        Self {
            per_second: AtomicU64::new(limit.per_second.to_bits()),
            burst: AtomicU32::new(limit.burst),
            max_keys,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The limit in force.
    pub fn limit(&self) -> RateLimit {
        RateLimit {
            per_second: f64::from_bits(self.per_second.load(Ordering::Relaxed)),
            burst: self.burst.load(Ordering::Relaxed),
        }
    }

    /// Changes the limit; buckets keep their tokens (capped at the new burst when next used).
    pub fn set_limit(&self, limit: RateLimit) {
        self.per_second
            .store(limit.per_second.to_bits(), Ordering::Relaxed);
        self.burst.store(limit.burst, Ordering::Relaxed);
    }

    fn burst(&self) -> f64 {
        f64::from(self.limit().burst)
    }

    /// Tokens in `bucket` at `now`, without writing the refill back.
    fn level(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.limit().per_second).min(self.burst())
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        bucket.tokens = self.level(bucket, now);
        bucket.updated = now;
    }

    fn wait_for_one(&self, bucket: &Bucket) -> Duration {
        let missing = (1.0 - bucket.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.limit().per_second).max(Duration::from_millis(1))
    }

    /// What a poisoned lock answers. A panic while the lock was held may have left the buckets
    /// half-updated, and these limits guard password guessing: refusing (until the process is
    /// restarted) is safer than letting every attempt through unlimited.
    fn poisoned(&self) -> Duration {
        tracing::error!("rate limiter lock poisoned by an earlier panic; refusing");
        Duration::from_secs_f64(1.0 / self.limit().per_second).max(Duration::from_secs(1))
    }

    /// Spends one token, or `Err(wait)` if none is left.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Err(self.poisoned());
        };
        let now = Instant::now();
        if buckets.len() >= self.max_keys && !buckets.contains_key(key) {
            self.make_room(&mut buckets, now);
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

    /// Gives back a token spent by [`KeyedLimiter::check`] for an attempt that turned out fine.
    pub fn refund(&self, key: &str) {
        let Ok(mut buckets) = self.buckets.lock() else {
            return;
        };
        let now = Instant::now();
        if let Some(bucket) = buckets.get_mut(key) {
            self.refill(bucket, now);
            bucket.tokens = (bucket.tokens + 1.0).min(self.burst());
        }
    }

    /// Forgets refilled buckets, then if still crowded the fullest ones, down to 7/8 of the
    /// cap, so that the next sweep is at least `max_keys / 8` new keys away.
    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now: Instant) {
        let full = self.burst();
        buckets.retain(|_, b| self.level(b, now) < full);
        let keep = self.max_keys - self.max_keys.div_ceil(8);
        if buckets.len() <= keep {
            return;
        }
        let excess = buckets.len() - keep;
        let mut levels: Vec<f64> = buckets.values().map(|b| self.level(b, now)).collect();
        // The `excess`-th fullest level: it and everything fuller are forgotten.
        let (_, threshold, _) = levels.select_nth_unstable_by(excess - 1, |a, b| b.total_cmp(a));
        let threshold = *threshold;
        buckets.retain(|_, b| self.level(b, now) < threshold);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().map(|b| b.len()).unwrap_or_default()
    }
}

/// The key a client address is limited under. One IPv6 subscriber is routed a whole /64 and
/// can pick any address in it, so limiting single IPv6 addresses would give it 2^64 fresh
/// allowances; IPv4 addresses are scarce enough to count one by one. IPv4-mapped IPv6
/// addresses count as the IPv4 address they carry.
pub fn address_key(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX));
                format!("{prefix}/64")
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_owned(),
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
        assert!(limiter.check("b").is_ok(), "keys are independent");
        std::thread::sleep(Duration::from_millis(5));
        assert!(limiter.check("a").is_ok());
    }

    #[test]
    fn a_refund_gives_back_exactly_one_token_up_to_the_burst() {
        let limiter = KeyedLimiter::new(RateLimit {
            per_second: 0.001,
            burst: 2,
        });
        limiter.refund("a");
        assert!(limiter.check("a").is_ok());
        limiter.refund("a");
        limiter.refund("a");
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert!(
            limiter.check("a").is_err(),
            "refunds never exceed the burst"
        );
        limiter.refund("a");
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_err());
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

    #[test]
    fn the_key_count_is_capped_and_drained_keys_are_forgotten_last() {
        let limiter = KeyedLimiter::with_max_keys(
            RateLimit {
                per_second: 0.001,
                burst: 3,
            },
            16,
        );
        for _ in 0..3 {
            assert!(limiter.check("victim").is_ok());
        }
        for i in 0..1000 {
            assert!(limiter.check(&format!("junk{i}")).is_ok());
            assert!(limiter.len() <= 16);
        }
        assert!(
            limiter.check("victim").is_err(),
            "the drained key outlives a flood of fresher ones"
        );
    }

    #[test]
    fn ipv6_addresses_are_keyed_by_their_64_prefix_ipv4_by_the_whole_address() {
        let key = address_key("2001:db8:1:2:3:4:5:6");
        assert_eq!(key, "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:ffff:ffff:ffff:ffff"), key);
        assert_eq!(address_key("2001:DB8:1:2::1"), key);
        assert_ne!(address_key("2001:db8:1:3::1"), key);
        assert_eq!(address_key("::1"), "::/64");
        assert_eq!(address_key("203.0.113.7"), "203.0.113.7");
        assert_ne!(address_key("203.0.113.8"), address_key("203.0.113.7"));
        assert_eq!(address_key("::ffff:203.0.113.7"), "203.0.113.7");
    }
}

/// Spends one of the requester's allowance on `limiter` (429 `M_LIMIT_EXCEEDED` when none is
/// left): an appservice acting for its users is limited only if its registration says so.
pub(crate) fn per_user(
    limiter: &KeyedLimiter,
    requester: &crate::auth::Requester,
) -> crate::Result<()> {
    if requester
        .appservice
        .as_ref()
        .is_some_and(|a| !a.rate_limited)
    {
        return Ok(());
    }
    limiter
        .check(&requester.user_id)
        .map_err(crate::error::limit_exceeded)
}
