//! Slows password guessing from one address: a token bucket per client address — an IPv4
//! address, or an IPv6 /64, which one host can fill with addresses — (`auth.failed_login_burst`
//! tokens, one more every `auth.failed_login_interval`). A failed login spends a token; a login
//! checks its password only while the address has a token not already claimed by a check in
//! flight, and at most [`IN_FLIGHT`] at once, so a thousand parallel guesses from one address get
//! a few checks at a time, `burst` in all, then one per interval, and cannot hold the broker's few
//! password-check slots for long. Attempts that could not start before their connect deadline are
//! refused without a check. A successful login spends nothing.
//!
//! The buckets sit in shards, each behind its own short-held lock: a flood from one address
//! contends on one shard and never holds a lock while it waits, so other clients' logins go on.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

const SHARDS: usize = 16;
/// Password checks one address may have running at once.
pub const IN_FLIGHT: u32 = 2;
/// Past this many buckets in a shard, full idle ones are dropped as the shard is used.
const PRUNE_AT: usize = 4096;

pub struct Limiter {
    shards: Box<[Mutex<HashMap<IpAddr, Bucket>>]>,
    hasher: RandomState,
    burst: f64,
    interval: Duration,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    /// Password checks running for this address: each has claimed a token it may spend.
    in_flight: u32,
    /// Woken when a check ends, so a waiter can take the token it did not spend.
    ended: Arc<Notify>,
}

impl Bucket {
    fn refill(&mut self, now: Instant, burst: f64, interval: Duration) {
        let gained = now.duration_since(self.at).as_secs_f64() / interval.as_secs_f64();
        self.tokens = (self.tokens + gained).min(burst);
        self.at = now;
    }

    fn idle_and_full(&self, burst: f64) -> bool {
        self.in_flight == 0 && self.tokens >= burst
    }
}

/// The address could not start a password check before its deadline.
#[derive(Debug, PartialEq, Eq)]
pub struct Throttled;

/// A password check the limiter allowed; [`Attempt::failed`] spends its token, dropping it
/// without that gives the token back.
pub struct Attempt<'a> {
    limiter: &'a Limiter,
    ip: IpAddr,
    failed: bool,
}

impl Attempt<'_> {
    pub fn failed(mut self) {
        self.failed = true;
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.limiter.end(self.ip, self.failed);
    }
}

impl Limiter {
    pub fn new(burst: u32, interval: Duration) -> Limiter {
        Limiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            burst: f64::from(burst.max(1)),
            interval: interval.max(Duration::from_millis(1)),
        }
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, Bucket>> {
        &self.shards[self.hasher.hash_one(ip) as usize % SHARDS]
    }

    /// Waits until `ip` may check a password, or refuses if that cannot happen by `deadline`.
    pub async fn acquire(&self, ip: IpAddr, deadline: Instant) -> Result<Attempt<'_>, Throttled> {
        let ip = bucket_of(ip);
        loop {
            let (ended, next) = {
                let mut shard = self.shard(ip).lock();
                if shard.len() > PRUNE_AT {
                    let (burst, interval, now) = (self.burst, self.interval, Instant::now());
                    shard.retain(|_, b| {
                        b.refill(now, burst, interval);
                        !b.idle_and_full(burst)
                    });
                }
                let now = Instant::now();
                let b = shard.entry(ip).or_insert_with(|| Bucket {
                    tokens: self.burst,
                    at: now,
                    in_flight: 0,
                    ended: Arc::new(Notify::new()),
                });
                b.refill(now, self.burst, self.interval);
                let free = b.tokens - f64::from(b.in_flight);
                if free >= 1.0 && b.in_flight < IN_FLIGHT {
                    b.in_flight += 1;
                    return Ok(Attempt {
                        limiter: self,
                        ip,
                        failed: false,
                    });
                }
                // The next chance: enough refill for a whole free token, or a check in flight
                // ending without spending its token.
                let next = match free >= 1.0 {
                    // Only the cap holds it: the next chance is a check ending.
                    true => deadline,
                    false => now + self.interval.mul_f64(1.0 - free),
                };
                if next > deadline && b.in_flight == 0 {
                    return Err(Throttled);
                }
                (b.ended.clone(), next.min(deadline))
            };
            tokio::select! {
                _ = ended.notified() => {}
                _ = tokio::time::sleep_until(next) => {}
            }
            if Instant::now() >= deadline {
                return Err(Throttled);
            }
        }
    }

    fn end(&self, ip: IpAddr, failed: bool) {
        let mut shard = self.shard(ip).lock();
        let Some(b) = shard.get_mut(&ip) else { return };
        b.refill(Instant::now(), self.burst, self.interval);
        b.in_flight -= 1;
        if failed {
            b.tokens = (b.tokens - 1.0).max(0.0);
        }
        b.ended.notify_one();
        if b.idle_and_full(self.burst) {
            shard.remove(&ip);
        }
    }

    #[cfg(test)]
    fn buckets(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The address a client is counted under: IPv4 as it is (also when mapped into IPv6), IPv6 by
/// its /64.
fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[tokio::test(start_paused = true)]
    async fn failures_spend_the_burst_then_one_per_interval() {
        let l = Limiter::new(3, Duration::from_secs(1));
        let far = Instant::now() + Duration::from_secs(60);
        for _ in 0..3 {
            l.acquire(A, far).await.unwrap().failed();
        }
        let started = Instant::now();
        l.acquire(A, far).await.unwrap().failed();
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        // Another address is not slowed by A's failures.
        let started = Instant::now();
        l.acquire(B, far).await.unwrap().failed();
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn successes_spend_nothing_and_full_buckets_are_dropped() {
        let l = Limiter::new(2, Duration::from_secs(1));
        let far = Instant::now() + Duration::from_secs(60);
        let started = Instant::now();
        for _ in 0..100 {
            drop(l.acquire(A, far).await.unwrap());
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(l.buckets(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ipv6_64_is_one_address_and_checks_at_once_are_capped() {
        let l = Limiter::new(10, Duration::from_secs(1));
        let soon = Instant::now() + Duration::from_millis(500);
        let v6 = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, last]);
        let first = l.acquire(v6(1), soon).await.unwrap();
        let second = l.acquire(v6(2), soon).await.unwrap();
        // A third address of the same /64 waits although tokens are left: two checks run.
        let third = l.acquire(v6(3), soon);
        tokio::pin!(third);
        tokio::select! {
            _ = &mut third => panic!("a third check of one /64 started with two in flight"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        first.failed();
        assert!(third.await.is_ok());
        drop(second);
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(bucket_of(mapped), A);
    }

    #[tokio::test(start_paused = true)]
    async fn parallel_checks_are_capped_by_the_tokens_and_late_ones_refused() {
        let l = Limiter::new(2, Duration::from_secs(1));
        let soon = Instant::now() + Duration::from_millis(500);
        let first = l.acquire(A, soon).await.unwrap();
        let second = l.acquire(A, soon).await.unwrap();
        // Both tokens are claimed: a third waits for one of them; when the claim fails the
        // token is spent and no refill comes before the deadline.
        let third = l.acquire(A, soon);
        tokio::pin!(third);
        tokio::select! {
            _ = &mut third => panic!("a third check started with two in flight"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        first.failed();
        second.failed();
        assert_eq!(third.await.err(), Some(Throttled));
        // A claim that ends in success hands its token to the waiter.
        let l = Limiter::new(1, Duration::from_secs(1));
        let held = l.acquire(A, soon).await.unwrap();
        let waiter = l.acquire(A, soon);
        tokio::pin!(waiter);
        tokio::select! {
            _ = &mut waiter => panic!("started with the only token claimed"),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        drop(held);
        assert!(waiter.await.is_ok());
    }
}
