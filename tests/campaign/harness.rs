//! The processes of a campaign and the ways to reach them: `zwlock sim serve` (the stick and
//! its locks, in a process of their own so lock state outlives every daemon), the daemon
//! (started again and again on the same store, its output kept in one log file), the API
//! socket and the simulator's control socket.
//!
//! Everything lives in one temporary directory and on loopback. [`Harness`] is the guard:
//! dropping it (also while a test panics) kills and reaps every process it started, by PID,
//! and removes the sockets before the directory goes.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use zwlock::cli::client::{Client, ClientError, Reply};
use zwlock::sim::control::{self, ControlRequest};

use crate::common::{self, Reaped};
use crate::model::{ApiCode, SlotView};

/// How long a (re)started daemon gets to answer on its socket. Generous: the machine is
/// shared and the stick may be faulty.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Harness {
    dir: Option<tempfile::TempDir>,
    sim: Option<Reaped>,
    daemon: Option<Reaped>,
    /// A SIGKILL on its way (the thread sleeps, then signals the daemon's PID).
    killer: Option<JoinHandle<()>>,
    pub network: String,
    pub nodes: Vec<u8>,
    /// Device ids, in the order of `nodes`.
    pub devices: Vec<String>,
    pub port: u16,
    pub control: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub db: PathBuf,
    pub log: PathBuf,
    pub client: Client,
    log_level: String,
    rt: tokio::runtime::Runtime,
    /// Every PID started, for the robustness test.
    pub pids: Vec<u32>,
}

/// The daemon's configuration: the stick behind tcp://, short retries, everything else as
/// shipped (so the watch budgets are the ones users run with).
fn daemon_config(dir: &Path, port: u16) -> String {
    format!(
        "[serial]\nport = \"tcp://127.0.0.1:{port}\"\nreconnect_initial_ms = 200\nreconnect_max_ms = 1000\n\
         [store]\npath = \"{d}/zwlock.db\"\n[api]\nsocket = \"{d}/api.sock\"\n\
         [codes]\nretry_initial_seconds = 1\nretry_max_seconds = 5\n",
        d = dir.display()
    )
}

impl Harness {
    /// Write the simulator description and the daemon config, and start the simulator.
    pub fn start(network: &str, sim_toml: &str, nodes: Vec<u8>, log_level: &str) -> Harness {
        let dir = tempfile::Builder::new()
            .prefix("zwc")
            .tempdir()
            .expect("temp dir");
        let sim_file = dir.path().join("sim.toml");
        std::fs::write(&sim_file, sim_toml).expect("sim.toml");
        let control = dir.path().join("sim.sock");
        let (sim, port) = common::sim_serve(&sim_file, &control);
        let config = dir.path().join("zwlock.toml");
        std::fs::write(&config, daemon_config(dir.path(), port)).expect("zwlock.toml");
        let socket = dir.path().join("api.sock");
        Harness {
            pids: vec![sim.pid()],
            sim: Some(sim),
            daemon: None,
            killer: None,
            network: network.into(),
            nodes,
            devices: Vec::new(),
            port,
            client: Client::new(&socket),
            control,
            socket,
            db: dir.path().join("zwlock.db"),
            log: dir.path().join("daemon.log"),
            config,
            dir: Some(dir),
            log_level: log_level.into(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
        }
    }

    /// Start the daemon and wait until its API answers. Its stdout and stderr go to the log.
    pub fn start_daemon(&mut self) -> Result<(), String> {
        assert!(self.daemon.is_none(), "a daemon is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(common::BIN)
            .args(["daemon", "--config"])
            .arg(&self.config)
            .env("ZWLOCK_LOG", &self.log_level)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start the daemon: {e}"))?;
        self.pids.push(child.id());
        let mut d = Reaped(child);
        let t0 = Instant::now();
        loop {
            if let Ok(Some(status)) = d.0.try_wait() {
                return Err(format!(
                    "the daemon exited at start with {status}:\n{}",
                    self.log_tail(30)
                ));
            }
            if self
                .client
                .call("GET", "/health", None)
                .is_ok_and(|r| r.status == 200)
            {
                break;
            }
            if t0.elapsed() > START_TIMEOUT {
                return Err(format!(
                    "the daemon did not answer within {START_TIMEOUT:?}:\n{}",
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.daemon = Some(d);
        Ok(())
    }

    /// Wait until the daemon knows every lock and their slot counts; remember the device ids.
    pub fn wait_for_locks(&mut self, max: Duration) -> Result<(), String> {
        let t0 = Instant::now();
        loop {
            if let Ok(r) = self.client.call("GET", "/devices/list", None) {
                let mut by_node = BTreeMap::new();
                for d in r.body["devices"].as_array().into_iter().flatten() {
                    let z = &d["properties"]["zwave"];
                    if z["slot_count"].as_u64().unwrap_or(0) > 0 {
                        if let (Some(n), Some(id)) =
                            (z["node_id"].as_u64(), d["device_id"].as_str())
                        {
                            by_node.insert(n as u8, id.to_string());
                        }
                    }
                }
                if self.nodes.iter().all(|n| by_node.contains_key(n)) {
                    self.devices = self.nodes.iter().map(|n| by_node[n].clone()).collect();
                    return Ok(());
                }
            }
            if t0.elapsed() > max {
                return Err(format!(
                    "the daemon did not learn every lock within {max:?}:\n{}",
                    self.log_tail(30)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(Reaped::pid)
    }

    /// Whether the daemon process is alive (a SIGKILL may be on its way).
    pub fn daemon_alive(&mut self) -> bool {
        self.daemon
            .as_mut()
            .is_some_and(|d| matches!(d.0.try_wait(), Ok(None)))
    }

    /// If the daemon ended without being asked to, how.
    pub fn daemon_exit(&mut self) -> Option<String> {
        if self.killer.is_some() {
            return None;
        }
        let d = self.daemon.as_mut()?;
        match d.0.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    /// SIGKILL the daemon `after` from now, from another thread: the run goes on meanwhile,
    /// so the kill lands wherever the daemon is (in a request, in a radio exchange, idle).
    pub fn kill_later(&mut self, after: Duration) {
        let Some(pid) = self.daemon_pid() else { return };
        // The child is not reaped before the killer is joined, so the PID cannot be reused.
        self.killer = Some(std::thread::spawn(move || {
            std::thread::sleep(after);
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }));
    }

    pub fn kill_pending(&self) -> bool {
        self.killer.is_some()
    }

    /// Whether a SIGKILL was sent (the daemon is dead or about to be).
    pub fn killed(&self) -> bool {
        self.killer.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Finish a kill (or a crash): join the killer, reap the daemon.
    pub fn reap_daemon(&mut self) {
        if let Some(k) = self.killer.take() {
            let _ = k.join();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.0.kill();
            let _ = d.0.wait();
        }
    }

    /// SIGTERM, and wait (bounded) for a clean exit; SIGKILL otherwise. Returns how it ended
    /// (Err: it had to be killed).
    pub fn stop_daemon(&mut self) -> Result<String, String> {
        if let Some(k) = self.killer.take() {
            let _ = k.join();
        }
        let Some(mut d) = self.daemon.take() else {
            return Ok("not running".into());
        };
        d.signal("-TERM");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(s)) = d.0.try_wait() {
                return Ok(s.to_string());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = d.0.kill();
        let _ = d.0.wait();
        Err("the daemon did not stop within 15 s of SIGTERM".into())
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Reply, ClientError> {
        self.client.call(method, path, body)
    }

    /// The managed codes of lock `i`, as the API lists them.
    pub fn list(&self, i: usize) -> Result<Vec<ApiCode>, String> {
        let r = self
            .call(
                "GET",
                &format!("/access_codes/list?device_id={}", self.devices[i]),
                None,
            )
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("list: HTTP {}: {}", r.status, r.error_message()));
        }
        Ok(r.body["access_codes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(api_code)
            .collect())
    }

    /// One control request to the simulator (10 s at most).
    pub fn control(
        &self,
        node: Option<u8>,
        action: &str,
        f: impl FnOnce(&mut ControlRequest),
    ) -> Result<Value, String> {
        let mut req = ControlRequest {
            network: self.network.clone(),
            node,
            action: action.into(),
            ..Default::default()
        };
        f(&mut req);
        let answer = self
            .rt
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    control::request(&self.control, &req),
                )
                .await
            })
            .map_err(|_| format!("{action}: the simulator did not answer within 10 s"))?
            .map_err(|e| format!("{action}: {e}"))?;
        if answer["ok"] == true {
            Ok(answer)
        } else {
            Err(format!("{action}: {}", answer["error"]))
        }
    }

    /// The occupied slots of lock `i`, as the simulator holds them.
    pub fn show(&self, i: usize) -> Result<BTreeMap<u16, SlotView>, String> {
        let v = self.control(Some(self.nodes[i]), "show", |_| {})?;
        Ok(v["lock"]["slots"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| {
                Some((
                    s["slot"].as_u64()? as u16,
                    SlotView {
                        pin: s["code"].as_str()?.to_string(),
                        enabled: s["status"] == "enabled",
                    },
                ))
            })
            .collect())
    }

    pub fn set_faults(&self, faults: Value) -> Result<(), String> {
        self.control(None, "faults", |r| r.faults = Some(faults))
            .map(|_| ())
    }

    /// The `Faults` field that jams the stick, if this simulator has one (found by name, from
    /// the list of fields the simulator says it expects), with a value it takes.
    pub fn jam_field(&self) -> Option<(String, Value)> {
        let probe = serde_json::json!({ "campaign_probe": true });
        let e = self.set_faults(probe).err()?;
        let field = e
            .split('`')
            .skip(1)
            .step_by(2)
            .find(|f| f.contains("jam"))?
            .to_string();
        let found = [Value::Bool(true), serde_json::json!(1.0)]
            .into_iter()
            .find(|v| {
                self.set_faults(serde_json::json!({ field.clone(): v }))
                    .is_ok()
            });
        let _ = self.set_faults(serde_json::json!({}));
        found.map(|v| (field, v))
    }

    /// The last `n` lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `PRAGMA integrity_check` on the store, opened read-only (the daemon must be stopped).
    pub fn integrity(&self) -> Result<Vec<String>, String> {
        use rusqlite::OpenFlags;
        let c = rusqlite::Connection::open_with_flags(
            &self.db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| format!("open {}: {e}", self.db.display()))?;
        let mut stmt = c
            .prepare("PRAGMA integrity_check")
            .map_err(|e| e.to_string())?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| e.to_string())?
            .collect::<Result<Vec<String>, _>>()
            .map_err(|e| e.to_string())?;
        Ok(rows)
    }

    /// Keep the directory (logs, store) after the run, for a look.
    pub fn keep(&mut self) -> Option<PathBuf> {
        self.dir.take().map(tempfile::TempDir::keep)
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_ref().map(tempfile::TempDir::path)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // The daemon first (it talks to the simulator), then the simulator; each by PID.
        self.reap_daemon();
        if let Some(mut s) = self.sim.take() {
            let _ = s.0.kill();
            let _ = s.0.wait();
        }
        for p in [&self.socket, &self.control] {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A managed code as the API lists it.
pub fn api_code(v: &Value) -> ApiCode {
    let ts = |k: &str| {
        v[k].as_str()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    ApiCode {
        id: v["access_code_id"].as_str().unwrap_or_default().to_string(),
        pin: v["code"].as_str().map(str::to_string),
        status: v["status"].as_str().unwrap_or_default().to_string(),
        slot: v["slot"].as_u64().map(|s| s as u16),
        name: v["name"].as_str().map(str::to_string),
        window: ts("starts_at").zip(ts("ends_at")),
        errors: v["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["error_code"].as_str().map(str::to_string))
            .collect(),
    }
}
