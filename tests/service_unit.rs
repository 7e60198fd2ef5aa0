//! The service unit as systemd sees it: `systemd-analyze security` rates its hardening, and it
//! says READY itself and is watched. Second tier (needs systemd-analyze).

mod tier2;

use std::path::Path;
use std::process::Command;

#[test]
fn the_unit_is_rated_2_0_or_better_by_systemd_analyze() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/zwlock.service");
    let out = tier2::tool_output(
        Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit),
        "systemd-analyze",
        "apt-get install systemd",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no rating in:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the rating from {line}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    // The unit says READY itself and is watched.
    let unit_text = std::fs::read_to_string(&unit).unwrap();
    for key in [
        "Type=notify",
        "WatchdogSec=",
        "ExecReload=",
        "After=network.target time-sync.target",
    ] {
        assert!(unit_text.contains(key), "{key} missing");
    }
}
