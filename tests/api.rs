//! The API end to end: HTTP over the Unix socket, against the engine on the simulator.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zwlock::api::{Api, ListenConfig};
use zwlock::cli::client::{Client, Reply};
use zwlock::codes::{Engine, EngineConfig, SystemClock};
use zwlock::driver::{Driver, DriverConfig};
use zwlock::sim::{SimConfig, Simulator};
use zwlock::store::Store;

const NET: &str = r#"
[[network]]
name = "api"
radio_ms = 2
[[network.lock]]
node_id = 5
name = "front"
listening = "always"
slots = 20
initial_codes = [{ slot = 1, code = "2580" }]
[[network.lock]]
node_id = 6
name = "back"
listening = "always"
user_code_version = 1
supervision = false
slots = 10
initial_codes = [{ slot = 8, code = "1357" }, { slot = 9, code = "2468" }, { slot = 10, code = "9753" }]
"#;

/// The daemon's pieces in a background runtime.
struct Daemon {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub client: Client,
    sim: Simulator,
}

impl Daemon {
    fn start() -> Daemon {
        Self::start_with(|_| {})
    }

    fn start_with(tweak: impl FnOnce(&mut ListenConfig) + Send + 'static) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let db = dir.path().join("zwlock.db");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let sock = socket.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let sim = Simulator::new(SimConfig::from_toml(NET).unwrap());
                let mut dc = DriverConfig::new("sim://api".parse().unwrap());
                dc.simulator = Some(Arc::new(sim.clone()));
                let (driver, events) = Driver::spawn(dc);
                let store = Store::open(&db).unwrap();
                let config = EngineConfig {
                    tick: Duration::from_millis(500),
                    retry_initial: Duration::from_millis(200),
                    ..Default::default()
                };
                let engine =
                    Engine::start(store, driver, events, Arc::new(SystemClock), config).unwrap();
                let mut lc = ListenConfig {
                    socket: sock,
                    socket_mode: 0o660,
                    tcp: None,
                    limits: Default::default(),
                };
                tweak(&mut lc);
                let api = Api::bind(&lc).await.unwrap();
                ready_tx.send(sim).unwrap();
                api.serve(engine, async move {
                    let _ = stop_rx.await;
                })
                .await;
            });
        });
        let sim = ready_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let d = Daemon {
            sim,
            client: Client::new(&socket),
            _dir: dir,
            socket,
            stop: Some(stop_tx),
            thread: Some(thread),
        };
        // Wait for both locks.
        d.until("locks", Duration::from_secs(30), |d| {
            d.get("/devices/list").body["devices"]
                .as_array()
                .map_or(0, Vec::len)
                == 2
        });
        d
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        self.client.call(method, path, body.as_ref()).unwrap()
    }

    fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None)
    }

    fn post(&self, path: &str, body: Value) -> Reply {
        self.call("POST", path, Some(body))
    }

    fn device(&self, node: u64) -> String {
        let r = self.get("/devices/list");
        r.body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["properties"]["zwave"]["node_id"] == node)
            .unwrap()["device_id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn until(&self, what: &str, max: Duration, mut pred: impl FnMut(&Daemon) -> bool) {
        let t0 = Instant::now();
        while t0.elapsed() < max {
            if pred(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what}: not within {max:?}");
    }

    /// Take a simulated lock out of radio range, or bring it back.
    fn set_in_range(&self, node: u8, in_range: bool) {
        let net = self.sim.network("api").unwrap();
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(net.set_in_range(node, in_range))
            .unwrap();
    }

    fn code_status(&self, id: &str) -> String {
        self.get(&format!("/access_codes/get?access_code_id={id}"))
            .body["access_code"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn assert_error(r: &Reply, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.body["ok"], false, "{}", r.body);
    assert_eq!(r.body["error"]["type"], kind, "{}", r.body);
    assert!(r.body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
}

#[test]
fn access_code_lifecycle_over_the_socket() {
    let d = Daemon::start();
    let dev = d.device(5);
    let r = d.post(
        "/access_codes/create",
        json!({ "device_id": dev, "code": "4821", "name": "Guest 12" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["ok"], true);
    let code = &r.body["access_code"];
    for key in [
        "access_code_id",
        "device_id",
        "workspace_id",
        "code",
        "name",
        "common_code_key",
        "type",
        "status",
        "created_at",
        "errors",
        "warnings",
        "pending_mutations",
        "is_managed",
        "is_backup_access_code_available",
        "is_external_modification_allowed",
        "is_one_time_use",
        "is_offline_access_code",
        "is_scheduled_on_device",
        "is_backup",
        "pulled_backup_access_code_id",
        "is_waiting_for_code_assignment",
        "starts_at",
        "ends_at",
        "appearance",
    ] {
        assert!(code.get(key).is_some(), "access_code lacks {key}: {code}");
    }
    assert_eq!(code["type"], "ongoing");
    assert_eq!(
        r.body["action_attempt"]["action_type"],
        "CREATE_ACCESS_CODE"
    );
    let id = code["access_code_id"].as_str().unwrap().to_string();
    d.until("set", Duration::from_secs(20), |d| {
        d.code_status(&id) == "set"
    });
    // get by id (GET with _strict, as the SDKs send it), by device + code (POST).
    let r = d.get(&format!(
        "/access_codes/get?access_code_id={id}&_strict=true"
    ));
    assert_eq!(r.body["access_code"]["name"], "Guest 12");
    let r = d.post(
        "/access_codes/get",
        json!({ "device_id": dev, "code": "4821" }),
    );
    assert_eq!(r.body["access_code"]["access_code_id"], id);
    // list, with pagination.
    let r = d.get(&format!("/access_codes/list?device_id={dev}&_strict=true"));
    assert_eq!(r.body["access_codes"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["pagination"]["has_next_page"], false);
    // update (PATCH), a bad update, delete (DELETE with a query string).
    let r = d.call(
        "PATCH",
        "/access_codes/update",
        Some(json!({ "access_code_id": id, "name": "Guest 13" })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["action_attempt"]["action_type"],
        "UPDATE_ACCESS_CODE"
    );
    let r = d.call(
        "PATCH",
        "/access_codes/update",
        Some(json!({ "access_code_id": id, "code": "12x4" })),
    );
    assert_error(&r, 400, "invalid_input");
    assert!(
        r.body["error"]["validation_errors"]["code"]["_errors"][0]
            .as_str()
            .is_some(),
        "{}",
        r.body
    );
    assert!(
        !r.body.to_string().contains("12x4"),
        "error repeats the PIN"
    );
    assert_eq!(
        d.get(&format!("/access_codes/get?access_code_id={id}"))
            .body["access_code"]["name"],
        "Guest 13"
    );
    let r = d.call(
        "DELETE",
        &format!("/access_codes/delete?access_code_id={id}&_strict=true"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["action_attempt"]["action_type"],
        "DELETE_ACCESS_CODE"
    );
    d.until("gone", Duration::from_secs(20), |d| {
        d.get(&format!("/access_codes/get?access_code_id={id}"))
            .status
            == 404
    });
    assert_error(
        &d.get(&format!("/access_codes/get?access_code_id={id}")),
        404,
        "access_code_not_found",
    );
    // Events tell the story.
    let r = d.get("/events/list?since=2020-01-01T00:00:00Z");
    let types: Vec<&str> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["access_code_id"] == id.as_str())
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for t in [
        "access_code.created",
        "access_code.set_on_device",
        "access_code.changed",
        "access_code.deleted",
        "access_code.removed_from_device",
    ] {
        assert!(types.contains(&t), "{t} not in {types:?}");
    }
}

#[test]
fn codes_on_several_locks_and_paging() {
    let d = Daemon::start();
    let (a, b) = (d.device(5), d.device(6));
    let r = d.call(
        "PUT",
        "/access_codes/create_multiple",
        Some(json!({ "device_ids": [a, b], "name": "Cleaner" })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let codes = r.body["access_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 2);
    assert_eq!(codes[0]["code"], codes[1]["code"]);
    let key = codes[0]["common_code_key"].as_str().unwrap().to_string();
    assert_eq!(codes[1]["common_code_key"], key.as_str());
    let r = d.call(
        "PATCH",
        "/access_codes/update_multiple",
        Some(json!({ "common_code_key": key, "name": "Cleaner (Tue)" })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    for dev in [&a, &b] {
        let r = d.get(&format!("/access_codes/list?device_id={dev}"));
        assert_eq!(r.body["access_codes"][0]["name"], "Cleaner (Tue)");
    }
    // Paging through five codes two at a time.
    for pin in ["3141", "2718", "1618", "1414"] {
        assert_eq!(
            d.post(
                "/access_codes/create",
                json!({ "device_id": a, "code": pin })
            )
            .status,
            200
        );
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = format!("/access_codes/list?device_id={a}&limit=2");
        if let Some(c) = &cursor {
            q.push_str(&format!(
                "&page_cursor={}",
                c.replace(':', "%3A").replace('+', "%2B")
            ));
        }
        let r = d.get(&q);
        assert_eq!(r.status, 200, "{}", r.body);
        seen.extend(
            r.body["access_codes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["access_code_id"].as_str().unwrap().to_string()),
        );
        if r.body["pagination"]["has_next_page"] != true {
            break;
        }
        cursor = r.body["pagination"]["next_page_cursor"]
            .as_str()
            .map(str::to_string);
    }
    assert_eq!(seen.len(), 5);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "a page repeated a code");
    assert_error(
        &d.get(&format!(
            "/access_codes/list?device_id={a}&page_cursor=nonsense"
        )),
        400,
        "invalid_input",
    );
    // A generated code fits the lock.
    let r = d.get(&format!("/access_codes/generate_code?device_id={a}"));
    assert_eq!(r.body["generated_code"]["code"].as_str().unwrap().len(), 4);
}

#[test]
fn unmanaged_codes_devices_door_and_attempts() {
    let d = Daemon::start();
    let dev = d.device(5);
    // Creating a code reads slot 1 first: the keypad code there becomes visible as unmanaged.
    let r = d.post(
        "/access_codes/create",
        json!({ "device_id": dev, "code": "7319" }),
    );
    let id = r.body["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    d.until("set", Duration::from_secs(20), |d| {
        d.code_status(&id) == "set"
    });
    let r = d.get(&format!("/access_codes/unmanaged/list?device_id={dev}"));
    let un = r.body["access_codes"].as_array().unwrap();
    assert_eq!(un.len(), 1, "{}", r.body);
    assert_eq!(un[0]["code"], "2580");
    assert_eq!(un[0]["is_managed"], false);
    let uid = un[0]["access_code_id"].as_str().unwrap().to_string();
    assert_eq!(
        d.get(&format!("/access_codes/unmanaged/get?access_code_id={uid}"))
            .body["access_code"]["code"],
        "2580"
    );
    // The same PIN as the unmanaged code is refused.
    let r = d.post(
        "/access_codes/create",
        json!({ "device_id": dev, "code": "2580" }),
    );
    assert_error(&r, 409, "conflicting_unmanaged_access_code_id");
    // Convert it: it keeps its slot and PIN.
    let r = d.call(
        "PATCH",
        "/access_codes/unmanaged/convert_to_managed",
        Some(json!({ "access_code_id": uid })),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = d.get(&format!("/access_codes/get?access_code_id={uid}"));
    assert_eq!(r.body["access_code"]["code"], "2580");
    assert_eq!(r.body["access_code"]["status"], "set");
    assert!(d
        .get(&format!("/access_codes/unmanaged/list?device_id={dev}"))
        .body["access_codes"]
        .as_array()
        .unwrap()
        .is_empty());
    // Devices.
    let r = d.get(&format!("/devices/get?device_id={dev}"));
    let p = &r.body["device"]["properties"];
    assert_eq!(p["online"], true);
    assert_eq!(p["max_active_codes_supported"], 20);
    assert_eq!(p["supported_code_lengths"], json!([4, 5, 6, 7, 8, 9, 10]));
    assert_eq!(
        d.post("/devices/get", json!({ "name": "Lock 5" })).body["device"]["device_id"],
        dev.as_str()
    );
    assert_error(
        &d.get("/devices/get?device_id=8f8e3f0e-0000-4000-8000-000000000000"),
        404,
        "device_not_found",
    );
    // Door: unlock, and the attempt completes.
    let r = d.post("/locks/unlock_door", json!({ "device_id": dev }));
    let attempt = r.body["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r.body["action_attempt"]["status"], "pending");
    d.until("unlocked", Duration::from_secs(20), |d| {
        d.get(&format!("/action_attempts/get?action_attempt_id={attempt}"))
            .body["action_attempt"]["status"]
            == "success"
    });
    let r = d.get(&format!("/action_attempts/get?action_attempt_id={attempt}"));
    assert_eq!(
        r.body["action_attempt"]["result"]["was_confirmed_by_device"],
        true
    );
    assert_eq!(
        d.get(&format!("/devices/get?device_id={dev}")).body["device"]["properties"]["locked"],
        false
    );
    // Sync: every slot read again; the attempt succeeds when the read is done.
    let r = d.post("/locks/sync_access_codes", json!({ "device_id": dev }));
    assert_eq!(r.body["action_attempt"]["action_type"], "SYNC_ACCESS_CODES");
    assert_eq!(r.body["action_attempt"]["status"], "pending");
    let attempt = r.body["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap()
        .to_string();
    d.until("synced", Duration::from_secs(30), |d| {
        d.get(&format!("/action_attempts/get?action_attempt_id={attempt}"))
            .body["action_attempt"]["status"]
            == "success"
    });
    assert_error(
        &d.post(
            "/locks/sync_access_codes",
            json!({ "device_id": "8f8e3f0e-0000-4000-8000-000000000000" }),
        ),
        404,
        "device_not_found",
    );
    assert_error(
        &d.get("/action_attempts/get?action_attempt_id=8f8e3f0e-0000-4000-8000-000000000000"),
        404,
        "action_attempt_not_found",
    );
    // Health and the OpenAPI document.
    let r = d.get("/health");
    assert_eq!(r.body["ok"], true);
    let r = d.get("/openapi.json");
    assert_eq!(r.status, 200);
    let paths = r.body["paths"].as_object().unwrap();
    for (path, methods, _) in zwlock::api::ROUTES {
        let entry = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from openapi.json"));
        for m in *methods {
            assert!(
                entry.get(m.to_lowercase()).is_some(),
                "{m} {path} missing from openapi.json"
            );
        }
    }
    // Metrics.
    let r = d.client.call("GET", "/metrics", None).unwrap();
    let text = String::from_utf8(r.raw).unwrap();
    assert!(text.contains("zwlock_frames_sent_total"), "{text}");
    assert!(
        text.contains("zwlock_stick_recovery_steps_total{step=\"soft_reset\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("zwlock_access_codes{status=\"set\"} 2"),
        "{text}"
    );
}

#[test]
fn every_kind_of_bad_input_gets_a_4xx_and_changes_nothing() {
    let d = Daemon::start();
    let dev = d.device(5);
    let c = &d.client;
    assert_error(
        &c.call_raw("POST", "/access_codes/create", Some(b"{not json"))
            .unwrap(),
        400,
        "invalid_input",
    );
    assert_error(
        &c.call_raw("POST", "/access_codes/create", Some(b"[1, 2]"))
            .unwrap(),
        400,
        "invalid_input",
    );
    assert_error(
        &d.post("/access_codes/create", json!({ "device_id": "not-a-uuid" })),
        400,
        "invalid_input",
    );
    assert_error(
        &d.post(
            "/access_codes/create",
            json!({ "device_id": dev, "code": 1234 }),
        ),
        400,
        "invalid_input",
    );
    assert_error(
        &d.post(
            "/access_codes/create",
            json!({ "device_id": dev, "starts_at": "tomorrow", "ends_at": "later" }),
        ),
        400,
        "invalid_input",
    );
    assert_error(
        &d.post(
            "/access_codes/create",
            json!({ "device_id": dev, "starts_at": "2030-01-01T00:00:00Z" }),
        ),
        400,
        "invalid_input",
    );
    assert_error(
        &d.post(
            "/access_codes/create",
            json!({ "device_id": dev, "is_offline_access_code": true }),
        ),
        400,
        "invalid_input",
    );
    assert_error(
        &d.post("/access_codes/create", json!({})),
        400,
        "invalid_input",
    );
    assert_error(
        &d.post(
            "/access_codes/create",
            json!({ "device_id": "8f8e3f0e-0000-4000-8000-000000000000" }),
        ),
        404,
        "device_not_found",
    );
    let big = vec![b' '; 70 * 1024];
    assert_eq!(
        c.call_raw("POST", "/access_codes/create", Some(&big))
            .unwrap()
            .status,
        413
    );
    assert_error(&d.get("/access_codes/create"), 405, "method_not_allowed");
    assert_error(
        &d.call("DELETE", "/access_codes/update", None),
        405,
        "method_not_allowed",
    );
    assert_error(&d.get("/no/such/route"), 404, "not_found");
    assert_error(&d.get("/access_codes/list"), 400, "invalid_input");
    assert_error(
        &d.get("/access_codes/list?device_id=%zz"),
        400,
        "invalid_query_params",
    );
    assert_error(
        &d.get("/access_codes/list?limit=abc&device_id=x"),
        400,
        "invalid_input",
    );
    assert_error(&d.get("/events/list"), 400, "invalid_input");
    assert_error(
        &d.get("/access_codes/get?access_code_id=8f8e3f0e-0000-4000-8000-000000000000"),
        404,
        "access_code_not_found",
    );
    // Text that claims to be something else.
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"POST /access_codes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("invalid_content_type"), "{out}");
    // Nothing was created by any of it, and the daemon still answers.
    let r = d.get(&format!("/access_codes/list?device_id={dev}"));
    assert!(r.body["access_codes"].as_array().unwrap().is_empty());
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn socket_mode_stale_socket_and_strangers() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let socket = d.socket.clone();
    drop(d);
    assert!(!socket.exists(), "socket left behind");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    // A stale socket file (nobody listening) is replaced.
    let stale = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = ListenConfig {
            socket: stale.clone(),
            socket_mode: 0o600,
            tcp: None,
            limits: Default::default(),
        };
        let api = Api::bind(&cfg).await.unwrap();
        // A second daemon on a live socket is refused.
        let e = Api::bind(&cfg).await.err().unwrap();
        assert!(e.to_string().contains("another process"), "{e}");
        drop(api);
        // A regular file is never replaced.
        let file = dir.join("not-a-socket");
        std::fs::write(&file, b"keep me").unwrap();
        let e = Api::bind(&ListenConfig {
            socket: file.clone(),
            socket_mode: 0o600,
            tcp: None,
            limits: Default::default(),
        })
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("not a socket"), "{e}");
        assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
        // TCP only on loopback.
        let e = Api::bind(&ListenConfig {
            socket: dir.join("x.sock"),
            socket_mode: 0o600,
            tcp: Some(("0.0.0.0:0".parse().unwrap(), "t".repeat(20))),
            limits: Default::default(),
        })
        .await
        .err()
        .unwrap();
        assert!(e.to_string().contains("loopback"), "{e}");
    });
}

#[test]
fn tcp_listener_requires_the_token() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = "a-long-enough-test-token";
    let d = Daemon::start_with(move |c| {
        c.tcp = Some((format!("127.0.0.1:{port}").parse().unwrap(), token.into()))
    });
    use std::io::{Read, Write};
    let ask = |auth: Option<&str>| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let h = auth
            .map(|a| format!("Authorization: Bearer {a}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{h}\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(ask(None).starts_with("HTTP/1.1 401"));
    assert!(ask(Some("wrong-token-of-some-length")).starts_with("HTTP/1.1 401"));
    assert!(ask(Some(token)).starts_with("HTTP/1.1 200"));
    // The Unix socket needs no token.
    assert_eq!(d.get("/health").status, 200);
}

#[test]
fn events_stream_as_they_happen() {
    let d = Daemon::start();
    let dev = d.device(6);
    let client = d.client.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = client.follow("/events/stream", |kind, data| {
            let _ = tx.send((kind.to_string(), data.to_string()));
            kind != "access_code.set_on_device"
        });
    });
    std::thread::sleep(Duration::from_millis(300));
    let r = d.post(
        "/access_codes/create",
        json!({ "device_id": dev, "code": "8642" }),
    );
    let id = r.body["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut kinds = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(20) {
        if let Ok((kind, data)) = rx.recv_timeout(Duration::from_millis(200)) {
            let v: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(v["event_type"], kind.as_str());
            if v["access_code_id"] == id.as_str() {
                kinds.push(kind.clone());
            }
            if kind == "access_code.set_on_device" {
                break;
            }
        }
    }
    assert_eq!(
        kinds,
        vec!["access_code.created", "access_code.set_on_device"]
    );
}

/// The validation error messages of a reply, by field.
fn invalid_fields(r: &Reply) -> Vec<String> {
    assert_error(r, 400, "invalid_input");
    let mut f: Vec<String> = r.body["error"]["validation_errors"]
        .as_object()
        .map(|o| o.keys().filter(|k| *k != "_errors").cloned().collect())
        .unwrap_or_default();
    f.sort();
    f
}

fn field_message(r: &Reply, field: &str) -> String {
    r.body["error"]["validation_errors"][field]["_errors"][0]
        .as_str()
        .unwrap_or_else(|| panic!("no message for {field}: {}", r.body))
        .to_string()
}

#[test]
fn strict_input_names_every_field_and_creates_nothing() {
    let d = Daemon::start();
    let dev = d.device(5);
    let create = |body: Value| d.post("/access_codes/create", body);
    // A typo never becomes a code with a generated PIN.
    let r = create(json!({ "device_id": dev, "nmae": "Guest" }));
    assert_eq!(invalid_fields(&r), ["nmae"]);
    assert!(field_message(&r, "nmae").contains("did you mean name?"));
    let r = create(json!({ "device_id": dev, "pin": "4817" }));
    assert_eq!(invalid_fields(&r), ["pin"]);
    assert!(!r.body.to_string().contains("4817"), "{}", r.body);
    // Each bad value is filed under its own field, never repeated.
    let r = create(json!({ "device_id": "n" }));
    assert_eq!(invalid_fields(&r), ["device_id"]);
    let r = create(json!({ "device_id": dev, "code": 4817, "preferred_code_length": "six" }));
    assert_eq!(invalid_fields(&r), ["code", "preferred_code_length"]);
    assert!(!r.body.to_string().contains("4817"), "{}", r.body);
    // Times say which instant they are.
    let r = create(
        json!({ "device_id": dev, "starts_at": "2030-01-01", "ends_at": "2030-01-02T10:00:00" }),
    );
    assert_eq!(invalid_fields(&r), ["ends_at", "starts_at"]);
    assert!(field_message(&r, "starts_at").contains("date without a time"));
    assert!(field_message(&r, "ends_at").contains("UTC offset"));
    assert!(field_message(&r, "ends_at").contains("2030-01-01T09:00:00Z"));
    // What zwlock cannot honour is refused, saying why.
    for (body, field) in [
        (
            json!({ "device_id": dev, "max_time_rounding": "1d" }),
            "max_time_rounding",
        ),
        (
            json!({ "device_id": dev, "use_offline_access_code": true }),
            "use_offline_access_code",
        ),
        (
            json!({ "device_id": dev, "is_offline_access_code": true }),
            "is_offline_access_code",
        ),
    ] {
        let r = create(body);
        assert_eq!(invalid_fields(&r), [field]);
        assert!(
            field_message(&r, field).contains("not supported"),
            "{}",
            r.body
        );
    }
    // A query string on a POST would be ignored: it is refused.
    let r = d.call(
        "POST",
        "/access_codes/create?name=x",
        Some(json!({ "device_id": dev })),
    );
    assert_eq!(invalid_fields(&r), ["name"]);
    // Lists: unknown and unsupported filters are refused, never a larger result.
    for q in [
        "access_method_id=8f8e3f0e-0000-4000-8000-000000000000",
        "access_grant_id=8f8e3f0e-0000-4000-8000-000000000000",
        "user_identifier_key=u1",
        "customer_key=c1",
        "devcie_id=x",
    ] {
        let r = d.get(&format!(
            "/access_codes/list?device_id={dev}&{q}&_strict=true"
        ));
        let field = q.split('=').next().unwrap();
        assert_eq!(invalid_fields(&r), [field], "{q}");
    }
    let r = d.get(&format!(
        "/access_codes/list?access_code_ids={dev}&access_code_ids=nope"
    ));
    assert_eq!(invalid_fields(&r), ["access_code_ids"]);
    assert!(field_message(&r, "access_code_ids").contains("item 1"));
    let r = d.get(&format!("/access_codes/list?device_id={dev}&limit=100000"));
    assert_eq!(invalid_fields(&r), ["limit"]);
    // Nothing was created by any of it.
    let r = d.get(&format!("/access_codes/list?device_id={dev}"));
    assert_eq!(r.body["access_codes"], json!([]), "{}", r.body);
    // A whole number sent as a float (Python's 6.0) is a number; GET parameters get kinds.
    let r = create(
        json!({ "device_id": dev, "preferred_code_length": 6.0, "attempt_for_offline_device": false }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["access_code"]["code"].as_str().unwrap().len(), 6);
    let id = r.body["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    // update: device_id must be the code's own lock.
    let r = d.call(
        "PATCH",
        "/access_codes/update",
        Some(json!({ "access_code_id": id, "device_id": d.device(6), "name": "x" })),
    );
    assert_eq!(invalid_fields(&r), ["device_id"]);
    let r = d.call(
        "DELETE",
        &format!("/access_codes/delete?access_code_id={id}&sync=false&_strict=true"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn an_offline_lock_refuses_attempt_for_offline_device_false() {
    let d = Daemon::start();
    let dev = d.device(6);
    d.set_in_range(6, false);
    // The engine learns the lock is gone when it next talks to it.
    let _ = d.post("/locks/sync_access_codes", json!({ "device_id": dev }));
    d.until("offline", Duration::from_secs(60), |d| {
        d.get(&format!("/devices/get?device_id={dev}")).body["device"]["properties"]["online"]
            == false
    });
    let r = d.post(
        "/access_codes/create",
        json!({ "device_id": dev, "code": "3141", "attempt_for_offline_device": false }),
    );
    assert_eq!(invalid_fields(&r), ["attempt_for_offline_device"]);
    assert!(field_message(&r, "attempt_for_offline_device").contains("offline"));
    let r = d.call(
        "PUT",
        "/access_codes/create_multiple",
        Some(json!({ "device_ids": [d.device(5), dev], "attempt_for_offline_device": false })),
    );
    assert_eq!(invalid_fields(&r), ["attempt_for_offline_device"]);
    assert_eq!(
        d.get(&format!("/access_codes/list?device_id={dev}")).body["access_codes"],
        json!([])
    );
    // Without it, the code is kept for when the lock is back.
    let r = d.post(
        "/access_codes/create",
        json!({ "device_id": dev, "code": "3141" }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn list_filters_limits_and_pages_keep_their_filters() {
    let d = Daemon::start();
    let (a, b) = (d.device(5), d.device(6));
    // devices/list: device_ids, device_type(s), limit, page_cursor.
    let ids = |r: &Reply| -> Vec<String> {
        r.body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["device_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&d.get(&format!("/devices/list?device_ids={b}"))),
        [b.as_str()]
    );
    assert_eq!(
        ids(&d.post("/devices/list", json!({ "device_ids": [a, b] }))).len(),
        2
    );
    assert_eq!(ids(&d.get("/locks/list?device_type=zwave_lock")).len(), 2);
    assert!(ids(&d.get("/devices/list?device_types=august_lock")).is_empty());
    let r = d.get("/devices/list?device_type=zwave_lock&limit=1");
    assert_eq!(ids(&r), [a.as_str()]);
    assert_eq!(r.body["pagination"]["has_next_page"], true);
    let next = r.body["pagination"]["next_page_url"].as_str().unwrap();
    assert!(next.contains("device_type=zwave_lock"), "{next}");
    let r = d.get(next.strip_prefix("http://localhost").unwrap());
    assert_eq!(ids(&r), [b.as_str()]);
    assert_eq!(r.body["pagination"]["has_next_page"], false);
    assert_eq!(
        invalid_fields(&d.get("/devices/list?manufacturer=yale")),
        ["manufacturer"]
    );
    // unmanaged/list: search, limit, page_cursor (lock 6 has three keypad codes).
    let r = d.post("/locks/sync_access_codes", json!({ "device_id": b }));
    let attempt = r.body["action_attempt"]["action_attempt_id"]
        .as_str()
        .unwrap()
        .to_string();
    d.until("synced", Duration::from_secs(30), |d| {
        d.get(&format!("/action_attempts/get?action_attempt_id={attempt}"))
            .body["action_attempt"]["status"]
            == "success"
    });
    let codes = |r: &Reply| -> Vec<String> {
        r.body["access_codes"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.body))
            .iter()
            .map(|x| x["code"].as_str().unwrap().to_string())
            .collect()
    };
    let all = d.get(&format!("/access_codes/unmanaged/list?device_id={b}"));
    assert_eq!(codes(&all), ["1357", "2468", "9753"]);
    let mut seen = Vec::new();
    let mut path = format!("/access_codes/unmanaged/list?device_id={b}&limit=2");
    loop {
        let r = d.get(&path);
        seen.extend(codes(&r));
        match r.body["pagination"]["next_page_url"].as_str() {
            Some(url) => {
                assert!(url.contains("limit=2") && url.contains(&b), "{url}");
                path = url.strip_prefix("http://localhost").unwrap().to_string();
            }
            None => break,
        }
    }
    assert_eq!(seen, ["1357", "2468", "9753"]);
    // Search is Seam's partial match on name, PIN or id.
    let r = d.post(
        "/access_codes/unmanaged/list",
        json!({ "device_id": b, "search": "2468" }),
    );
    assert!(codes(&r).contains(&"2468".to_string()), "{}", r.body);
    for c in r.body["access_codes"].as_array().unwrap() {
        assert!(
            c["code"] == "2468" || c["access_code_id"].as_str().unwrap().contains("2468"),
            "{c}"
        );
    }
    assert_eq!(
        invalid_fields(&d.get(&format!(
            "/access_codes/unmanaged/list?device_id={b}&user_identifier_key=u"
        ))),
        ["user_identifier_key"]
    );
    assert_eq!(
        invalid_fields(&d.get(&format!(
            "/access_codes/unmanaged/list?device_id={b}&page_cursor=nonsense"
        ))),
        ["page_cursor"]
    );
    // access_codes/list: the next page's URL keeps device_id and limit.
    for pin in ["3141", "2718", "1618"] {
        assert_eq!(
            d.post(
                "/access_codes/create",
                json!({ "device_id": a, "code": pin })
            )
            .status,
            200
        );
    }
    let r = d.post("/access_codes/list", json!({ "device_id": a, "limit": 2 }));
    assert_eq!(r.body["access_codes"].as_array().unwrap().len(), 2);
    let url = r.body["pagination"]["next_page_url"].as_str().unwrap();
    assert!(
        url.contains(&format!("device_id={a}")) && url.contains("limit=2"),
        "{url}"
    );
    let r = d.get(url.strip_prefix("http://localhost").unwrap());
    assert_eq!(
        r.body["access_codes"].as_array().unwrap().len(),
        1,
        "{}",
        r.body
    );
}

/// One raw HTTP/1.1 exchange on the socket (Connection: close); the whole answer as text.
fn raw_http(socket: &std::path::Path, request: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn every_answer_carries_a_seam_request_id() {
    let d = Daemon::start();
    let big = " ".repeat(70 * 1024);
    let requests = [
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "GET /access_codes/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "GET /no/such/route HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "GET /access_codes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_string(),
        format!(
            "POST /access_codes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{big}",
            big.len()
        ),
    ];
    let mut ids = std::collections::BTreeSet::new();
    for (req, status) in requests.iter().zip([200, 400, 404, 405, 200, 200, 413]) {
        let answer = raw_http(&d.socket, req);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{}",
            &answer[..answer.len().min(300)]
        );
        let id = header(&answer, "seam-request-id")
            .unwrap_or_else(|| panic!("no seam-request-id: {}", &answer[..answer.len().min(300)]));
        uuid::Uuid::parse_str(id).unwrap();
        assert!(ids.insert(id.to_string()), "request id {id} used twice");
    }
}

fn post_with_key(socket: &std::path::Path, key: &str, body: &Value) -> String {
    let body = body.to_string();
    raw_http(
        socket,
        &format!(
            "POST /access_codes/create HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn body_of(answer: &str) -> Value {
    serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap()
}

#[test]
fn a_retried_create_with_an_idempotency_key_gets_the_first_answer() {
    let d = Daemon::start();
    let dev = d.device(5);
    let req = json!({ "device_id": dev, "name": "Guest 7" });
    let first = post_with_key(&d.socket, "retry-7f3a", &req);
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let code = body_of(&first)["access_code"].clone();
    // The reply was lost; the client sends the same request again.
    let again = post_with_key(&d.socket, "retry-7f3a", &req);
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
    assert_eq!(header(&again, "idempotent-replayed"), Some("true"));
    assert_eq!(body_of(&again)["access_code"], code);
    assert_ne!(
        header(&again, "seam-request-id"),
        header(&first, "seam-request-id")
    );
    let listed = |d: &Daemon| {
        d.get(&format!("/access_codes/list?device_id={dev}")).body["access_codes"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(listed(&d), 1, "the retry created a second code");
    // The same key for another request is refused, naming the header.
    let other = post_with_key(
        &d.socket,
        "retry-7f3a",
        &json!({ "device_id": dev, "name": "Guest 8" }),
    );
    assert!(other.starts_with("HTTP/1.1 422"), "{other}");
    let e = body_of(&other);
    assert_eq!(e["error"]["type"], "idempotency_key_reused");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Idempotency-Key"));
    let bad = post_with_key(&d.socket, "two words", &req);
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(body_of(&bad)["error"]["validation_errors"]["Idempotency-Key"].is_object());
    // A new key is a new code; no key is a new code every time.
    assert!(post_with_key(&d.socket, "retry-0001", &req).starts_with("HTTP/1.1 200"));
    assert_eq!(d.post("/access_codes/create", req.clone()).status, 200);
    assert_eq!(listed(&d), 3);
}

#[test]
fn slow_and_idle_clients_are_cut_off() {
    use std::io::{Read, Write};
    let d = Daemon::start_with(|c| {
        c.limits = zwlock::api::Limits {
            header_timeout: Duration::from_millis(500),
            body_timeout: Duration::from_millis(500),
            ..Default::default()
        }
    });
    let connect = || {
        let s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s
    };
    // Half a head: the connection is closed (the read ends; it does not wait 30 s).
    let mut s = connect();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("closed by the daemon, not by the read timeout");
    // Idle after an answer: closed too.
    let mut s = connect();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out)
        .expect("closed by the daemon, not by the read timeout");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // A body that does not come: 408.
    let mut s = connect();
    s.write_all(
        b"POST /access_codes/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"device",
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(text.contains("seam-request-id"), "{text}");
    // The others are served all along.
    assert_eq!(d.get("/health").status, 200);
}

/// src/api/openapi.json documents exactly the parameters each route takes (src/api/fields.rs):
/// names, which are required, and their kinds. Parameters refused whatever their value are
/// left out; those refused for one value document the others.
#[test]
fn the_openapi_document_has_each_routes_parameters() {
    use zwlock::api::fields::{params_of, Kind, Rule};
    let doc: Value = serde_json::from_str(zwlock::api::OPENAPI).unwrap();
    let uuid = json!({ "type": "string", "format": "uuid" });
    for (path, methods, _) in zwlock::api::ROUTES {
        let params: Vec<_> = params_of(path)
            .iter()
            .filter(|p| !matches!(p.rule, Rule::Refused(_)))
            .collect();
        for m in *methods {
            let op = &doc["paths"][path][m.to_lowercase()];
            let mut documented: Vec<(String, bool, Value)> = Vec::new();
            if let Some(query) = op["parameters"].as_array() {
                for q in query {
                    if q["in"] == "header" || q["name"] == "_strict" {
                        continue;
                    }
                    documented.push((
                        q["name"].as_str().unwrap().into(),
                        q["required"] == true,
                        q["schema"].clone(),
                    ));
                }
            }
            if let Some(body) =
                op["requestBody"]["content"]["application/json"]["schema"].as_object()
            {
                assert_eq!(body["additionalProperties"], false, "{m} {path}");
                let required: Vec<&str> = body
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                for (name, schema) in body["properties"].as_object().unwrap() {
                    documented.push((
                        name.clone(),
                        required.contains(&name.as_str()),
                        schema.clone(),
                    ));
                }
            }
            let mut names: Vec<&str> = documented.iter().map(|(n, _, _)| n.as_str()).collect();
            names.sort();
            let mut want: Vec<&str> = params.iter().map(|p| p.name).collect();
            want.sort();
            assert_eq!(names, want, "{m} {path}: documented parameters");
            for p in &params {
                let (_, required, schema) =
                    documented.iter().find(|(n, _, _)| n == p.name).unwrap();
                assert_eq!(*required, p.required, "{m} {path} {}: required", p.name);
                assert_eq!(
                    schema["nullable"] == true,
                    p.nullable,
                    "{m} {path} {}: nullable",
                    p.name
                );
                let t = &schema["type"];
                let ok = match p.kind {
                    Kind::Uuid => schema["format"] == uuid["format"] && *t == "string",
                    Kind::Time => schema["format"] == "date-time",
                    Kind::Bool => *t == "boolean",
                    Kind::Int => *t == "integer",
                    Kind::Str => *t == "string",
                    Kind::Enum(values) => schema["enum"] == json!(values),
                    Kind::UuidList => *t == "array" && schema["items"]["format"] == "uuid",
                    Kind::TimeList => *t == "array" && schema["items"]["format"] == "date-time",
                    Kind::StrList => *t == "array" && schema["items"]["type"] == "string",
                    Kind::IntList => *t == "array" && schema["items"]["type"] == "integer",
                };
                assert!(
                    ok,
                    "{m} {path} {}: {:?} documented as {schema}",
                    p.name, p.kind
                );
                if let Rule::RefusedValue(v, _) = p.rule {
                    assert_eq!(schema["enum"], json!([!v]), "{m} {path} {}", p.name);
                }
            }
        }
    }
    // The page size the document states is the one the server applies.
    let limit = &doc["paths"]["/access_codes/list"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"];
    assert_eq!(limit["default"], zwlock::api::paging::DEFAULT_PAGE);
    assert_eq!(limit["maximum"], zwlock::api::paging::MAX_PAGE);
}
