//! Failed sign-ins slow their source down: after a few failures within a
//! minute, each further failure from the same address waits longer before
//! its 401 (doubling, at most two seconds), so guessing passwords over one
//! connection or many costs time, while a user who mistyped once does not
//! notice.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The default of `[security] free_failed_attempts`.
pub const FREE_FAILURES: u32 = 5;
const WINDOW: Duration = Duration::from_secs(60);
const MAX_DELAY: Duration = Duration::from_secs(2);
/// Sources remembered at most; past it the table starts again.
const MAX_SOURCES: usize = 10_000;

pub struct Throttle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Failures per source and minute answered without delay.
    free: u32,
}

impl Throttle {
    pub fn new(free: u32) -> Throttle {
        Throttle {
            failures: Mutex::new(HashMap::new()),
            free,
        }
    }

    /// Records a failure of `source` and returns how long its answer waits.
    pub fn failed(&self, source: IpAddr) -> Duration {
        let mut map = self.failures.lock().expect("throttle lock");
        if map.len() >= MAX_SOURCES {
            map.clear();
        }
        let now = Instant::now();
        let entry = map.entry(source).or_insert((0, now));
        if now.duration_since(entry.1) > WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        delay(entry.0, self.free)
    }
}

fn delay(failures: u32, free: u32) -> Duration {
    match failures.checked_sub(free) {
        None | Some(0) => Duration::ZERO,
        Some(n) => (Duration::from_millis(50) * 2u32.saturating_pow(n.min(10))).min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_failures_cost_nothing_then_each_costs_more() {
        let t = Throttle::new(FREE_FAILURES);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.failed(ip), Duration::ZERO);
        }
        let a = t.failed(ip);
        let b = t.failed(ip);
        assert!(a > Duration::ZERO && b > a);
        for _ in 0..20 {
            assert!(t.failed(ip) <= MAX_DELAY);
        }
        assert_eq!(t.failed("10.0.0.2".parse().unwrap()), Duration::ZERO);
    }
}
