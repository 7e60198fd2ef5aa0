//! The other end of the bridge: a client of one hub through the broker, for the CLI
//! (`zwlock --broker … --hub … codes list …`), the tests and the fleet benchmark.
//!
//! It connects with a fresh client id and a clean session, subscribes to its reply topic
//! `<prefix>/<hub>/reply/<client id>` (below the hub, so a hub's ACL can be its own tree),
//! and sends each request with a response topic and correlation data; answers are matched
//! by their correlation data. Every wait has a timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5::mqttbytes::v5::{Packet, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event};
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};
use uuid::Uuid;

use super::{Connection, Topics};

/// Why a request through the broker failed before the hub answered.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the MQTT broker at {broker}: {reason}")]
    Connect { broker: String, reason: String },
    #[error("no answer from hub {hub} within {within:?} (is it connected to the broker? is --hub right?)")]
    Timeout { hub: String, within: Duration },
    #[error("the MQTT client stopped: {0}")]
    Closed(String),
}

/// An answer: the `status` user property and the JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    /// The message's user properties, as sent.
    pub properties: Vec<(String, String)>,
}

type Waiting = Arc<Mutex<HashMap<Bytes, oneshot::Sender<Reply>>>>;

/// A client of one hub.
pub struct ApiClient {
    client: AsyncClient,
    topics: Topics,
    reply_topic: String,
    waiting: Waiting,
    events: broadcast::Sender<Value>,
    task: tokio::task::JoinHandle<()>,
    pub timeout: Duration,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiClient({})", self.topics.base())
    }
}

impl Drop for ApiClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiClient {
    /// Connect to the broker and get ready for `hub`'s answers (waits at most `within`).
    pub async fn connect(
        connection: &Connection,
        prefix: &str,
        hub: &str,
        within: Duration,
    ) -> Result<ApiClient, ClientError> {
        let client_id = format!(
            "zwlock-client-{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        let mut options = connection.options(&client_id);
        options.set_clean_start(true);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let topics = Topics::new(prefix, hub, "homeassistant");
        let reply_topic = format!("{}/reply/{client_id}", topics.base());
        let waiting: Waiting = Arc::default();
        let (events, _) = broadcast::channel(1024);
        let broker = connection.broker.to_string();
        // Connected and subscribed before the first request goes out.
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
        let task = {
            let client = client.clone();
            let waiting = waiting.clone();
            let events = events.clone();
            let reply = reply_topic.clone();
            let events_topic = topics.events();
            tokio::spawn(async move {
                let mut ready = Some(ready_tx);
                let mut failures = 0u32;
                loop {
                    match eventloop.poll().await {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            failures = 0;
                            let _ = client.try_subscribe(reply.clone(), QoS::AtLeastOnce);
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Ok(()));
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            let topic = String::from_utf8_lossy(&p.topic);
                            let props = p.properties.clone().unwrap_or_default();
                            if topic == reply {
                                let Some(corr) = props.correlation_data.clone() else {
                                    continue;
                                };
                                let status = props
                                    .user_properties
                                    .iter()
                                    .find(|(k, _)| k == "status")
                                    .and_then(|(_, v)| v.parse().ok())
                                    .unwrap_or(0);
                                let body =
                                    serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                                let tx = waiting
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .remove(&corr);
                                if let Some(tx) = tx {
                                    let _ = tx.send(Reply {
                                        status,
                                        body,
                                        properties: props.user_properties,
                                    });
                                }
                            } else if topic == events_topic {
                                if let Ok(v) = serde_json::from_slice::<Value>(&p.payload) {
                                    let _ = events.send(v);
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            if let Some(r) = ready.take() {
                                let _ = r.send(Err(e.to_string()));
                                return;
                            }
                            failures += 1;
                            let wait = super::backoff(
                                failures,
                                Duration::from_millis(200),
                                Duration::from_secs(5),
                                0.5,
                            );
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            })
        };
        match tokio::time::timeout(within, ready_rx).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(reason))) => {
                task.abort();
                return Err(ClientError::Connect { broker, reason });
            }
            Ok(Err(_)) | Err(_) => {
                task.abort();
                return Err(ClientError::Connect {
                    broker,
                    reason: format!("no answer within {within:?}"),
                });
            }
        }
        Ok(ApiClient {
            client,
            topics,
            reply_topic,
            waiting,
            events,
            task,
            timeout: Duration::from_secs(30),
        })
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// One request with a JSON body.
    pub async fn request(&self, route: &str, body: &Value) -> Result<Reply, ClientError> {
        self.request_raw(route, Bytes::from(body.to_string()), &[])
            .await
    }

    /// One request with a raw payload and user properties (an `idempotency-key`, say).
    pub async fn request_raw(
        &self,
        route: &str,
        payload: Bytes,
        user_properties: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        let corr = Bytes::from(Uuid::new_v4().as_bytes().to_vec());
        self.request_correlated(route, payload, user_properties, corr)
            .await
    }

    /// One request with the correlation data given (tests send the same one twice).
    pub async fn request_correlated(
        &self,
        route: &str,
        payload: Bytes,
        user_properties: &[(&str, &str)],
        corr: Bytes,
    ) -> Result<Reply, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(corr.clone(), tx);
        self.send(route, payload, user_properties, Some(corr.clone()), false)
            .await?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(ClientError::Closed("the answer was dropped".into())),
            Err(_) => {
                self.waiting
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&corr);
                Err(ClientError::Timeout {
                    hub: self.topics.hub().to_string(),
                    within: self.timeout,
                })
            }
        }
    }

    /// The answer with this correlation data, when it comes (at most `within`). Call it
    /// before [`ApiClient::send`]: an answer that comes before anyone waits for it is dropped.
    pub fn expect(
        &self,
        corr: Bytes,
        within: Duration,
    ) -> impl std::future::Future<Output = Option<Reply>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(corr, tx);
        async move { tokio::time::timeout(within, rx).await.ok()?.ok() }
    }

    /// Publish a request without waiting for its answer: `corr` None sends it without a
    /// response topic; `retain` publishes it retained (which the hub must ignore).
    pub async fn send(
        &self,
        route: &str,
        payload: Bytes,
        user_properties: &[(&str, &str)],
        corr: Option<Bytes>,
        retain: bool,
    ) -> Result<(), ClientError> {
        let props = PublishProperties {
            response_topic: corr.as_ref().map(|_| self.reply_topic.clone()),
            correlation_data: corr,
            user_properties: user_properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            content_type: Some("application/json".into()),
            ..Default::default()
        };
        self.client
            .publish_with_properties(
                self.topics.api(route),
                QoS::AtLeastOnce,
                retain,
                payload,
                props,
            )
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))
    }

    /// The hub's events from now on.
    pub async fn events(&self) -> Result<broadcast::Receiver<Value>, ClientError> {
        let rx = self.events.subscribe();
        self.client
            .subscribe(self.topics.events(), QoS::AtLeastOnce)
            .await
            .map_err(|e| ClientError::Closed(e.to_string()))?;
        Ok(rx)
    }

    /// Leave cleanly.
    pub async fn close(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
