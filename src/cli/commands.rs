//! The client subcommands of `zwlock`: codes, unmanaged codes, devices, events. They talk to
//! the daemon's socket; human tables by default, `--json` for scripts (every command prints
//! something with it). PINs are printed only with `--show-codes` (or when the user asked
//! zwlock to generate one).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::client::{with_query, Client, Reply};
pub use super::output::CliError;
use super::output::{line, redact, table, Out};

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
    /// Print JSON (the API's objects) instead of tables and sentences.
    #[arg(long, global = true)]
    pub json: bool,
    /// Show PINs instead of ****.
    #[arg(long, global = true)]
    pub show_codes: bool,
    /// The broker to go through instead of the socket (`zwlock --broker … --hub …`).
    #[arg(skip)]
    pub remote: Option<RemoteOpts>,
}

/// Reaching a hub through an MQTT broker instead of the socket (options of `zwlock` itself,
/// before the subcommand).
#[derive(Debug, Clone, Default, Args)]
pub struct RemoteOpts {
    /// Reach the daemon through an MQTT broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (with --hub).
    #[arg(long, global = true, env = "ZWLOCK_BROKER")]
    pub broker: Option<String>,
    /// The hub to reach through the broker (its mqtt.hub_id).
    #[arg(long, global = true, env = "ZWLOCK_HUB")]
    pub hub: Option<String>,
    /// The hubs' topic prefix (their mqtt.topic_prefix).
    #[arg(long, global = true, default_value = "zwlock")]
    pub topic_prefix: String,
    /// The broker user name.
    #[arg(long, global = true, env = "ZWLOCK_BROKER_USERNAME")]
    pub broker_username: Option<String>,
    /// A file holding the broker password (mode 0600; passwords are never taken on the command line).
    #[arg(long, global = true, env = "ZWLOCK_BROKER_PASSWORD_FILE")]
    pub broker_password_file: Option<PathBuf>,
    /// CA certificates (PEM) for mqtts:// (default: the system's).
    #[arg(long, global = true)]
    pub broker_ca_file: Option<PathBuf>,
    /// A client certificate (PEM), for brokers that ask for one (with --broker-client-key).
    #[arg(long, global = true)]
    pub broker_client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM, mode 0600).
    #[arg(long, global = true)]
    pub broker_client_key: Option<PathBuf>,
    /// Seconds to wait for the broker and for each answer of the hub.
    #[arg(long, global = true, default_value_t = 30)]
    pub broker_timeout: u64,
}

impl RemoteOpts {
    /// The broker link, when --broker is given.
    pub fn remote(&self) -> Result<Option<crate::cli::client::Remote>, CliError> {
        let Some(url) = &self.broker else {
            return Ok(None);
        };
        let bad = |m: String| CliError::Failed(m);
        let broker: crate::mqtt::BrokerUrl =
            url.parse().map_err(|e| bad(format!("--broker: {e}")))?;
        let hub = self
            .hub
            .clone()
            .ok_or_else(|| bad("--broker needs --hub NAME (the hub's mqtt.hub_id)".into()))?;
        if !crate::mqtt::config::valid_hub_id(&hub) {
            return Err(bad(format!("--hub: '{hub}': expected A-Z a-z 0-9 _ -")));
        }
        if !crate::mqtt::config::valid_prefix(&self.topic_prefix) {
            return Err(bad(format!(
                "--topic-prefix: '{}' is not a topic prefix",
                self.topic_prefix
            )));
        }
        let timeout = Duration::from_secs(self.broker_timeout.clamp(1, 3600));
        let connection = crate::mqtt::Connection::new(
            broker,
            self.broker_username.clone(),
            self.broker_password_file.as_deref(),
            crate::mqtt::TlsFiles {
                ca_file: self.broker_ca_file.as_deref(),
                client_cert: self.broker_client_cert.as_deref(),
                client_key: self.broker_client_key.as_deref(),
            },
            Duration::from_secs(30),
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(Some(crate::cli::client::Remote {
            connection,
            topic_prefix: self.topic_prefix.clone(),
            hub,
            timeout,
        }))
    }
}

impl ClientOpts {
    pub fn out(&self) -> Out {
        Out {
            json: self.json,
            show_codes: self.show_codes,
        }
    }

    /// The same options, reaching the daemon as `remote` says (the socket when it names no
    /// broker).
    pub fn through(mut self, remote: &RemoteOpts) -> Self {
        self.remote = Some(remote.clone());
        self
    }

    /// The client: of the socket, or of a hub through the broker.
    pub fn client(&self) -> Result<Client, CliError> {
        match self
            .remote
            .as_ref()
            .map(RemoteOpts::remote)
            .transpose()?
            .flatten()
        {
            Some(r) => Ok(Client::broker(r)),
            None => Ok(Client::new(&self.socket)),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum CodesCommand {
    /// List the managed codes of a lock.
    List {
        /// The lock's device id (`zwlock devices list`).
        #[arg(long)]
        device: String,
    },
    /// Show one code.
    Get {
        /// The code's access code id.
        access_code_id: String,
    },
    /// Create a code (a PIN is generated when --code is not given).
    Create {
        /// The lock's device id (`zwlock devices list`).
        #[arg(long)]
        device: String,
        /// The PIN (digits; the lock's length rules apply). Generated when not given.
        #[arg(long)]
        code: Option<String>,
        /// A name for the code (who it is for).
        #[arg(long)]
        name: Option<String>,
        /// RFC 3339 time the code starts working (with --ends-at).
        #[arg(long)]
        starts_at: Option<String>,
        /// RFC 3339 time the code stops working (with --starts-at).
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
        /// The code's access code id.
        access_code_id: String,
        /// The new PIN.
        #[arg(long)]
        code: Option<String>,
        /// The new name.
        #[arg(long)]
        name: Option<String>,
        /// The new RFC 3339 start time.
        #[arg(long)]
        starts_at: Option<String>,
        /// The new RFC 3339 end time.
        #[arg(long)]
        ends_at: Option<String>,
        /// Wait until the change is on the lock (or fails).
        #[arg(long)]
        wait: bool,
    },
    /// Delete a code (it is removed from the lock).
    Delete {
        /// The code's access code id.
        access_code_id: String,
        /// Wait until the code is off the lock.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UnmanagedCommand {
    /// Codes on a lock that zwlock does not manage.
    List {
        /// The lock's device id (`zwlock devices list`).
        #[arg(long)]
        device: String,
    },
    /// Show one unmanaged code.
    Get {
        /// The unmanaged code's access code id.
        access_code_id: String,
    },
    /// Take over an unmanaged code (it keeps its slot and PIN).
    Convert {
        /// The unmanaged code's access code id.
        access_code_id: String,
        /// Let later changes made at the keypad stand.
        #[arg(long)]
        allow_external_modification: bool,
    },
    /// Remove an unmanaged code from its lock.
    Delete {
        /// The unmanaged code's access code id.
        access_code_id: String,
    },
    /// Read every slot of a lock again (finds codes added at the keypad).
    Sync {
        /// The lock's device id (`zwlock devices list`).
        #[arg(long)]
        device: String,
        /// Wait until every slot was read, and say what the read found.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// The locks zwlock knows.
    List,
    /// One lock.
    Get {
        /// The lock's device id.
        device_id: String,
    },
}

fn call(client: &Client, method: &str, path: &str, body: Option<Value>) -> Result<Value, CliError> {
    let r: Reply = client.call(method, path, body.as_ref())?;
    if r.is_ok() {
        Ok(r.body)
    } else {
        Err(CliError::Api(r.error_message()))
    }
}

pub(super) fn get(client: &Client, path: &str, query: &[(&str, &str)]) -> Result<Value, CliError> {
    call(client, "GET", &with_query(path, &query), None)
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

fn code_rows(out: &Out, codes: &[Value]) -> Result<(), CliError> {
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
    )
}

fn unmanaged_rows(out: &Out, codes: &[Value]) -> Result<(), CliError> {
    let rows: Vec<Vec<String>> = codes
        .iter()
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
    table(&rows, &["ID", "SLOT", "CODE"])
}

/// What a wait settles on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// The code is on the lock.
    Set,
    /// The code is gone (deleted and off the lock).
    Gone,
}

/// Poll a code until it settles at `goal`, or an error appears; the code, when it is still
/// there.
fn wait_for(client: &Client, id: &str, goal: Goal) -> Result<Option<Value>, CliError> {
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        let r = client.call(
            "GET",
            &with_query("/access_codes/get", &[("access_code_id", id)]),
            None,
        )?;
        if goal == Goal::Gone && r.status == 404 {
            eprintln!("removed from the lock");
            return Ok(None);
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
        if goal == Goal::Set && status == "set" {
            return Ok(Some(c.clone()));
        }
        let errors: Vec<&str> = c["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["is_access_code_error"] == true)
            .filter_map(|e| e["message"].as_str())
            .collect();
        if !errors.is_empty() && goal == Goal::Set && status == "unset" {
            return Err(CliError::Failed(errors.join("; ")));
        }
        if t0.elapsed() > Duration::from_secs(300) {
            return Err(CliError::Failed(format!("still {status} after 5 minutes")));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn codes(opts: ClientOpts, cmd: CodesCommand) -> Result<(), CliError> {
    let client = opts.client()?;
    let out = opts.out();
    match cmd {
        CodesCommand::List { device } => {
            let r = get(&client, "/access_codes/list", &[("device_id", &device)])?;
            if out.json {
                out.json(r["access_codes"].clone())?;
            } else {
                code_rows(
                    &out,
                    r["access_codes"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                )?;
            }
        }
        CodesCommand::Get { access_code_id } => {
            let r = get(
                &client,
                "/access_codes/get",
                &[("access_code_id", &access_code_id)],
            )?;
            if out.json {
                out.json(r["access_code"].clone())?;
            } else {
                code_rows(&out, std::slice::from_ref(&r["access_code"]))?;
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
            let body = strip_nulls(json!({
                "device_id": device, "code": code, "name": name, "starts_at": starts_at, "ends_at": ends_at,
                "allow_external_modification": allow_external_modification,
            }));
            let r = call(&client, "POST", "/access_codes/create", Some(body))?;
            let c = r["access_code"].clone();
            let id = c["access_code_id"].as_str().unwrap_or("").to_string();
            if out.json {
                let mut v = c.clone();
                if !out.show_codes && !generated {
                    redact(&mut v);
                }
                line(serde_json::to_string_pretty(&v).unwrap_or_default())?;
            } else {
                line(format!("created {id}"))?;
                if generated {
                    // The user asked zwlock to choose the PIN: they need to see it.
                    match c["code"].as_str() {
                        Some(pin) => line(format!("code: {pin}"))?,
                        // Through a broker the hub publishes no PIN (unless publish_codes).
                        None => line("code: not published by the hub (see it on the hub itself)")?,
                    }
                }
            }
            if wait {
                wait_for(&client, &id, Goal::Set)?;
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
            let settled = if wait {
                wait_for(&client, &access_code_id, Goal::Set)?
            } else {
                None
            };
            if out.json {
                let c = match settled {
                    Some(c) => c,
                    None => get(
                        &client,
                        "/access_codes/get",
                        &[("access_code_id", &access_code_id)],
                    )?["access_code"]
                        .clone(),
                };
                out.json(c)?;
            } else {
                line(format!("updated {access_code_id}"))?;
            }
        }
        CodesCommand::Delete {
            access_code_id,
            wait,
        } => {
            let r = call(
                &client,
                "DELETE",
                &with_query(
                    "/access_codes/delete",
                    &[("access_code_id", &access_code_id)],
                ),
                None,
            )?;
            if wait {
                wait_for(&client, &access_code_id, Goal::Gone)?;
            }
            out.either(
                json!({
                    "access_code_id": access_code_id,
                    "deleted": true,
                    "removed_from_lock": wait,
                    "action_attempt": r["action_attempt"],
                }),
                format!("deleted {access_code_id}"),
            )?;
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
    let client = opts.client()?;
    let out = opts.out();
    match cmd {
        UnmanagedCommand::List { device } => {
            let r = get(
                &client,
                "/access_codes/unmanaged/list",
                &[("device_id", &device)],
            )?;
            if out.json {
                out.json(r["access_codes"].clone())?;
            } else {
                unmanaged_rows(
                    &out,
                    r["access_codes"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or(&[]),
                )?;
            }
        }
        UnmanagedCommand::Get { access_code_id } => {
            let r = get(
                &client,
                "/access_codes/unmanaged/get",
                &[("access_code_id", &access_code_id)],
            )?;
            if out.json {
                out.json(r["access_code"].clone())?;
            } else {
                unmanaged_rows(&out, std::slice::from_ref(&r["access_code"]))?;
            }
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
            if out.json {
                let r = get(
                    &client,
                    "/access_codes/get",
                    &[("access_code_id", &access_code_id)],
                )?;
                out.json(r["access_code"].clone())?;
            } else {
                line(format!("{access_code_id} is managed now"))?;
            }
        }
        UnmanagedCommand::Delete { access_code_id } => {
            call(
                &client,
                "DELETE",
                &with_query(
                    "/access_codes/unmanaged/delete",
                    &[("access_code_id", &access_code_id)],
                ),
                None,
            )?;
            out.either(
                json!({ "access_code_id": access_code_id, "deleting": true }),
                format!("removing {access_code_id} from the lock"),
            )?;
        }
        UnmanagedCommand::Sync { device, wait } => {
            let r = call(
                &client,
                "POST",
                "/locks/sync_access_codes",
                Some(json!({ "device_id": device })),
            )?;
            let attempt = r["action_attempt"].clone();
            let id = attempt["action_attempt_id"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if !wait {
                return out.either(
                    attempt,
                    format!("reading every slot of the lock (action attempt {id}); `zwlock unmanaged list --device {device}` shows what it finds"),
                );
            }
            eprintln!("reading every slot of the lock (action attempt {id})");
            let watch = super::progress::Watch::start(&client, &id, "reading slots");
            let done = super::network::wait_attempt(&client, &id, Duration::from_secs(1800));
            drop(watch);
            let done = done?;
            let found = get(
                &client,
                "/access_codes/unmanaged/list",
                &[("device_id", &device)],
            )?;
            let codes = found["access_codes"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if out.json {
                out.json(json!({ "action_attempt": done, "unmanaged_access_codes": codes }))?;
            } else {
                line(format!(
                    "every slot read: {} unmanaged code{} on the lock",
                    codes.len(),
                    if codes.len() == 1 { "" } else { "s" }
                ))?;
                if !codes.is_empty() {
                    unmanaged_rows(&out, &codes)?;
                }
            }
        }
    }
    Ok(())
}

pub fn devices(opts: ClientOpts, cmd: DevicesCommand) -> Result<(), CliError> {
    let client = opts.client()?;
    let out = opts.out();
    let devices = match &cmd {
        DevicesCommand::List => get(&client, "/devices/list", &[])?["devices"].clone(),
        DevicesCommand::Get { device_id } => {
            json!([get(&client, "/devices/get", &[("device_id", device_id)])?["device"].clone()])
        }
    };
    if out.json {
        return out.json(if matches!(cmd, DevicesCommand::Get { .. }) {
            devices[0].clone()
        } else {
            devices
        });
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
    )
}

pub fn events(opts: ClientOpts, since: Option<String>, follow: bool) -> Result<(), CliError> {
    let client = opts.client()?;
    let out = opts.out();
    let since =
        since.unwrap_or_else(|| (chrono::Utc::now() - chrono::Duration::hours(24)).to_rfc3339());
    let r = call(
        &client,
        "POST",
        "/events/list",
        Some(json!({ "since": since })),
    )?;
    let print = |e: &Value| -> Result<(), CliError> {
        if out.json {
            out.json_line(e.clone())
        } else {
            line(format!(
                "{}  {:<40} {}",
                e["created_at"].as_str().unwrap_or(""),
                e["event_type"].as_str().unwrap_or(""),
                e["access_code_id"]
                    .as_str()
                    .or(e["device_id"].as_str())
                    .unwrap_or("")
            ))
        }
    };
    for e in r["events"].as_array().into_iter().flatten() {
        print(e)?;
    }
    if follow {
        let mut failed = None;
        client.follow("/events/stream", |_, data| {
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                return true;
            };
            match print(&v) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(())
}
