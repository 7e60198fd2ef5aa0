//! The `zwlock` CLI against a running daemon (the real binaries), over the simulator on TCP.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{daemon, shows_pin, sim_serve, tcp_config, BIN};

const SIM: &str = r#"
[[network]]
name = "cli"
radio_ms = 2
[[network.lock]]
node_id = 5
listening = "always"
slots = 10
initial_codes = [{ slot = 1, code = "2580" }]
"#;

struct Setup {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    _sim: common::Reaped,
    _daemon: common::Reaped,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let sim_file = dir.path().join("sim.toml");
    std::fs::write(&sim_file, SIM).unwrap();
    let (sim, port) = sim_serve(&sim_file, &dir.path().join("sim.sock"));
    let config = tcp_config(dir.path(), port);
    let socket = dir.path().join("api.sock");
    let d = daemon(&config, &socket);
    let s = Setup {
        socket,
        _dir: dir,
        _sim: sim,
        _daemon: d,
    };
    common::wait_until("lock known", Duration::from_secs(30), || {
        zw(&s, &["devices", "list"]).1.contains("online")
    });
    s
}

/// Run the CLI: (exit code, stdout, stderr).
fn zw(s: &Setup, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .arg("--socket")
        .arg(&s.socket)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn codes_devices_door_and_events_from_the_command_line() {
    let s = setup();
    let (code, out, _) = zw(&s, &["devices", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("NODE") && out.contains("online"), "{out}");
    let (_, json, _) = zw(&s, &["devices", "list", "--json"]);
    let devices: serde_json::Value = serde_json::from_str(&json).unwrap();
    let dev = devices[0]["device_id"].as_str().unwrap().to_string();

    // Create with --wait: progress on stderr, exit 0 once set.
    let (code, out, err) = zw(
        &s,
        &[
            "codes", "create", "--device", &dev, "--code", "4821", "--name", "Guest 12", "--wait",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("status: set"), "{err}");
    assert!(
        !shows_pin(&out, "4821"),
        "an explicit PIN is not echoed: {out}"
    );
    let id = out.trim().strip_prefix("created ").unwrap().to_string();
    // Lists hide PINs unless asked.
    let (_, out, _) = zw(&s, &["codes", "list", "--device", &dev]);
    assert!(
        out.contains("****") && !shows_pin(&out, "4821") && out.contains("Guest 12"),
        "{out}"
    );
    let (_, out, _) = zw(&s, &["codes", "list", "--device", &dev, "--show-codes"]);
    assert!(out.contains("4821"), "{out}");
    let (_, out, _) = zw(&s, &["codes", "get", &id, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "set");
    assert_eq!(v["code"], "****");
    // A generated PIN is shown: the user needs it.
    let (code, out, _) = zw(&s, &["codes", "create", "--device", &dev]);
    assert_eq!(code, 0);
    let pin = out
        .lines()
        .find_map(|l| l.strip_prefix("code: "))
        .expect("generated PIN shown")
        .to_string();
    assert_eq!(pin.len(), 4);
    // Update and delete with --wait; with --json both print what they did.
    let (code, out, err) = zw(
        &s,
        &["codes", "update", &id, "--code", "5937", "--wait", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["access_code_id"], id.as_str());
    assert_eq!(v["status"], "set");
    assert_eq!(v["code"], "****", "the new PIN is not echoed");
    let (code, out, err) = zw(&s, &["codes", "delete", &id, "--wait", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("removed"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["access_code_id"], id.as_str());
    assert_eq!(v["deleted"], true);
    assert_eq!(v["removed_from_lock"], true);
    // Errors: the API's message and a non-zero exit.
    let (code, _, err) = zw(
        &s,
        &["codes", "get", "8f8e3f0e-0000-4000-8000-000000000000"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = zw(&s, &["codes", "create", "--device", &dev, "--code", "12"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid_input"), "{err}");
    // Unmanaged: slot 1 holds a keypad code (read before the first code was placed).
    let (code, out, _) = zw(&s, &["unmanaged", "list", "--device", &dev]);
    assert_eq!(code, 0);
    assert!(out.contains("****") && !shows_pin(&out, "2580"), "{out}");
    let (code, out, err) = zw(&s, &["unmanaged", "sync", "--device", &dev]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reading every slot"), "{out}");
    // --wait waits for the read and says what it found: the keypad code in slot 1.
    let (code, out, err) = zw(&s, &["unmanaged", "sync", "--device", &dev, "--wait"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("every slot read: 1 unmanaged code"), "{out}");
    let (code, out, err) = zw(
        &s,
        &["unmanaged", "sync", "--device", &dev, "--wait", "--json"],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["action_attempt"]["status"], "success");
    assert_eq!(v["unmanaged_access_codes"][0]["slot"], 1);
    assert_eq!(v["unmanaged_access_codes"][0]["code"], "****");
    // The door.
    let (code, out, err) = zw(&s, &["unlock", &dev]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "unlocked");
    let (code, out, _) = zw(&s, &["lock", &dev]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), "locked");
    let (code, out, _) = zw(&s, &["lock", &dev, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["status"], "success");
    // Events.
    let (code, out, _) = zw(&s, &["events"]);
    assert_eq!(code, 0);
    for t in [
        "access_code.created",
        "access_code.set_on_device",
        "access_code.deleted",
        "lock.unlocked",
    ] {
        assert!(out.contains(t), "{t} missing:\n{out}");
    }
    // A reader that goes away early (`| head`): a quiet exit 0, no panic.
    let mut child = Command::new(BIN)
        .args(["events", "--socket"])
        .arg(&s.socket)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // No daemon at that socket: the documented exit code 3 and a hint.
    let out = Command::new(BIN)
        .args(["devices", "list", "--socket", "/nonexistent/zwlock.sock"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is zwlock running"));
    // A usage error: exit 2.
    let out = Command::new(BIN)
        .args(["codes", "list", "--no-such-option"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// The PIN checks above look past ids.
#[test]
fn a_pin_is_seen_as_a_whole_number_outside_ids() {
    assert!(shows_pin("code: 4821\n", "4821"));
    assert!(shows_pin("\"code\":\"4821\"", "4821"));
    assert!(!shows_pin(
        "created 8f4821e0-1234-4abc-8def-0123456789ab",
        "4821"
    ));
    assert!(!shows_pin(
        "id 0a1b4821-4821-4821-8821-482100000000 ****",
        "4821"
    ));
    assert!(!shows_pin("slot 148210", "4821"));
    assert!(shows_pin(
        "8f4821e0-1234-4abc-8def-0123456789ab 4821",
        "4821"
    ));
}
