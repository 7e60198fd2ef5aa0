//! The real `zwlock` binary: the daemon on a simulated network, its control socket, signals,
//! and `config check`.

#[path = "campaign/logscan.rs"]
mod logscan;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_zwlock");

fn demo_config(dir: &std::path::Path) -> std::path::PathBuf {
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
[sim]
control_socket = "{dir}/sim.sock"
[[sim.network]]
name = "demo"
radio_ms = 1
[[sim.network.lock]]
node_id = 5
listening = "always"
initial_codes = [{{ slot = 1, code = "1234" }}]
"#,
        dir = dir.display()
    );
    let path = dir.join("zwlock.toml");
    std::fs::write(&path, text).unwrap();
    path
}

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

#[test]
fn daemon_runs_on_the_simulator_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let child = Command::new(BIN)
        .args(["daemon", "--config"])
        .arg(&config)
        .env("ZWLOCK_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let wait_for = |needle: &str, log: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                let hit = line.contains(needle);
                log.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("no '{needle}' in the log:\n{}", log.join("\n"));
    };
    wait_for("stick ready", &mut log);
    wait_for("device.added", &mut log);
    // First start: network keys were generated, beside the database, for the daemon only.
    {
        use std::os::unix::fs::PermissionsExt;
        let keys = dir.path().join("network-keys.toml");
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = std::fs::read_to_string(&keys).unwrap();
        assert_eq!(text.matches(" = \"").count(), 4, "four keys");
        let key = text.split('"').nth(1).unwrap();
        assert!(!log.join("\n").contains(key), "a key in the log");
    }
    // Someone unlocks at the keypad: the daemon hears the lock.
    let sock = dir.path().join("sim.sock");
    let out = Command::new(BIN)
        .args(["sim", "control", "--socket"])
        .arg(&sock)
        .args(["--network", "demo", "--node", "5", "enter", "--pin", "1234"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"unlocked\":true"));
    wait_for("lock.unlocked", &mut log);
    // Each API request is logged with the seam-request-id its answer carries.
    let answer = health_over(&dir.path().join("api.sock"));
    let id = answer
        .lines()
        .find_map(|l| l.strip_prefix("seam-request-id: "))
        .expect("a seam-request-id header")
        .trim()
        .to_string();
    wait_for(&format!("request_id={id}"), &mut log);
    // A wrong action is refused with a message and a failing exit code.
    let out = Command::new(BIN)
        .args(["sim", "control", "--socket"])
        .arg(&sock)
        .args(["--network", "demo", "--node", "5", "fly"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown action"));
    // SIGTERM: exit 0, control socket removed.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "daemon did not stop within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(!sock.exists(), "control socket left behind");
    assert!(
        !dir.path().join("api.sock").exists(),
        "API socket left behind"
    );
    // No PIN in anything the daemon printed.
    while let Ok(line) = rx.try_recv() {
        log.push(line);
    }
    // (As a number of its own or spelled in hex: a timestamp's "…08.431234Z" is not the PIN.)
    let log = log.join("\n");
    assert_eq!(logscan::LogIndex::new(&log).find("1234"), None, "{log}");
}

#[test]
fn config_check_reports_file_line_and_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let good = demo_config(dir.path());
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[serial]\nport = \"/dev/ttyACM0\"\nspeed = 9600\n").unwrap();
    let out = Command::new(BIN)
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:"), "{err}");
    assert!(err.contains("speed"), "{err}");
    // The daemon refuses to start on it too.
    let out = Command::new(BIN)
        .args(["daemon", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A missing file.
    let out = Command::new(BIN)
        .args(["config", "check", "/nonexistent/zwlock.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/zwlock.toml"));
}

#[test]
fn the_checked_in_configs_are_valid() {
    for f in ["config/demo.toml", "config/zwlock.toml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f);
        let out = Command::new(BIN)
            .args(["config", "check"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn decode_cli_reads_stdin_and_exits_non_zero_on_bad_frames() {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(["decode", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"2026-08-14 08:01:48.427 SERIAL \xc2\xbb 0x010f0013050863010501313233342507ae (17 bytes)\n01 04 01 13 01 e9\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["direction"], ">");
    assert_eq!(lines[0]["command"], "Set");
    assert_eq!(lines[0]["fields"]["user_code"], "****");
    assert_eq!(lines[1]["frame"], "invalid");
    assert!(!text.contains("31323334"));
}

/// `zwlock sim serve` exposes a simulated network over TCP; the driver reaches it with tcp://.
#[test]
fn sim_serve_speaks_over_tcp() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sim/locks.toml");
    let child = Command::new(BIN)
        .args(["sim", "serve", "--config"])
        .arg(&fixture)
        .args(["--listen", &format!("tcp://127.0.0.1:{port}")])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "sim serve did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The probe connection above was accepted and closed; now the driver connects.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        let mut config =
            zwlock::driver::DriverConfig::new(format!("tcp://127.0.0.1:{port}").parse().unwrap());
        config.interview = false;
        let (driver, mut events) = zwlock::driver::Driver::spawn(config);
        let ev = tokio::time::timeout(Duration::from_secs(20), events.recv()).await;
        let r = driver
            .get(
                zwlock::serialapi::NodeId(9),
                zwlock::cc::Command::UserCode(zwlock::cc::UserCodeCommand::UsersNumberGet),
                zwlock::driver::Priority::Normal,
            )
            .await;
        (ev, r)
    });
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let _ = child.0.wait();
    let (ev, r) = result;
    assert!(
        matches!(ev, Ok(Some(zwlock::driver::DriverEvent::Connected(ref c))) if c.home_id == 0xC0FFEE01),
        "{ev:?}"
    );
    assert!(
        matches!(r, Ok(zwlock::cc::Command::UserCode(ref u)) if u.users_number() == Some(250)),
        "{r:?}"
    );
}

#[test]
fn keys_import_takes_zwave_js_keys_and_refuses_to_overwrite_silently() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let keys = dir.path().join("network-keys.toml");
    let input = dir.path().join("zwave-js-keys.json");
    let access = "d6a6b9c8e7f60514233241506f7e8d9c";
    std::fs::write(
        &input,
        format!("{{ \"S0_Legacy\": \"0102030405060708090a0b0c0d0e0f10\", \"S2_AccessControl\": \"{access}\" }}"),
    )
    .unwrap();
    let import = |force: bool| {
        let mut c = Command::new(BIN);
        c.args(["keys", "import", "--config"]).arg(&config);
        if force {
            c.arg("--force");
        }
        c.arg(&input).output().unwrap()
    };
    let out = import(false);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("S0_Legacy, S2_AccessControl"), "{said}");
    assert!(!said.contains(access));
    let text = std::fs::read_to_string(&keys).unwrap();
    assert!(
        text.contains(&format!("S2_AccessControl = \"{access}\"")),
        "{text}"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Again: refused without --force, the keys untouched.
    let out = import(false);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), text);
    assert!(import(true).status.success());
    // A malformed key: a clear error that does not echo it; nothing written.
    std::fs::write(&input, format!("S2_AccessControl = {access}ff")).unwrap();
    let before = std::fs::read_to_string(&keys).unwrap();
    let out = import(true);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("32 hex digits") && !err.contains(access),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&keys).unwrap(), before);
}

/// Raise this process's soft file limit (to its hard limit, at most `want`): the test opens
/// more connections than a default 1024 allows.
fn raise_file_limit(want: libc::rlim_t) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write only the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < want {
            rl.rlim_cur = want.min(rl.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

fn health_over(socket: &std::path::Path) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn eleven_hundred_idle_connections_do_not_lock_anyone_out() {
    use std::io::Write;
    raise_file_limit(4096);
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let socket = dir.path().join("api.sock");
    // The daemon gets the file limit of a service without LimitNOFILE (1024), where 1,100
    // connections used to exhaust its descriptors and stall its listener for good.
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 1024 && exec \"$0\" daemon --config \"$1\"")
        .arg(BIN)
        .arg(&config)
        .env("ZWLOCK_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _child = Reaped(child);
    let t0 = Instant::now();
    while !health_over_ok(&socket) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the daemon never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // 1,100 connections that never finish a request: half say nothing, half send half a head.
    let mut idle = Vec::new();
    for i in 0..1100 {
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        if i % 2 == 1 {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
        }
        idle.push(s);
    }
    // Someone else still gets an answer, on a new connection.
    let answer = health_over(&socket);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.contains("seam-request-id"), "{answer}");
    drop(idle);
    assert!(health_over(&socket).starts_with("HTTP/1.1 200"));
}

fn health_over_ok(socket: &std::path::Path) -> bool {
    socket.exists()
        && std::panic::catch_unwind(|| health_over(socket))
            .is_ok_and(|a| a.starts_with("HTTP/1.1 200"))
}

#[test]
fn the_unit_gives_the_connection_limit_its_descriptors() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/zwlock.service"),
    )
    .unwrap();
    let nofile: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("systemd/zwlock.service sets LimitNOFILE=")
        .trim()
        .parse()
        .unwrap();
    use zwlock::api::server::{connection_limit, DEFAULT_MAX_CONNECTIONS};
    assert_eq!(
        connection_limit(DEFAULT_MAX_CONNECTIONS, nofile),
        DEFAULT_MAX_CONNECTIONS,
        "LimitNOFILE={nofile} would cut the API's connection limit"
    );
}
