//! A create whose answer was lost to a power cut, retried with its `Idempotency-Key` once the
//! daemon is back: the real binary, SIGKILLed (nothing flushed, nothing said) and started
//! again on the same database. The retry finds the code the first request made; it never
//! makes a second one, and never brings back a code deleted since.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_zwlock");

fn config(dir: &Path) -> PathBuf {
    let text = format!(
        r#"
[serial]
port = "sim://idem"
[store]
path = "{dir}/zwlock.db"
[api]
socket = "{dir}/api.sock"
[log]
level = "warn"
[[sim.network]]
name = "idem"
radio_ms = 1
[[sim.network.lock]]
node_id = 5
listening = "always"
[[sim.network.lock]]
node_id = 6
listening = "always"
"#,
        dir = dir.display()
    );
    let path = dir.join("zwlock.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The daemon, killed (SIGKILL: a power cut, as far as it can tell) when dropped.
struct Daemon {
    child: std::process::Child,
    socket: PathBuf,
}

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let child = Command::new(BIN)
            .args(["daemon", "--config"])
            .arg(config(dir))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            socket: dir.join("api.sock"),
        };
        let t0 = Instant::now();
        while d.locks().len() < 2 {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "no daemon with two locks"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    /// Status and body of one request (`Idempotency-Key` when `key` is given).
    fn call(&self, path: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return (0, Value::Null);
        };
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let body = body.to_string();
        let key = key.map_or(String::new(), |k| format!("Idempotency-Key: {k}\r\n"));
        // HTTP/1.0: the answer is the rest of the stream (no chunks to take apart).
        let head = format!(
            "POST {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\n{key}Content-Length: {}\r\n\r\n",
            body.len()
        );
        if s.write_all(head.as_bytes()).is_err() || s.write_all(body.as_bytes()).is_err() {
            return (0, Value::Null);
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status = out.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        (status, body)
    }

    fn locks(&self) -> Vec<String> {
        let (_, body) = self.call("/devices/list", None, &json!({}));
        body["devices"]
            .as_array()
            .map(|ds| {
                let mut ids: Vec<(u64, String)> = ds
                    .iter()
                    .map(|d| {
                        (
                            d["properties"]["zwave"]["node_id"].as_u64().unwrap_or(0),
                            d["device_id"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect();
                ids.sort();
                ids.into_iter().map(|(_, id)| id).collect()
            })
            .unwrap_or_default()
    }

    /// The managed codes of a lock: (id, PIN, common key).
    fn codes(&self, device: &str) -> Vec<(String, String, Value)> {
        let (status, body) = self.call("/access_codes/list", None, &json!({ "device_id": device }));
        assert_eq!(status, 200, "{body}");
        body["access_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["access_code_id"].as_str().unwrap().to_string(),
                    c["code"].as_str().unwrap().to_string(),
                    c["common_code_key"].clone(),
                )
            })
            .collect()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn a_create_retried_after_a_power_cut_finds_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let locks = d.locks();
    let (front, back) = (&locks[0], &locks[1]);
    let one = json!({ "device_id": front, "name": "Guest 7" });
    let (status, first) = d.call("/access_codes/create", Some("guest-7"), &one);
    assert_eq!(status, 200, "{first}");
    let made = first["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    let pin = first["access_code"]["code"].as_str().unwrap().to_string();
    let both = json!({ "device_ids": [front, back], "name": "Cleaner" });
    let (status, multi) = d.call("/access_codes/create_multiple", Some("cleaner"), &both);
    assert_eq!(status, 200, "{multi}");
    let shared: Vec<String> = multi["access_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["access_code_id"].as_str().unwrap().to_string())
        .collect();
    // The power goes: nothing flushed, the answers (say) never reached the client.
    d.kill();

    let d = Daemon::start(dir.path());
    let (status, again) = d.call("/access_codes/create", Some("guest-7"), &one);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["access_code"]["access_code_id"], made.as_str());
    assert_eq!(again["access_code"]["code"], pin.as_str());
    assert!(
        again["action_attempt"]["action_attempt_id"].is_string(),
        "{again}"
    );
    let (status, again) = d.call("/access_codes/create_multiple", Some("cleaner"), &both);
    assert_eq!(status, 200, "{again}");
    let ids: Vec<&str> = again["access_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["access_code_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, shared);
    assert_eq!(d.codes(front).len(), 2, "a retry made a second code");
    assert_eq!(d.codes(back).len(), 1, "a retry made a second code");
    // The key with other parameters is refused, naming the header; a new key is a new code.
    let other = json!({ "device_id": front, "name": "Guest 8" });
    let (status, e) = d.call("/access_codes/create", Some("guest-7"), &other);
    assert_eq!(status, 422, "{e}");
    assert_eq!(e["error"]["type"], "idempotency_key_reused");
    assert!(
        e["error"]["validation_errors"]["Idempotency-Key"].is_object(),
        "{e}"
    );
    let (status, _) = d.call("/access_codes/create", Some("guest-8"), &other);
    assert_eq!(status, 200);
    assert_eq!(d.codes(front).len(), 3);
    // Deleted, then the old request retried once more (after another restart, so that only
    // the database remembers it): refused, and the code stays deleted.
    let (status, _) = d.call(
        "/access_codes/delete",
        None,
        &json!({ "access_code_id": made }),
    );
    assert_eq!(status, 200);
    let t0 = Instant::now();
    while d.codes(front).iter().any(|(id, _, _)| *id == made) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the code was never removed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    d.kill();
    let d = Daemon::start(dir.path());
    let (status, e) = d.call("/access_codes/create", Some("guest-7"), &one);
    assert_eq!(status, 409, "{e}");
    assert_eq!(e["error"]["type"], "idempotency_key_used");
    let left = d.codes(front);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|(id, p, _)| *id != made && *p != pin),
        "the deleted code came back"
    );
}

/// A create_multiple cut short between its locks (the daemon stopped after the first lock's
/// code was committed, before the second's): the retry gives the second lock the PIN and the
/// common key the first one got, and the first its own code again.
#[test]
fn a_create_multiple_cut_short_is_finished_by_its_retry() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path());
    let locks = d.locks();
    let (front, back) = (&locks[0], &locks[1]);
    let both = json!({ "device_ids": [front, back], "name": "Cleaner" });
    let (status, multi) = d.call("/access_codes/create_multiple", Some("cleaner"), &both);
    assert_eq!(status, 200, "{multi}");
    d.kill();
    // Undo the second lock's transaction, as if the power went before it: its code and its
    // key row (nothing else refers to a new code).
    let first = multi["access_codes"][0].clone();
    let second = multi["access_codes"][1]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    {
        let db = rusqlite::Connection::open(dir.path().join("zwlock.db")).unwrap();
        let gone = db
            .execute(
                "DELETE FROM access_codes WHERE access_code_id = ?1",
                [&second],
            )
            .unwrap()
            + db.execute(
                "DELETE FROM idempotency_keys WHERE access_code_id = ?1",
                [&second],
            )
            .unwrap();
        assert_eq!(gone, 2);
    }
    let d = Daemon::start(dir.path());
    assert!(d.codes(back).is_empty());
    let (status, again) = d.call("/access_codes/create_multiple", Some("cleaner"), &both);
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["access_codes"][0]["access_code_id"],
        first["access_code_id"]
    );
    let back_codes = d.codes(back);
    assert_eq!(back_codes.len(), 1, "{back_codes:?}");
    assert_eq!(
        back_codes[0].1,
        first["code"].as_str().unwrap(),
        "the same PIN"
    );
    assert_eq!(
        back_codes[0].2, first["common_code_key"],
        "the same common key"
    );
    assert_eq!(d.codes(front).len(), 1);
}
