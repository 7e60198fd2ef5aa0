//! The client subcommands of `zwlock`: codes, unmanaged codes, devices, events, the door.
//! They talk to the daemon's socket; human tables by default, `--json` for scripts. PINs are
//! printed only with `--show-codes` (or when the user asked zwlock to generate one).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{Client, ClientError, Reply};

/// Options every client subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct ClientOpts {
    /// The daemon's API socket.
    #[arg(
        long,
        global = true,
        env = "ZWLOCK_SOCKET",
        default_value = "/run/zwlock/api.sock"
    )]
    pub socket: PathBuf,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show PINs instead of ****.
    #[arg(long, global = true)]
    pub show_codes: bool,
}

#[derive(Debug, Subcommand)]
pub enum CodesCommand {
    /// List the managed codes of a lock.
    List {
        #[arg(long)]
        device: String,
    },
    /// Show one code.
    Get { access_code_id: String },
    /// Create a code (a PIN is generated when --code is not given).
    Create {
        #[arg(long)]
        device: String,
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// RFC 3339 time the code starts working (with --ends-at).
        #[arg(long)]
        starts_at: Option<String>,
        #[arg(long)]
        ends_at: Option<String>,
        /// Let changes made at the keypad stand.
        #[arg(long)]
        allow_external_modification: bool,
        /// Wait until the code is on the lock (or fails).
        #[arg(long)]
        wait: bool,
    },
    /// Change a code.
    Update {
        access_code_id: String,
        #[arg(long)]
        code: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        starts_at: Option<String>,
        #[arg(long)]
        ends_at: Option<String>,
        #[arg(long)]
        wait: bool,
    },
    /// Delete a code (it is removed from the lock).
    Delete {
        access_code_id: String,
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UnmanagedCommand {
    /// Codes on a lock that zwlock does not manage.
    List {
        #[arg(long)]
        device: String,
    },
    Get {
        access_code_id: String,
    },
    /// Take over an unmanaged code (it keeps its slot and PIN).
    Convert {
        access_code_id: String,
        #[arg(long)]
        allow_external_modification: bool,
    },
    /// Remove an unmanaged code from its lock.
    Delete {
        access_code_id: String,
    },
    /// Read every slot of a lock again (finds codes added at the keypad).
    Sync {
        #[arg(long)]
        device: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    List,
    Get { device_id: String },
}

/// What went wrong, and the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Api(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api(_) | CliError::Failed(_) => 1,
            CliError::Client(_) => 2,
        }
    }
}

struct Out {
    opts: ClientOpts,
}

impl Out {
    fn pin(&self, v: &Value) -> String {
        match v.as_str() {
            Some(p) if self.opts.show_codes => p.to_string(),
            Some(_) => "****".into(),
            None => "-".into(),
        }
    }

    /// Print `value`, with every `code` field starred out unless --show-codes.
    fn json(&self, mut value: Value) {
        if !self.opts.show_codes {
            redact(&mut value);
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
}

fn redact(v: &mut Value) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if k == "code" && x.is_string() {
                    *x = json!("****");
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

fn call(client: &Client, method: &str, path: &str, body: Option<Value>) -> Result<Value, CliError> {
    let r: Reply = client.call(method, path, body.as_ref())?;
    if r.is_ok() {
        Ok(r.body)
    } else {
        Err(CliError::Api(r.error_message()))
    }
}

fn table(rows: &[Vec<String>], header: &[&str]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.iter().map(|s| s.to_string()).collect()));
    for r in rows {
        println!("{}", line(r.clone()));
    }
}

fn issues(c: &Value) -> String {
    let mut v: Vec<String> = c["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["error_code"].as_str().map(str::to_string))
        .collect();
    v.extend(
        c["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|w| w["warning_code"].as_str().map(|s| format!("warning:{s}"))),
    );
    v.join(",")
}

fn code_rows(out: &Out, codes: &[Value]) {
    let rows: Vec<Vec<String>> = codes
        .iter()
        .map(|c| {
            vec![
                c["access_code_id"].as_str().unwrap_or("").to_string(),
                c["slot"]
                    .as_u64()
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                out.pin(&c["code"]),
                c["status"].as_str().unwrap_or("").to_string(),
                c["name"].as_str().unwrap_or("").to_string(),
                match (c["starts_at"].as_str(), c["ends_at"].as_str()) {
                    (Some(s), Some(e)) => format!("{s} → {e}"),
                    _ => "ongoing".into(),
                },
                issues(c),
            ]
        })
        .collect();
    table(
        &rows,
        &["ID", "SLOT", "CODE", "STATUS", "NAME", "WHEN", "ISSUES"],
    );
}

/// Poll a code until it settles: `set` (or gone, for a delete), or an error appears.
fn wait_for(client: &Client, id: &str, goal: &str) -> Result<(), CliError> {
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        let r = client.call(
            "GET",
            &format!("/access_codes/get?access_code_id={id}"),
            None,
        )?;
        if goal == "gone" && r.status == 404 {
            eprintln!("removed from the lock");
            return Ok(());
        }
        if !r.is_ok() {
            return Err(CliError::Api(r.error_message()));
        }
        let c = &r.body["access_code"];
        let status = c["status"].as_str().unwrap_or("").to_string();
        if status != last {
            eprintln!("status: {status}");
            last = status.clone();
        }
        if goal == "set" && status == "set" {
            return Ok(());
        }
        let errors: Vec<&str> = c["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["is_access_code_error"] == true)
            .filter_map(|e| e["message"].as_str())
            .collect();
        if !errors.is_empty() && goal == "set" && status == "unset" {
            return Err(CliError::Failed(errors.join("; ")));
        }
        if t0.elapsed() > Duration::from_secs(300) {
            return Err(CliError::Failed(format!("still {status} after 5 minutes")));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn codes(opts: ClientOpts, cmd: CodesCommand) -> Result<(), CliError> {
    let client = Client::new(&opts.socket);
    let out = Out { opts };
    match cmd {
        CodesCommand::List { device } => {
            let r = call(
                &client,
                "GET",
                &format!("/access_codes/list?device_id={device}"),
                None,
            )?;
            if out.opts.json {
                out.json(r["access_codes"].clone());
            } else {
                code_rows(
                    &out,
                    r["access_codes"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                );
            }
        }
        CodesCommand::Get { access_code_id } => {
            let r = call(
                &client,
                "GET",
                &format!("/access_codes/get?access_code_id={access_code_id}"),
                None,
            )?;
            if out.opts.json {
                out.json(r["access_code"].clone());
            } else {
                code_rows(&out, std::slice::from_ref(&r["access_code"]));
            }
        }
        CodesCommand::Create {
            device,
            code,
            name,
            starts_at,
            ends_at,
            allow_external_modification,
            wait,
        } => {
            let generated = code.is_none();
            let body = json!({
                "device_id": device, "code": code, "name": name, "starts_at": starts_at, "ends_at": ends_at,
                "allow_external_modification": allow_external_modification,
            });
            let body = strip_nulls(body);
            let r = call(&client, "POST", "/access_codes/create", Some(body))?;
            let c = r["access_code"].clone();
            let id = c["access_code_id"].as_str().unwrap_or("").to_string();
            if out.opts.json {
                let mut v = c.clone();
                if !out.opts.show_codes && !generated {
                    redact(&mut v);
                }
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("created {id}");
                if generated {
                    // The user asked zwlock to choose the PIN: they need to see it.
                    println!("code: {}", c["code"].as_str().unwrap_or(""));
                }
            }
            let _ = std::io::stdout().flush();
            if wait {
                wait_for(&client, &id, "set")?;
            }
        }
        CodesCommand::Update {
            access_code_id,
            code,
            name,
            starts_at,
            ends_at,
            wait,
        } => {
            let body = strip_nulls(json!({
                "access_code_id": access_code_id, "code": code, "name": name, "starts_at": starts_at, "ends_at": ends_at,
            }));
            call(&client, "PATCH", "/access_codes/update", Some(body))?;
            if !out.opts.json {
                println!("updated {access_code_id}");
            }
            if wait {
                wait_for(&client, &access_code_id, "set")?;
            }
        }
        CodesCommand::Delete {
            access_code_id,
            wait,
        } => {
            call(
                &client,
                "DELETE",
                &format!("/access_codes/delete?access_code_id={access_code_id}"),
                None,
            )?;
            if !out.opts.json {
                println!("deleted {access_code_id}");
            }
            if wait {
                wait_for(&client, &access_code_id, "gone")?;
            }
        }
    }
    Ok(())
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

pub fn unmanaged(opts: ClientOpts, cmd: UnmanagedCommand) -> Result<(), CliError> {
    let client = Client::new(&opts.socket);
    let out = Out { opts };
    match cmd {
        UnmanagedCommand::List { device } => {
            let r = call(
                &client,
                "GET",
                &format!("/access_codes/unmanaged/list?device_id={device}"),
                None,
            )?;
            if out.opts.json {
                out.json(r["access_codes"].clone());
            } else {
                let rows: Vec<Vec<String>> = r["access_codes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        vec![
                            c["access_code_id"].as_str().unwrap_or("").into(),
                            c["slot"].to_string(),
                            if c["code"].is_null() {
                                "(hidden by the lock)".into()
                            } else {
                                out.pin(&c["code"])
                            },
                        ]
                    })
                    .collect();
                table(&rows, &["ID", "SLOT", "CODE"]);
            }
        }
        UnmanagedCommand::Get { access_code_id } => {
            let r = call(
                &client,
                "GET",
                &format!("/access_codes/unmanaged/get?access_code_id={access_code_id}"),
                None,
            )?;
            out.json(r["access_code"].clone());
        }
        UnmanagedCommand::Convert {
            access_code_id,
            allow_external_modification,
        } => {
            call(
                &client,
                "PATCH",
                "/access_codes/unmanaged/convert_to_managed",
                Some(
                    json!({ "access_code_id": access_code_id, "allow_external_modification": allow_external_modification }),
                ),
            )?;
            println!("{access_code_id} is managed now");
        }
        UnmanagedCommand::Delete { access_code_id } => {
            call(
                &client,
                "DELETE",
                &format!("/access_codes/unmanaged/delete?access_code_id={access_code_id}"),
                None,
            )?;
            println!("removing {access_code_id} from the lock");
        }
        UnmanagedCommand::Sync { device } => {
            let r = call(
                &client,
                "POST",
                "/locks/sync_access_codes",
                Some(json!({ "device_id": device })),
            )?;
            println!(
                "reading every slot of the lock (action attempt {}); `zwlock unmanaged list --device {device}` shows what it finds",
                r["action_attempt"]["action_attempt_id"].as_str().unwrap_or("")
            );
        }
    }
    Ok(())
}

pub fn devices(opts: ClientOpts, cmd: DevicesCommand) -> Result<(), CliError> {
    let client = Client::new(&opts.socket);
    let out = Out { opts };
    let devices = match &cmd {
        DevicesCommand::List => call(&client, "GET", "/devices/list", None)?["devices"].clone(),
        DevicesCommand::Get { device_id } => json!([call(
            &client,
            "GET",
            &format!("/devices/get?device_id={device_id}"),
            None
        )?["device"]
            .clone()]),
    };
    if out.opts.json {
        out.json(if matches!(cmd, DevicesCommand::Get { .. }) {
            devices[0].clone()
        } else {
            devices
        });
        return Ok(());
    }
    let rows: Vec<Vec<String>> = devices
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let p = &d["properties"];
            vec![
                d["device_id"].as_str().unwrap_or("").into(),
                p["zwave"]["node_id"].to_string(),
                d["display_name"].as_str().unwrap_or("").into(),
                if p["online"] == true {
                    "online".into()
                } else {
                    "offline".into()
                },
                p["battery_level"]
                    .as_f64()
                    .map(|b| format!("{:.0}%", b * 100.0))
                    .unwrap_or_else(|| "-".into()),
                match p["locked"].as_bool() {
                    Some(true) => "locked".into(),
                    Some(false) => "unlocked".into(),
                    None => "-".into(),
                },
                p["max_active_codes_supported"].to_string(),
            ]
        })
        .collect();
    table(
        &rows,
        &["ID", "NODE", "NAME", "STATE", "BATTERY", "DOOR", "SLOTS"],
    );
    Ok(())
}

/// Wait for an action attempt to end; its result, or its error message.
fn wait_attempt(client: &Client, id: &str, max: Duration) -> Result<Value, CliError> {
    let t0 = Instant::now();
    loop {
        let a = call(
            client,
            "GET",
            &format!("/action_attempts/get?action_attempt_id={id}"),
            None,
        )?;
        match a["action_attempt"]["status"].as_str() {
            Some("success") => return Ok(a["action_attempt"]["result"].clone()),
            Some("error") => {
                return Err(CliError::Failed(
                    a["action_attempt"]["error"]["message"]
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

pub fn include(
    opts: ClientOpts,
    pin: Option<String>,
    timeout: u64,
    any_security: bool,
) -> Result<(), CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    let client = Client::new(&opts.socket);
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
    let r = call(&client, "POST", "/zwave/include", Some(body))?;
    let id = r["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    eprintln!("learn mode is open for {timeout} s: press the inclusion button on the lock");
    let result = wait_attempt(&client, &id, Duration::from_secs(timeout + 90))?;
    println!(
        "included node {}; it is being interviewed",
        result["node_id"]
    );
    Ok(())
}

pub fn exclude(opts: ClientOpts, timeout: u64) -> Result<(), CliError> {
    let client = Client::new(&opts.socket);
    let r = call(
        &client,
        "POST",
        "/zwave/exclude",
        Some(json!({ "timeout_seconds": timeout })),
    )?;
    let id = r["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    eprintln!(
        "learn mode is open for {timeout} s: press the inclusion button on the lock to remove"
    );
    let result = wait_attempt(&client, &id, Duration::from_secs(timeout + 30))?;
    println!("node {} left the network", result["node_id"]);
    Ok(())
}

pub fn remove_failed(opts: ClientOpts, device: &str) -> Result<(), CliError> {
    let client = Client::new(&opts.socket);
    let r = call(
        &client,
        "POST",
        "/zwave/remove_failed",
        Some(json!({ "device_id": device })),
    )?;
    let id = r["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let result = wait_attempt(&client, &id, Duration::from_secs(60))?;
    println!("node {} removed", result["node_id"]);
    Ok(())
}

pub fn door(opts: ClientOpts, device: &str, lock: bool) -> Result<(), CliError> {
    let client = Client::new(&opts.socket);
    let route = if lock {
        "/locks/lock_door"
    } else {
        "/locks/unlock_door"
    };
    let r = call(&client, "POST", route, Some(json!({ "device_id": device })))?;
    let id = r["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    wait_attempt(&client, &id, Duration::from_secs(60)).map_err(|e| match e {
        CliError::Failed(m) if m.contains("in time") => {
            CliError::Failed("no answer from the lock".into())
        }
        other => other,
    })?;
    println!("{}", if lock { "locked" } else { "unlocked" });
    Ok(())
}

pub fn events(opts: ClientOpts, since: Option<String>, follow: bool) -> Result<(), CliError> {
    let client = Client::new(&opts.socket);
    let out = Out { opts };
    let since =
        since.unwrap_or_else(|| (chrono::Utc::now() - chrono::Duration::hours(24)).to_rfc3339());
    let r = call(
        &client,
        "POST",
        "/events/list",
        Some(json!({ "since": since })),
    )?;
    let print = |e: &Value| {
        if out.opts.json {
            let mut e = e.clone();
            if !out.opts.show_codes {
                redact(&mut e);
            }
            println!("{e}");
        } else {
            println!(
                "{}  {:<40} {}",
                e["created_at"].as_str().unwrap_or(""),
                e["event_type"].as_str().unwrap_or(""),
                e["access_code_id"]
                    .as_str()
                    .or(e["device_id"].as_str())
                    .unwrap_or("")
            );
        }
        let _ = std::io::stdout().flush();
    };
    for e in r["events"].as_array().into_iter().flatten() {
        print(e);
    }
    if follow {
        client.follow("/events/stream", |_, data| {
            if let Ok(v) = serde_json::from_str::<Value>(data) {
                print(&v);
            }
            true
        })?;
    }
    Ok(())
}
