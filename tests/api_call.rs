//! `api::call`, the entry point of transports other than HTTP (the MQTT bridge): the same
//! routes, handlers, validation and error envelope as the socket, answer for answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde_json::{json, Value};
use zwlock::api::{self, Api, ListenConfig};
use zwlock::cli::client::Client;
use zwlock::codes::{Engine, EngineConfig, SystemClock};
use zwlock::driver::{Driver, DriverConfig};
use zwlock::sim::{SimConfig, Simulator};
use zwlock::store::Store;

const NET: &str = r#"
[[network]]
name = "call"
radio_ms = 2
[[network.lock]]
node_id = 5
name = "front"
listening = "always"
slots = 20
"#;

struct Hub {
    _dir: tempfile::TempDir,
    engine: Engine,
    http: Client,
}

async fn hub() -> Hub {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::new(SimConfig::from_toml(NET).unwrap());
    let mut dc = DriverConfig::new("sim://call".parse().unwrap());
    dc.simulator = Some(Arc::new(sim));
    let (driver, events) = Driver::spawn(dc);
    let store = Store::open(&dir.path().join("zwlock.db")).unwrap();
    let config = EngineConfig {
        tick: Duration::from_millis(500),
        retry_initial: Duration::from_millis(200),
        ..Default::default()
    };
    let engine = Engine::start(store, driver, events, Arc::new(SystemClock), config).unwrap();
    let socket = dir.path().join("api.sock");
    let api = Api::bind(&ListenConfig {
        socket: socket.clone(),
        socket_mode: 0o660,
        tcp: None,
        limits: Default::default(),
    })
    .await
    .unwrap();
    tokio::spawn(api.serve(engine.clone(), std::future::pending()));
    let t0 = Instant::now();
    while engine.devices().unwrap().is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(30), "no lock");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Hub {
        _dir: dir,
        engine,
        http: Client::new(&socket),
    }
}

impl Hub {
    async fn call(&self, route: &str, body: &[u8]) -> (StatusCode, Value) {
        api::call(
            &self.engine,
            route,
            Bytes::copy_from_slice(body),
            HeaderMap::new(),
        )
        .await
    }

    async fn http(&self, path: &str, body: &[u8]) -> (StatusCode, Value) {
        let http = self.http.clone();
        let path = path.to_string();
        let body = body.to_vec();
        let r =
            tokio::task::spawn_blocking(move || http.call_raw("POST", &path, Some(&body)).unwrap())
                .await
                .unwrap();
        (StatusCode::from_u16(r.status).unwrap(), r.body)
    }

    fn device(&self) -> String {
        self.engine.devices().unwrap()[0].device_id.to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_the_sockets_answers() {
    let h = hub().await;
    let device = h.device();
    // Errors: the same status and the same envelope, field names and all.
    let long = format!("{{\"device_id\": \"{}\"}}", "x".repeat(api::MAX_BODY));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("/access_codes/create", b"{not json".to_vec()),
        ("/access_codes/create", b"[1]".to_vec()),
        (
            "/access_codes/create",
            json!({ "device_id": device, "code": "12" })
                .to_string()
                .into_bytes(),
        ),
        (
            "/access_codes/get",
            json!({ "access_code_id": uuid::Uuid::new_v4() })
                .to_string()
                .into_bytes(),
        ),
        ("/access_codes/list", b"{}".to_vec()),
        ("/no/such/route", b"{}".to_vec()),
        ("/access_codes/create", long.into_bytes()),
    ];
    for (path, body) in &cases {
        let via_call = h.call(path, body).await;
        let via_http = h.http(path, body).await;
        assert_eq!(via_call, via_http, "{path}");
        assert!(via_call.0.is_client_error(), "{path}: {via_call:?}");
        assert_eq!(via_call.1["ok"], false, "{path}");
    }
    // The route may be given without its slash, as the MQTT topics have it.
    let (status, v) = h.call("devices/list", b"").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["ok"], true);
    assert_eq!(v["devices"][0]["device_id"], device);
    assert_eq!(
        h.http("/devices/list", b"").await.1["devices"],
        v["devices"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_through_call_is_a_create() {
    let h = hub().await;
    let device = h.device();
    let (status, v) = h
        .call(
            "access_codes/create",
            json!({ "device_id": device, "code": "4821", "name": "cleaner" })
                .to_string()
                .as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let id = v["access_code"]["access_code_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["action_attempt"]["action_type"], "CREATE_ACCESS_CODE");
    let (status, got) = h
        .http(
            "/access_codes/get",
            json!({ "access_code_id": id }).to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["access_code"]["name"], "cleaner");
    let (_, listed) = h
        .call(
            "access_codes/list",
            json!({ "device_id": device }).to_string().as_bytes(),
        )
        .await;
    assert_eq!(listed["access_codes"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_route_is_a_404_and_never_streams() {
    let h = hub().await;
    for route in [
        "events/stream",
        "openapi.json",
        "metrics",
        "access_codes/list?device_id=x",
        "",
        "access_codes/../health",
    ] {
        let (status, v) = tokio::time::timeout(Duration::from_secs(5), h.call(route, b"{}"))
            .await
            .unwrap_or_else(|_| panic!("{route} did not answer"));
        assert_eq!(status, StatusCode::NOT_FOUND, "{route}: {v}");
        assert_eq!(v["error"]["type"], "not_found", "{route}");
    }
}

#[test]
fn every_route_takes_post_as_call_sends_it() {
    for (path, methods, _) in api::ROUTES {
        assert!(methods.contains(&"POST"), "{path} does not take POST");
    }
}
