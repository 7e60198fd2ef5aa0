//! The bridge's tasks, each the one owner of its part:
//!
//! * the connection task owns rumqttc's event loop: it connects (persistent session: clean
//!   start off, `session_expiry_seconds`; the retained `offline` will), subscribes on every
//!   connect, reconnects with capped, jittered backoff, and hands what arrives to the others;
//! * the request task runs requests, at most `max_concurrent_requests` at once, through
//!   [`crate::api::call`], and answers on the response topic with the correlation data and a
//!   `status` user property;
//! * the state task ([`super::state`]) keeps the retained state equal to the database.
//!
//! [`Bridge::shutdown`] stops taking requests, lets those under way finish (bounded), then
//! publishes the retained `offline` and disconnects. Nothing here waits on the broker on the
//! engine's or the API's behalf: with the broker away, messages for it are dropped once the
//! capped queue is full, and the state is republished after the next connect.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::FutureExt;
use rumqttc::v5::mqttbytes::v5::{
    Filter, LastWill, Packet, Publish, PublishProperties, RetainForwardRule,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop};
use rumqttc::Outgoing;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::idempotency::{self, Claim};
use super::redact::strip_pins;
use super::state::{self, StateMsg};
use super::stopped;
use super::topics::{valid_response_topic, Incoming};
use super::Settings;
use crate::api::ApiError;
use crate::codes::Engine;

/// How long a request may take before its answer is given up (a `sync` create waits for the
/// lock; the engine bounds that wait itself).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(180);
/// How long an answer may wait for room in the outbound queue.
const ANSWER_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// What shutdown gives requests under way, and the goodbye to the broker.
const SHUTDOWN_REQUESTS: Duration = Duration::from_secs(3);
const SHUTDOWN_GOODBYE: Duration = Duration::from_secs(3);
/// Idempotency keys kept, and for how long.
const KEYS_KEPT: usize = 2048;
const KEYS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Entries kept of rumqttc's list of unacknowledged messages across reconnects.
const MAX_PENDING: usize = 1024;

/// Counters (for the fleet benchmark and logs).
#[derive(Debug, Default)]
pub struct Counters {
    pub published: AtomicU64,
    pub dropped: AtomicU64,
    pub requests: AtomicU64,
    pub connects: AtomicU64,
}

/// What the tasks share.
pub(crate) struct Shared {
    pub engine: Engine,
    pub settings: Settings,
    pub client: AsyncClient,
    pub connected: AtomicBool,
    pub counters: Counters,
    pub idempotent: idempotency::Store,
    warned: Mutex<HashSet<String>>,
}

impl Shared {
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Publish at QoS 1, waiting at most `within` for room in the queue; whether it was queued.
    pub async fn publish(
        &self,
        topic: String,
        retain: bool,
        payload: Vec<u8>,
        properties: Option<PublishProperties>,
        within: Duration,
    ) -> bool {
        let send = async {
            match properties {
                Some(p) => {
                    self.client
                        .publish_with_properties(topic, QoS::AtLeastOnce, retain, payload, p)
                        .await
                }
                None => {
                    self.client
                        .publish(topic, QoS::AtLeastOnce, retain, payload)
                        .await
                }
            }
        };
        let ok = matches!(tokio::time::timeout(within, send).await, Ok(Ok(())));
        let counter = if ok {
            &self.counters.published
        } else {
            &self.counters.dropped
        };
        counter.fetch_add(1, Ordering::Relaxed);
        ok
    }

    /// Warn once per `what` (later ones go to debug).
    fn warn_once(&self, what: &str, message: &str) {
        let first = self
            .warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(what.to_string());
        if first {
            tracing::warn!(what, "{message}");
        } else {
            tracing::debug!(what, "{message}");
        }
    }
}

/// A request for the request task.
enum Job {
    Api {
        route: String,
        publish: Box<Publish>,
    },
    Ha {
        device: Uuid,
        route: &'static str,
    },
}

/// The running bridge.
pub struct Bridge {
    shared: Arc<Shared>,
    stop_work: watch::Sender<bool>,
    stop_conn: watch::Sender<bool>,
    connection: JoinHandle<()>,
    requests: JoinHandle<()>,
    state: JoinHandle<()>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bridge({})", self.shared.settings.topics.base())
    }
}

impl Bridge {
    /// Start the bridge's tasks (on the current tokio runtime). It connects in the
    /// background; nothing here waits for the broker.
    pub fn start(engine: Engine, settings: Settings) -> Bridge {
        let topics = settings.topics.clone();
        let mut options = settings.connection.options(&settings.client_id);
        options.set_clean_start(false);
        options.set_session_expiry_interval(Some(settings.session_expiry));
        // A request is acknowledged when its handling starts, not when it arrives: one the hub
        // took in but had not started when it stopped (or died) is delivered again by the
        // broker in the next session instead of being lost, and one under way is never
        // delivered again (a create without a PIN would make a second code).
        options.set_manual_acks(true);
        options.set_last_will(LastWill::new(
            topics.status(),
            "offline",
            QoS::AtLeastOnce,
            true,
            None,
        ));
        let (client, eventloop) = AsyncClient::new(options, settings.queue_capacity);
        let shared = Arc::new(Shared {
            engine: engine.clone(),
            idempotent: idempotency::Store::new(KEYS_KEPT, KEYS_TTL),
            client,
            connected: AtomicBool::new(false),
            counters: Counters::default(),
            warned: Mutex::default(),
            settings,
        });
        let (stop_work, work_rx) = watch::channel(false);
        let (stop_conn, conn_rx) = watch::channel(false);
        let (jobs_tx, jobs_rx) = mpsc::channel(shared.settings.queue_capacity);
        let (state_tx, state_rx) = mpsc::channel(shared.settings.queue_capacity.max(1024));
        // Subscribe before anything can happen, so no event falls between start and the
        // first full publish.
        let events = engine.subscribe();
        let connection = tokio::spawn(run_connection(
            shared.clone(),
            eventloop,
            jobs_tx,
            state_tx,
            conn_rx,
        ));
        let requests = tokio::spawn(run_requests(shared.clone(), jobs_rx, work_rx.clone()));
        let state = tokio::spawn(state::run(shared.clone(), events, state_rx, work_rx));
        tracing::info!(
            broker = %shared.settings.connection.broker,
            topics = %topics.base(),
            "MQTT bridge starting"
        );
        Bridge {
            shared,
            stop_work,
            stop_conn,
            connection,
            requests,
            state,
        }
    }

    /// Whether the bridge is connected to the broker now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected()
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Stop: no new requests, those under way finish (bounded), then `offline` (retained)
    /// and a clean disconnect. Returns when every task is gone.
    pub async fn shutdown(self) {
        let _ = self.stop_work.send(true);
        let mut requests = self.requests;
        if tokio::time::timeout(SHUTDOWN_REQUESTS + Duration::from_secs(1), &mut requests)
            .await
            .is_err()
        {
            requests.abort();
        }
        let mut state = self.state;
        if tokio::time::timeout(Duration::from_secs(2), &mut state)
            .await
            .is_err()
        {
            state.abort();
        }
        let _ = self.stop_conn.send(true);
        let mut connection = self.connection;
        if tokio::time::timeout(SHUTDOWN_GOODBYE + Duration::from_secs(1), &mut connection)
            .await
            .is_err()
        {
            connection.abort();
        }
        tracing::info!("MQTT bridge stopped");
    }
}

fn filter(path: String, qos: QoS, preserve_retain: bool, retained: RetainForwardRule) -> Filter {
    let mut f = Filter::new(path, qos);
    f.preserve_retain = preserve_retain;
    f.retain_forward_rule = retained;
    f
}

/// What to do on a connect: subscribe, say `online`, start the sweep.
fn on_connect(shared: &Shared) {
    let t = &shared.settings.topics;
    // Requests: none of those the broker keeps retained is sent, and live ones keep their
    // retain flag as published, so a retained one is recognised (and never acted on).
    let mut filters: Vec<Filter> = t
        .request_filters()
        .into_iter()
        .map(|f| filter(f, QoS::AtLeastOnce, true, RetainForwardRule::Never))
        .collect();
    filters.extend(t.sweep_filters().into_iter().map(|f| {
        filter(
            f,
            QoS::AtMostOnce,
            false,
            RetainForwardRule::OnEverySubscribe,
        )
    }));
    if let Err(e) = shared.client.try_subscribe_many(filters) {
        tracing::warn!(error = %e, "cannot subscribe to the request topics");
    }
    if let Err(e) = shared
        .client
        .try_publish(t.status(), QoS::AtLeastOnce, true, "online")
    {
        tracing::warn!(error = %e, "cannot publish the hub's status");
    }
    // Comes back after every retained message of the sweep filters (same connection, same
    // order, QoS 0 both ways).
    let _ = shared
        .client
        .try_publish(t.sweep_marker(), QoS::AtMostOnce, false, "");
}

async fn run_connection(
    shared: Arc<Shared>,
    mut eventloop: EventLoop,
    jobs: mpsc::Sender<Job>,
    state: mpsc::Sender<StateMsg>,
    mut stop: watch::Receiver<bool>,
) {
    let (initial, max) = shared.settings.reconnect;
    let mut failures: u32 = 0;
    let mut last_error = String::new();
    loop {
        let event = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                shared.connected.store(true, Ordering::SeqCst);
                shared.counters.connects.fetch_add(1, Ordering::Relaxed);
                if failures > 0 {
                    tracing::info!(
                        failures,
                        session_present = ack.session_present,
                        "connected to the MQTT broker again"
                    );
                } else {
                    tracing::info!(
                        session_present = ack.session_present,
                        "connected to the MQTT broker"
                    );
                }
                failures = 0;
                last_error.clear();
                on_connect(&shared);
                let _ = state.try_send(StateMsg::Connected);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => dispatch(&shared, p, &jobs, &state),
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
                let refused = ack
                    .return_codes
                    .iter()
                    .filter(|c| !matches!(c, R::Success(_)))
                    .count();
                if refused > 0 {
                    tracing::warn!(
                        refused,
                        "the broker refused subscriptions (check its ACL for this hub)"
                    );
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                tracing::warn!(reason = ?d.reason_code, "the broker disconnected the hub");
            }
            Ok(_) => {}
            Err(e) => {
                let was = shared.connected.swap(false, Ordering::SeqCst);
                let _ = state.try_send(StateMsg::Disconnected);
                let text = e.to_string();
                if was {
                    tracing::warn!(error = %text, "lost the MQTT broker; working on locally");
                } else if text != last_error {
                    tracing::warn!(error = %text, "cannot reach the MQTT broker; working on locally");
                } else {
                    tracing::debug!(error = %text, "cannot reach the MQTT broker");
                }
                last_error = text;
                // Unacknowledged messages are kept for the session; not without bound.
                while eventloop.pending.len() > MAX_PENDING {
                    eventloop.pending.pop_front();
                    shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
                let jitter = f64::from(Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX);
                let wait = super::backoff(failures, initial, max, jitter);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = stopped(&mut stop) => break,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
    // A clean stop: say so (the will is only for a hub that dies), then leave.
    if shared.connected() {
        let t = shared.settings.topics.status();
        let _ = shared
            .client
            .try_publish(t, QoS::AtLeastOnce, true, "offline");
        let _ = shared.client.try_disconnect();
        let _ = tokio::time::timeout(SHUTDOWN_GOODBYE, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        shared.connected.store(false, Ordering::SeqCst);
    }
}

/// Acknowledge a QoS 1 message (manual acks: see [`Bridge::start`]). From the connection's
/// own loop the queue must not be waited on (that loop is what drains it): a full queue
/// hands the ack to a task.
fn ack_now(shared: &Arc<Shared>, p: &Publish) {
    if shared.client.try_ack(p).is_err() {
        let shared = shared.clone();
        let p = p.clone();
        tokio::spawn(async move { ack(&shared, &p).await });
    }
}

/// Acknowledge a QoS 1 message.
async fn ack(shared: &Shared, p: &Publish) {
    if let Err(e) = shared.client.ack(p).await {
        tracing::debug!(error = %e, "cannot acknowledge a message (the broker sends it again)");
    }
}

/// Hand an incoming message to the task it is for. A request is acknowledged when its
/// handling starts (or it is refused as busy); everything else at once.
fn dispatch(
    shared: &Arc<Shared>,
    p: Publish,
    jobs: &mpsc::Sender<Job>,
    state: &mpsc::Sender<StateMsg>,
) {
    let topic = String::from_utf8_lossy(&p.topic).into_owned();
    let incoming = shared.settings.topics.parse(&topic);
    // Only a live request waits for its handling to start before it is acknowledged.
    if p.retain || !matches!(incoming, Incoming::Api(_)) {
        ack_now(shared, &p);
    }
    match incoming {
        Incoming::Api(route) => {
            if p.retain {
                shared.warn_once(
                    &format!("retained {topic}"),
                    "ignoring a retained request (requests are never retained)",
                );
                return;
            }
            let job = Job::Api {
                route: route.to_string(),
                publish: Box::new(p),
            };
            if let Err(mpsc::error::TrySendError::Full(Job::Api { publish, .. })) =
                jobs.try_send(job)
            {
                let busy = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "too many requests over MQTT at once; try again",
                );
                let shared = shared.clone();
                tokio::spawn(async move {
                    let props = publish.properties.clone().unwrap_or_default();
                    if let Some(topic) = props.response_topic.filter(|t| valid_response_topic(t)) {
                        answer(&shared, topic, props.correlation_data, envelope(busy)).await;
                    }
                    ack(&shared, &publish).await;
                });
            }
        }
        Incoming::HaCommand(device) if !p.retain && shared.settings.discovery => {
            match super::ha::command_route(&p.payload) {
                Some(route) => {
                    if jobs.try_send(Job::Ha { device, route }).is_err() {
                        tracing::warn!(%device, "too many requests at once: a Home Assistant command was dropped");
                    }
                }
                None => shared.warn_once(
                    "ha command payload",
                    "ignoring a Home Assistant command that is neither LOCK nor UNLOCK",
                ),
            }
        }
        Incoming::Device(id) if p.retain => {
            let _ = state.try_send(StateMsg::Swept(state::Kind::Device, id));
        }
        Incoming::AccessCode(id) if p.retain => {
            let _ = state.try_send(StateMsg::Swept(state::Kind::AccessCode, id));
        }
        Incoming::SweepMarker => {
            let _ = state.try_send(StateMsg::SweepDone);
        }
        _ => {}
    }
}

/// An API error in the API's envelope, as the HTTP API would send it.
pub(crate) fn envelope(e: ApiError) -> (StatusCode, Value) {
    let response = e.into_response();
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .now_or_never()
        .and_then(Result::ok)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}

async fn run_requests(
    shared: Arc<Shared>,
    mut jobs: mpsc::Receiver<Job>,
    mut stop: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(shared.settings.max_concurrent));
    let mut running = tokio::task::JoinSet::new();
    loop {
        let job = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            Some(_) = running.join_next(), if !running.is_empty() => continue,
            j = jobs.recv() => match j {
                Some(j) => j,
                None => break,
            },
        };
        let permit = tokio::select! {
            _ = stopped(&mut stop) => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let shared = shared.clone();
        running.spawn(async move {
            match job {
                Job::Api { route, publish } => {
                    ack(&shared, &publish).await;
                    handle_api(&shared, route, *publish).await;
                }
                Job::Ha { device, route } => handle_ha(&shared, device, route).await,
            }
            drop(permit);
        });
    }
    // Stopping: requests not started are not taken, nor acknowledged, so the broker delivers
    // them again in the next session; those under way get a moment to finish.
    let _ = tokio::time::timeout(SHUTDOWN_REQUESTS, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    running.abort_all();
}

fn user_property<'a>(props: &'a PublishProperties, name: &str) -> Option<&'a str> {
    props
        .user_properties
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

async fn run_route(
    shared: &Shared,
    route: &str,
    body: Bytes,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut headers = HeaderMap::new();
    if let Some(v) = key.and_then(|k| HeaderValue::from_str(k).ok()) {
        headers.insert(idempotency::PROPERTY, v);
    }
    match tokio::time::timeout(
        REQUEST_TIMEOUT,
        crate::api::call(&shared.engine, route, body, headers),
    )
    .await
    {
        Ok(a) => a,
        Err(_) => envelope(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took too long",
        )),
    }
}

async fn handle_api(shared: &Shared, route: String, p: Publish) {
    let started = Instant::now();
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let props = p.properties.clone().unwrap_or_default();
    let response_topic = match props.response_topic.as_deref() {
        Some(t) if valid_response_topic(t) => Some(t.to_string()),
        Some(_) => {
            shared.warn_once(
                &format!("bad response topic {route}"),
                "a request's response topic cannot be published to (empty, or with a wildcard); it gets no answer",
            );
            None
        }
        None => {
            shared.warn_once(
                &format!("no response topic {route}"),
                "a request came without a response topic; it is handled, and gets no answer",
            );
            None
        }
    };
    let key = user_property(&props, idempotency::PROPERTY);
    let (status, body) = match key {
        None => {
            let (s, v) = run_route(shared, &route, p.payload.clone(), None).await;
            (s, Arc::new(v))
        }
        Some(k) if !idempotency::valid_key(k) => {
            let (s, v) = envelope(ApiError::invalid_fields(vec![(
                idempotency::PROPERTY.into(),
                format!(
                    "must be 1 to {} visible ASCII characters",
                    idempotency::MAX_KEY_LEN
                ),
            )]));
            (s, Arc::new(v))
        }
        Some(k) => {
            let fp = idempotency::fingerprint(&p.payload);
            match shared.idempotent.claim(&route, k, fp, Instant::now()) {
                Claim::New(ticket) => {
                    let (s, v) = run_route(shared, &route, p.payload.clone(), Some(k)).await;
                    let a = (s, Arc::new(v));
                    shared.idempotent.finish(ticket, a.clone());
                    a
                }
                Claim::Replay(a) => a,
                Claim::Wait(rx) => match idempotency::wait(rx, REQUEST_TIMEOUT).await {
                    Some(a) => a,
                    None => {
                        let (s, v) = envelope(ApiError::new(
                            StatusCode::CONFLICT,
                            "idempotency_key_in_use",
                            "idempotency-key: the first request with this key did not finish; try again",
                        ));
                        (s, Arc::new(v))
                    }
                },
                Claim::Reused => {
                    let mut e = ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_key_reused",
                        "idempotency-key: this key was used with other parameters; use a new key for a new request",
                    );
                    e.validation = vec![(
                        idempotency::PROPERTY.into(),
                        "was used with other parameters".into(),
                    )];
                    let (s, v) = envelope(e);
                    (s, Arc::new(v))
                }
            }
        }
    };
    tracing::info!(
        %route,
        status = status.as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        answered = response_topic.is_some(),
        "mqtt request"
    );
    if let Some(topic) = response_topic {
        answer(
            shared,
            topic,
            props.correlation_data,
            (status, (*body).clone()),
        )
        .await;
    }
}

/// Publish an answer: the body (PINs out unless `publish_codes`), the correlation data, and
/// the status as a user property.
async fn answer(
    shared: &Shared,
    topic: String,
    correlation: Option<Bytes>,
    (status, mut body): (StatusCode, Value),
) {
    if !shared.settings.publish_codes {
        strip_pins(&mut body);
    }
    let props = PublishProperties {
        correlation_data: correlation,
        user_properties: vec![("status".into(), status.as_u16().to_string())],
        content_type: Some("application/json".into()),
        payload_format_indicator: Some(1),
        ..Default::default()
    };
    let payload = serde_json::to_vec(&body).unwrap_or_default();
    if !shared
        .publish(topic, false, payload, Some(props), ANSWER_QUEUE_WAIT)
        .await
    {
        tracing::warn!("an answer could not be queued for the broker; it is lost");
    }
}

async fn handle_ha(shared: &Shared, device: Uuid, route: &str) {
    let body = Bytes::from(json!({ "device_id": device }).to_string());
    let (status, v) = run_route(shared, route, body, None).await;
    if status.is_success() {
        tracing::info!(%device, %route, "Home Assistant command");
    } else {
        tracing::warn!(
            %device,
            %route,
            status = status.as_u16(),
            error = %v["error"]["message"].as_str().unwrap_or(""),
            "a Home Assistant command failed"
        );
    }
}
