//! A small control socket so people and scripts can act on a running simulation (the demo
//! daemon runs its simulator in process): one JSON object per line in, one per line out.
//!
//! ```text
//! {"network":"demo","node":5,"action":"enter","pin":"1234"}   → {"ok":true,"unlocked":true}
//! {"network":"demo","node":5,"action":"program","slot":3,"pin":"2468"}
//! {"network":"demo","node":5,"action":"delete","slot":3}
//! {"network":"demo","node":5,"action":"factory_reset"}
//! {"network":"demo","node":5,"action":"out_of_range"} / "in_range"
//! {"network":"demo","node":5,"action":"battery","level":5}
//! {"network":"demo","action":"unplug"} / "plug"
//! {"network":"demo","action":"faults","faults":{"nak_host_frame":0.1,"drop_callback":0.2}}
//! {"network":"demo","node":5,"action":"show"}                  → {"ok":true,"lock":{…}}
//! ```
//!
//! `faults` replaces the network's link faults with the object given (a [`Faults`], absent
//! fields 0); `"faults":{}` stops them all. A bad object changes nothing.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::{Faults, KeypadAction, NetworkModel, SimConfig, Simulator};

/// A request on the control socket.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ControlRequest {
    pub network: String,
    #[serde(default)]
    pub node: Option<u8>,
    pub action: String,
    #[serde(default)]
    pub pin: Option<String>,
    #[serde(default)]
    pub slot: Option<u16>,
    #[serde(default)]
    pub level: Option<u8>,
    /// For `faults`: the [`Faults`] to inject, as a JSON object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<serde_json::Value>,
}

/// Carry out one request.
pub async fn execute(sim: &Simulator, req: &ControlRequest) -> serde_json::Value {
    match try_execute(sim, req).await {
        Ok(v) => v,
        Err(e) => serde_json::json!({ "ok": false, "error": e }),
    }
}

async fn try_execute(sim: &Simulator, req: &ControlRequest) -> Result<serde_json::Value, String> {
    let net = sim
        .network(&req.network)
        .ok_or_else(|| format!("no simulated network '{}'", req.network))?;
    let node = || {
        req.node
            .ok_or_else(|| format!("action '{}' needs a node", req.action))
    };
    let pin = || {
        req.pin
            .clone()
            .ok_or_else(|| format!("action '{}' needs a pin", req.action))
    };
    let slot = || {
        req.slot
            .ok_or_else(|| format!("action '{}' needs a slot", req.action))
    };
    let keypad = |a| async { net.keypad(node()?, a).await.map_err(|e| e.to_string()) };
    let done = serde_json::json!({ "ok": true });
    Ok(match req.action.as_str() {
        "enter" => {
            let unlocked = keypad(KeypadAction::Enter { pin: pin()? }).await?;
            serde_json::json!({ "ok": true, "unlocked": unlocked })
        }
        "program" => {
            keypad(KeypadAction::Program {
                slot: slot()?,
                pin: pin()?,
            })
            .await?;
            done
        }
        "delete" => {
            keypad(KeypadAction::Delete { slot: slot()? }).await?;
            done
        }
        "button" => {
            let what = net.press_button(node()?).await.map_err(|e| e.to_string())?;
            serde_json::json!({ "ok": true, "result": what })
        }
        "power_cycle" => {
            keypad(KeypadAction::PowerCycle).await?;
            done
        }
        "factory_reset" => {
            keypad(KeypadAction::FactoryReset).await?;
            done
        }
        "external_write" => {
            keypad(KeypadAction::ExternalWrite {
                slot: slot()?,
                pin: req.pin.clone(),
            })
            .await?;
            done
        }
        "out_of_range" | "in_range" => {
            net.set_in_range(node()?, req.action == "in_range")
                .await
                .map_err(|e| e.to_string())?;
            done
        }
        "battery" => {
            let level = req.level.ok_or("action 'battery' needs a level")?;
            net.set_battery(node()?, level)
                .await
                .map_err(|e| e.to_string())?;
            done
        }
        "unplug" => {
            net.unplug().await.map_err(|e| e.to_string())?;
            done
        }
        "plug" => {
            net.plug().await.map_err(|e| e.to_string())?;
            done
        }
        "faults" => {
            let given = req
                .faults
                .clone()
                .ok_or("action 'faults' needs faults, an object such as {\"drop_byte\":0.01}")?;
            net.set_faults(checked_faults(&req.network, given)?)
                .await
                .map_err(|e| e.to_string())?;
            done
        }
        "show" => {
            let snap = net
                .snapshot(node()?)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no such node")?;
            serde_json::json!({ "ok": true, "lock": snap })
        }
        other => return Err(format!("unknown action '{other}'")),
    })
}

/// Read a [`Faults`] object and check it as a network description's faults are checked (every
/// probability within 0-1), so the two never disagree on what is valid.
fn checked_faults(network: &str, given: serde_json::Value) -> Result<Faults, String> {
    let model: NetworkModel =
        serde_json::from_value(serde_json::json!({ "name": network, "faults": given }))
            .map_err(|e| format!("faults: {e}"))?;
    let faults = model.faults.clone();
    SimConfig {
        network: vec![model],
    }
    .validate()
    .map_err(|e| e.to_string())?;
    Ok(faults)
}

/// Serve the control socket at `path` until the task is dropped. A stale socket file is
/// replaced; the file is created with mode 0600.
pub async fn serve(sim: Simulator, path: &Path) -> std::io::Result<()> {
    if path.exists() {
        // Only replace a socket nobody answers on.
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by another process", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let sim = sim.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = match serde_json::from_str::<ControlRequest>(&line) {
                    Ok(req) => execute(&sim, &req).await,
                    Err(e) => {
                        serde_json::json!({ "ok": false, "error": format!("bad request: {e}") })
                    }
                };
                if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// Send one request to a control socket and return the answer.
pub async fn request(path: &Path, req: &ControlRequest) -> std::io::Result<serde_json::Value> {
    let stream = UnixStream::connect(path).await?;
    let (r, mut w) = stream.into_split();
    let line = serde_json::to_string(req).map_err(std::io::Error::other)?;
    w.write_all(format!("{line}\n").as_bytes()).await?;
    let mut lines = BufReader::new(r).lines();
    let answer = lines
        .next_line()
        .await?
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no answer"))?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sim() -> Simulator {
        Simulator::new(
            SimConfig::from_toml("[[network]]\nname = \"t\"\n[[network.lock]]\nnode_id = 5\n")
                .unwrap(),
        )
    }

    fn req(faults: Option<serde_json::Value>) -> ControlRequest {
        ControlRequest {
            network: "t".into(),
            action: "faults".into(),
            faults,
            ..Default::default()
        }
    }

    /// Whether the stick answers a GetVersion frame with ACK within a second.
    async fn acks(sim: &Simulator) -> bool {
        let mut s = sim.network("t").unwrap().connect().unwrap();
        s.write_all(&[0x01, 0x03, 0x00, 0x15, 0xE9]).await.unwrap();
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(std::time::Duration::from_secs(1), s.read(&mut b)).await,
            Ok(Ok(1)) if b[0] == crate::serial::frame::ACK
        )
    }

    #[tokio::test(start_paused = true)]
    async fn faults_are_applied_and_cleared() {
        let sim = sim();
        assert!(acks(&sim).await);
        let on = execute(&sim, &req(Some(serde_json::json!({ "drop_byte": 1.0 })))).await;
        assert_eq!(on, serde_json::json!({ "ok": true }));
        assert!(!acks(&sim).await, "every byte to the host is dropped");
        let off = execute(&sim, &req(Some(serde_json::json!({})))).await;
        assert_eq!(off["ok"], true);
        assert!(acks(&sim).await, "an empty object stops the faults");
    }

    #[tokio::test(start_paused = true)]
    async fn bad_faults_are_refused_with_the_field_and_change_nothing() {
        let sim = sim();
        for (faults, needle) in [
            (Some(serde_json::json!({ "drop_byte": 2.0 })), "drop_byte"),
            (Some(serde_json::json!({ "colour": 1 })), "colour"),
            (Some(serde_json::json!(0.5)), "faults"),
            (None, "needs faults"),
        ] {
            let v = execute(&sim, &req(faults.clone())).await;
            assert_eq!(v["ok"], false, "{faults:?}");
            let e = v["error"].as_str().unwrap();
            assert!(e.contains(needle), "{faults:?}: {e}");
            assert!(acks(&sim).await, "{faults:?} changed the faults");
        }
    }

    #[test]
    fn a_request_line_with_faults_parses() {
        let r: ControlRequest = serde_json::from_str(
            r#"{"network":"t","action":"faults","faults":{"busy_send_data":0.3}}"#,
        )
        .unwrap();
        assert_eq!(r.faults, Some(serde_json::json!({ "busy_send_data": 0.3 })));
        // Requests without faults serialize as before.
        let plain = ControlRequest {
            network: "t".into(),
            action: "show".into(),
            node: Some(5),
            ..Default::default()
        };
        assert!(!serde_json::to_string(&plain).unwrap().contains("faults"));
    }
}
