//! Installing zwlock on a hub never takes a stick by surprise, and root leaves the service
//! files it can use: the packaged configuration makes the daemon wait (ready, with a status
//! naming what to set) and opens no device; `zwlock setup` lists the sticks under
//! /dev/serial/by-id and writes serial.port only when told which; a reload then starts it.
//! `keys import` run as root writes a file the service's user owns; the daemon run as root
//! against the service's state directory refuses, naming the fix.

mod common;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_until, Reaped, BIN};
use zwlock::cli::client::Client;

/// The packaged configuration with its paths moved into `dir`.
fn packaged_config(dir: &Path) -> PathBuf {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/zwlock.toml"))
            .unwrap()
            .replace("/var/lib/zwlock", &dir.join("state").display().to_string())
            .replace("/run/zwlock", &dir.display().to_string());
    let path = dir.join("zwlock.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn recv_until(sock: &UnixDatagram, max: Duration, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < max {
        if let Ok(n) = sock.recv(&mut buf) {
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

fn setup_cmd(config: &Path, by_id: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(["setup", "--config"])
        .arg(config)
        .arg("--by-id")
        .arg(by_id)
        .stdin(Stdio::null());
    c
}

#[test]
fn the_packaged_service_waits_for_a_port_and_takes_it_on_reload() {
    let dir = tempfile::tempdir().unwrap();
    let config = packaged_config(dir.path());
    let ok = Command::new(BIN)
        .args(["config", "check"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let log = dir.path().join("stderr.log");
    let daemon = Reaped(
        Command::new(BIN)
            .args(["daemon", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env_remove("ZWLOCK_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let want = format!(
        "STATUS=no stick configured: set serial.port in {}",
        config.display()
    );
    let seen = recv_until(&notify, Duration::from_secs(20), |m| m.contains("READY=1"));
    assert!(
        seen.last().unwrap().contains(&want),
        "ready, saying what to set: {seen:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("no stick configured: set serial.port in"),
        "{text}"
    );
    // It waits: no driver, no API, no device opened.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!dir.path().join("api.sock").exists());
    assert!(!text.contains("zwlock starting"), "{text}");

    // A simulated stick stands in for the real one; `zwlock setup --port` names it.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[[sim.network]]\nname = \"hub\"\nradio_ms = 2\n[[sim.network.lock]]\nnode_id = 5\nlistening = \"always\"\nslots = 5\n",
    );
    std::fs::write(&config, text).unwrap();
    let out = setup_cmd(&config, &dir.path().join("by-id"))
        .args(["--port", "sim://hub"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("systemctl reload zwlock"));
    daemon.signal("-HUP");
    let client = Client::new(dir.path().join("api.sock"));
    wait_until(
        "the lock, after the reload",
        Duration::from_secs(30),
        || {
            client
                .call("GET", "/devices/list", None)
                .is_ok_and(|r| r.body["devices"].as_array().is_some_and(|d| d.len() == 1))
        },
    );
    let seen = recv_until(&notify, Duration::from_secs(20), |m| {
        m.contains("STATUS=ready")
    });
    assert!(seen.iter().any(|m| m.contains("RELOADING=1")), "{seen:?}");
}

#[test]
fn setup_lists_sticks_and_writes_a_port_only_when_told_which() {
    let dir = tempfile::tempdir().unwrap();
    let config = packaged_config(dir.path());
    let before = std::fs::read_to_string(&config).unwrap();
    let by_id = dir.path().join("by-id");
    std::fs::create_dir(&by_id).unwrap();
    let (a, b) = (dir.path().join("ttyACM0"), dir.path().join("ttyACM1"));
    std::fs::write(&a, "").unwrap();
    std::fs::write(&b, "").unwrap();
    let stick_a = by_id.join("usb-0658_0200-if00");
    std::os::unix::fs::symlink(&a, &stick_a).unwrap();
    std::os::unix::fs::symlink(&b, by_id.join("usb-Zooz_ZST39-if00")).unwrap();
    // Something else (here: this test) has the first one open.
    let _held = std::fs::File::open(&a).unwrap();

    let out = setup_cmd(&config, &by_id)
        .args(["--list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sticks = v["sticks"].as_array().unwrap();
    assert_eq!(sticks.len(), 2, "{v}");
    assert_eq!(sticks[0]["path"], stick_a.display().to_string());
    let holders = sticks[0]["held_by"].as_array().unwrap();
    assert!(
        holders.iter().any(|h| h[0] == std::process::id()),
        "this test holds it: {v}"
    );
    assert_eq!(sticks[1]["held_by"], serde_json::json!([]));

    // Not on a terminal and no --port: nothing is chosen, nothing written.
    let out = setup_cmd(&config, &by_id).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("usb-0658_0200-if00") && err.contains("usb-Zooz_ZST39-if00"),
        "{err}"
    );
    assert!(err.contains("--port"), "{err}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);

    // Told which: written, with a warning that another program holds it.
    let mode = std::fs::metadata(&config).unwrap().mode();
    let out = setup_cmd(&config, &by_id)
        .arg("--port")
        .arg(&stick_a)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs the stick to itself"), "{err}");
    let c = zwlock::config::Config::load(&config).unwrap();
    assert_eq!(
        c.serial.port.as_deref(),
        Some(stick_a.display().to_string().as_str())
    );
    assert_eq!(std::fs::metadata(&config).unwrap().mode(), mode);
    // A port that makes the file unusable is refused, the file untouched.
    let after = std::fs::read_to_string(&config).unwrap();
    let out = setup_cmd(&config, &by_id)
        .args(["--port", "sim://nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serial.port"));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), after);
}

fn is_root() -> bool {
    zwlock::util::owner::effective_uid() == Some(0)
}

const KEYS: &str = r#"{"zwave": {"securityKeys": {"S2_AccessControl": "d6a6b9c8e7f60514233241506f7e8d9c", "S0_Legacy": "0102030405060708090a0b0c0d0e0f10"}}}"#;

#[test]
fn files_written_in_the_state_directory_stay_usable_by_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let config = packaged_config(dir.path());
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let input = dir.path().join("settings.json");
    std::fs::write(&input, KEYS).unwrap();
    let import = || {
        Command::new(BIN)
            .args(["keys", "import", "--config"])
            .arg(&config)
            .arg(&input)
            .output()
            .unwrap()
    };
    if is_root() {
        // The service's user (nobody, here) owns its state directory; root imports.
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();
        let out = import();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta = std::fs::metadata(state.join("network-keys.toml")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        assert_eq!(meta.mode() & 0o777, 0o600);
        // The daemon as root against that directory: refused, naming the fix.
        let mut text = std::fs::read_to_string(&config).unwrap();
        text = text.replace(
            "# port = \"/dev/serial/by-id/usb-…\"",
            "port = \"tcp://127.0.0.1:9\"",
        );
        std::fs::write(&config, text).unwrap();
        let out = Command::new(BIN)
            .args(["daemon", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("belongs to")
                && err.contains("sudo -u")
                && err.contains("systemctl start zwlock"),
            "{err}"
        );
        assert!(!state.join("zwlock.db").exists(), "nothing created as root");
    } else {
        // Not root: a directory owned by someone else (the sticky temp directory is root's)
        // gets no file of ours; the refusal names the fix.
        let shared = std::env::temp_dir();
        let owner = std::fs::metadata(&shared).unwrap().uid();
        assert_ne!(
            Some(owner),
            zwlock::util::owner::effective_uid(),
            "{}",
            shared.display()
        );
        let keys = shared.join(format!("zwlock-test-keys-{}", std::process::id()));
        let mut text = std::fs::read_to_string(&config).unwrap();
        text = text.replace(
            "# keys = \"",
            &format!("keys = \"{}\"\n# was: \"", keys.display()),
        );
        std::fs::write(&config, text).unwrap();
        let out = import();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("sudo -u"));
        assert!(!keys.exists());
    }
}
