//! SendData spent bringing locks up, counted on the simulated stick: a first start until every
//! lock is interviewed and all its codes are read, and a second start from the same database
//! until every lock is ready again. Shared by `tests/interview.rs` (which asserts the counts:
//! they are deterministic against the simulator) and `benches/interview_radio.rs` (which
//! prints them).
#![allow(dead_code)] // each crate uses part of it

use std::time::Duration;

use super::world::{quiet_config, Ground, World};
use zwlock::codes::watch::WatchConfig;
use zwlock::codes::EngineConfig;
use zwlock::driver::DriverConfig;
use zwlock::store::Store;

/// One lock model of a scenario: `count` locks from node 2 on.
#[derive(Debug, Clone)]
pub struct Locks {
    pub count: u8,
    pub user_code_version: u8,
    pub slots: u16,
    pub checksum: bool,
    pub bulk_reports: bool,
    /// Codes on every lock at the start: slot, PIN, disabled.
    pub codes: Vec<(u16, &'static str, bool)>,
}

/// The benchmark mock's codes: user 1 "1234", user 7 a disabled "24680".
pub const SEEDED: [(u16, &str, bool); 2] = [(1, "1234", false), (7, "24680", true)];

impl Locks {
    pub fn v1(count: u8, slots: u16) -> Locks {
        Locks {
            count,
            user_code_version: 1,
            slots,
            checksum: false,
            bulk_reports: false,
            codes: SEEDED.to_vec(),
        }
    }

    pub fn v2(slots: u16, checksum: bool, bulk_reports: bool) -> Locks {
        Locks {
            count: 1,
            user_code_version: 2,
            slots,
            checksum,
            bulk_reports,
            codes: SEEDED.to_vec(),
        }
    }

    /// The same locks holding `codes` instead.
    pub fn holding(mut self, codes: &[(u16, &'static str, bool)]) -> Locks {
        self.codes = codes.to_vec();
        self
    }

    /// The simulated network: the locks of the benchmark's mock (Supervision, Door Lock,
    /// Notification v8, Battery), holding [`Locks::codes`].
    pub fn toml(&self) -> String {
        let codes: Vec<String> = self
            .codes
            .iter()
            .map(|(slot, pin, disabled)| {
                format!("{{ slot = {slot}, code = \"{pin}\", disabled = {disabled} }}")
            })
            .collect();
        let mut t = String::from("[[network]]\nname = \"t\"\nseed = 7\n");
        for i in 0..self.count {
            t.push_str(&format!(
                "[[network.lock]]\nnode_id = {}\nuser_code_version = {}\nslots = {}\n\
                 checksum = {}\nbulk_reports = {}\ninitial_codes = [{}]\n",
                2 + i,
                self.user_code_version,
                self.slots,
                self.checksum,
                self.bulk_reports,
                codes.join(", ")
            ));
        }
        t
    }

    pub fn nodes(&self) -> impl Iterator<Item = u8> {
        2..2 + self.count
    }
}

/// The engine as the daemon runs it on first sight of a lock: every slot read once.
pub fn config() -> EngineConfig {
    EngineConfig {
        watch: WatchConfig {
            full_read_on_first_sight: true,
            ..quiet_config().watch
        },
        ..quiet_config()
    }
}

/// Whether the driver keeps lock models, as the daemon does (in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Models {
    Cached,
    Uncached,
}

impl Models {
    fn tweak(self, ground: &Ground) -> impl FnOnce(&mut DriverConfig) {
        let cache = (self == Models::Cached).then(|| {
            let path = ground.dir.path().join("zwlock.db");
            std::sync::Arc::new(zwlock::daemon::StoreModels::open(&path).unwrap())
                as std::sync::Arc<dyn zwlock::driver::ModelCache>
        });
        move |dc: &mut DriverConfig| dc.model_cache = cache
    }
}

/// What a start cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// SendData the stick took, in all.
    pub send_data: u64,
    /// Commands each lock received (one per SendData that reached it), by node.
    pub per_lock: Vec<(u8, u64)>,
}

impl Count {
    pub fn max_per_lock(&self) -> u64 {
        self.per_lock.iter().map(|(_, n)| *n).max().unwrap_or(0)
    }
}

async fn count(w: &World, locks: &Locks, from: &[(u8, u64)], from_total: u64) -> Count {
    let mut per_lock = Vec::new();
    for n in locks.nodes() {
        let before = from
            .iter()
            .find(|(m, _)| *m == n)
            .map(|(_, c)| *c)
            .unwrap_or(0);
        per_lock.push((n, w.commands_received(n).await - before));
    }
    Count {
        send_data: w.net.stats().await.unwrap().send_data - from_total,
        per_lock,
    }
}

async fn received(w: &World, locks: &Locks) -> Vec<(u8, u64)> {
    let mut v = Vec::new();
    for n in locks.nodes() {
        v.push((n, w.commands_received(n).await));
    }
    v
}

fn full_read_done(w: &World) -> bool {
    let Ok(store) = Store::open_read_only(&w.db_path()) else {
        return false;
    };
    let Ok(devices) = w.engine.devices() else {
        return false;
    };
    !devices.is_empty()
        && devices.iter().all(|d| {
            Store::state(store.conn(), &format!("full_read_done:{}", d.device_id))
                .ok()
                .flatten()
                .is_some()
        })
}

/// A first start on an empty database: SendData until every lock is interviewed and all its
/// codes are read. Returns the world (to stop and start again) and the count.
pub async fn first_start(locks: &Locks, models: Models) -> (World, Count) {
    let ground = Ground::new(&locks.toml());
    let tweak = models.tweak(&ground);
    let w = World::start_with(ground, config(), usize::from(locks.count), tweak).await;
    w.until("every lock read", Duration::from_secs(3600), full_read_done)
        .await;
    let c = count(&w, locks, &[], 0).await;
    (w, c)
}

/// Stop `w` and start again on the same database and network: SendData until the driver has
/// every lock ready (interviewed, its facts known). What the engine then does to verify the
/// codes it holds is not counted here.
pub async fn second_start(w: World, locks: &Locks, models: Models) -> (World, Count) {
    let before = received(&w, locks).await;
    let total = w.net.stats().await.unwrap().send_data;
    let ground = w.stop().await;
    let tweak = models.tweak(&ground);
    let w = World::start_with(ground, config(), usize::from(locks.count), tweak).await;
    let driver = w.engine.driver().expect("a driver");
    let t0 = tokio::time::Instant::now();
    loop {
        let nodes = driver.nodes().await.unwrap();
        let ready = locks.nodes().all(|n| {
            nodes
                .iter()
                .any(|i| i.node_id.0 == u16::from(n) && i.interviewed)
        });
        if ready {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(3600),
            "locks never ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = count(&w, locks, &before, total).await;
    (w, c)
}

/// The codes the engine found on a lock (none of them managed: slot and PIN, by slot).
pub fn found(w: &World, node: u8) -> Vec<(u16, Option<String>)> {
    let mut v: Vec<(u16, Option<String>)> = w
        .engine
        .unmanaged(&w.device(u16::from(node)))
        .unwrap()
        .into_iter()
        .map(|c| (c.slot, c.code))
        .collect();
    v.sort();
    v
}

/// What [`found`] says when the lock holds `codes`.
pub fn expected(codes: &[(u16, &str, bool)]) -> Vec<(u16, Option<String>)> {
    let mut v: Vec<(u16, Option<String>)> = codes
        .iter()
        .map(|(s, pin, _)| (*s, Some(pin.to_string())))
        .collect();
    v.sort();
    v
}
