//! Including and excluding a lock end to end, as a user would: `zwlock include` with the PIN
//! printed on the lock, the lock's button (the simulator's control socket), codes set on it
//! through S2, `zwlock exclude`; and a wrong PIN through the API. The real binaries, with
//! the simulator in its own process on TCP.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{daemon, sim_serve, tcp_config, wait_until, BIN};
use serde_json::{json, Value};
use zwlock::cli::client::Client;

const SIM: &str = r#"
[[network]]
name = "inc"
radio_ms = 2
[[network.lock]]
node_id = 5
listening = "always"
slots = 10
[[network.lock]]
node_id = 9
listening = "always"
slots = 10
security = "s2_access_control"
included = false
"#;

fn sim_control(control: &std::path::Path, action: &str) -> (bool, Value) {
    let out = Command::new(BIN)
        .args(["sim", "control", "--socket"])
        .arg(control)
        .args(["--network", "inc", "--node", "9", action])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), v)
}

/// Press lock 9's button until the stick is in learn mode and takes it.
fn press_button(control: &std::path::Path) {
    wait_until(
        "learn mode takes the button",
        Duration::from_secs(30),
        || sim_control(control, "button").0,
    );
}

fn devices(c: &Client) -> Vec<Value> {
    c.call("GET", "/devices/list", None).unwrap().body["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_lock_is_included_with_its_pin_used_through_s2_and_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let sim_file = dir.path().join("sim.toml");
    std::fs::write(&sim_file, SIM).unwrap();
    let control = dir.path().join("sim.sock");
    let (_sim, port) = sim_serve(&sim_file, &control);
    let config = tcp_config(dir.path(), port);
    let socket = dir.path().join("api.sock");
    let _daemon = daemon(&config, &socket);
    let c = Client::new(&socket);
    wait_until("lock 5 known", Duration::from_secs(30), || {
        devices(&c).len() == 1
    });

    // The PIN printed on the lock.
    let (ok, shown) = sim_control(&control, "show");
    assert!(ok, "{shown}");
    let pin = format!(
        "{:05}",
        shown["lock"]["dsk_pin"].as_u64().expect("a PIN on lock 9")
    );

    let include = Command::new(BIN)
        .args(["include", "--pin", &pin, "--timeout", "30", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    press_button(&control);
    let out = include.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("included node 9"), "{said}");
    // The way there, as events.
    let r = c
        .call("GET", "/events/list?since=2000-01-01T00:00:00Z", None)
        .unwrap();
    let types: Vec<String> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap_or("").to_string())
        .collect();
    for step in ["ready", "adding", "key_exchange", "secured"] {
        assert!(
            types.contains(&format!("zwave.inclusion.{step}")),
            "{step}: {types:?}"
        );
    }

    // Interviewed through S2: a device, and a code that reaches the lock.
    wait_until("lock 9 known", Duration::from_secs(60), || {
        devices(&c).len() == 2
    });
    let dev = devices(&c)
        .into_iter()
        .find(|d| d["properties"]["zwave"]["node_id"] == 9)
        .unwrap();
    assert_eq!(
        dev["properties"]["zwave"]["interview"]["security_class"],
        "s2_access_control"
    );
    let dev_id = dev["device_id"].as_str().unwrap().to_string();
    let r = c
        .call(
            "POST",
            "/access_codes/create",
            Some(&json!({ "device_id": dev_id, "code": "73195" })),
        )
        .unwrap();
    let id = r.body["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("code set through S2", Duration::from_secs(60), || {
        c.call(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None,
        )
        .is_ok_and(|r| r.body["access_code"]["status"] == "set")
    });
    let (_, shown) = sim_control(&control, "show");
    assert!(
        shown["lock"]["slots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "73195"),
        "{shown}"
    );

    // Exclusion: the device and its codes are forgotten.
    let exclude = Command::new(BIN)
        .args(["exclude", "--timeout", "30", "--socket"])
        .arg(&socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    press_button(&control);
    let out = exclude.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("node 9 left"));
    wait_until("device gone", Duration::from_secs(30), || {
        devices(&c).len() == 1
    });
    let r = c
        .call(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None,
        )
        .unwrap();
    assert_eq!(r.status, 404);

    // Again with a wrong PIN: the attempt fails as wrong_pin.
    let wrong = format!("{:05}", (pin.parse::<u32>().unwrap() + 1) % 65536);
    let r = c
        .call(
            "POST",
            "/zwave/include",
            Some(&json!({ "pin": wrong, "timeout_seconds": 30 })),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let attempt = r.body["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap()
        .to_string();
    press_button(&control);
    let mut last = Value::Null;
    wait_until("include attempt ends", Duration::from_secs(60), || {
        last = c
            .call(
                "GET",
                &format!("/action_attempts/get?action_attempt_id={attempt}"),
                None,
            )
            .unwrap()
            .body;
        last["action_attempt"]["status"] != "pending"
    });
    assert_eq!(last["action_attempt"]["status"], "error", "{last}");
    assert_eq!(
        last["action_attempt"]["error"]["type"], "wrong_pin",
        "{last}"
    );
    // Bad input is refused up front.
    let r = c
        .call("POST", "/zwave/include", Some(&json!({ "pin": "12a45" })))
        .unwrap();
    assert_eq!(r.status, 400, "{}", r.body);
}
