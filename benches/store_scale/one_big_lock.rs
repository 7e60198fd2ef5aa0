//! One lock with 10,000 codes (250 in its slots, the rest waiting for one) against the daemon
//! binary as a hub runs it: p50/p99 of `get`, a `list` page (100) and `create`, and the
//! daemon's RSS at the end (and its peak). Clients keep their connection open between
//! requests, as Seam's SDKs do.
//!
//! Three loads: one client alone (what a request costs at 10,000 codes); 50 clients at once,
//! each one round (get, list page, create) every [`PERIOD`] (300 requests/s, a busy hub: the
//! latency a client sees while others are using the hub); and the same 50 with no pause at
//! all, which saturates the 2 cores (there latency is 50 / throughput, so that row measures
//! throughput, not a request's cost).
//!
//! The lock is not on the simulated network, so the codes stay where they are: the figures
//! are the daemon's own cost (store, engine, API), not radio time. Goals (issue 14): create
//! p99 < 10 ms, list page p99 < 10 ms, RSS < 40 MB.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::de::IgnoredAny;
use serde_json::json;
use uuid::Uuid;
use zwlock::store::{CodeRow, CodeStatus, DeviceFacts, Store};

use super::{lock_facts, percentiles, Pick};

const CODES: u32 = 10_000;
const SLOTS: u16 = 250;
const CLIENTS: u64 = 50;
/// Rounds per client under each load: one get, one list page and one create each.
const ROUNDS: usize = 20;
/// How often each of the 50 paced clients starts a round.
const PERIOD: Duration = Duration::from_millis(500);

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
    /// How late the rounds of a paced client started (it waits for its last answer).
    late: Vec<Duration>,
}

impl Lat {
    fn extend(&mut self, other: Lat) {
        self.get.extend(other.get);
        self.list.extend(other.list);
        self.create.extend(other.create);
        self.late.extend(other.late);
    }
    fn requests(&self) -> usize {
        self.get.len() + self.list.len() + self.create.len()
    }
}

/// One client's connection to the socket, kept open (and made again if the daemon closed it).
struct Conn {
    socket: PathBuf,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// What the bench checks in a list page: how many codes it holds.
#[derive(serde::Deserialize)]
struct Listed {
    access_codes: Vec<IgnoredAny>,
}

impl Conn {
    fn new(socket: &Path) -> Conn {
        Conn {
            socket: socket.to_path_buf(),
            sender: None,
        }
    }

    /// One request; the status and the body.
    async fn call(&mut self, path: &str, body: Option<serde_json::Value>) -> (u16, Bytes) {
        let open = match &mut self.sender {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !open {
            let stream = tokio::net::UnixStream::connect(&self.socket).await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        let req = hyper::Request::builder()
            .method(if body.is_some() { "POST" } else { "GET" })
            .uri(path)
            .header("host", "zwlock")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    }
}

/// `rounds` rounds of one get (a random code), one list page (100) and one create, timed;
/// `pin` names each create's PIN (by round). With `period`, round k starts k periods after
/// `start` (or as soon as the last one is done, if that is later).
#[allow(clippy::too_many_arguments)]
async fn rounds(
    conn: &mut Conn,
    device: Uuid,
    codes: &[Uuid],
    mut pick: Pick,
    rounds: usize,
    paced: Option<(tokio::time::Instant, Duration)>,
    pin: impl Fn(usize) -> String,
) -> Lat {
    let mut lat = Lat::default();
    for i in 0..rounds {
        if let Some((start, period)) = paced {
            let due = start + period * i as u32;
            let now = tokio::time::Instant::now();
            lat.late.push(now.saturating_duration_since(due));
            tokio::time::sleep_until(due).await;
        }
        let id = codes[pick.next(codes.len())];
        let t = Instant::now();
        let (status, body) = conn
            .call(&format!("/access_codes/get?access_code_id={id}"), None)
            .await;
        lat.get.push(t.elapsed());
        assert_eq!(status, 200, "{body:?}");

        let t = Instant::now();
        let (status, body) = conn
            .call(
                &format!("/access_codes/list?device_id={device}&limit=100"),
                None,
            )
            .await;
        lat.list.push(t.elapsed());
        assert_eq!(status, 200, "{body:?}");
        let listed: Listed = serde_json::from_slice(&body).unwrap();
        assert_eq!(listed.access_codes.len(), 100);

        let create = json!({ "device_id": device, "code": pin(i), "name": "bench" });
        let t = Instant::now();
        let (status, body) = conn.call("/access_codes/create", Some(create)).await;
        lat.create.push(t.elapsed());
        assert_eq!(status, 200, "{body:?}");
    }
    lat
}

/// 50 clients at once, each on its own connection; paced or not. Their latencies and the
/// wall time.
async fn together(
    socket: &Path,
    device: Uuid,
    codes: &[Uuid],
    period: Option<Duration>,
    first_pin: u64,
) -> (Lat, Duration) {
    let t0 = Instant::now();
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..CLIENTS {
        let mut conn = Conn::new(socket);
        let codes = codes.to_vec();
        // Paced clients start spread over one period, as independent clients would.
        let paced = period.map(|p| (start + p * k as u32 / CLIENTS as u32, p));
        tasks.spawn(async move {
            rounds(
                &mut conn,
                device,
                &codes,
                Pick(1000 + k + first_pin),
                ROUNDS,
                paced,
                move |i| format!("{}{:04}{:02}", first_pin + k % 7, k, i),
            )
            .await
        });
    }
    let mut all = Lat::default();
    while let Some(lat) = tasks.join_next().await {
        all.extend(lat.unwrap());
    }
    (all, t0.elapsed())
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
    // The clients' side: two threads, as many as the machine has cores.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ready = Instant::now();
    rt.block_on(async {
        loop {
            if tokio::net::UnixStream::connect(&socket).await.is_ok()
                && Conn::new(&socket).call("/health", None).await.0 == 200
            {
                break;
            }
            assert!(ready.elapsed() < Duration::from_secs(120), "no daemon");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // Let the engine take in the 9,750 waiting codes (each gets its no-space error) first.
    std::thread::sleep(Duration::from_secs(5));
    let (rss_ready, _) = rss(daemon.0.id());

    // One client alone: what each request costs at 10,000 codes, with nothing to wait for.
    let alone = rt.block_on(async {
        let mut conn = Conn::new(&socket);
        rounds(&mut conn, device, &codes, Pick(99), 200, None, |i| {
            format!("9{i:05}")
        })
        .await
    });
    // 50 clients, each a round every PERIOD.
    let (paced, paced_wall) = rt.block_on(together(&socket, device, &codes, Some(PERIOD), 2));
    // The same 50 with no pause: the daemon's throughput.
    let (saturated, saturated_wall) = rt.block_on(together(&socket, device, &codes, None, 5));
    let (rss_end, rss_peak) = rss(daemon.0.id());

    println!("| measure (10,000 codes on one lock) | p50 | p99 | goal |");
    println!("|---|---:|---:|---|");
    let row = |what: &str, v: Vec<Duration>, goal: &str| {
        let (p50, p99) = percentiles(v);
        println!("| {what} | {p50:.2} ms | {p99:.2} ms | {goal} |");
    };
    let rate = |lat: &Lat, wall: Duration| lat.requests() as f64 / wall.as_secs_f64();
    for (load, lat, goal) in [
        ("one client", alone, "p99 < 10 ms"),
        (
            &*format!(
                "50 clients, a round each every {} ms ({:.0} requests/s)",
                PERIOD.as_millis(),
                rate(&paced, paced_wall)
            ),
            paced,
            "p99 < 10 ms",
        ),
        (
            &*format!(
                "50 clients, no pause ({:.0} requests/s, saturated)",
                rate(&saturated, saturated_wall)
            ),
            saturated,
            "",
        ),
    ] {
        if !lat.late.is_empty() {
            let (_, late99) = percentiles(lat.late.clone());
            println!("| {load}: rounds started late | | {late99:.2} ms | |");
        }
        row(&format!("{load}: GET /access_codes/get"), lat.get, "");
        row(
            &format!("{load}: GET /access_codes/list, a page of 100"),
            lat.list,
            goal,
        );
        row(
            &format!("{load}: POST /access_codes/create"),
            lat.create,
            goal,
        );
    }
    println!(
        "daemon RSS {rss_ready:.1} MB when ready, {rss_end:.1} MB at the end, peak \
         {rss_peak:.1} MB (goal < 40 MB)"
    );
}
