//! Crash safety: the real daemon is killed with SIGKILL at many points of a run of creates,
//! updates and deletes, and started again each time. The simulated lock runs in its own
//! process (`zwlock sim serve`), so it outlives every daemon. At the end every declared code
//! must be on the lock, and no slot may hold a code nobody declared.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{daemon, sim_serve, tcp_config};
use serde_json::{json, Value};
use zwlock::cli::client::Client;
use zwlock::sim::control::{self, ControlRequest};

const SIM: &str = r#"
[[network]]
name = "crash"
radio_ms = 5
[[network.lock]]
node_id = 5
listening = "always"
slots = 12
initial_codes = [{ slot = 1, code = "2580" }, { slot = 4, code = "1793" }]
"#;

/// A small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn lock_slots(control: &std::path::Path) -> BTreeMap<u64, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let req = ControlRequest {
        network: "crash".into(),
        node: Some(5),
        action: "show".into(),
        ..Default::default()
    };
    let v = rt.block_on(control::request(control, &req)).unwrap();
    v["lock"]["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["slot"].as_u64().unwrap(),
                s["code"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn every_declared_code_converges_after_repeated_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let sim_file = dir.path().join("sim.toml");
    std::fs::write(&sim_file, SIM).unwrap();
    let control = dir.path().join("sim.sock");
    let (_sim, port) = sim_serve(&sim_file, &control);
    let config = tcp_config(dir.path(), port);
    let socket = dir.path().join("api.sock");
    let client = Client::new(&socket);
    let mut rng = Rng(0x00C0_FFEE_1234_5678);
    let mut device = String::new();
    let mut kills = 0;
    let mut ops = 0;
    for round in 0..10 {
        let d = daemon(&config, &socket);
        common::wait_until("lock known", Duration::from_secs(30), || {
            client
                .call("GET", "/devices/list", None)
                .is_ok_and(|r| r.body["devices"].as_array().is_some_and(|a| !a.is_empty()))
        });
        if device.is_empty() {
            let r = client.call("GET", "/devices/list", None).unwrap();
            device = r.body["devices"][0]["device_id"]
                .as_str()
                .unwrap()
                .to_string();
        }
        // A burst of intents; the daemon dies somewhere in it (or just after).
        let kill_after = Duration::from_millis(rng.below(400));
        let t0 = Instant::now();
        while t0.elapsed() < kill_after + Duration::from_millis(50) {
            let listed = client.call(
                "GET",
                &format!("/access_codes/list?device_id={device}"),
                None,
            );
            let Ok(listed) = listed else { break };
            let codes: Vec<Value> = listed.body["access_codes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let pin = format!("{:04}", 3000 + rng.below(6000));
            let r = match (rng.below(10), codes.len()) {
                (0..=4, n) if n < 8 => client.call(
                    "POST",
                    "/access_codes/create",
                    Some(&json!({ "device_id": device, "code": pin })),
                ),
                (5..=6, n) if n > 0 => {
                    let id = codes[rng.below(n as u64) as usize]["access_code_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    client.call(
                        "PATCH",
                        "/access_codes/update",
                        Some(&json!({ "access_code_id": id, "code": pin })),
                    )
                }
                (_, n) if n > 0 => {
                    let id = codes[rng.below(n as u64) as usize]["access_code_id"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    client.call(
                        "DELETE",
                        &format!("/access_codes/delete?access_code_id={id}"),
                        None,
                    )
                }
                _ => client.call(
                    "POST",
                    "/access_codes/create",
                    Some(&json!({ "device_id": device, "code": pin })),
                ),
            };
            ops += 1;
            if r.is_err() {
                break;
            }
            if t0.elapsed() >= kill_after {
                break;
            }
        }
        d.signal("-KILL");
        kills += 1;
        let _ = round;
        drop(d);
    }
    // The last start: everything declared must converge.
    let _d = daemon(&config, &socket);
    let declared = || -> Vec<Value> {
        client
            .call(
                "GET",
                &format!("/access_codes/list?device_id={device}"),
                None,
            )
            .map(|r| {
                r.body["access_codes"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .unwrap_or_default()
    };
    common::wait_until("convergence", Duration::from_secs(120), || {
        let codes = declared();
        codes
            .iter()
            .all(|c| c["status"] == "set" && c["errors"].as_array().is_some_and(|e| e.is_empty()))
    });
    let codes = declared();
    let on_lock = lock_slots(&control);
    // Every declared code is in its slot with its PIN.
    for c in &codes {
        let slot = c["slot"].as_u64().unwrap();
        assert_eq!(
            on_lock.get(&slot).map(String::as_str),
            c["code"].as_str(),
            "code {} not on the lock",
            c["access_code_id"]
        );
    }
    // No slot holds a code nobody declared: each occupied slot is a declared code or one of
    // the codes that were on the lock before zwlock.
    let declared_slots: BTreeMap<u64, &str> = codes
        .iter()
        .map(|c| (c["slot"].as_u64().unwrap(), c["code"].as_str().unwrap()))
        .collect();
    for (slot, pin) in &on_lock {
        let pre_existing = matches!((slot, pin.as_str()), (1, "2580") | (4, "1793"));
        assert!(
            pre_existing || declared_slots.get(slot) == Some(&pin.as_str()),
            "slot {slot} holds a code nobody declared (declared: {declared_slots:?})"
        );
    }
    // The pre-existing keypad codes were never overwritten.
    assert_eq!(on_lock.get(&1).map(String::as_str), Some("2580"));
    assert_eq!(on_lock.get(&4).map(String::as_str), Some("1793"));
    eprintln!(
        "crash test: {kills} SIGKILLs, {ops} intents, {} codes converged",
        codes.len()
    );
}
