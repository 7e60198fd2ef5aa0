//! The control API: HTTP/1.1 + JSON on a Unix socket, with Seam's routes and objects.
//!
//! The socket file belongs to the daemon: created with the configured mode, a stale one (no
//! process answers on it) replaced, and removed at shutdown. An optional loopback TCP listener
//! serves clients that cannot reach a Unix socket; it requires `Authorization: Bearer <token>`.
//! Each request is logged with the peer's uid and gid (never with its parameters: they may
//! hold a PIN).

pub mod error;
pub mod params;
mod routes;
mod stream;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use error::ApiError;

use crate::codes::Engine;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// A request, as the route handlers see it.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    /// The request's parameters (query string or JSON body, by method).
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        params::parse(
            &self.method,
            self.query.as_deref(),
            &self.headers,
            &self.body,
        )
    }
}

type Handler = fn(&Engine, &Request) -> routes::Answer;

/// Every route: path, methods, handler.
pub const ROUTES: &[(&str, &[&str], Handler)] = &[
    ("/access_codes/create", &["POST"], routes::create),
    (
        "/access_codes/create_multiple",
        &["POST", "PUT"],
        routes::create_multiple,
    ),
    ("/access_codes/get", &["GET", "POST"], routes::get),
    ("/access_codes/list", &["GET", "POST"], routes::list),
    (
        "/access_codes/update",
        &["PATCH", "POST", "PUT"],
        routes::update,
    ),
    (
        "/access_codes/update_multiple",
        &["PATCH", "POST"],
        routes::update_multiple,
    ),
    ("/access_codes/delete", &["DELETE", "POST"], routes::delete),
    (
        "/access_codes/generate_code",
        &["GET", "POST"],
        routes::generate_code,
    ),
    (
        "/access_codes/pull_backup_access_code",
        &["POST"],
        routes::pull_backup,
    ),
    (
        "/access_codes/unmanaged/list",
        &["GET", "POST"],
        routes::unmanaged_list,
    ),
    (
        "/access_codes/unmanaged/get",
        &["GET", "POST"],
        routes::unmanaged_get,
    ),
    (
        "/access_codes/unmanaged/update",
        &["PATCH", "POST"],
        routes::unmanaged_update,
    ),
    (
        "/access_codes/unmanaged/delete",
        &["DELETE", "POST"],
        routes::unmanaged_delete,
    ),
    (
        "/access_codes/unmanaged/convert_to_managed",
        &["PATCH", "POST"],
        routes::unmanaged_convert,
    ),
    ("/devices/list", &["GET", "POST"], routes::devices_list),
    ("/devices/get", &["GET", "POST"], routes::devices_get),
    (
        "/devices/update",
        &["POST", "PATCH"],
        routes::devices_update,
    ),
    ("/locks/list", &["GET", "POST"], routes::devices_list),
    ("/locks/get", &["GET", "POST"], routes::devices_get),
    ("/locks/lock_door", &["POST"], routes::lock_door),
    ("/locks/unlock_door", &["POST"], routes::unlock_door),
    (
        "/locks/sync_access_codes",
        &["POST"],
        routes::sync_access_codes,
    ),
    ("/zwave/include", &["POST"], routes::zwave_include),
    ("/zwave/exclude", &["POST"], routes::zwave_exclude),
    (
        "/zwave/remove_failed",
        &["POST"],
        routes::zwave_remove_failed,
    ),
    ("/events/list", &["GET", "POST"], routes::events_list),
    (
        "/action_attempts/get",
        &["GET", "POST"],
        routes::action_attempts_get,
    ),
    ("/health", &["GET", "POST"], routes::health),
    (
        "/access_codes/report_device_constraints",
        &["POST"],
        routes::report_device_constraints,
    ),
    (
        "/access_codes/simulate/create_unmanaged_access_code",
        &["POST"],
        routes::simulate_create_unmanaged,
    ),
    (
        "/locks/simulate/keypad_code_entry",
        &["POST"],
        routes::simulate_keypad_code_entry,
    ),
    (
        "/action_attempts/list",
        &["POST"],
        routes::action_attempts_list,
    ),
    ("/events/get", &["POST"], routes::events_get),
    ("/workspaces/get", &["POST"], routes::workspaces_get),
];

#[derive(Clone)]
struct AppState {
    engine: Engine,
    /// Bearer token required on the TCP listener (None on the Unix socket).
    token: Option<Arc<String>>,
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
struct Peer(String);

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, tokio::net::UnixListener>,
    > for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::UnixListener>) -> Self {
        match stream.io().peer_cred() {
            Ok(c) => Peer(format!("uid={} gid={}", c.uid(), c.gid())),
            Err(_) => Peer("uid=? gid=?".into()),
        }
    }
}

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(format!("tcp {}", stream.remote_addr()))
    }
}

async fn dispatch(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let path = uri.path().to_string();
    let started = std::time::Instant::now();
    let response = answer(&state, method.clone(), &uri, headers, body).await;
    tracing::info!(
        peer = %peer.0,
        %method,
        %path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        "api request"
    );
    response
}

async fn answer(
    state: &AppState,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if let Some(token) = &state.token {
        let ok = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()));
        if !ok {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a valid Bearer token is required",
            )
            .into_response();
        }
    }
    let path = uri.path();
    if path == "/openapi.json" {
        return (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            OPENAPI,
        )
            .into_response();
    }
    if path == "/events/stream" {
        return stream::events(state.engine.clone(), uri.query()).await;
    }
    if path == "/metrics" {
        return crate::metrics::render(&state.engine).await.into_response();
    }
    let Some((_, methods, handler)) = ROUTES.iter().find(|(p, _, _)| *p == path) else {
        return ApiError::not_found("not_found", format!("no route {path}")).into_response();
    };
    if !methods.contains(&method.as_str()) {
        return ApiError::method_not_allowed(methods).into_response();
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {MAX_BODY} bytes"),
            )
            .into_response()
        }
    };
    let req = Request {
        method,
        path: path.to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body,
    };
    let engine = state.engine.clone();
    // Handlers touch SQLite: run them off the async workers, and never let one take the daemon down.
    let result = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&engine, &req)))
    })
    .await;
    match result {
        Ok(Ok(Ok(value))) => ok(value),
        Ok(Ok(Err(e))) => e.into_response(),
        _ => ApiError::internal("the request failed inside the daemon").into_response(),
    }
}

/// One request from a transport other than HTTP (the MQTT bridge): `route` is a path of
/// [`ROUTES`] (with or without its leading `/`), `body` its JSON parameters. It goes through
/// [`answer`] like a request on the socket (POST, which every route takes), so validation,
/// handlers and the error envelope are the ones HTTP clients get; the answer is the status
/// and the JSON body the socket would send. Paths outside [`ROUTES`] (the OpenAPI document,
/// the event stream, metrics) are not routes here: a 404.
pub async fn call(
    engine: &Engine,
    route: &str,
    body: Bytes,
    mut headers: HeaderMap,
) -> (StatusCode, Value) {
    let path = format!("/{}", route.trim_start_matches('/'));
    let response = match path.parse::<Uri>() {
        Ok(uri) if uri.query().is_none() && ROUTES.iter().any(|(p, _, _)| *p == uri.path()) => {
            headers
                .entry(axum::http::header::CONTENT_TYPE)
                .or_insert(axum::http::HeaderValue::from_static("application/json"));
            let state = AppState {
                engine: engine.clone(),
                token: None,
            };
            answer(&state, Method::POST, &uri, headers, body.into()).await
        }
        _ => ApiError::not_found("not_found", format!("no route {path}")).into_response(),
    };
    let status = response.status();
    let value = match axum::body::to_bytes(response.into_body(), usize::MAX).await {
        Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    (status, value)
}

fn ok(mut value: Value) -> Response {
    if let Some(o) = value.as_object_mut() {
        o.insert("ok".into(), Value::Bool(true));
    }
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn router(state: AppState) -> Router {
    Router::new().fallback(any(dispatch)).with_state(state)
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("API socket {path}: {reason}")]
    Socket { path: PathBuf, reason: String },
    #[error("API TCP listener {addr}: {reason}")]
    Tcp { addr: String, reason: String },
}

/// Where and how to listen.
#[derive(Debug, Clone)]
pub struct ListenConfig {
    pub socket: PathBuf,
    pub socket_mode: u32,
    /// Loopback TCP address and the Bearer token it requires.
    pub tcp: Option<(SocketAddr, String)>,
}

/// A bound listener set; [`Api::serve`] runs it.
pub struct Api {
    unix: tokio::net::UnixListener,
    tcp: Option<(tokio::net::TcpListener, String)>,
    socket: PathBuf,
}

impl Api {
    /// Bind the socket (replacing a stale one) and the optional TCP listener.
    pub async fn bind(config: &ListenConfig) -> Result<Api, ServeError> {
        let unix = bind_socket(&config.socket, config.socket_mode).await?;
        let tcp = match &config.tcp {
            None => None,
            Some((addr, token)) => {
                if !addr.ip().is_loopback() {
                    return Err(ServeError::Tcp {
                        addr: addr.to_string(),
                        reason: "only loopback addresses are allowed".into(),
                    });
                }
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .map_err(|e| ServeError::Tcp {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    })?;
                Some((l, token.clone()))
            }
        };
        Ok(Api {
            unix,
            tcp,
            socket: config.socket.clone(),
        })
    }

    /// Serve until `shutdown` completes; then remove the socket file.
    pub async fn serve(
        self,
        engine: Engine,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let unix_state = AppState {
            engine: engine.clone(),
            token: None,
        };
        let mut rx1 = stop_rx.clone();
        let unix = axum::serve(
            self.unix,
            router(unix_state).into_make_service_with_connect_info::<Peer>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx1.wait_for(|s| *s).await;
        });
        let tcp = self.tcp.map(|(l, token)| {
            let state = AppState {
                engine,
                token: Some(Arc::new(token)),
            };
            let mut rx2 = stop_rx.clone();
            axum::serve(
                l,
                router(state).into_make_service_with_connect_info::<Peer>(),
            )
            .with_graceful_shutdown(async move {
                let _ = rx2.wait_for(|s| *s).await;
            })
        });
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let tcp_task = tcp.map(|t| tokio::spawn(async move { t.await }));
        if let Err(e) = unix.await {
            tracing::error!(error = %e, "API socket failed");
        }
        if let Some(t) = tcp_task {
            let _ = t.await;
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn bind_socket(path: &Path, mode: u32) -> Result<tokio::net::UnixListener, ServeError> {
    let err = |reason: String| ServeError::Socket {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
    }
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        use std::os::unix::fs::FileTypeExt;
        if !meta.file_type().is_socket() {
            return Err(err(
                "exists and is not a socket; refusing to replace it".into()
            ));
        }
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(err("another process is serving on it".into()));
        }
        std::fs::remove_file(path)
            .map_err(|e| err(format!("cannot remove the stale socket: {e}")))?;
        tracing::info!(socket = %path.display(), "replaced a stale API socket");
    }
    // Bind with a tight umask, then widen to the configured mode.
    let listener = tokio::net::UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| err(e.to_string()))?;
    Ok(listener)
}
