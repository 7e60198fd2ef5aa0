//! The control API: HTTP/1.1 + JSON on a Unix socket, with Seam's routes and objects.
//!
//! The socket file belongs to the daemon: created with the configured mode, a stale one (no
//! process answers on it) replaced, and removed at shutdown. An optional loopback TCP listener
//! serves clients that cannot reach a Unix socket; it requires `Authorization: Bearer <token>`.
//! Each request is logged with the peer's uid and gid and its `seam-request-id` (a UUID,
//! also sent back on every response), never with its parameters: they may hold a PIN.

pub mod error;
pub mod fields;
pub mod idempotency;
pub mod paging;
pub mod params;
mod routes;
pub mod server;
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
use serde_json::{Map, Value};

pub use error::ApiError;
pub use server::Limits;
use server::Peer;

use crate::codes::{Engine, IdempotencyKey};

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The response header that names each request (as Seam's API sends it).
pub const REQUEST_ID: &str = "seam-request-id";

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// A request, as the route handlers see it.
pub struct Request {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The parameters (query string or JSON body, by method), checked against the route's
    /// list ([`fields`]).
    pub params: Map<String, Value>,
}

impl Request {
    /// The request's parameters as `T`.
    pub fn params<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        params::from_object(self.params.clone())
    }

    /// Its `Idempotency-Key`, for the engine to keep with what the request makes.
    pub fn idempotency_key(&self) -> Result<Option<IdempotencyKey>, ApiError> {
        Ok(idempotency::key(&self.headers)?.map(|key| IdempotencyKey {
            route: self.path.clone(),
            key,
            fingerprint: format!("{:016x}", idempotency::fingerprint(&self.params)),
        }))
    }
}

/// A route's handler: most answer a JSON value (given `"ok": true` and serialized after);
/// the lists write their answer themselves, straight from the API objects (a page of 100
/// codes built as a [`Value`] tree first cost as much again as reading it).
#[derive(Clone, Copy)]
pub enum Handler {
    Json(fn(&Engine, &Request) -> routes::Answer),
    Written(fn(&Engine, &Request) -> Result<Bytes, ApiError>),
}

impl Handler {
    /// The answer's body.
    fn answer(self, engine: &Engine, req: &Request) -> Result<Bytes, ApiError> {
        match self {
            Handler::Json(f) => f(engine, req).map(ok_body),
            Handler::Written(f) => f(engine, req),
        }
    }
}

/// Every route: path, methods, handler.
pub const ROUTES: &[(&str, &[&str], Handler)] = &[
    (
        "/access_codes/create",
        &["POST"],
        Handler::Json(routes::create),
    ),
    (
        "/access_codes/create_multiple",
        &["POST", "PUT"],
        Handler::Json(routes::create_multiple),
    ),
    (
        "/access_codes/get",
        &["GET", "POST"],
        Handler::Json(routes::get),
    ),
    (
        "/access_codes/list",
        &["GET", "POST"],
        Handler::Written(routes::list),
    ),
    (
        "/access_codes/update",
        &["PATCH", "POST", "PUT"],
        Handler::Json(routes::update),
    ),
    (
        "/access_codes/update_multiple",
        &["PATCH", "POST"],
        Handler::Json(routes::update_multiple),
    ),
    (
        "/access_codes/delete",
        &["DELETE", "POST"],
        Handler::Json(routes::delete),
    ),
    (
        "/access_codes/generate_code",
        &["GET", "POST"],
        Handler::Json(routes::generate_code),
    ),
    (
        "/access_codes/pull_backup_access_code",
        &["POST"],
        Handler::Json(routes::pull_backup),
    ),
    (
        "/access_codes/unmanaged/list",
        &["GET", "POST"],
        Handler::Written(routes::unmanaged_list),
    ),
    (
        "/access_codes/unmanaged/get",
        &["GET", "POST"],
        Handler::Json(routes::unmanaged_get),
    ),
    (
        "/access_codes/unmanaged/update",
        &["PATCH", "POST"],
        Handler::Json(routes::unmanaged_update),
    ),
    (
        "/access_codes/unmanaged/delete",
        &["DELETE", "POST"],
        Handler::Json(routes::unmanaged_delete),
    ),
    (
        "/access_codes/unmanaged/convert_to_managed",
        &["PATCH", "POST"],
        Handler::Json(routes::unmanaged_convert),
    ),
    (
        "/devices/list",
        &["GET", "POST"],
        Handler::Json(routes::devices_list),
    ),
    (
        "/devices/get",
        &["GET", "POST"],
        Handler::Json(routes::devices_get),
    ),
    (
        "/devices/update",
        &["POST", "PATCH"],
        Handler::Json(routes::devices_update),
    ),
    (
        "/locks/list",
        &["GET", "POST"],
        Handler::Json(routes::devices_list),
    ),
    (
        "/locks/get",
        &["GET", "POST"],
        Handler::Json(routes::devices_get),
    ),
    (
        "/locks/lock_door",
        &["POST"],
        Handler::Json(routes::lock_door),
    ),
    (
        "/locks/unlock_door",
        &["POST"],
        Handler::Json(routes::unlock_door),
    ),
    (
        "/locks/sync_access_codes",
        &["POST"],
        Handler::Json(routes::sync_access_codes),
    ),
    (
        "/zwave/include",
        &["POST"],
        Handler::Json(routes::zwave_include),
    ),
    (
        "/zwave/exclude",
        &["POST"],
        Handler::Json(routes::zwave_exclude),
    ),
    (
        "/zwave/remove_failed",
        &["POST"],
        Handler::Json(routes::zwave_remove_failed),
    ),
    (
        "/events/list",
        &["GET", "POST"],
        Handler::Json(routes::events_list),
    ),
    (
        "/action_attempts/get",
        &["GET", "POST"],
        Handler::Json(routes::action_attempts_get),
    ),
    ("/health", &["GET", "POST"], Handler::Json(routes::health)),
    (
        "/access_codes/report_device_constraints",
        &["POST"],
        Handler::Json(routes::report_device_constraints),
    ),
    (
        "/access_codes/simulate/create_unmanaged_access_code",
        &["POST"],
        Handler::Json(routes::simulate_create_unmanaged),
    ),
    (
        "/locks/simulate/keypad_code_entry",
        &["POST"],
        Handler::Json(routes::simulate_keypad_code_entry),
    ),
    (
        "/action_attempts/list",
        &["GET", "POST"],
        Handler::Json(routes::action_attempts_list),
    ),
    (
        "/events/get",
        &["GET", "POST"],
        Handler::Json(routes::events_get),
    ),
    (
        "/workspaces/get",
        &["GET", "POST"],
        Handler::Json(routes::workspaces_get),
    ),
];

#[derive(Clone)]
struct AppState {
    engine: Engine,
    /// Bearer token required on the TCP listener (None on the Unix socket).
    token: Option<Arc<String>>,
    limits: Limits,
    /// Answers kept for `Idempotency-Key` (shared by both listeners).
    idempotent: idempotency::Store,
    /// Turns for the [`HEAVY`] routes (shared by both listeners).
    heavy: Arc<tokio::sync::Semaphore>,
}

/// Routes whose answers can be large (a page of up to 1,000 codes is about 1.5 MB of JSON,
/// several times that while it is built): at most [`HEAVY_AT_ONCE`] are built and sent at a
/// time, so 50 clients listing a big lock at once do not hold 50 pages in memory. The others
/// wait their turn, at most [`HEAVY_WAIT`] (then a 503).
const HEAVY: &[&str] = &[
    "/access_codes/list",
    "/access_codes/unmanaged/list",
    "/devices/list",
    "/locks/list",
    "/events/list",
];
pub const HEAVY_AT_ONCE: usize = 2;
pub const HEAVY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Routes where `Idempotency-Key` is honoured: the ones that create.
const IDEMPOTENT: &[&str] = &["/access_codes/create", "/access_codes/create_multiple"];

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
    // Seam's API names every answer with a request id; clients put it in their errors.
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = answer(&state, method.clone(), &uri, headers, body).await;
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    tracing::info!(
        %request_id,
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
    let get_only = ["/openapi.json", "/events/stream", "/metrics"];
    if get_only.contains(&path) && method != Method::GET {
        let mut r = ApiError::method_not_allowed(&["GET"]).into_response();
        r.headers_mut().insert(
            axum::http::header::ALLOW,
            axum::http::HeaderValue::from_static("GET"),
        );
        return r;
    }
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
        let mut r = ApiError::method_not_allowed(methods).into_response();
        if let Ok(v) = axum::http::HeaderValue::from_str(&methods.join(", ")) {
            r.headers_mut().insert(axum::http::header::ALLOW, v);
        }
        return r;
    }
    let body = match tokio::time::timeout(
        state.limits.body_timeout,
        axum::body::to_bytes(body, MAX_BODY),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {MAX_BODY} bytes"),
            )
            .into_response()
        }
        Err(_) => {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the body did not arrive within {} s",
                    state.limits.body_timeout.as_secs()
                ),
            )
            .into_response()
        }
    };
    let mut params = match params::to_object(&method, uri.query(), &headers, &body) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = fields::check(
        fields::params_of(path),
        &mut params,
        params::in_query(&method),
    ) {
        return e.into_response();
    }
    // A create with an Idempotency-Key answered before gets that answer again.
    let ticket = if IDEMPOTENT.contains(&path) {
        let key = match idempotency::key(&headers) {
            Ok(k) => k,
            Err(e) => return e.into_response(),
        };
        match key.map(|k| {
            state.idempotent.claim(
                path,
                &k,
                idempotency::fingerprint(&params),
                std::time::Instant::now(),
            )
        }) {
            None => None,
            Some(Ok(idempotency::Claim::New(t))) => Some(t),
            Some(Ok(idempotency::Claim::Replay(status, body))) => {
                let mut r = json_response(status, body);
                r.headers_mut().insert(
                    "idempotent-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
                return r;
            }
            Some(Err(e)) => return e.into_response(),
        }
    } else {
        None
    };
    let turn = if HEAVY.contains(&path) {
        match tokio::time::timeout(HEAVY_WAIT, state.heavy.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many large lists are being answered; try again shortly",
                )
                .into_response()
            }
        }
    } else {
        None
    };
    let req = Request {
        method,
        path: path.to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body,
        params,
    };
    let engine = state.engine.clone();
    // Handlers touch SQLite: run them off the async workers, and never let one take the daemon down.
    let result = tokio::task::spawn_blocking(move || {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handler.answer(&engine, &req)
        }))
    })
    .await;
    let (status, body) = match result {
        Ok(Ok(Ok(body))) => (StatusCode::OK, body),
        Ok(Ok(Err(e))) => return e.into_response(),
        _ => return ApiError::internal("the request failed inside the daemon").into_response(),
    };
    if let Some(t) = ticket {
        state.idempotent.finish(t, status, &body);
    }
    let response = json_response(status, body);
    match turn {
        None => response,
        // The turn ends when the answer has been sent.
        Some(permit) => response.map(|b| {
            axum::body::Body::new(http_body_util::BodyExt::map_frame(b, move |f| {
                let _ = &permit;
                f
            }))
        }),
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
            // MQTT requests share one set of turns for the heavy routes; their duplicates are
            // the bridge's (its own idempotency store, per request key).
            static SHARED: std::sync::OnceLock<(idempotency::Store, Arc<tokio::sync::Semaphore>)> =
                std::sync::OnceLock::new();
            let (idempotent, heavy) = SHARED.get_or_init(|| {
                (
                    idempotency::Store::default(),
                    Arc::new(tokio::sync::Semaphore::new(HEAVY_AT_ONCE)),
                )
            });
            let state = AppState {
                engine: engine.clone(),
                token: None,
                limits: Limits::default(),
                idempotent: idempotent.clone(),
                heavy: heavy.clone(),
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

/// A handler's object with `"ok": true`, as JSON text.
fn ok_body(mut value: Value) -> Bytes {
    if let Some(o) = value.as_object_mut() {
        o.insert("ok".into(), Value::Bool(true));
    }
    Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
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
    /// Timeouts and the connection limit.
    pub limits: Limits,
}

/// A bound listener set; [`Api::serve`] runs it.
pub struct Api {
    unix: tokio::net::UnixListener,
    tcp: Option<(tokio::net::TcpListener, String)>,
    socket: PathBuf,
    limits: Limits,
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
            limits: config.limits,
        })
    }

    /// Serve until `shutdown` completes; then remove the socket file.
    pub async fn serve(
        self,
        engine: Engine,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let conns = Arc::new(server::Connections::default());
        let idempotent = idempotency::Store::default();
        let heavy = Arc::new(tokio::sync::Semaphore::new(HEAVY_AT_ONCE));
        let state = |token: Option<Arc<String>>| AppState {
            engine: engine.clone(),
            token,
            limits: self.limits,
            idempotent: idempotent.clone(),
            heavy: heavy.clone(),
        };
        let tcp = self.tcp.map(|(l, token)| {
            tokio::spawn(server::serve(
                server::Listener::Tcp(l),
                router(state(Some(Arc::new(token)))),
                self.limits,
                conns.clone(),
                stop_rx.clone(),
            ))
        });
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        server::serve(
            server::Listener::Unix(self.unix),
            router(state(None)),
            self.limits,
            conns,
            stop_rx,
        )
        .await;
        if let Some(t) = tcp {
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
