//! The Raspberry Pi binaries work: each cross-compiled zwlock (arm64, armhf) runs under
//! qemu-user on the demo network: the daemon starts, a lock appears, a code created with the
//! foreign CLI reaches `set` and is deleted again. Second tier: needs the rustup targets,
//! Debian's cross compilers and qemu-user (tools/tier2 checks them).
//!
//! The binaries are the release builds that go into the packages (`tools/cross-build` makes
//! the same ones, and cargo does nothing here when they are up to date);
//! ZWLOCK_CROSS_PROFILE=ci-cross tests the lighter profile instead. Each test prints the binary's size and the emulated daemon's resident memory (indicative:
//! it includes qemu's own).

mod common;
mod tier2;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_until, Reaped};
use zwlock::cli::client::Client;

struct Target {
    triple: &'static str,
    qemu: &'static str,
    /// Where Debian's libc6-*-cross keeps the target's loader and libraries.
    sysroot: &'static str,
    gcc: &'static str,
    apt: &'static str,
}

const AARCH64: Target = Target {
    triple: "aarch64-unknown-linux-gnu",
    qemu: "qemu-aarch64",
    sysroot: "/usr/aarch64-linux-gnu",
    gcc: "aarch64-linux-gnu-gcc",
    apt: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
};

const ARMV7: Target = Target {
    triple: "armv7-unknown-linux-gnueabihf",
    qemu: "qemu-arm",
    sysroot: "/usr/arm-linux-gnueabihf",
    gcc: "arm-linux-gnueabihf-gcc",
    apt: "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross",
};

fn profile() -> String {
    std::env::var("ZWLOCK_CROSS_PROFILE").unwrap_or_else(|_| "release".into())
}

/// Build the foreign binary (cargo does nothing when it is up to date); its path.
fn build(t: &Target) -> PathBuf {
    let installed = tier2::tool_output(
        Command::new("rustup").args(["target", "list", "--installed"]),
        "rustup",
        "https://rustup.rs",
    );
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == t.triple)
    {
        tier2::missing(
            &format!("rust's {} standard library", t.triple),
            &format!("rustup target add {}", t.triple),
        );
    }
    tier2::tool_output(
        Command::new(t.gcc).arg("--version"),
        t.gcc,
        &format!("apt-get install {}", t.apt),
    );
    let profile = profile();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let t0 = Instant::now();
    let status = Command::new(cargo)
        .current_dir(tier2::root())
        .args([
            "build",
            "--locked",
            "--bin",
            "zwlock",
            "--profile",
            &profile,
        ])
        .args(["--target", t.triple])
        .env("CARGO_TARGET_DIR", tier2::target_dir())
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --target {}", t.triple);
    eprintln!(
        "{}: cargo build --profile {profile}: {:?}",
        t.triple,
        t0.elapsed()
    );
    tier2::target_dir()
        .join(t.triple)
        .join(&profile)
        .join("zwlock")
}

/// The foreign binary under emulation.
fn qemu(t: &Target, bin: &Path) -> Command {
    tier2::tool_output(
        Command::new(t.qemu).arg("--version"),
        t.qemu,
        "apt-get install qemu-user",
    );
    let mut c = Command::new(t.qemu);
    c.arg("-L").arg(t.sysroot).arg(bin);
    c
}

/// The demo configuration with its state in `dir`.
fn demo_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(tier2::root().join("config/demo.toml")).unwrap();
    let text = text.replace("target/demo", &dir.display().to_string());
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// VmRSS and VmHWM of a process, in kB.
fn rss_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Run the foreign CLI; its stdout, after checking it exited 0.
fn cli(t: &Target, bin: &Path, socket: &Path, args: &[&str]) -> String {
    let out = qemu(t, bin)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "zwlock {args:?} under {}: {:?}\n{stdout}\n{}",
        t.qemu,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn the_demo_under_qemu(t: &Target) {
    let bin = build(t);
    let size = std::fs::metadata(&bin).unwrap().len();
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path());
    let socket = dir.path().join("api.sock");
    let log = dir.path().join("daemon.log");
    let started = Instant::now();
    let daemon = Reaped(
        qemu(t, &bin)
            .args(["daemon", "--config"])
            .arg(&config)
            .env("ZWLOCK_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let client = Client::new(&socket);
    let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
    let t_max = Duration::from_secs(120);
    let t0 = Instant::now();
    while !client
        .call("GET", "/health", None)
        .is_ok_and(|r| r.status == 200)
    {
        assert!(
            t0.elapsed() < t_max,
            "no API after {t_max:?}:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ready = started.elapsed();
    let (rss_ready, _) = rss_kb(daemon.pid());

    // A lock appears: the demo's front door, node 5.
    let mut device = String::new();
    wait_until("the front door online", t_max, || {
        let out = cli(t, &bin, &socket, &["devices", "list", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        match v
            .as_array()
            .into_iter()
            .flatten()
            .find(|d| d["properties"]["zwave"]["node_id"] == 5 && d["properties"]["online"] == true)
        {
            Some(d) => {
                device = d["device_id"].as_str().unwrap().to_string();
                true
            }
            None => false,
        }
    });

    // A code is created and reaches `set` (--wait returns once it is on the lock) ...
    let out = cli(
        t,
        &bin,
        &socket,
        &[
            "codes", "create", "--device", &device, "--code", "4821", "--name", "qemu", "--wait",
            "--json",
        ],
    );
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = created["access_code_id"].as_str().unwrap().to_string();
    let r = client
        .call(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None,
        )
        .unwrap();
    assert_eq!(r.body["access_code"]["status"], "set", "{}", r.body);
    // ... and is deleted (--wait returns once it is off the lock).
    cli(t, &bin, &socket, &["codes", "delete", &id, "--wait"]);
    let r = client
        .call(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None,
        )
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.body);

    let (rss_now, hwm) = rss_kb(daemon.pid());
    daemon.signal("-TERM");
    let mut daemon = daemon;
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}:\n{}", log_text());
    assert!(log_text().contains("zwlock ready"), "{}", log_text());
    eprintln!(
        "{} ({}): binary {:.2} MB; API up after {ready:?}; RSS under {} (indicative): {} kB at ready, {} kB after the scenario, peak {} kB",
        t.triple,
        profile(),
        size as f64 / 1e6,
        t.qemu,
        rss_ready,
        rss_now,
        hwm
    );
}

#[test]
fn the_arm64_binary_runs_the_demo_under_qemu() {
    the_demo_under_qemu(&AARCH64);
}

#[test]
fn the_armhf_binary_runs_the_demo_under_qemu() {
    the_demo_under_qemu(&ARMV7);
}
