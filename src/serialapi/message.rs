//! Serial API messages by direction and frame type.
//!
//! * [`HostRequest`]: REQ frames the host sends to the stick;
//! * [`StickResponse`]: RES frames, the synchronous answers;
//! * [`StickRequest`]: REQ frames the stick sends on its own (callbacks, node commands, updates).
//!
//! Each has `parse(&DataFrame, NodeIdType)` and `encode(NodeIdType) -> DataFrame`. Function ids
//! that are not modelled are kept as `Other` so nothing is ever dropped unseen.

use bytes::Bytes;
use serde::Serialize;

use super::application::{ApplicationCommand, ApplicationUpdate, BridgeApplicationCommand};
use super::controller::{
    ControllerId, ControllerVersion, InitData, NodeProtocolInfo, SerialApiCapabilities,
    SerialApiStarted, SetupRequest, SetupResponse,
};
use super::error::{parse_with, SerialApiError};
use super::function::FunctionId;
use super::network::{InclusionRequest, InclusionStatus, RemoveFailedNodeStatus};
use super::node_id::{node_id, put_node_id, NodeId, NodeIdType};
use super::transmit::{
    check_node_id, parse_flag, SendDataBridgeRequest, SendDataCallback, SendDataRequest,
};
use crate::serial::frame::{DataFrame, FrameType};

use nom::number::complete::be_u8;

/// A request from the host to the stick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRequest {
    GetSerialApiCapabilities,
    GetSerialApiInitData,
    GetControllerCapabilities,
    GetControllerVersion,
    GetControllerId,
    SerialApiSetup(SetupRequest),
    SoftReset,
    GetNodeProtocolInfo { node_id: NodeId },
    SendData(SendDataRequest),
    SendDataBridge(SendDataBridgeRequest),
    SendDataAbort,
    RequestNodeInfo { node_id: NodeId },
    AddNodeToNetwork(InclusionRequest),
    RemoveNodeFromNetwork(InclusionRequest),
    IsFailedNode { node_id: NodeId },
    RemoveFailedNode { node_id: NodeId, callback_id: u8 },
    Other { function: u8, payload: Vec<u8> },
}

impl HostRequest {
    pub fn function(&self) -> FunctionId {
        use FunctionId as F;
        match self {
            HostRequest::GetSerialApiCapabilities => F::GetSerialApiCapabilities,
            HostRequest::GetSerialApiInitData => F::GetSerialApiInitData,
            HostRequest::GetControllerCapabilities => F::GetControllerCapabilities,
            HostRequest::GetControllerVersion => F::GetControllerVersion,
            HostRequest::GetControllerId => F::GetControllerId,
            HostRequest::SerialApiSetup(_) => F::SerialApiSetup,
            HostRequest::SoftReset => F::SoftReset,
            HostRequest::GetNodeProtocolInfo { .. } => F::GetNodeProtocolInfo,
            HostRequest::SendData(_) => F::SendData,
            HostRequest::SendDataBridge(_) => F::SendDataBridge,
            HostRequest::SendDataAbort => F::SendDataAbort,
            HostRequest::RequestNodeInfo { .. } => F::RequestNodeInfo,
            HostRequest::AddNodeToNetwork(_) => F::AddNodeToNetwork,
            HostRequest::RemoveNodeFromNetwork(_) => F::RemoveNodeFromNetwork,
            HostRequest::IsFailedNode { .. } => F::IsFailedNode,
            HostRequest::RemoveFailedNode { .. } => F::RemoveFailedNode,
            HostRequest::Other { function, .. } => FunctionId::from_byte(*function),
        }
    }

    /// Whether the stick answers this request with a RES frame.
    pub fn expects_response(&self) -> bool {
        !matches!(
            self,
            HostRequest::SoftReset
                | HostRequest::SendDataAbort
                | HostRequest::AddNodeToNetwork(_)
                | HostRequest::RemoveNodeFromNetwork(_)
        )
    }

    /// The callback id of a request that is answered later by a callback, if any.
    pub fn callback_id(&self) -> Option<u8> {
        let id = match self {
            HostRequest::SendData(r) => r.callback_id,
            HostRequest::SendDataBridge(r) => r.callback_id,
            HostRequest::AddNodeToNetwork(r) | HostRequest::RemoveNodeFromNetwork(r) => {
                r.callback_id
            }
            HostRequest::RemoveFailedNode { callback_id, .. } => *callback_id,
            _ => return None,
        };
        (id != 0).then_some(id)
    }

    pub fn encode(&self, ty: NodeIdType) -> Result<DataFrame, SerialApiError> {
        let mut p = Vec::new();
        match self {
            HostRequest::GetSerialApiCapabilities
            | HostRequest::GetSerialApiInitData
            | HostRequest::GetControllerCapabilities
            | HostRequest::GetControllerVersion
            | HostRequest::GetControllerId
            | HostRequest::SoftReset
            | HostRequest::SendDataAbort => {}
            HostRequest::SerialApiSetup(s) => s.encode(&mut p),
            HostRequest::GetNodeProtocolInfo { node_id }
            | HostRequest::RequestNodeInfo { node_id }
            | HostRequest::IsFailedNode { node_id } => {
                check_node_id(*node_id, ty)?;
                put_node_id(&mut p, ty, *node_id);
            }
            HostRequest::SendData(r) => r.encode(&mut p, ty)?,
            HostRequest::SendDataBridge(r) => r.encode(&mut p, ty)?,
            HostRequest::AddNodeToNetwork(r) | HostRequest::RemoveNodeFromNetwork(r) => {
                r.encode(&mut p)
            }
            HostRequest::RemoveFailedNode {
                node_id,
                callback_id,
            } => {
                check_node_id(*node_id, ty)?;
                put_node_id(&mut p, ty, *node_id);
                p.push(*callback_id);
            }
            HostRequest::Other { payload, .. } => p.extend_from_slice(payload),
        }
        Ok(DataFrame::request(
            self.function().to_byte(),
            Bytes::from(p),
        ))
    }

    pub fn parse(frame: &DataFrame, ty: NodeIdType) -> Result<Self, SerialApiError> {
        let p = &frame.payload[..];
        let node = |message| parse_with(message, p, node_id(ty));
        use FunctionId as F;
        Ok(match FunctionId::from_byte(frame.function) {
            F::GetSerialApiCapabilities => HostRequest::GetSerialApiCapabilities,
            F::GetSerialApiInitData => HostRequest::GetSerialApiInitData,
            F::GetControllerCapabilities => HostRequest::GetControllerCapabilities,
            F::GetControllerVersion => HostRequest::GetControllerVersion,
            F::GetControllerId => HostRequest::GetControllerId,
            F::SerialApiSetup => HostRequest::SerialApiSetup(SetupRequest::parse(p)?),
            F::SoftReset => HostRequest::SoftReset,
            F::GetNodeProtocolInfo => HostRequest::GetNodeProtocolInfo {
                node_id: node("GetNodeProtocolInfo")?,
            },
            F::SendData => HostRequest::SendData(SendDataRequest::parse(p, ty)?),
            F::SendDataBridge => HostRequest::SendDataBridge(SendDataBridgeRequest::parse(p, ty)?),
            F::SendDataAbort => HostRequest::SendDataAbort,
            F::RequestNodeInfo => HostRequest::RequestNodeInfo {
                node_id: node("RequestNodeInfo")?,
            },
            F::AddNodeToNetwork => {
                HostRequest::AddNodeToNetwork(InclusionRequest::parse("AddNodeToNetwork", p)?)
            }
            F::RemoveNodeFromNetwork => HostRequest::RemoveNodeFromNetwork(
                InclusionRequest::parse("RemoveNodeFromNetwork", p)?,
            ),
            F::IsFailedNode => HostRequest::IsFailedNode {
                node_id: node("IsFailedNode")?,
            },
            F::RemoveFailedNode => parse_with("RemoveFailedNode", p, |i| {
                let (i, node_id) = node_id(ty)(i)?;
                let (i, callback_id) = be_u8(i)?;
                Ok((
                    i,
                    HostRequest::RemoveFailedNode {
                        node_id,
                        callback_id,
                    },
                ))
            })?,
            _ => HostRequest::Other {
                function: frame.function,
                payload: p.to_vec(),
            },
        })
    }
}

/// A RES frame from the stick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum StickResponse {
    GetSerialApiCapabilities(SerialApiCapabilities),
    GetSerialApiInitData(InitData),
    GetControllerCapabilities {
        flags: u8,
    },
    GetControllerVersion(ControllerVersion),
    GetControllerId(ControllerId),
    SerialApiSetup(SetupResponse),
    GetNodeProtocolInfo(NodeProtocolInfo),
    /// SendData / SendDataBridge: true = queued for transmission, false = busy.
    SendData {
        accepted: bool,
    },
    SendDataBridge {
        accepted: bool,
    },
    RequestNodeInfo {
        success: bool,
    },
    IsFailedNode {
        failed: bool,
    },
    RemoveFailedNode {
        start_flags: u8,
    },
    Other {
        function: u8,
        payload: Vec<u8>,
    },
}

impl StickResponse {
    pub fn function(&self) -> FunctionId {
        use FunctionId as F;
        match self {
            StickResponse::GetSerialApiCapabilities(_) => F::GetSerialApiCapabilities,
            StickResponse::GetSerialApiInitData(_) => F::GetSerialApiInitData,
            StickResponse::GetControllerCapabilities { .. } => F::GetControllerCapabilities,
            StickResponse::GetControllerVersion(_) => F::GetControllerVersion,
            StickResponse::GetControllerId(_) => F::GetControllerId,
            StickResponse::SerialApiSetup(_) => F::SerialApiSetup,
            StickResponse::GetNodeProtocolInfo(_) => F::GetNodeProtocolInfo,
            StickResponse::SendData { .. } => F::SendData,
            StickResponse::SendDataBridge { .. } => F::SendDataBridge,
            StickResponse::RequestNodeInfo { .. } => F::RequestNodeInfo,
            StickResponse::IsFailedNode { .. } => F::IsFailedNode,
            StickResponse::RemoveFailedNode { .. } => F::RemoveFailedNode,
            StickResponse::Other { function, .. } => FunctionId::from_byte(*function),
        }
    }

    pub fn encode(&self, ty: NodeIdType) -> Result<DataFrame, SerialApiError> {
        let mut p = Vec::new();
        match self {
            StickResponse::GetSerialApiCapabilities(c) => c.encode(&mut p),
            StickResponse::GetSerialApiInitData(d) => d.encode(&mut p),
            StickResponse::GetControllerCapabilities { flags } => p.push(*flags),
            StickResponse::GetControllerVersion(v) => v.encode(&mut p),
            StickResponse::GetControllerId(id) => {
                check_node_id(id.node_id, ty)?;
                id.encode(&mut p, ty)
            }
            StickResponse::SerialApiSetup(s) => s.encode(&mut p),
            StickResponse::GetNodeProtocolInfo(n) => n.encode(&mut p),
            StickResponse::SendData { accepted } | StickResponse::SendDataBridge { accepted } => {
                p.push(u8::from(*accepted))
            }
            StickResponse::RequestNodeInfo { success } => p.push(u8::from(*success)),
            StickResponse::IsFailedNode { failed } => p.push(u8::from(*failed)),
            StickResponse::RemoveFailedNode { start_flags } => p.push(*start_flags),
            StickResponse::Other { payload, .. } => p.extend_from_slice(payload),
        }
        Ok(DataFrame::response(
            self.function().to_byte(),
            Bytes::from(p),
        ))
    }

    pub fn parse(frame: &DataFrame, ty: NodeIdType) -> Result<Self, SerialApiError> {
        let p = &frame.payload[..];
        use FunctionId as F;
        Ok(match FunctionId::from_byte(frame.function) {
            F::GetSerialApiCapabilities => {
                StickResponse::GetSerialApiCapabilities(SerialApiCapabilities::parse(p)?)
            }
            F::GetSerialApiInitData => StickResponse::GetSerialApiInitData(InitData::parse(p)?),
            F::GetControllerCapabilities => StickResponse::GetControllerCapabilities {
                flags: parse_with("GetControllerCapabilities", p, be_u8)?,
            },
            F::GetControllerVersion => {
                StickResponse::GetControllerVersion(ControllerVersion::parse(p)?)
            }
            F::GetControllerId => StickResponse::GetControllerId(ControllerId::parse(p, ty)?),
            F::SerialApiSetup => StickResponse::SerialApiSetup(SetupResponse::parse(p)?),
            F::GetNodeProtocolInfo => {
                StickResponse::GetNodeProtocolInfo(NodeProtocolInfo::parse(p)?)
            }
            F::SendData => StickResponse::SendData {
                accepted: parse_flag("SendData", p)?,
            },
            F::SendDataBridge => StickResponse::SendDataBridge {
                accepted: parse_flag("SendDataBridge", p)?,
            },
            F::RequestNodeInfo => StickResponse::RequestNodeInfo {
                success: parse_flag("RequestNodeInfo", p)?,
            },
            F::IsFailedNode => StickResponse::IsFailedNode {
                failed: parse_flag("IsFailedNode", p)?,
            },
            F::RemoveFailedNode => StickResponse::RemoveFailedNode {
                start_flags: parse_with("RemoveFailedNode", p, be_u8)?,
            },
            _ => StickResponse::Other {
                function: frame.function,
                payload: p.to_vec(),
            },
        })
    }
}

/// A REQ frame the stick sends on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickRequest {
    SerialApiStarted(SerialApiStarted),
    SendDataCallback(SendDataCallback),
    SendDataBridgeCallback(SendDataCallback),
    ApplicationCommand(ApplicationCommand),
    BridgeApplicationCommand(BridgeApplicationCommand),
    ApplicationUpdate(ApplicationUpdate),
    AddNodeStatus(InclusionStatus),
    RemoveNodeStatus(InclusionStatus),
    RemoveFailedNodeStatus(RemoveFailedNodeStatus),
    Other { function: u8, payload: Vec<u8> },
}

impl StickRequest {
    pub fn function(&self) -> FunctionId {
        use FunctionId as F;
        match self {
            StickRequest::SerialApiStarted(_) => F::SerialApiStarted,
            StickRequest::SendDataCallback(_) => F::SendData,
            StickRequest::SendDataBridgeCallback(_) => F::SendDataBridge,
            StickRequest::ApplicationCommand(_) => F::ApplicationCommandHandler,
            StickRequest::BridgeApplicationCommand(_) => F::BridgeApplicationCommandHandler,
            StickRequest::ApplicationUpdate(_) => F::ApplicationUpdate,
            StickRequest::AddNodeStatus(_) => F::AddNodeToNetwork,
            StickRequest::RemoveNodeStatus(_) => F::RemoveNodeFromNetwork,
            StickRequest::RemoveFailedNodeStatus(_) => F::RemoveFailedNode,
            StickRequest::Other { function, .. } => FunctionId::from_byte(*function),
        }
    }

    /// The command a node sent, with its source, for either handler variant.
    pub fn node_command(&self) -> Option<(NodeId, &[u8])> {
        match self {
            StickRequest::ApplicationCommand(a) => Some((a.source, &a.command)),
            StickRequest::BridgeApplicationCommand(b) => Some((b.source, &b.command)),
            _ => None,
        }
    }

    pub fn encode(&self, ty: NodeIdType) -> Result<DataFrame, SerialApiError> {
        let mut p = Vec::new();
        match self {
            StickRequest::SerialApiStarted(s) => s.encode(&mut p),
            StickRequest::SendDataCallback(c) | StickRequest::SendDataBridgeCallback(c) => {
                c.encode(&mut p)
            }
            StickRequest::ApplicationCommand(a) => a.encode(&mut p, ty)?,
            StickRequest::BridgeApplicationCommand(b) => b.encode(&mut p, ty)?,
            StickRequest::ApplicationUpdate(u) => u.encode(&mut p, ty)?,
            StickRequest::AddNodeStatus(s) | StickRequest::RemoveNodeStatus(s) => {
                s.encode(&mut p, ty)?
            }
            StickRequest::RemoveFailedNodeStatus(s) => s.encode(&mut p),
            StickRequest::Other { payload, .. } => p.extend_from_slice(payload),
        }
        Ok(DataFrame::request(
            self.function().to_byte(),
            Bytes::from(p),
        ))
    }

    pub fn parse(frame: &DataFrame, ty: NodeIdType) -> Result<Self, SerialApiError> {
        let p = &frame.payload[..];
        use FunctionId as F;
        Ok(match FunctionId::from_byte(frame.function) {
            F::SerialApiStarted => StickRequest::SerialApiStarted(SerialApiStarted::parse(p)?),
            F::SendData => StickRequest::SendDataCallback(SendDataCallback::parse(p)?),
            F::SendDataBridge => StickRequest::SendDataBridgeCallback(SendDataCallback::parse(p)?),
            F::ApplicationCommandHandler => {
                StickRequest::ApplicationCommand(ApplicationCommand::parse(p, ty)?)
            }
            F::BridgeApplicationCommandHandler => {
                StickRequest::BridgeApplicationCommand(BridgeApplicationCommand::parse(p, ty)?)
            }
            F::ApplicationUpdate => {
                StickRequest::ApplicationUpdate(ApplicationUpdate::parse(p, ty)?)
            }
            F::AddNodeToNetwork => {
                StickRequest::AddNodeStatus(InclusionStatus::parse("AddNodeToNetwork", p, ty)?)
            }
            F::RemoveNodeFromNetwork => StickRequest::RemoveNodeStatus(InclusionStatus::parse(
                "RemoveNodeFromNetwork",
                p,
                ty,
            )?),
            F::RemoveFailedNode => {
                StickRequest::RemoveFailedNodeStatus(RemoveFailedNodeStatus::parse(p)?)
            }
            _ => StickRequest::Other {
                function: frame.function,
                payload: p.to_vec(),
            },
        })
    }
}

/// Any Serial API message, as seen on the wire in a known direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    HostRequest(HostRequest),
    Response(StickResponse),
    StickRequest(StickRequest),
}

/// Which side wrote a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Host,
    Stick,
}

impl Message {
    /// Parse a frame written by `origin`.
    pub fn parse(
        frame: &DataFrame,
        origin: Origin,
        ty: NodeIdType,
    ) -> Result<Self, SerialApiError> {
        match (frame.frame_type, origin) {
            (FrameType::Response, _) => StickResponse::parse(frame, ty).map(Message::Response),
            (_, Origin::Host) => HostRequest::parse(frame, ty).map(Message::HostRequest),
            (_, Origin::Stick) => StickRequest::parse(frame, ty).map(Message::StickRequest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serial::frame::parse_exact;
    use crate::serial::Frame;
    use crate::util::hex;

    fn frame(h: &str) -> DataFrame {
        match parse_exact(&hex::decode(h).unwrap()).unwrap() {
            Frame::Data(d) => d,
            other => panic!("{other:?}"),
        }
    }

    fn wire(f: &DataFrame) -> String {
        hex::encode(&f.to_bytes().unwrap())
    }

    #[test]
    fn host_request_vectors() {
        let ty = NodeIdType::Bits8;
        let cases = [
            "01030008f4",
            "01030007fb",
            "01030020dc",
            "0105000b02ff0c",
            "0105000b800273",
            "01030016ea",
            "0109001303020000250bca",
            "010a001303038e020425400b",
            "010c001302055d0201020325fe63",
            "010800130401002501c5",
            "010f0013050863010501313233342507ae",
        ];
        for h in cases {
            let f = frame(h);
            let m = HostRequest::parse(&f, ty).unwrap();
            assert!(!matches!(m, HostRequest::Other { .. }), "{h}");
            assert_eq!(wire(&m.encode(ty).unwrap()), h, "{h}");
        }
        let f = frame("0110001300050863010501313233342507b1");
        let m = HostRequest::parse(&f, NodeIdType::Bits16).unwrap();
        let HostRequest::SendData(sd) = &m else {
            panic!()
        };
        assert_eq!(sd.node_id, NodeId(5));
        assert_eq!(
            wire(&m.encode(NodeIdType::Bits16).unwrap()),
            "0110001300050863010501313233342507b1"
        );
        // Functions we do not model are kept whole.
        let f = frame("01050047042099");
        assert_eq!(
            HostRequest::parse(&f, ty).unwrap(),
            HostRequest::Other {
                function: 0x47,
                payload: vec![0x04, 0x20]
            }
        );
    }

    #[test]
    fn stick_frames_from_vectors() {
        let ty = NodeIdType::Bits8;
        assert_eq!(
            StickResponse::parse(&frame("0104011301e8"), ty).unwrap(),
            StickResponse::SendData { accepted: true }
        );
        let cb = StickRequest::parse(&frame("010500130701ef"), ty).unwrap();
        let StickRequest::SendDataCallback(c) = cb else {
            panic!()
        };
        assert_eq!(c.callback_id, 7);
        assert_eq!(
            c.transmit_status,
            super::super::transmit::TransmitStatus::NoAck
        );
        let ach = StickRequest::parse(&frame("010e000400020872050086000200828e"), ty).unwrap();
        let (src, cmd) = ach.node_command().unwrap();
        assert_eq!(src, NodeId(2));
        assert_eq!(cmd, hex::decode("7205008600020082").unwrap());
        // A command length past the frame end is an error (the link has ACKed it already).
        assert!(StickRequest::parse(&frame("010800040021043003e5"), ty).is_err());
        let bridge =
            StickRequest::parse(&frame("011200a80001020a320221340000000000000069"), ty).unwrap();
        assert_eq!(bridge.node_command().unwrap().0, NodeId(2));
        let setup = StickResponse::parse(
            &frame("0116010b01ff8b8001800000008000000000000000800097"),
            ty,
        )
        .unwrap();
        assert!(matches!(
            setup,
            StickResponse::SerialApiSetup(SetupResponse::GetSupportedCommands { .. })
        ));
    }

    #[test]
    fn which_requests_get_a_response_or_callback() {
        assert!(!HostRequest::SoftReset.expects_response());
        assert!(!HostRequest::SendDataAbort.expects_response());
        assert!(HostRequest::GetControllerId.expects_response());
        let sd = HostRequest::SendData(SendDataRequest {
            node_id: NodeId(2),
            command: vec![0],
            tx_options: 0x25,
            callback_id: 0,
        });
        assert_eq!(sd.callback_id(), None);
    }
}
