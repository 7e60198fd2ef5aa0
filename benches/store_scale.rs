//! A big hub: 232 locks × 250 codes (58,000) in the store. Measures, over the API socket as a
//! client sees it: create throughput (the locks are full, so new codes wait for a slot), `get` latency, `list` page latency; and the CPU cost of
//! one reconcile planning pass over a full lock.
//!
//! `cargo bench --bench store_scale` (release build; prints a table). The locks are not on
//! the simulated network, so new codes stay pending: the figures are the daemon's own cost,
//! not radio time. Then one lock with 10,000 codes under 50 clients at once, against the
//! daemon binary (`store_scale/one_big_lock.rs`).

#[path = "store_scale/one_big_lock.rs"]
mod one_big_lock;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use uuid::Uuid;
use zwlock::api::{Api, ListenConfig};
use zwlock::cli::client::Client;
use zwlock::codes::watch::WatchConfig;
use zwlock::codes::{Engine, EngineConfig, SystemClock};
use zwlock::driver::{Driver, DriverConfig};
use zwlock::sim::{SimConfig, Simulator};
use zwlock::store::{CodeRow, CodeStatus, DeviceFacts, LockFacts, Store};

const LOCKS: u16 = 232;
const SLOTS: u16 = 250;

fn code_row(device: Uuid, slot: u16, n: u32) -> CodeRow {
    let pin = format!("{:06}", 100_000 + n);
    CodeRow {
        name: Some(format!("guest {n}")),
        status: CodeStatus::Set,
        slot: Some(slot),
        programmed_code: Some(pin.clone()),
        ..CodeRow::new(device, pin, Utc::now())
    }
}

/// A User Code v2 lock of `slots` slots taking 4-8 digits, as the interview would store it.
fn lock_facts(node_id: u16, slots: u16) -> DeviceFacts {
    DeviceFacts {
        node_id,
        name: None,
        interview_cache: None,
        facts: LockFacts {
            user_code_version: 2,
            ..Default::default()
        },
        slot_count: slots,
        min_code_length: 4,
        max_code_length: 8,
        code_characters: "0123456789".into(),
        battery_level: Some(80),
        locked: Some(true),
    }
}

/// 232 locks, every one of their 250 slots holding a managed code.
fn populate(db: &std::path::Path) -> (Vec<Uuid>, Vec<Uuid>, Duration) {
    let mut store = Store::open(db).unwrap();
    let t0 = Instant::now();
    let (devices, codes) = store
        .transaction(|tx| {
            let mut devices = Vec::new();
            let mut codes = Vec::new();
            let mut n = 0u32;
            for i in 0..LOCKS {
                let d = Store::upsert_device(tx, &lock_facts(10 + i, SLOTS), &Utc::now())?;
                for slot in 1..=SLOTS {
                    let row = code_row(d.device_id, slot, n);
                    n += 1;
                    codes.push(row.access_code_id);
                    Store::put_code(tx, &row)?;
                }
                devices.push(d.device_id);
            }
            Ok((devices, codes))
        })
        .unwrap();
    let took = t0.elapsed();
    store.close().unwrap();
    (devices, codes, took)
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    (at(0.50), at(0.99))
}

/// A small LCG: deterministic picks without another dependency.
struct Pick(u64);
impl Pick {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn main() {
    // `cargo bench --bench store_scale -- one_big_lock` runs the one-lock case alone.
    if std::env::args().skip(1).any(|a| a == "one_big_lock") {
        one_big_lock::run();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zwlock.db");
    let socket = dir.path().join("api.sock");
    let (devices, codes, load) = populate(&db);
    println!(
        "store: {} locks, {} codes, loaded in {:.1} s (one transaction)",
        devices.len(),
        codes.len(),
        load.as_secs_f64()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let engine = rt.block_on(async {
        let sim = Simulator::new(SimConfig::from_toml("[[network]]\nname = \"big\"\n").unwrap());
        let mut dc = DriverConfig::new("sim://big".parse().unwrap());
        dc.simulator = Some(Arc::new(sim));
        let (driver, events) = Driver::spawn(dc);
        let config = EngineConfig {
            watch: WatchConfig {
                poll_frames_per_hour: 1,
                checksum_interval: Duration::from_secs(86_400),
                full_read_on_first_sight: false,
                startup_verify_reads: 0,
            },
            ..Default::default()
        };
        let engine = Engine::start(
            Store::open(&db).unwrap(),
            driver,
            events,
            Arc::new(SystemClock),
            config,
        )
        .unwrap();
        let api = Api::bind(&ListenConfig {
            socket: socket.clone(),
            socket_mode: 0o600,
            tcp: None,
            limits: Default::default(),
        })
        .await
        .unwrap();
        let e = engine.clone();
        tokio::spawn(api.serve(e, async move {
            let _ = stop_rx.await;
        }));
        engine
    });
    std::thread::sleep(Duration::from_secs(2));
    let client = Client::new(&socket);
    let mut pick = Pick(7);

    // Planning pass over a full lock (250 codes, all set): the reconciler's tick.
    let mut plan = Vec::new();
    for _ in 0..500 {
        let d = devices[pick.next(devices.len())];
        let t = Instant::now();
        engine.plan_once(&d).unwrap();
        plan.push(t.elapsed());
    }

    // get
    let mut gets = Vec::new();
    for _ in 0..2000 {
        let id = codes[pick.next(codes.len())];
        let t = Instant::now();
        let r = client
            .call(
                "GET",
                &format!("/access_codes/get?access_code_id={id}"),
                None,
            )
            .unwrap();
        gets.push(t.elapsed());
        assert_eq!(r.status, 200);
    }

    // list: a lock's first page of 100, and pages across the whole hub.
    let mut lists = Vec::new();
    for _ in 0..500 {
        let d = devices[pick.next(devices.len())];
        let t = Instant::now();
        let r = client
            .call(
                "GET",
                &format!("/access_codes/list?device_id={d}&limit=100"),
                None,
            )
            .unwrap();
        lists.push(t.elapsed());
        assert_eq!(r.body["access_codes"].as_array().map_or(0, Vec::len), 100);
    }
    // Later pages, by cursor.
    let mut walk = Vec::new();
    for _ in 0..100 {
        let d = devices[pick.next(devices.len())];
        let mut cursor: Option<String> = None;
        let mut seen = 0;
        loop {
            let path = match &cursor {
                Some(c) => format!("/access_codes/list?device_id={d}&limit=100&page_cursor={c}"),
                None => format!("/access_codes/list?device_id={d}&limit=100"),
            };
            let t = Instant::now();
            let r = client.call("GET", &path, None).unwrap();
            if cursor.is_some() {
                walk.push(t.elapsed());
            }
            seen += r.body["access_codes"].as_array().map_or(0, Vec::len);
            cursor = r.body["pagination"]["next_page_cursor"]
                .as_str()
                .map(str::to_string);
            if cursor.is_none() {
                break;
            }
        }
        assert_eq!(seen, usize::from(SLOTS));
    }

    // create, from two client threads (the machine has two cores).
    let per_thread = 500;
    let t0 = Instant::now();
    let lat: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2u64)
            .map(|k| {
                let socket = socket.clone();
                let devices = &devices;
                s.spawn(move || {
                    let client = Client::new(&socket);
                    let mut pick = Pick(100 + k);
                    let mut lat = Vec::new();
                    for i in 0..per_thread {
                        let d = devices[pick.next(devices.len())];
                        let body: Value = json!({ "device_id": d, "code": format!("{}{:05}", 3 + k, i), "name": "bench" });
                        let t = Instant::now();
                        let r = client.call("POST", "/access_codes/create", Some(&body)).unwrap();
                        lat.push(t.elapsed());
                        assert!(r.status == 200 || r.status == 409, "{} {}", r.status, r.body);
                    }
                    lat
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let create_rate = lat.len() as f64 / t0.elapsed().as_secs_f64();

    println!("| measure | p50 | p99 | note |");
    println!("|---|---:|---:|---|");
    let row = |what: &str, v: Vec<Duration>, note: String| {
        let (p50, p99) = percentiles(v);
        println!("| {what} | {p50:.2} ms | {p99:.2} ms | {note} |");
    };
    row(
        "reconcile planning pass, 250-code lock",
        plan,
        "in process, 500 passes".into(),
    );
    row(
        "GET /access_codes/get",
        gets,
        "2000 random codes, one connection each".into(),
    );
    row(
        "GET /access_codes/list, a lock's page of 100",
        lists,
        "500 random locks".into(),
    );
    let pages = walk.len();
    row(
        "GET /access_codes/list, next pages by cursor",
        walk,
        format!("{pages} pages (100 locks walked)"),
    );
    row(
        "POST /access_codes/create",
        lat,
        format!("{create_rate:.0} creates/s from 2 client threads"),
    );
    let _ = stop_tx.send(());
    rt.block_on(engine.shutdown());
    rt.shutdown_timeout(Duration::from_secs(5));
    drop(dir);

    one_big_lock::run();
}
