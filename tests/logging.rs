//! The daemon's log as the journal and a terminal expect it: a syslog priority on every line
//! when JOURNAL_STREAM names stderr, never a colour code off a terminal, and the usual level
//! aliases (`level = "warning"` logs warnings; it used to silence everything).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{wait_until, Reaped, BIN};

fn config(dir: &Path, level: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[serial]
port = "sim://log"
[store]
path = "{d}/zwlock.db"
[api]
socket = "{d}/api.sock"
[log]
level = "{level}"
[[sim.network]]
name = "log"
radio_ms = 2
[[sim.network.lock]]
node_id = 5
listening = "always"
slots = 5
"#,
        d = dir.display()
    );
    let p = dir.join("zwlock.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Start the daemon with stderr in a file (named by JOURNAL_STREAM when `journal`), wait
/// until `until` is in it, stop it; the log.
fn run(level: &str, journal: bool, env: &[(&str, &str)], until: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), level);
    let log = dir.path().join("stderr.log");
    let file = std::fs::File::create(&log).unwrap();
    let meta = file.metadata().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["daemon", "--config"])
        .arg(&config)
        .env_remove("ZWLOCK_LOG")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(file);
    if journal {
        cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = Reaped(cmd.spawn().unwrap());
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(until, Duration::from_secs(30), || text().contains(until));
    // The API socket is up by then (it opens before "zwlock ready").
    wait_until("socket", Duration::from_secs(30), || {
        dir.path().join("api.sock").exists()
    });
    child.signal("-TERM");
    drop(child);
    text()
}

#[test]
fn under_the_journal_every_line_has_its_priority_and_no_colour() {
    let log = run("info", true, &[], "zwlock ready");
    assert!(!log.contains('\x1b'), "colour codes in the journal:\n{log}");
    for line in log.lines() {
        assert!(
            ["<3>", "<4>", "<6>", "<7>"]
                .iter()
                .any(|p| line.starts_with(p)),
            "a line without a priority: {line:?}\n{log}"
        );
    }
    let ready = log.lines().find(|l| l.contains("zwlock ready")).unwrap();
    assert!(ready.starts_with("<6>"), "{ready}");
    // The journal stamps entries itself.
    assert!(!ready.contains(&chrono::Utc::now().format("%Y-%m-%d").to_string()));
}

#[test]
fn level_warning_logs_warnings_and_nothing_below() {
    // A bad ZWLOCK_LOG gives a warning, logged through the configured "warning" level.
    let log = run(
        "warning",
        true,
        &[("ZWLOCK_LOG", "chatty")],
        "ZWLOCK_LOG is not a usable filter",
    );
    let warn = log
        .lines()
        .find(|l| l.contains("ZWLOCK_LOG is not a usable filter"))
        .unwrap();
    assert!(warn.starts_with("<4>"), "{warn}");
    assert!(!log.contains("<6>"), "info lines at level warning:\n{log}");
}

#[test]
fn a_redirected_stderr_gets_plain_timestamped_lines() {
    let log = run("info", false, &[], "zwlock ready");
    assert!(!log.contains('\x1b'), "colour codes in a file:\n{log}");
    let ready = log.lines().find(|l| l.contains("zwlock ready")).unwrap();
    assert!(!ready.starts_with('<'), "{ready}");
    assert!(ready.contains("INFO"), "{ready}");
}

#[test]
fn config_check_refuses_a_level_the_logger_cannot_take() {
    let dir = tempfile::tempdir().unwrap();
    for (level, ok) in [("warning", true), ("err", true), ("warnings", false)] {
        let out = Command::new(BIN)
            .args(["config", "check"])
            .arg(config(dir.path(), level))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{level}: {stderr}");
        if !ok {
            assert_eq!(out.status.code(), Some(2));
            assert!(
                stderr.contains("log.level") && stderr.contains("'warnings' is not a level"),
                "{stderr}"
            );
        }
    }
}
