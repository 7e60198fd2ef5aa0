//! Bringing up the controller: clear the line, soft reset, and read what the stick is and
//! which nodes it knows (protocol.md 1.3).

use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use super::{DriverError, NotConnected};
use crate::serial::link::LinkHandle;
use crate::serialapi::controller::{
    NodeProtocolInfo, SerialApiCapabilities, SetupRequest, SetupResponse, SETUP_TX_STATUS_REPORT,
};
use crate::serialapi::session::{SessionEvent, SessionHandle};
use crate::serialapi::{FunctionId, HostRequest, NodeId, StickRequest, StickResponse};

/// What the stick told us at startup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ControllerInfo {
    pub home_id: u32,
    pub node_id: NodeId,
    pub library: String,
    pub library_type: u8,
    pub manufacturer_id: u16,
    pub product_type: u16,
    pub product_id: u16,
    /// Function ids the stick advertises.
    pub functions: Vec<u8>,
    /// SerialApiSetup subcommands it supports.
    pub setup_commands: Vec<u8>,
    /// SendData callbacks carry a TX status report.
    pub tx_status_reports: bool,
    pub capabilities_flags: u8,
    /// The nodes in the network other than the stick itself, with their protocol info.
    #[serde(skip)]
    pub nodes: Vec<(NodeId, NodeProtocolInfo)>,
}

impl ControllerInfo {
    pub fn supports(&self, f: FunctionId) -> bool {
        self.functions.contains(&f.to_byte())
    }
}

/// How startup behaves.
#[derive(Debug, Clone)]
pub struct StartupConfig {
    pub soft_reset: bool,
    /// How long to wait for SerialApiStarted after a soft reset.
    pub soft_reset_wait: Duration,
}

impl Default for StartupConfig {
    fn default() -> Self {
        StartupConfig {
            soft_reset: true,
            soft_reset_wait: Duration::from_millis(1500),
        }
    }
}

async fn ask(session: &SessionHandle, req: HostRequest) -> Result<StickResponse, DriverError> {
    let what = req.function().name().unwrap_or("request");
    session
        .request(req)
        .await
        .map_err(|e| DriverError::session(what, e))?
        .response
        .ok_or_else(|| DriverError::UnexpectedAnswer {
            context: what,
            answer: "no response".into(),
        })
}

/// Run the startup sequence. Frames that arrive meanwhile and are not part of it are
/// returned so they can be handled once the driver runs.
pub async fn run(
    link: &LinkHandle,
    session: &SessionHandle,
    events: &mut mpsc::Receiver<SessionEvent>,
    cfg: &StartupConfig,
) -> Result<(ControllerInfo, Vec<SessionEvent>), DriverError> {
    let mut held = Vec::new();
    link.send_nak()
        .await
        .map_err(|e| DriverError::link("NAK", e))?;
    if cfg.soft_reset {
        session
            .request(HostRequest::SoftReset)
            .await
            .map_err(|e| DriverError::session("SoftReset", e))?;
        link.accept_sloppy_ack().await;
        let deadline = tokio::time::Instant::now() + cfg.soft_reset_wait;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(SessionEvent::Unsolicited(StickRequest::SerialApiStarted(_)))) => break,
                Ok(Some(SessionEvent::Closed { reason })) => {
                    return Err(DriverError::not_connected(NotConnected::LinkLost {
                        reason,
                    }))
                }
                Ok(Some(other)) => held.push(other),
                // No SerialApiStarted (older sticks, some simulators): the next request polls.
                Ok(None) | Err(_) => break,
            }
        }
    }
    let caps = match ask(session, HostRequest::GetSerialApiCapabilities).await? {
        StickResponse::GetSerialApiCapabilities(c) => c,
        other => return Err(unexpected("GetSerialApiCapabilities", &other)),
    };
    let version = match ask(session, HostRequest::GetControllerVersion).await? {
        StickResponse::GetControllerVersion(v) => v,
        other => return Err(unexpected("GetControllerVersion", &other)),
    };
    let id = match ask(session, HostRequest::GetControllerId).await? {
        StickResponse::GetControllerId(id) => id,
        other => return Err(unexpected("GetControllerId", &other)),
    };
    let supports = |f: FunctionId| caps.supports(f.to_byte());
    let mut setup_commands = Vec::new();
    let mut tx_status_reports = false;
    if supports(FunctionId::SerialApiSetup) {
        // A stick that advertises SerialApiSetup but does not answer it is tolerated.
        if let Ok(StickResponse::SerialApiSetup(SetupResponse::GetSupportedCommands {
            supported,
        })) = ask(
            session,
            HostRequest::SerialApiSetup(SetupRequest::GetSupportedCommands),
        )
        .await
        {
            setup_commands = supported;
        }
        if setup_commands.contains(&SETUP_TX_STATUS_REPORT) {
            if let Ok(StickResponse::SerialApiSetup(SetupResponse::SetTxStatusReport { success })) =
                ask(
                    session,
                    HostRequest::SerialApiSetup(SetupRequest::SetTxStatusReport { enable: true }),
                )
                .await
            {
                tx_status_reports = success;
            }
        }
    }
    let capabilities_flags = if supports(FunctionId::GetControllerCapabilities) {
        match ask(session, HostRequest::GetControllerCapabilities).await? {
            StickResponse::GetControllerCapabilities { flags } => flags,
            _ => 0,
        }
    } else {
        0
    };
    let init = match ask(session, HostRequest::GetSerialApiInitData).await? {
        StickResponse::GetSerialApiInitData(d) => d,
        other => return Err(unexpected("GetSerialApiInitData", &other)),
    };
    let mut nodes = Vec::new();
    for n in init.nodes.iter().filter(|n| **n != id.node_id) {
        match ask(session, HostRequest::GetNodeProtocolInfo { node_id: *n }).await? {
            StickResponse::GetNodeProtocolInfo(p) if !p.is_unknown_node() => nodes.push((*n, p)),
            _ => {}
        }
    }
    let info = ControllerInfo {
        home_id: id.home_id,
        node_id: id.node_id,
        library: version.library,
        library_type: version.library_type,
        manufacturer_id: caps.manufacturer_id,
        product_type: caps.product_type,
        product_id: caps.product_id,
        functions: SerialApiCapabilities::supported_functions(&caps),
        setup_commands,
        tx_status_reports,
        capabilities_flags,
        nodes,
    };
    // Frames that arrived during startup go to the driver afterwards.
    while let Ok(ev) = events.try_recv() {
        held.push(ev);
    }
    Ok((info, held))
}

fn unexpected(what: &'static str, got: &StickResponse) -> DriverError {
    DriverError::UnexpectedAnswer {
        context: what,
        answer: format!("{:?}", got.function()),
    }
}
