//! Seam's own JavaScript SDK (npm `@seamapi/http`, pinned in tests/sdk/package-lock.json),
//! unchanged, drives the daemon's API on its Unix socket, and its token-protected TCP listener
//! for the unauthorized error: every route zwlock serves that the SDK has, the paginator, and
//! each of the SDK's error classes (tests/sdk/seam_js_check.cjs).
//!
//! The SDK lives in <target>/seam-js-sdk, which `tools/tier2` installs with `npm ci`; second
//! tier (`--features interop`).

mod common;
mod tier2;

#[test]
fn the_seam_js_sdk_works_unchanged_over_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = common::sdk_daemon(dir.path());
    let out = tier2::seam_node()
        .arg(tier2::root().join("tests/sdk/seam_js_check.cjs"))
        .arg(&sdk.socket)
        .arg(sdk.tcp_port.to_string())
        .arg(&sdk.token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("seam js sdk: ok"), "{stdout}");
}
