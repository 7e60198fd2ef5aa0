//! A fleet on one broker: N hubs (each a zwlock daemon with its own simulated network of 3
//! locks) on one local mosquitto. A client creates a code on every lock of every hub over
//! MQTT and waits until all are `set`. Printed: time to all set, the round trip of the
//! creates (p50/p99), broker messages per code, RSS per hub with the bridge on and off, and
//! the round trip of a request that needs no radio over MQTT against the socket (what the
//! bridge adds).
//!
//!   cargo bench --features interop --bench mqtt_fleet
//!   ZWLOCK_FLEET_HUBS=5 cargo bench --features interop --bench mqtt_fleet
//!
//! Loopback only; every process is started and stopped here.

#[path = "../tests/broker/mod.rs"]
mod broker;

use std::time::{Duration, Instant};

use broker::{BrokerOpts, Hub, Mosquitto, Recorder};
use serde_json::{json, Value};

const LOCKS: usize = 3;

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

fn mean(v: &[u64]) -> f64 {
    v.iter().sum::<u64>() as f64 / v.len().max(1) as f64
}

/// Start `n` hubs (in parallel: each waits for its locks).
fn start_hubs(root: &std::path::Path, n: usize, mqtt_url: Option<&str>) -> Vec<Hub> {
    let hubs: Vec<Hub> = (0..n)
        .map(|i| {
            let name = format!("hub{i:02}");
            let mqtt = mqtt_url
                .map(|u| Hub::mqtt_section(u, &name, ""))
                .unwrap_or_default();
            Hub::configure(root, &name, LOCKS, &mqtt)
        })
        .collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = hubs
            .into_iter()
            .map(|mut h| {
                s.spawn(move || {
                    h.start(LOCKS);
                    h
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Create one code per lock over the socket and wait until all are set (the same state as
/// the MQTT run, for the RSS comparison).
fn codes_over_socket(hubs: &[Hub]) {
    for h in hubs {
        for d in h.devices() {
            h.http(
                "POST",
                "/access_codes/create",
                Some(&json!({ "device_id": d, "name": "bench" })),
            )
            .unwrap();
        }
    }
    let t0 = Instant::now();
    while !hubs
        .iter()
        .all(|h| h.codes().values().all(|c| c["status"] == "set"))
    {
        assert!(t0.elapsed() < Duration::from_secs(300), "codes not set");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn socket_round_trips(h: &Hub, n: usize) -> Vec<f64> {
    let d = h.devices()[0].clone();
    let client = zwlock::cli::client::Client::new(&h.socket);
    let body = json!({ "device_id": d });
    (0..n)
        .map(|_| {
            let t = Instant::now();
            let r = client
                .call("POST", "/access_codes/list", Some(&body))
                .unwrap();
            assert!(r.is_ok());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn main() {
    let n: usize = std::env::var("ZWLOCK_FLEET_HUBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rounds = 300;
    println!("fleet: {n} hubs x {LOCKS} locks, one mosquitto on 127.0.0.1");
    let dir = tempfile::tempdir().unwrap();

    // The bridge off.
    let off_root = dir.path().join("off");
    let hubs = start_hubs(&off_root, n, None);
    codes_over_socket(&hubs);
    std::thread::sleep(Duration::from_secs(3));
    let rss_off: Vec<u64> = hubs.iter().filter_map(Hub::rss_kb).collect();
    let sock_rt = sorted(socket_round_trips(&hubs[0], rounds));
    drop(hubs);

    // The bridge on.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let m = Mosquitto::start(dir.path(), BrokerOpts::default());
    let hubs = start_hubs(&dir.path().join("on"), n, Some(&m.url()));
    let (all_set, creates, codes, messages, mqtt_rt) = rt.block_on(async {
        let everything = Recorder::start(m.port, "#").await;
        let mut clients = Vec::new();
        for h in &hubs {
            clients.push(std::sync::Arc::new(broker::client(m.port, &h.name).await));
        }
        // Every hub online, its state published.
        let t0 = Instant::now();
        loop {
            let online = broker::retained(m.port, "zwlock/+/status")
                .await
                .values()
                .filter(|p| &p[..] == b"online")
                .count();
            if online == n {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "{online}/{n} online"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let before = everything.count();
        // A code on every lock of every hub, all at once.
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for (h, c) in hubs.iter().zip(&clients) {
            for d in h.devices() {
                let c = c.clone();
                tasks.push(tokio::spawn(async move {
                    let t = Instant::now();
                    let r = c
                        .request(
                            "access_codes/create",
                            &json!({ "device_id": d, "name": "bench" }),
                        )
                        .await
                        .unwrap();
                    assert_eq!(r.status, 200, "{}", r.body);
                    (
                        t.elapsed().as_secs_f64() * 1000.0,
                        r.body["access_code"]["access_code_id"]
                            .as_str()
                            .unwrap()
                            .to_string(),
                    )
                }));
            }
        }
        let mut creates = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        for t in tasks {
            let (ms, id) = t.await.unwrap();
            creates.push(ms);
            ids.insert(id);
        }
        // Until the broker says every code is set.
        loop {
            let set: std::collections::BTreeSet<String> = everything
                .all()
                .iter()
                .filter(|m| m.topic.contains("/access_codes/") && !m.payload.is_empty())
                .filter_map(|m| serde_json::from_slice::<Value>(&m.payload).ok())
                .filter(|c| c["status"] == "set")
                .filter_map(|c| c["access_code_id"].as_str().map(str::to_string))
                .collect();
            if ids.iter().all(|id| set.contains(id)) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(300), "not all set");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let all_set = t0.elapsed();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let messages = everything.count() - before;
        // A request without radio, over MQTT.
        let d = hubs[0].devices()[0].clone();
        let mut rts = Vec::new();
        for _ in 0..rounds {
            let t = Instant::now();
            let r = clients[0]
                .request("access_codes/list", &json!({ "device_id": d }))
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            rts.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        drop(clients);
        (all_set, sorted(creates), ids.len(), messages, sorted(rts))
    });
    std::thread::sleep(Duration::from_secs(3));
    let rss_on: Vec<u64> = hubs.iter().filter_map(Hub::rss_kb).collect();
    drop(hubs);
    drop(m);

    println!();
    println!("| what | figure |");
    println!("|---|---|");
    println!("| hubs x locks | {n} x {LOCKS} ({codes} codes) |");
    println!(
        "| time to all set (create over MQTT to the broker's retained `set`) | {:.2} s |",
        all_set.as_secs_f64()
    );
    println!(
        "| create round trip over MQTT, p50 / p99 | {:.1} / {:.1} ms |",
        pct(&creates, 0.5),
        pct(&creates, 0.99)
    );
    println!(
        "| broker messages per code (all topics, create to set) | {:.1} |",
        messages as f64 / codes.max(1) as f64
    );
    println!(
        "| RSS per hub, bridge off / on (mean) | {:.0} / {:.0} kB (+{:.0} kB) |",
        mean(&rss_off),
        mean(&rss_on),
        mean(&rss_on) - mean(&rss_off)
    );
    println!(
        "| access_codes/list round trip, socket p50 / p99 | {:.2} / {:.2} ms |",
        pct(&sock_rt, 0.5),
        pct(&sock_rt, 0.99)
    );
    println!(
        "| access_codes/list round trip, MQTT p50 / p99 | {:.2} / {:.2} ms |",
        pct(&mqtt_rt, 0.5),
        pct(&mqtt_rt, 0.99)
    );
    println!(
        "| what the bridge adds, p50 / p99 | {:.2} / {:.2} ms |",
        pct(&mqtt_rt, 0.5) - pct(&sock_rt, 0.5),
        pct(&mqtt_rt, 0.99) - pct(&sock_rt, 0.99)
    );
}
