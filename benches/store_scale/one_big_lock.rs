//! One lock with 10,000 codes (250 in its slots, the rest waiting for one) and 50 clients at
//! once, against the daemon binary as a hub runs it: p50/p99 of `get`, a `list` page and
//! `create`, and the daemon's RSS at the end (and its peak).
//!
//! The lock is not on the simulated network, so the codes stay where they are: the figures
//! are the daemon's own cost (store, engine, API), not radio time. Goals (issue 14): create
//! p99 < 10 ms, list page p99 < 10 ms, RSS < 40 MB.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;
use zwlock::cli::client::Client;
use zwlock::store::{CodeRow, CodeStatus, DeviceFacts, LockFacts, Store};

use super::{percentiles, Pick};

const CODES: u32 = 10_000;
const SLOTS: u16 = 250;
const CLIENTS: u64 = 50;
/// Rounds per client: one get, one list page and one create each.
const ROUNDS: usize = 20;

/// The daemon, stopped by PID when the bench ends.
struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn populate(db: &std::path::Path) -> (Uuid, Vec<Uuid>) {
    let mut store = Store::open(db).unwrap();
    let out = store
        .transaction(|tx| {
            let facts = DeviceFacts {
                node_id: 10,
                name: Some("big lock".into()),
                interview_cache: None,
                facts: LockFacts {
                    user_code_version: 2,
                    ..Default::default()
                },
                slot_count: SLOTS,
                min_code_length: 4,
                max_code_length: 8,
                code_characters: "0123456789".into(),
                battery_level: Some(80),
                locked: Some(true),
            };
            let d = Store::upsert_device(tx, &facts, &Utc::now())?;
            let mut codes = Vec::new();
            for n in 0..CODES {
                let pin = format!("{:07}", 1_000_000 + n);
                let mut row = CodeRow {
                    name: Some(format!("guest {n}")),
                    ..CodeRow::new(d.device_id, pin.clone(), Utc::now())
                };
                if n < u32::from(SLOTS) {
                    row.status = CodeStatus::Set;
                    row.slot = Some(n as u16 + 1);
                    row.programmed_code = Some(pin);
                }
                codes.push(row.access_code_id);
                Store::put_code(tx, &row)?;
            }
            Ok((d.device_id, codes))
        })
        .unwrap();
    store.close().unwrap();
    out
}

/// VmRSS and VmHWM of a process, in MB.
fn rss(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

pub fn run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("zwlock.db");
    let socket = dir.path().join("api.sock");
    let t0 = Instant::now();
    let (device, codes) = populate(&db);
    println!(
        "\none lock, {CODES} codes ({SLOTS} in slots), loaded in {:.1} s; {CLIENTS} clients",
        t0.elapsed().as_secs_f64()
    );
    let config = dir.path().join("zwlock.toml");
    std::fs::write(
        &config,
        format!(
            "[serial]\nport = \"sim://big\"\n[store]\npath = \"{d}/zwlock.db\"\n\
             [api]\nsocket = \"{d}/api.sock\"\n[log]\nlevel = \"warn\"\n\
             [codes]\nchecksum_interval_seconds = 86400\npoll_reads_per_hour = 1\n\
             startup_verify_reads = 0\nfull_read_on_first_sight = false\n\
             [[sim.network]]\nname = \"big\"\n",
            d = dir.path().display()
        ),
    )
    .unwrap();
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_zwlock"))
            .args(["daemon", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let client = Client::new(&socket);
    let ready = Instant::now();
    while !client
        .call("GET", "/health", None)
        .is_ok_and(|r| r.status == 200)
    {
        assert!(ready.elapsed() < Duration::from_secs(120), "no daemon");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Let the engine take in the 9,750 waiting codes (each gets its no-space error) first.
    std::thread::sleep(Duration::from_secs(5));
    let (rss_ready, _) = rss(daemon.0.id());

    // One client alone: what each request costs at 10,000 codes, with nothing to wait for.
    let mut pick = Pick(99);
    let (mut g1, mut l1, mut c1) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..200 {
        let id = codes[pick.next(codes.len())];
        let t = Instant::now();
        let r = client
            .call(
                "GET",
                &format!("/access_codes/get?access_code_id={id}"),
                None,
            )
            .unwrap();
        g1.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
        let t = Instant::now();
        let r = client
            .call(
                "GET",
                &format!("/access_codes/list?device_id={device}&limit=100"),
                None,
            )
            .unwrap();
        l1.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
        let body = json!({ "device_id": device, "code": format!("9{i:05}"), "name": "bench" });
        let t = Instant::now();
        let r = client
            .call("POST", "/access_codes/create", Some(&body))
            .unwrap();
        c1.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", r.body);
    }

    let t0 = Instant::now();
    type Lat = (Vec<Duration>, Vec<Duration>, Vec<Duration>);
    let (gets, lists, creates): Lat = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let socket = socket.clone();
                let codes = &codes;
                s.spawn(move || {
                    let client = Client::new(&socket);
                    let mut pick = Pick(1000 + k);
                    let (mut g, mut l, mut c) = (Vec::new(), Vec::new(), Vec::new());
                    for i in 0..ROUNDS {
                        let id = codes[pick.next(codes.len())];
                        let t = Instant::now();
                        let r = client
                            .call(
                                "GET",
                                &format!("/access_codes/get?access_code_id={id}"),
                                None,
                            )
                            .unwrap();
                        g.push(t.elapsed());
                        assert_eq!(r.status, 200, "{}", r.body);

                        let t = Instant::now();
                        let r = client
                            .call(
                                "GET",
                                &format!("/access_codes/list?device_id={device}&limit=100"),
                                None,
                            )
                            .unwrap();
                        l.push(t.elapsed());
                        assert_eq!(r.status, 200, "{}", r.body);
                        assert_eq!(r.body["access_codes"].as_array().map_or(0, Vec::len), 100);

                        let body = json!({
                            "device_id": device,
                            "code": format!("{}{:04}{:02}", 2 + k % 7, k, i),
                            "name": "bench",
                        });
                        let t = Instant::now();
                        let r = client
                            .call("POST", "/access_codes/create", Some(&body))
                            .unwrap();
                        c.push(t.elapsed());
                        assert!(
                            r.status == 200 || r.status == 409,
                            "{} {}",
                            r.status,
                            r.body
                        );
                    }
                    (g, l, c)
                })
            })
            .collect();
        let mut out: Lat = Default::default();
        for h in handles {
            let (g, l, c) = h.join().unwrap();
            out.0.extend(g);
            out.1.extend(l);
            out.2.extend(c);
        }
        out
    });
    let wall = t0.elapsed();
    let (rss_end, rss_peak) = rss(daemon.0.id());
    let ops = gets.len() + lists.len() + creates.len();

    println!("| measure (10,000 codes on one lock) | p50 | p99 | goal |");
    println!("|---|---:|---:|---|");
    let row = |what: &str, v: Vec<Duration>, goal: &str| {
        let (p50, p99) = percentiles(v);
        println!("| {what} | {p50:.2} ms | {p99:.2} ms | {goal} |");
    };
    row("one client: GET /access_codes/get", g1, "");
    row("one client: GET /access_codes/list, a page of 100", l1, "");
    row("one client: POST /access_codes/create", c1, "");
    let row = |what: &str, v: Vec<Duration>, goal: &str| {
        row(&format!("{CLIENTS} clients: {what}"), v, goal)
    };
    row("GET /access_codes/get", gets, "");
    row(
        "GET /access_codes/list, a page of 100",
        lists,
        "p99 < 10 ms",
    );
    row("POST /access_codes/create", creates, "p99 < 10 ms");
    println!(
        "{ops} requests in {:.1} s ({:.0}/s); daemon RSS {rss_ready:.1} MB when ready, \
         {rss_end:.1} MB at the end, peak {rss_peak:.1} MB (goal < 40 MB)",
        wall.as_secs_f64(),
        ops as f64 / wall.as_secs_f64()
    );
}
