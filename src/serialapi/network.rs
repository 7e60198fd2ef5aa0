//! Network management: including and excluding nodes, failed nodes.

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::combinator::{opt, rest};
use nom::number::complete::be_u8;
use serde::Serialize;

use super::application::NodeInformation;
use super::error::{parse_with, SerialApiError};
use super::node_id::{node_id, put_node_id, NodeId, NodeIdType};
use super::transmit::check_node_id;

/// AddNodeToNetwork / RemoveNodeFromNetwork modes (low bits of the mode byte).
pub mod mode {
    pub const ANY: u8 = 0x01;
    pub const CONTROLLER: u8 = 0x02;
    pub const END_NODE: u8 = 0x03;
    pub const EXISTING: u8 = 0x04;
    pub const STOP: u8 = 0x05;
    pub const STOP_FAILED: u8 = 0x06;
    pub const SMART_START_DSK: u8 = 0x08;
    pub const SMART_START_LISTEN: u8 = 0x09;
    /// Flags or-ed into the mode byte.
    pub const FLAG_HIGH_POWER: u8 = 0x80;
    pub const FLAG_NETWORK_WIDE: u8 = 0x40;
    pub const FLAG_LONG_RANGE: u8 = 0x20;
}

/// AddNodeToNetwork (0x4A) or RemoveNodeFromNetwork (0x4B) request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InclusionRequest {
    /// Mode | flags.
    pub mode: u8,
    pub callback_id: u8,
    /// Extra bytes (SmartStart DSK modes).
    pub extra: Vec<u8>,
}

impl InclusionRequest {
    pub fn parse(message: &'static str, p: &[u8]) -> Result<Self, SerialApiError> {
        parse_with(message, p, |i| {
            let (i, mode) = be_u8(i)?;
            let (i, callback_id) = opt(be_u8)(i)?;
            let (i, extra) = rest(i)?;
            Ok((
                i,
                InclusionRequest {
                    mode,
                    callback_id: callback_id.unwrap_or(0),
                    extra: extra.to_vec(),
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.mode);
        out.put_u8(self.callback_id);
        out.put_slice(&self.extra);
    }
}

/// AddNodeToNetwork status values in the callback.
pub mod add_status {
    pub const READY: u8 = 1;
    pub const NODE_FOUND: u8 = 2;
    pub const ADDING_END_NODE: u8 = 3;
    pub const ADDING_CONTROLLER: u8 = 4;
    pub const PROTOCOL_DONE: u8 = 5;
    pub const DONE: u8 = 6;
    pub const FAILED: u8 = 7;
}

/// RemoveNodeFromNetwork status values in the callback.
pub mod remove_status {
    pub const READY: u8 = 1;
    pub const NODE_FOUND: u8 = 2;
    pub const REMOVING_END_NODE: u8 = 3;
    pub const REMOVING_CONTROLLER: u8 = 4;
    pub const DONE: u8 = 6;
    pub const FAILED: u8 = 7;
}

/// The callback of AddNodeToNetwork / RemoveNodeFromNetwork.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InclusionStatus {
    pub callback_id: u8,
    pub status: u8,
    pub node_id: NodeId,
    pub node_info: Option<NodeInformation>,
}

impl InclusionStatus {
    pub fn parse(message: &'static str, p: &[u8], ty: NodeIdType) -> Result<Self, SerialApiError> {
        parse_with(message, p, |i| {
            let (i, callback_id) = be_u8(i)?;
            let (i, status) = be_u8(i)?;
            let (i, node) = opt(node_id(ty))(i)?;
            let (i, len) = opt(be_u8)(i)?;
            let (i, data) = match len {
                Some(n) if usize::from(n) <= i.len() => take(n)(i)?,
                _ => rest(i)?,
            };
            Ok((
                i,
                InclusionStatus {
                    callback_id,
                    status,
                    node_id: node.unwrap_or(NodeId(0)),
                    node_info: NodeInformation::from_bytes(data),
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>, ty: NodeIdType) -> Result<(), SerialApiError> {
        check_node_id(self.node_id, ty)?;
        out.put_u8(self.callback_id);
        out.put_u8(self.status);
        put_node_id(out, ty, self.node_id);
        let data = self
            .node_info
            .as_ref()
            .map(NodeInformation::to_bytes)
            .unwrap_or_default();
        out.put_u8(data.len() as u8);
        out.put_slice(&data);
        Ok(())
    }
}

/// RemoveFailedNode (0x61) response flags: 0 = started.
pub mod remove_failed_start {
    pub const STARTED: u8 = 0x00;
    pub const NOT_PRIMARY: u8 = 0x02;
    pub const NO_CALLBACK: u8 = 0x04;
    pub const NOT_FOUND: u8 = 0x08;
    pub const BUSY: u8 = 0x10;
    pub const FAILED: u8 = 0x20;
}

/// RemoveFailedNode (0x61) callback status.
pub mod remove_failed_status {
    pub const NODE_OK: u8 = 0;
    pub const REMOVED: u8 = 1;
    pub const NOT_REMOVED: u8 = 2;
}

/// RemoveFailedNode (0x61) callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RemoveFailedNodeStatus {
    pub callback_id: u8,
    pub status: u8,
}

impl RemoveFailedNodeStatus {
    pub fn parse(p: &[u8]) -> Result<Self, SerialApiError> {
        parse_with("RemoveFailedNode callback", p, |i| {
            let (i, callback_id) = be_u8(i)?;
            let (i, status) = be_u8(i)?;
            Ok((
                i,
                RemoveFailedNodeStatus {
                    callback_id,
                    status,
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.callback_id);
        out.put_u8(self.status);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_node_flow_callbacks() {
        let ready = InclusionStatus::parse(
            "AddNodeToNetwork",
            &[0x01, 0x01, 0x00, 0x00],
            NodeIdType::Bits8,
        )
        .unwrap();
        assert_eq!(ready.status, add_status::READY);
        assert_eq!(ready.node_info, None);
        let adding = InclusionStatus::parse(
            "AddNodeToNetwork",
            &[0x01, 0x03, 0x07, 0x05, 0x04, 0x40, 0x03, 0x98, 0x9f],
            NodeIdType::Bits8,
        )
        .unwrap();
        assert_eq!(adding.node_id, NodeId(7));
        assert_eq!(
            adding.node_info.as_ref().unwrap().supported(),
            vec![0x98, 0x9f]
        );
        let mut out = Vec::new();
        adding.encode(&mut out, NodeIdType::Bits8).unwrap();
        assert_eq!(out, [0x01, 0x03, 0x07, 0x05, 0x04, 0x40, 0x03, 0x98, 0x9f]);
        // Some sticks send only the callback id and status.
        let short =
            InclusionStatus::parse("RemoveNodeFromNetwork", &[0x02, 0x06], NodeIdType::Bits8)
                .unwrap();
        assert_eq!(short.status, remove_status::DONE);
    }
}
