//! Wall-clock time for the engine, behind a trait so tests control it.
//!
//! Codes are time-bound, so acting on a wrong clock is worse than waiting: a Raspberry Pi
//! without a battery-backed clock boots in 1970 and jumps forward when NTP syncs. The engine
//! never acts on time-bound windows while the clock is not synchronised.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};

/// The engine's view of time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Whether the wall clock can be trusted.
    fn is_synchronized(&self) -> bool;
}

/// Earliest plausible time: anything before is a clock that has not been set.
pub fn not_before() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

/// The system clock. Trusted once it is past [`not_before`] (and, where systemd-timesyncd
/// runs, once it reports synchronisation).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn is_synchronized(&self) -> bool {
        if Utc::now() < not_before() {
            return false;
        }
        // systemd-timesyncd touches this file once synchronised; without it, trust the date.
        let flag = std::path::Path::new("/run/systemd/timesync/synchronized");
        let timesyncd = std::path::Path::new("/run/systemd/timesync");
        !timesyncd.exists() || flag.exists()
    }
}

/// A clock for tests: follows tokio's (pausable) clock from a chosen start, can jump, and can
/// be marked unsynchronised.
#[derive(Debug, Clone)]
pub struct TestClock {
    inner: Arc<Mutex<TestClockState>>,
}

#[derive(Debug)]
struct TestClockState {
    base: DateTime<Utc>,
    since: tokio::time::Instant,
    synchronized: bool,
}

impl TestClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        TestClock {
            inner: Arc::new(Mutex::new(TestClockState {
                base: start,
                since: tokio::time::Instant::now(),
                synchronized: true,
            })),
        }
    }

    /// Jump the wall clock to `t` (as NTP would), without moving tokio's clock.
    pub fn set(&self, t: DateTime<Utc>) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.base = t;
        s.since = tokio::time::Instant::now();
    }

    pub fn set_synchronized(&self, yes: bool) {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .synchronized = yes;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = tokio::time::Instant::now() - s.since;
        s.base + chrono::Duration::from_std(elapsed).unwrap_or_default()
    }

    fn is_synchronized(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .synchronized
    }
}
