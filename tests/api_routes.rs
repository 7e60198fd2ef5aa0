//! The routes of Seam's model that came in its second round, against the real daemon on a
//! simulated network: simulated keypads, reported code lengths, action attempts by id, one
//! event, the workspace.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zwlock::cli::client::{Client, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_zwlock");

/// A child process stopped (by its PID) when the test ends, even when it fails.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = format!(
        r#"
[serial]
port = "sim://demo"
[store]
path = "{dir}/zwlock.db"
[api]
socket = "{dir}/api.sock"
[log]
level = "info"
[[lock]]
node_id = 5
name = "Garden gate"
[[sim.network]]
name = "demo"
radio_ms = 1
[[sim.network.lock]]
node_id = 5
name = "back door"
listening = "always"
slots = 10
initial_codes = [{{ slot = 1, code = "1234" }}]
"#,
        dir = dir.display()
    );
    let path = dir.join("zwlock.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn until(what: &str, max: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < max, "{what}: not within {max:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post(c: &Client, path: &str, body: Value) -> Reply {
    c.call("POST", path, Some(&body)).unwrap()
}

#[test]
fn seam_round_two_routes_on_a_simulated_lock() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    let _daemon = Reaped(
        Command::new(BIN)
            .args(["daemon", "--config"])
            .arg(&cfg)
            .env("ZWLOCK_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let c = Client::new(dir.path().join("api.sock"));
    let mut device = String::new();
    until("the lock is known", Duration::from_secs(60), || {
        match c.call("GET", "/devices/list", None) {
            Ok(r) if r.status == 200 => {
                match r.body["devices"].as_array().and_then(|d| d.first()) {
                    Some(d) => {
                        device = d["device_id"].as_str().unwrap().to_string();
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    });

    // Workspace: the one local workspace, the id every object carries.
    let r = post(&c, "/workspaces/get", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let ws = r.body["workspace"]["workspace_id"].clone();
    let d = post(&c, "/devices/get", json!({ "device_id": device }));
    assert_eq!(d.body["device"]["workspace_id"], ws);

    // Its name comes from the configuration ([[lock]] wins over the simulated lock's own).
    let d = post(&c, "/devices/get", json!({ "device_id": device }));
    assert_eq!(d.body["device"]["properties"]["name"], "Garden gate");
    // devices/update renames a lock.
    let r = post(
        &c,
        "/devices/update",
        json!({ "device_id": device, "name": "Front door" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let d = post(&c, "/devices/get", json!({ "device_id": device }));
    assert_eq!(d.body["device"]["properties"]["name"], "Front door");
    let r = post(
        &c,
        "/devices/update",
        json!({ "device_id": device, "name": "  " }),
    );
    assert_eq!(r.status, 400, "{}", r.body);

    // Reported code lengths: the device shows them; a create outside them is refused.
    let r = post(
        &c,
        "/access_codes/report_device_constraints",
        json!({ "device_id": device, "supported_code_lengths": [4, 6] }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let d = post(&c, "/devices/get", json!({ "device_id": device }));
    assert_eq!(
        d.body["device"]["properties"]["supported_code_lengths"],
        json!([4, 6])
    );
    let r = post(
        &c,
        "/access_codes/create",
        json!({ "device_id": device, "code": "12345" }),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    let r = post(
        &c,
        "/access_codes/report_device_constraints",
        json!({ "device_id": device, "supported_code_lengths": [4], "max_code_length": 8 }),
    );
    assert_eq!(r.status, 400, "both forms at once: {}", r.body);
    let r = post(
        &c,
        "/access_codes/report_device_constraints",
        json!({ "device_id": device, "min_code_length": 4, "max_code_length": 12 }),
    );
    assert_eq!(r.status, 400, "Z-Wave holds at most 10 digits: {}", r.body);

    // A keypad code programmed at the simulated lock shows as an unmanaged code.
    let r = post(
        &c,
        "/access_codes/simulate/create_unmanaged_access_code",
        json!({ "device_id": device, "code": "5678", "name": "cleaner" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["access_code"]["code"], "5678");
    assert_eq!(r.body["access_code"]["is_managed"], false);

    // A managed code, then typed at the keypad: the lock opens, and an event says so.
    let r = post(
        &c,
        "/access_codes/create",
        json!({ "device_id": device, "code": "4821" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let create_attempt = r.body["action_attempt"]["action_attempt_id"].clone();
    let id = r.body["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    until("set", Duration::from_secs(30), || {
        post(&c, "/access_codes/get", json!({ "access_code_id": id })).body["access_code"]["status"]
            == "set"
    });
    let r = post(
        &c,
        "/locks/simulate/keypad_code_entry",
        json!({ "device_id": device, "code": "4821" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["action_attempt"]["status"], "success");
    let entry_attempt = r.body["action_attempt"]["action_attempt_id"].clone();
    until("unlock event", Duration::from_secs(10), || {
        post(
            &c,
            "/events/get",
            json!({ "device_id": device, "event_type": "lock.unlocked" }),
        )
        .status
            == 200
    });
    let ev = post(
        &c,
        "/events/get",
        json!({ "device_id": device, "event_type": "lock.unlocked" }),
    );
    assert_eq!(ev.body["event"]["access_code_id"], id.as_str());
    let by_id = post(
        &c,
        "/events/get",
        json!({ "event_id": ev.body["event"]["event_id"] }),
    );
    assert_eq!(by_id.body["event"], ev.body["event"]);

    // Action attempts by id.
    let r = post(
        &c,
        "/action_attempts/list",
        json!({ "action_attempt_ids": [create_attempt, entry_attempt] }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let types: Vec<&str> = r.body["action_attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["CREATE_ACCESS_CODE", "SIMULATE_KEYPAD_CODE_ENTRY"]);
}
