//! Seam's own Python SDK (PyPI `seam`, pinned in tests/sdk/requirements.txt), unchanged, drives
//! the daemon's API on its Unix socket, and its token-protected TCP listener for the
//! unauthorized error: create, get, list (and the SDK's paginator), update, common_code_key,
//! create_multiple, update_multiple, generate_code, the backup pool, unmanaged codes both ways,
//! the door, action attempts, events, each error class, delete (tests/sdk/seam_sdk_check.py).
//!
//! The SDK lives in a virtualenv at target/seam-sdk-venv, which `tools/tier2` creates; second
//! tier (`--features interop`).

mod common;
mod tier2;

use std::process::Command;

#[test]
fn the_seam_python_sdk_works_unchanged_over_the_socket() {
    let python = tier2::seam_python();
    let dir = tempfile::tempdir().unwrap();
    let sdk = common::sdk_daemon(dir.path());
    let out = Command::new(&python)
        .arg(tier2::root().join("tests/sdk/seam_sdk_check.py"))
        .arg(&sdk.socket)
        .arg(sdk.tcp_port.to_string())
        .arg(&sdk.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("seam sdk: ok"), "{stdout}");
}
