//! Seam's own Python SDK (PyPI `seam`, pinned in tests/sdk/requirements.txt), unchanged, drives
//! the daemon's API on its Unix socket: create, get, list, update, unmanaged list, errors,
//! delete (tests/sdk/seam_sdk_check.py).
//!
//! The SDK lives in a virtualenv at target/seam-sdk-venv, which `tools/tier2` creates; second
//! tier (`--features interop`).

mod common;
mod tier2;

use std::process::Command;
use std::time::Duration;

use common::{daemon, sim_serve, tcp_config};

const SIM: &str = r#"
[[network]]
name = "sdk"
radio_ms = 2
[[network.lock]]
node_id = 5
listening = "always"
slots = 10
initial_codes = [{ slot = 1, code = "2580" }]
"#;

#[test]
fn the_seam_python_sdk_works_unchanged_over_the_socket() {
    let python = tier2::seam_python();
    let dir = tempfile::tempdir().unwrap();
    let sim_file = dir.path().join("sim.toml");
    std::fs::write(&sim_file, SIM).unwrap();
    let (_sim, port) = sim_serve(&sim_file, &dir.path().join("sim.sock"));
    let config = tcp_config(dir.path(), port);
    let socket = dir.path().join("api.sock");
    let _daemon = daemon(&config, &socket);
    let client = zwlock::cli::client::Client::new(&socket);
    common::wait_until("lock known", Duration::from_secs(30), || {
        client
            .call("GET", "/devices/list", None)
            .is_ok_and(|r| r.body["devices"].as_array().is_some_and(|d| d.len() == 1))
    });
    let out = Command::new(&python)
        .arg(tier2::root().join("tests/sdk/seam_sdk_check.py"))
        .arg(&socket)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("seam sdk: ok"), "{stdout}");
}
