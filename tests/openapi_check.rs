//! The served OpenAPI document matches the server: schemathesis (PyPI, pinned in
//! tests/openapi/requirements.txt) reads /openapi.json from the daemon's token-protected
//! loopback TCP listener and sends generated requests, valid and invalid, to every operation;
//! every answer must be one the document describes (status, content type, headers, body
//! schema), invalid input must be refused, and nothing may be a 5xx. Bounded: a fixed number of
//! examples per operation and a time budget.
//!
//! schemathesis lives in <target>/schemathesis-venv, which `tools/tier2` creates; second tier
//! (`--features interop`).

mod common;
mod tier2;

use std::process::Command;

/// What schemathesis checks (all of its response checks but the stateful and
/// authorization-model ones, which need links and users the API does not have).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
positive_data_acceptance,unsupported_method,allow_header_conformance,ignored_auth";

#[test]
fn schemathesis_finds_no_mismatch_between_the_document_and_the_server() {
    let st = tier2::schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let sdk = common::sdk_daemon(dir.path());
    // Real device ids for most generated requests, so they reach past a 404 (codes are
    // created, listed, changed); and the GETs whose either/or parameters a query string
    // cannot describe may answer 400 to generated ones that lack both, as may reported
    // constraints whose min_code_length exceeds max_code_length (JSON Schema cannot compare
    // two fields).
    let client = zwlock::cli::client::Client::new(&sdk.socket);
    let devices = client.call("GET", "/devices/list", None).unwrap().body["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].to_string())
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        dir.path().join("schemathesis.toml"),
        format!(
            r#"[dictionaries.devices]
values = [{devices}]
[parameters]
device_id = {{ dictionary = "devices", probability = 0.8 }}
[[operations]]
include-path = ["/access_codes/get", "/access_codes/unmanaged/get", "/devices/get", "/locks/get", "/access_codes/list", "/events/list"]
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
[[operations]]
include-path = "/access_codes/report_device_constraints"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"#
        ),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}/openapi.json", sdk.tcp_port);
    let out = Command::new(&st)
        .arg("run")
        .arg(&url)
        .args(["--header", &format!("Authorization: Bearer {}", sdk.token)])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "25", "--seed", "14", "--workers", "1"])
        .args(["--max-time", "240", "--request-timeout", "30"])
        // A stream never ends: its one answer is checked by tests/api.rs.
        .args(["--exclude-path", "/events/stream"])
        .args(["--suppress-health-check", "all", "--no-color"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // It did test: a run that selected nothing would also exit 0.
    let tested = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or(0);
    assert!(tested >= 40, "only {tested} operations tested:\n{stdout}");
    assert!(stdout.contains(" passed"), "{stdout}");
}
