//! zwlock as a systemd service: sd_notify readiness, status and watchdog, SIGHUP reloads, SIGTERM, and trace logs that never show a PIN. The real binary,
//! with a simulated network inside it. The unit's hardening rating (systemd-analyze) is in
//! tests/service_unit.rs, in the second tier.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_until, Reaped, BIN};
use serde_json::json;
use zwlock::cli::client::Client;

/// PINs of the scenario: ten digits, so that none turns up in a log by chance.
const PIN_KEYPAD: &str = "6150384927";
const PIN_FIRST: &str = "7391482650";
const PIN_SECOND: &str = "8204619375";

fn config_text(dir: &Path, level: &str, poll: u32, timeout_ms: u32) -> String {
    format!(
        r#"
[serial]
port = "sim://svc"
report_timeout_ms = {timeout_ms}
[store]
path = "{d}/zwlock.db"
[api]
socket = "{d}/api.sock"
[log]
level = "{level}"
[codes]
retry_initial_seconds = 1
poll_reads_per_hour = {poll}
[sim]
control_socket = "{d}/sim.sock"
[[sim.network]]
name = "svc"
radio_ms = 2
[[sim.network.lock]]
node_id = 5
listening = "always"
slots = 10
max_code_length = 10
initial_codes = [{{ slot = 1, code = "{PIN_KEYPAD}" }}]
"#,
        d = dir.display()
    )
}

struct Service {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Reaped,
    notify: UnixDatagram,
    log: PathBuf,
    started: Instant,
}

impl Service {
    /// Start `zwlock daemon` as systemd would: NOTIFY_SOCKET and a 1 s watchdog.
    fn start(log_env: Option<&str>) -> Service {
        Service::start_with_watchdog(log_env, 1_000_000)
    }

    fn start_with_watchdog(log_env: Option<&str>, watchdog_usec: u64) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("zwlock.toml");
        std::fs::write(&config, config_text(dir.path(), "info", 12, 5000)).unwrap();
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let log = dir.path().join("stderr.log");
        // systemd sets WATCHDOG_PID to the service's pid: exec from a shell keeps its pid.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("WATCHDOG_PID=$$ exec \"$0\" daemon --config \"$1\"")
            .arg(BIN)
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", watchdog_usec.to_string())
            .env_remove("ZWLOCK_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(level) = log_env {
            cmd.env("ZWLOCK_LOG", level);
        }
        let started = Instant::now();
        let child = Reaped(cmd.spawn().unwrap());
        Service {
            dir,
            config,
            child,
            notify,
            log,
            started,
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    fn client(&self) -> Client {
        Client::new(self.socket())
    }

    /// Notification datagrams until `pred` accepts one (or `max` passes): all of them.
    fn messages_until(&self, max: Duration, mut pred: impl FnMut(&str) -> bool) -> Vec<String> {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while t0.elapsed() < max {
            if let Ok(n) = self.notify.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = pred(&m);
                seen.push(m);
                if done {
                    return seen;
                }
            }
        }
        panic!("not notified within {max:?}; got {seen:?}");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.0.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        let t0 = Instant::now();
        loop {
            if let Some(st) = self.child.0.try_wait().unwrap() {
                return st;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn device(&self) -> String {
        let c = self.client();
        let mut id = String::new();
        wait_until("lock known", Duration::from_secs(30), || {
            match c.call("GET", "/devices/list", None) {
                Ok(r) => match r.body["devices"][0]["device_id"].as_str() {
                    Some(d) => {
                        id = d.to_string();
                        true
                    }
                    None => false,
                },
                Err(_) => false,
            }
        });
        id
    }

    fn wait_status(&self, id: &str, status: &str) {
        let c = self.client();
        wait_until(status, Duration::from_secs(30), || {
            c.call(
                "GET",
                &format!("/access_codes/get?access_code_id={id}"),
                None,
            )
            .is_ok_and(|r| r.body["access_code"]["status"] == status)
        });
    }
}

#[test]
fn it_says_ready_reports_status_feeds_the_watchdog_and_stops_cleanly() {
    let mut s = Service::start(None);
    let before = s.messages_until(Duration::from_secs(30), |m| m.contains("READY=1"));
    let ready_after = s.started.elapsed();
    assert!(
        before.iter().any(|m| m.starts_with("STATUS=")),
        "status lines before READY: {before:?}"
    );
    assert!(s.socket().exists(), "the API socket is open by READY");
    eprintln!("READY=1 after {ready_after:?}");
    // A 1 s watchdog is fed every half second.
    let mut fed = 0;
    s.messages_until(Duration::from_secs(5), |m| {
        fed += usize::from(m.contains("WATCHDOG=1"));
        fed >= 3
    });
    let status = s.stop();
    assert!(status.success(), "exit {status:?}");
    let rest = s.messages_until(Duration::from_secs(5), |m| m.contains("STOPPING=1"));
    assert!(!rest.is_empty());
    assert!(!s.socket().exists(), "the socket file is removed at exit");
}

#[test]
fn a_notify_socket_nobody_reads_never_stalls_the_daemon() {
    // A 100 ms watchdog fills the socket's queue (10 datagrams on Linux) within a second.
    let mut s = Service::start_with_watchdog(None, 100_000);
    let c = s.client();
    wait_until("API up", Duration::from_secs(30), || {
        c.call("GET", "/health", None)
            .is_ok_and(|r| r.status == 200)
    });
    std::thread::sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    let r = c.call("GET", "/health", None).unwrap();
    assert_eq!(r.status, 200);
    let status = s.stop();
    assert!(status.success(), "exit {status:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t0.elapsed()
    );
}

#[test]
fn sighup_applies_log_level_and_budgets_and_names_what_needs_a_restart() {
    let mut s = Service::start(None);
    s.messages_until(Duration::from_secs(30), |m| m.contains("READY=1"));
    std::fs::write(&s.config, config_text(s.dir.path(), "debug", 30, 7000)).unwrap();
    s.signal("HUP");
    s.messages_until(Duration::from_secs(10), |m| m.contains("RELOADING=1"));
    wait_until("reload logged", Duration::from_secs(10), || {
        s.log_text().contains("SIGHUP: configuration reloaded")
    });
    let log = s.log_text();
    assert!(
        log.contains("log.level") && log.contains("codes watch budgets"),
        "{log}"
    );
    assert!(
        log.contains("apply only after a restart") && log.contains("[serial]"),
        "{log}"
    );
    // A broken file changes nothing, and the daemon goes on.
    std::fs::write(&s.config, "[serial]\nbaud = 9600\n").unwrap();
    s.signal("HUP");
    wait_until("error logged", Duration::from_secs(10), || {
        s.log_text().contains("configuration has errors")
    });
    let r = s.client().call("GET", "/health", None).unwrap();
    assert_eq!(r.status, 200);
    assert!(s.stop().success());
}

/// The forms a PIN could take in a log: text, hex (spaced or not), a Rust byte list.
fn pin_forms(pin: &str) -> Vec<String> {
    let bytes = pin.as_bytes();
    vec![
        pin.to_string(),
        zwlock::util::hex::encode(bytes),
        zwlock::util::hex::encode_spaced(bytes),
        format!("{bytes:?}")
            .trim_matches(|c| c == '[' || c == ']')
            .to_string(),
    ]
}

#[test]
fn trace_logs_of_a_whole_scenario_never_show_a_pin() {
    let mut s = Service::start(Some("trace"));
    s.messages_until(Duration::from_secs(30), |m| m.contains("READY=1"));
    let dev = s.device();
    let c = s.client();
    // The keypad code is learnt by the first full read.
    wait_until("unmanaged code learnt", Duration::from_secs(30), || {
        c.call(
            "GET",
            &format!("/access_codes/unmanaged/list?device_id={dev}"),
            None,
        )
        .is_ok_and(|r| {
            r.body["access_codes"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        })
    });
    let r = c
        .call(
            "POST",
            "/access_codes/create",
            Some(&json!({ "device_id": dev, "code": PIN_FIRST })),
        )
        .unwrap();
    let id = r.body["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.wait_status(&id, "set");
    let r = c
        .call(
            "POST",
            "/access_codes/update",
            Some(&json!({ "access_code_id": id, "code": PIN_SECOND })),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    s.wait_status(&id, "set");
    // Refused: the keypad code's PIN, and a malformed one.
    let r = c
        .call(
            "POST",
            "/access_codes/create",
            Some(&json!({ "device_id": dev, "code": PIN_KEYPAD })),
        )
        .unwrap();
    assert_eq!(r.status, 409);
    // Someone uses the code at the keypad.
    let out = Command::new(BIN)
        .args(["sim", "control", "--socket"])
        .arg(s.dir.path().join("sim.sock"))
        .args([
            "--network",
            "svc",
            "--node",
            "5",
            "enter",
            "--pin",
            PIN_SECOND,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = c
        .call(
            "DELETE",
            &format!("/access_codes/delete?access_code_id={id}"),
            None,
        )
        .unwrap();
    assert_eq!(r.status, 200);
    wait_until("deleted", Duration::from_secs(30), || {
        c.call(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None,
        )
        .is_ok_and(|r| r.status == 404)
    });
    assert!(s.stop().success());
    let log = s.log_text();
    // The scenario was logged in depth, frames included, with codes starred out.
    assert!(log.len() > 10_000, "only {} bytes of log", log.len());
    assert!(
        log.contains("frame sent") && log.contains("63 01"),
        "no User Code Set dumped"
    );
    assert!(
        log.contains("2a 2a 2a 2a 2a 2a 2a 2a 2a 2a"),
        "no redacted code in the dumps"
    );
    // Nor a network key.
    let keys = std::fs::read_to_string(s.dir.path().join("network-keys.toml")).unwrap();
    for key in keys.split('"').skip(1).step_by(2) {
        assert_eq!(key.len(), 32);
        assert!(!log.contains(key), "a network key appears in the log");
    }
    for pin in [PIN_KEYPAD, PIN_FIRST, PIN_SECOND] {
        for form in pin_forms(pin) {
            if let Some(at) = log.find(&form) {
                let line = log[..at].rfind('\n').map_or(0, |p| p + 1);
                let end = log[at..].find('\n').map_or(log.len(), |p| at + p);
                panic!("a PIN appears in the log as {form:?}:\n{}", &log[line..end]);
            }
        }
    }
}
