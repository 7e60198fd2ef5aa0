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
use zwlock::store::{CodeRow, CodeStatus, DeviceFacts, Store};

use super::{lock_facts, percentiles, Pick};

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
                name: Some("big lock".into()),
                ..lock_facts(10, SLOTS)
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

/// Latencies of gets, list pages and creates.
#[derive(Default)]
struct Lat {
    get: Vec<Duration>,
    list: Vec<Duration>,
    create: Vec<Duration>,
}

impl Lat {
    fn extend(&mut self, other: Lat) {
        self.get.extend(other.get);
        self.list.extend(other.list);
        self.create.extend(other.create);
    }
}

/// `rounds` of one get (a random code), one list page (100) and one create, timed; `pin`
/// names each create's PIN (by round).
fn rounds(
    client: &Client,
    device: Uuid,
    codes: &[Uuid],
    pick: &mut Pick,
    rounds: usize,
    pin: impl Fn(usize) -> String,
) -> Lat {
    let mut lat = Lat::default();
    let timed = |path: &str, body: Option<&serde_json::Value>, into: &mut Vec<Duration>| {
        let t = Instant::now();
        let method = if body.is_some() { "POST" } else { "GET" };
        let r = client.call(method, path, body).unwrap();
        into.push(t.elapsed());
        r
    };
    for i in 0..rounds {
        let id = codes[pick.next(codes.len())];
        let r = timed(
            &format!("/access_codes/get?access_code_id={id}"),
            None,
            &mut lat.get,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let r = timed(
            &format!("/access_codes/list?device_id={device}&limit=100"),
            None,
            &mut lat.list,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["access_codes"].as_array().map_or(0, Vec::len), 100);
        let body = json!({ "device_id": device, "code": pin(i), "name": "bench" });
        let r = timed("/access_codes/create", Some(&body), &mut lat.create);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    lat
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
    let alone = rounds(&client, device, &codes, &mut Pick(99), 200, |i| {
        format!("9{i:05}")
    });

    // Then 50 at once, each with one request always outstanding.
    let t0 = Instant::now();
    let together = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let socket = socket.clone();
                let codes = &codes;
                s.spawn(move || {
                    let client = Client::new(&socket);
                    rounds(&client, device, codes, &mut Pick(1000 + k), ROUNDS, |i| {
                        format!("{}{:04}{:02}", 2 + k % 7, k, i)
                    })
                })
            })
            .collect();
        let mut all = Lat::default();
        for h in handles {
            all.extend(h.join().unwrap());
        }
        all
    });
    let wall = t0.elapsed();
    let (rss_end, rss_peak) = rss(daemon.0.id());
    let ops = together.get.len() + together.list.len() + together.create.len();

    println!("| measure (10,000 codes on one lock) | p50 | p99 | goal |");
    println!("|---|---:|---:|---|");
    let row = |what: &str, v: Vec<Duration>, goal: &str| {
        let (p50, p99) = percentiles(v);
        println!("| {what} | {p50:.2} ms | {p99:.2} ms | {goal} |");
    };
    row("one client: GET /access_codes/get", alone.get, "");
    row(
        "one client: GET /access_codes/list, a page of 100",
        alone.list,
        "p99 < 10 ms",
    );
    row(
        "one client: POST /access_codes/create",
        alone.create,
        "p99 < 10 ms",
    );
    row("50 clients: GET /access_codes/get", together.get, "");
    row(
        "50 clients: GET /access_codes/list, a page of 100",
        together.list,
        "p99 < 10 ms",
    );
    row(
        "50 clients: POST /access_codes/create",
        together.create,
        "p99 < 10 ms",
    );
    println!(
        "{ops} requests in {:.1} s ({:.0}/s); daemon RSS {rss_ready:.1} MB when ready, \
         {rss_end:.1} MB at the end, peak {rss_peak:.1} MB (goal < 40 MB)",
        wall.as_secs_f64(),
        ops as f64 / wall.as_secs_f64()
    );
}
