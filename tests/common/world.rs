//! An engine, a driver and a simulated network on a paused clock with a controlled wall clock:
//! the world the engine tests (`tests/engine.rs`, `tests/watch.rs`) run in.
#![allow(dead_code)] // each test crate uses part of it

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::broadcast;
use uuid::Uuid;
use zwlock::codes::watch::WatchConfig;
use zwlock::codes::{CreateRequest, Engine, EngineConfig, TestClock};
use zwlock::driver::{Driver, DriverConfig};
use zwlock::sim::{SimConfig, SimHandle, Simulator};
use zwlock::store::{EventRow, Store};

/// The wall clock at the start of every test.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap()
}

/// Short retry timings and no background watching (tests that count radio traffic).
pub fn quiet_config() -> EngineConfig {
    EngineConfig {
        delay_warning_after: Duration::from_secs(60),
        failure_after: Duration::from_secs(600),
        failure_attempts: 3,
        retry_initial: Duration::from_secs(5),
        retry_max: Duration::from_secs(30),
        refusal_retry: Duration::from_secs(3600),
        external_modification_error_hold: Duration::from_secs(24 * 3600),
        operation_timeout: Duration::from_secs(120),
        sync_wait: Duration::from_secs(30),
        lock_names: Default::default(),
        tick: Duration::from_secs(30),
        reserved_slots: Vec::new(),
        watch: WatchConfig {
            poll_frames_per_hour: 1,
            checksum_interval: Duration::from_secs(24 * 3600),
            full_read_on_first_sight: false,
            startup_verify_reads: 30,
        },
    }
}

/// `ZWLOCK_TEST_LOG=zwlock::codes=debug cargo test --test engine NAME -- --nocapture` shows
/// what happens.
pub fn init_log() {
    if let Ok(level) = std::env::var("ZWLOCK_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_test_writer()
            .try_init();
    }
}

/// What survives a daemon stop: the network, the clock and the database.
pub struct Ground {
    pub sim: Simulator,
    pub net: SimHandle,
    pub clock: TestClock,
    pub dir: tempfile::TempDir,
    /// The controller's network keys (for secure simulated locks).
    pub keys: Option<zwlock::security::keys::NetworkKeys>,
}

impl Ground {
    /// A network named "t" from `toml`, a clock at [`start_time`], an empty database.
    pub fn new(toml: &str) -> Ground {
        init_log();
        let sim = Simulator::new(SimConfig::from_toml(toml).unwrap());
        let net = sim.network("t").unwrap();
        Ground {
            sim,
            net,
            clock: TestClock::new(start_time()),
            dir: tempfile::tempdir().unwrap(),
            keys: None,
        }
    }
}

pub struct World {
    pub engine: Engine,
    pub net: SimHandle,
    pub clock: TestClock,
    pub events: broadcast::Receiver<EventRow>,
    sim: Simulator,
    dir: tempfile::TempDir,
    keys: Option<zwlock::security::keys::NetworkKeys>,
}

impl World {
    /// Start engine and driver on `ground`; returns once `locks` locks are known.
    pub async fn start(ground: Ground, config: EngineConfig, locks: usize) -> World {
        World::start_with(ground, config, locks, |_| {}).await
    }

    /// [`World::start`], with the driver's configuration changed by `tweak` first.
    pub async fn start_with(
        ground: Ground,
        config: EngineConfig,
        locks: usize,
        tweak: impl FnOnce(&mut DriverConfig),
    ) -> World {
        let Ground {
            sim,
            net,
            clock,
            dir,
            keys,
        } = ground;
        let store = Store::open(&dir.path().join("zwlock.db")).unwrap();
        let mut dc = DriverConfig::new("sim://t".parse().unwrap());
        dc.simulator = Some(Arc::new(sim.clone()));
        dc.keys = keys.clone();
        tweak(&mut dc);
        let (driver, driver_events) = Driver::spawn(dc);
        let engine = Engine::start(
            store,
            driver,
            driver_events,
            Arc::new(clock.clone()),
            config,
        )
        .unwrap();
        let events = engine.subscribe();
        let w = World {
            engine,
            net,
            clock,
            events,
            sim,
            dir,
            keys,
        };
        for _ in 0..600 {
            if w.engine.devices().unwrap().len() == locks {
                return w;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("locks never interviewed");
    }

    /// "Stop the daemon": shut engine and driver down, keep the network, clock and database.
    /// Proves the old engine is gone: its task has ended and it takes no more intents.
    pub async fn stop(self) -> Ground {
        let World {
            engine,
            sim,
            net,
            clock,
            dir,
            keys,
            ..
        } = self;
        engine.shutdown().await;
        assert!(engine.is_stopped(), "the engine task is still running");
        let device = engine.devices().unwrap().first().map(|d| d.device_id);
        if let Some(device_id) = device {
            let r = engine.create(CreateRequest {
                device_id,
                code: Some("8080".into()),
                ..Default::default()
            });
            assert!(
                matches!(r, Err(zwlock::codes::EngineError::Stopped)),
                "a stopped engine took an intent: {r:?}"
            );
        }
        drop(engine);
        Ground {
            sim,
            net,
            clock,
            dir,
            keys,
        }
    }

    /// The database file the engine works on.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.dir.path().join("zwlock.db")
    }

    pub fn device(&self, node: u16) -> Uuid {
        self.engine.device_by_node(node).unwrap().unwrap().device_id
    }

    pub fn create(&self, node: u16, code: &str) -> Uuid {
        let (c, _) = self
            .engine
            .create(CreateRequest {
                device_id: self.device(node),
                code: Some(code.into()),
                name: Some(format!("code {code}")),
                ..Default::default()
            })
            .unwrap();
        c.access_code_id
    }

    pub fn status(&self, id: &Uuid) -> String {
        self.engine.get(id).unwrap().status.to_string()
    }

    /// Let simulated time pass until `pred` holds (at most `max`).
    pub async fn until(&self, what: &str, max: Duration, mut pred: impl FnMut(&World) -> bool) {
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < max {
            if pred(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{what}: not reached within {max:?}");
    }

    pub async fn pin_on_lock(&self, node: u8, slot: u16) -> Option<String> {
        self.net
            .snapshot(node)
            .await
            .unwrap()
            .unwrap()
            .code(slot)
            .map(str::to_string)
    }

    /// Commands the lock has received so far.
    pub async fn commands_received(&self, node: u8) -> u64 {
        self.net
            .snapshot(node)
            .await
            .unwrap()
            .unwrap()
            .commands_received
    }

    pub fn drain_events(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            v.push(e.event_type);
        }
        v
    }
}
