//! Adding and removing locks: inclusion (with S2 key exchange and the PIN printed on the
//! lock), exclusion, and removal of a failed lock, each an action attempt that ends when the
//! driver is done, with its progress as `zwave.inclusion.*` events.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::ctx::Ctx;
use super::error::EngineError;
use super::intents::attempt;
use super::model;
use crate::driver::{DriverError, DriverHandle, InclusionEvent};
use crate::security::SecurityClass;
use crate::serialapi::NodeId;
use crate::store::{AttemptRow, StoreError};

/// `POST /zwave/include`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncludeRequest {
    /// The 5 digits printed on the lock (its DSK PIN), for S2 Authenticated / Access Control.
    #[serde(default)]
    pub pin: Option<String>,
    /// How long learn mode waits for the lock's button, in seconds (10-600, default 60).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// "s2_access_control" (default): a lock that does not ask for Access Control is refused;
    /// "none": whatever the lock asks for.
    #[serde(default)]
    pub required_security: Option<String>,
}

fn parse_pin(pin: &str) -> Result<u16, EngineError> {
    let ok = pin.len() == 5 && pin.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| pin.parse::<u32>().ok())
        .flatten()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| {
            EngineError::invalid("pin", "the 5 digits printed on the lock (00000-65535)")
        })
}

fn timeout(secs: Option<u64>) -> Result<Duration, EngineError> {
    match secs.unwrap_or(60) {
        s @ 10..=600 => Ok(Duration::from_secs(s)),
        _ => Err(EngineError::invalid(
            "timeout_seconds",
            "between 10 and 600",
        )),
    }
}

/// What an attempt's error says, by kind of failure.
fn error_json(e: &DriverError) -> Value {
    let kind = match e {
        DriverError::Security { reason, .. } if reason.contains("wrong PIN") => "wrong_pin",
        DriverError::Security { .. } => "security_failed",
        DriverError::Disconnected { .. } => "hub_disconnected",
        e if e.is_timeout() => "timeout",
        _ => "failed",
    };
    json!({ "type": kind, "message": e.to_string() })
}

fn finish_attempt(ctx: &Ctx, mut a: AttemptRow, result: Result<Value, Value>) {
    let now = ctx.now();
    match result {
        Ok(v) => {
            a.status = "success".into();
            a.result = Some(v);
        }
        Err(e) => {
            a.status = "error".into();
            a.error = Some(e);
        }
    }
    a.updated_at = now;
    let r: Result<(), StoreError> = ctx.repo.write(|tx| tx.put_attempt(&a));
    if let Err(e) = r {
        tracing::error!(error = %e, "could not record an inclusion result");
    }
}

/// Forward inclusion progress as events until the channel closes.
fn relay_progress(ctx: &Arc<Ctx>, mut rx: mpsc::Receiver<InclusionEvent>) {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            let payload = serde_json::to_value(&ev).unwrap_or(Value::Null);
            let step = payload["step"].as_str().unwrap_or("progress").to_string();
            let _ = ctx.record(&format!("zwave.inclusion.{step}"), None, None, payload);
        }
    });
}

/// A pending action attempt of `action` that ends with `work` (its node id, or why not).
fn attempt_for(
    ctx: &Arc<Ctx>,
    action: &str,
    work: impl std::future::Future<Output = Result<NodeId, DriverError>> + Send + 'static,
) -> Result<Value, EngineError> {
    let now = ctx.now();
    let attempt = ctx
        .repo
        .write(|tx| attempt(tx, action, "pending", None, &now))?;
    let c = ctx.clone();
    let a = attempt.clone();
    tokio::spawn(async move {
        let r = work.await;
        let result = r
            .as_ref()
            .map(|n| json!({ "node_id": n.0 }))
            .map_err(error_json);
        finish_attempt(&c, a, result);
    });
    Ok(model::attempt_json(&attempt))
}

fn connected(ctx: &Ctx) -> Result<(), EngineError> {
    if ctx.hub_connected() {
        Ok(())
    } else {
        Err(EngineError::NotConnected(
            "the Z-Wave stick is not connected".into(),
        ))
    }
}

/// Open learn mode for a lock to join; a pending INCLUDE_DEVICE action attempt.
pub(super) fn include(
    ctx: &Arc<Ctx>,
    driver: &DriverHandle,
    req: IncludeRequest,
) -> Result<Value, EngineError> {
    let pin = req.pin.as_deref().map(parse_pin).transpose()?;
    let timeout = timeout(req.timeout_seconds)?;
    let required = match req
        .required_security
        .as_deref()
        .unwrap_or("s2_access_control")
    {
        "s2_access_control" => Some(SecurityClass::S2AccessControl),
        "none" => None,
        _ => {
            return Err(EngineError::invalid(
                "required_security",
                "s2_access_control or none",
            ))
        }
    };
    connected(ctx)?;
    let (tx, rx) = mpsc::channel(32);
    relay_progress(ctx, rx);
    let driver = driver.clone();
    attempt_for(ctx, "INCLUDE_DEVICE", async move {
        driver.include(pin, required, timeout, tx).await
    })
}

/// Open learn mode for a lock to leave; a pending EXCLUDE_DEVICE action attempt.
pub(super) fn exclude(
    ctx: &Arc<Ctx>,
    driver: &DriverHandle,
    timeout_seconds: Option<u64>,
) -> Result<Value, EngineError> {
    let timeout = timeout(timeout_seconds)?;
    connected(ctx)?;
    let (tx, rx) = mpsc::channel(32);
    relay_progress(ctx, rx);
    let driver = driver.clone();
    attempt_for(ctx, "EXCLUDE_DEVICE", async move {
        driver.exclude(timeout, tx).await
    })
}

/// Remove a lock that no longer answers; a pending REMOVE_FAILED_DEVICE attempt.
pub(super) fn remove_failed(
    ctx: &Arc<Ctx>,
    driver: &DriverHandle,
    device_id: &Uuid,
) -> Result<Value, EngineError> {
    let device = super::queries::device_row(ctx, device_id)?;
    connected(ctx)?;
    let driver = driver.clone();
    attempt_for(ctx, "REMOVE_FAILED_DEVICE", async move {
        driver.remove_failed(NodeId(device.node_id)).await
    })
}
