//! The client subcommands that act on the Z-Wave network and the door: include, exclude,
//! remove-failed, lock, unlock. Each starts an action attempt on the daemon and waits for it;
//! `--json` prints the finished attempt.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::commands::{get, ClientOpts};
use super::output::{CliError, Out};
use crate::cli::client::Client;

/// Wait for an action attempt to end: the finished attempt, or its error message.
pub fn wait_attempt(client: &Client, id: &str, max: Duration) -> Result<Value, CliError> {
    let t0 = Instant::now();
    loop {
        let a = get(client, "/action_attempts/get", &[("action_attempt_id", id)])?;
        let attempt = &a["action_attempt"];
        match attempt["status"].as_str() {
            Some("success") => return Ok(attempt.clone()),
            Some("error") => {
                return Err(CliError::Failed(
                    attempt["error"]["message"]
                        .as_str()
                        .unwrap_or("failed")
                        .into(),
                ))
            }
            _ if t0.elapsed() > max => {
                return Err(CliError::Failed("no answer from the daemon in time".into()))
            }
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

/// POST `route`, wait for the attempt it starts (up to `max`); the finished attempt. With
/// `progress`, the attempt's progress events are shown meanwhile (see cli::progress).
fn act(
    client: &Client,
    route: &str,
    body: Value,
    max: Duration,
    progress: Option<&str>,
) -> Result<Value, CliError> {
    let r = client.call("POST", route, Some(&body))?;
    if !r.is_ok() {
        return Err(CliError::Api(r.error_message()));
    }
    let id = r.body["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let watch = progress.map(|what| super::progress::Watch::start(client, &id, what));
    let done = wait_attempt(client, &id, max);
    drop(watch);
    done
}

fn finish(out: &Out, attempt: Value, text: String) -> Result<(), CliError> {
    out.either(attempt, text)
}

pub fn include(
    opts: ClientOpts,
    pin: Option<String>,
    timeout: u64,
    any_security: bool,
) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let client = opts.client()?;
    let pin = match pin {
        Some(p) => Some(p),
        None if std::io::stdin().is_terminal() => {
            eprint!("PIN printed on the lock (5 digits; empty if it has none): ");
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).ok();
            let line = line.trim().to_string();
            (!line.is_empty()).then_some(line)
        }
        None => None,
    };
    let mut body = json!({ "timeout_seconds": timeout });
    if let Some(p) = pin {
        body["pin"] = json!(p);
    }
    if any_security {
        body["required_security"] = json!("none");
    }
    eprintln!("learn mode is open for {timeout} s: press the inclusion button on the lock");
    let attempt = act(
        &client,
        "/zwave/include",
        body,
        Duration::from_secs(timeout + 90),
        Some("including"),
    )?;
    let text = format!(
        "included node {}; it is being interviewed",
        attempt["result"]["node_id"]
    );
    finish(&opts.out(), attempt, text)
}

pub fn exclude(opts: ClientOpts, timeout: u64) -> Result<(), CliError> {
    let client = opts.client()?;
    eprintln!(
        "learn mode is open for {timeout} s: press the inclusion button on the lock to remove"
    );
    let attempt = act(
        &client,
        "/zwave/exclude",
        json!({ "timeout_seconds": timeout }),
        Duration::from_secs(timeout + 30),
        None,
    )?;
    let text = format!("node {} left the network", attempt["result"]["node_id"]);
    finish(&opts.out(), attempt, text)
}

pub fn remove_failed(opts: ClientOpts, device: &str) -> Result<(), CliError> {
    let client = opts.client()?;
    let attempt = act(
        &client,
        "/zwave/remove_failed",
        json!({ "device_id": device }),
        Duration::from_secs(60),
        None,
    )?;
    let text = format!("node {} removed", attempt["result"]["node_id"]);
    finish(&opts.out(), attempt, text)
}

pub fn door(opts: ClientOpts, device: &str, lock: bool) -> Result<(), CliError> {
    let client = opts.client()?;
    let route = if lock {
        "/locks/lock_door"
    } else {
        "/locks/unlock_door"
    };
    let attempt = act(
        &client,
        route,
        json!({ "device_id": device }),
        Duration::from_secs(60),
        None,
    )
    .map_err(|e| match e {
        CliError::Failed(m) if m.contains("in time") => {
            CliError::Failed("no answer from the lock".into())
        }
        other => other,
    })?;
    let text = if lock { "locked" } else { "unlocked" };
    finish(&opts.out(), attempt, text.to_string())
}
