//! What nodes say: ApplicationCommandHandler (0x04), its bridge form (0xA8), and
//! ApplicationUpdate (0x49, node information frames).

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::combinator::{opt, rest};
use nom::number::complete::be_u8;
use serde::Serialize;

use super::error::{parse_with, SerialApiError};
use super::node_id::{node_id, put_node_id, NodeId, NodeIdType};
use super::transmit::{check_command_len, check_node_id};

/// How a frame reached the stick (the rxStatus byte).
pub mod rx_status {
    pub const ROUTED_BUSY: u8 = 0x01;
    pub const LOW_POWER: u8 = 0x02;
    pub const TYPE_MASK: u8 = 0x0C;
    pub const TYPE_BROADCAST: u8 = 0x04;
    pub const TYPE_MULTICAST: u8 = 0x08;
    pub const EXPLORE: u8 = 0x10;
    pub const FOREIGN_FRAME: u8 = 0x40;
    pub const FOREIGN_HOME_ID: u8 = 0x80;
}

/// ApplicationCommandHandler (0x04): a command from a node.
#[derive(Clone, PartialEq, Eq)]
pub struct ApplicationCommand {
    pub rx_status: u8,
    pub source: NodeId,
    /// The command class payload (may hold a PIN: never logged by `Debug`).
    pub command: Vec<u8>,
    /// Newer SDKs append the RSSI of the frame; older ones do not.
    pub rssi: Option<i8>,
}

impl std::fmt::Debug for ApplicationCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplicationCommand")
            .field("rx_status", &self.rx_status)
            .field("source", &self.source)
            .field("command", &crate::util::redact::CommandBytes(&self.command))
            .field("rssi", &self.rssi)
            .finish()
    }
}

impl ApplicationCommand {
    /// Parse the payload. A command length that runs past the end of the frame is an error:
    /// the frame is still ACKed by the link, but the command is dropped.
    pub fn parse(p: &[u8], ty: NodeIdType) -> Result<Self, SerialApiError> {
        parse_with("ApplicationCommandHandler", p, |i| {
            let (i, rx_status) = be_u8(i)?;
            let (i, source) = node_id(ty)(i)?;
            let (i, len) = be_u8(i)?;
            let (i, command) = take(len)(i)?;
            let (i, rssi) = opt(be_u8)(i)?;
            Ok((
                i,
                ApplicationCommand {
                    rx_status,
                    source,
                    command: command.to_vec(),
                    rssi: rssi.map(|b| b as i8),
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>, ty: NodeIdType) -> Result<(), SerialApiError> {
        check_node_id(self.source, ty)?;
        check_command_len("ApplicationCommandHandler", &self.command)?;
        out.put_u8(self.rx_status);
        put_node_id(out, ty, self.source);
        out.put_u8(self.command.len() as u8);
        out.put_slice(&self.command);
        if let Some(r) = self.rssi {
            out.put_i8(r);
        }
        Ok(())
    }
}

/// BridgeApplicationCommandHandler (0xA8): a command from a node, as bridge firmware reports it.
#[derive(Clone, PartialEq, Eq)]
pub struct BridgeApplicationCommand {
    pub rx_status: u8,
    pub destination: NodeId,
    pub source: NodeId,
    pub command: Vec<u8>,
    pub multicast_mask: Vec<u8>,
    pub rssi: Option<i8>,
}

impl std::fmt::Debug for BridgeApplicationCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeApplicationCommand")
            .field("rx_status", &self.rx_status)
            .field("destination", &self.destination)
            .field("source", &self.source)
            .field("command", &crate::util::redact::CommandBytes(&self.command))
            .field("rssi", &self.rssi)
            .finish()
    }
}

impl BridgeApplicationCommand {
    pub fn parse(p: &[u8], ty: NodeIdType) -> Result<Self, SerialApiError> {
        parse_with("BridgeApplicationCommandHandler", p, |i| {
            let (i, rx_status) = be_u8(i)?;
            let (i, destination) = node_id(ty)(i)?;
            let (i, source) = node_id(ty)(i)?;
            let (i, len) = be_u8(i)?;
            let (i, command) = take(len)(i)?;
            // Some firmware ends the frame here; others add the multicast mask and RSSI, and
            // newer ones more bytes after that, which are ignored.
            let (i, mask_len) = opt(be_u8)(i)?;
            let (i, mask) = match mask_len {
                Some(n) if usize::from(n) <= i.len() => take(n)(i)?,
                Some(_) => rest(i)?,
                None => (i, &[][..]),
            };
            let (i, rssi) = opt(be_u8)(i)?;
            Ok((
                i,
                BridgeApplicationCommand {
                    rx_status,
                    destination,
                    source,
                    command: command.to_vec(),
                    multicast_mask: mask.to_vec(),
                    rssi: rssi.map(|b| b as i8),
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>, ty: NodeIdType) -> Result<(), SerialApiError> {
        check_node_id(self.source, ty)?;
        check_node_id(self.destination, ty)?;
        check_command_len("BridgeApplicationCommandHandler", &self.command)?;
        out.put_u8(self.rx_status);
        put_node_id(out, ty, self.destination);
        put_node_id(out, ty, self.source);
        out.put_u8(self.command.len() as u8);
        out.put_slice(&self.command);
        out.put_u8(self.multicast_mask.len() as u8);
        out.put_slice(&self.multicast_mask);
        if let Some(r) = self.rssi {
            out.put_i8(r);
        }
        Ok(())
    }
}

/// The support/control mark in a command class list: classes after it are controlled only.
pub const CC_MARK: u8 = 0xEF;

/// A node information frame: device classes and command classes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInformation {
    pub basic: u8,
    pub generic: u8,
    pub specific: u8,
    /// The command class list as sent, support/control mark included.
    pub command_classes: Vec<u8>,
}

impl NodeInformation {
    /// Command classes the node supports (before the 0xEF mark).
    pub fn supported(&self) -> Vec<u8> {
        self.command_classes
            .iter()
            .copied()
            .take_while(|c| *c != CC_MARK)
            .collect()
    }

    /// Command classes the node controls (after the 0xEF mark).
    pub fn controlled(&self) -> Vec<u8> {
        self.command_classes
            .iter()
            .copied()
            .skip_while(|c| *c != CC_MARK)
            .skip(1)
            .collect()
    }

    pub fn supports(&self, cc: u8) -> bool {
        self.supported().contains(&cc)
    }

    /// From `basic generic specific ccs…`; `None` when shorter than the three classes.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        match b {
            [basic, generic, specific, ccs @ ..] => Some(NodeInformation {
                basic: *basic,
                generic: *generic,
                specific: *specific,
                command_classes: ccs.to_vec(),
            }),
            _ => None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = vec![self.basic, self.generic, self.specific];
        v.extend_from_slice(&self.command_classes);
        v
    }
}

/// ApplicationUpdate (0x49) states.
pub mod update_state {
    pub const SMART_START_HOME_ID_LR: u8 = 0x87;
    pub const SMART_START_NIF: u8 = 0x86;
    pub const SMART_START_HOME_ID: u8 = 0x85;
    pub const NODE_INFO_RECEIVED: u8 = 0x84;
    pub const NODE_INFO_REQUEST_DONE: u8 = 0x82;
    pub const NODE_INFO_REQUEST_FAILED: u8 = 0x81;
    pub const ROUTING_PENDING: u8 = 0x80;
    pub const NODE_ADDED: u8 = 0x40;
    pub const NODE_REMOVED: u8 = 0x20;
    pub const SUC_ID_CHANGED: u8 = 0x10;
}

/// ApplicationUpdate (0x49).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApplicationUpdate {
    pub state: u8,
    pub node_id: NodeId,
    /// The node information when the update carries one (NIF received, node added).
    pub node_info: Option<NodeInformation>,
    /// Bytes after the length field when they are not a node information frame.
    #[serde(skip)]
    pub raw: Vec<u8>,
}

impl ApplicationUpdate {
    pub fn parse(p: &[u8], ty: NodeIdType) -> Result<Self, SerialApiError> {
        parse_with("ApplicationUpdate", p, |i| {
            let (i, state) = be_u8(i)?;
            // A failed NIF request may carry nothing after the state.
            let (i, node) = opt(node_id(ty))(i)?;
            let (i, len) = opt(be_u8)(i)?;
            let (i, data) = match len {
                Some(n) if usize::from(n) <= i.len() => take(n)(i)?,
                _ => rest(i)?,
            };
            let node_info = NodeInformation::from_bytes(data);
            Ok((
                i,
                ApplicationUpdate {
                    state,
                    node_id: node.unwrap_or(NodeId(0)),
                    raw: if node_info.is_some() {
                        Vec::new()
                    } else {
                        data.to_vec()
                    },
                    node_info,
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>, ty: NodeIdType) -> Result<(), SerialApiError> {
        check_node_id(self.node_id, ty)?;
        out.put_u8(self.state);
        put_node_id(out, ty, self.node_id);
        let data = match &self.node_info {
            Some(n) => n.to_bytes(),
            None => self.raw.clone(),
        };
        out.put_u8(data.len() as u8);
        out.put_slice(&data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::hex;

    #[test]
    fn ach_vectors() {
        // ach_usercode_report: rxStatus 0, node 5, 63 03 05 01 "1234", no RSSI
        let p = hex::decode("0005086303050131323334").unwrap();
        let a = ApplicationCommand::parse(&p, NodeIdType::Bits8).unwrap();
        assert_eq!(a.source, NodeId(5));
        assert_eq!(a.command, hex::decode("6303050131323334").unwrap());
        assert_eq!(a.rssi, None);
        // With an RSSI byte.
        let mut with_rssi = p.clone();
        with_rssi.push(0xC4);
        let a = ApplicationCommand::parse(&with_rssi, NodeIdType::Bits8).unwrap();
        assert_eq!(a.rssi, Some(-60));
        let mut out = Vec::new();
        a.encode(&mut out, NodeIdType::Bits8).unwrap();
        assert_eq!(out, with_rssi);
    }

    #[test]
    fn ach_with_command_past_the_end_is_an_error() {
        // ach_truncated_invalid: cmdLen 4 but only 2 bytes follow.
        let p = hex::decode("0021043003").unwrap();
        assert_eq!(
            ApplicationCommand::parse(&p, NodeIdType::Bits8),
            Err(SerialApiError::Truncated {
                message: "ApplicationCommandHandler"
            })
        );
    }

    #[test]
    fn bridge_ach_with_and_without_tail() {
        // bridge_ach_no_rssi
        let p = hex::decode("0001020a32022134000000000000 00").unwrap();
        let b = BridgeApplicationCommand::parse(&p, NodeIdType::Bits8).unwrap();
        assert_eq!(b.destination, NodeId(1));
        assert_eq!(b.source, NodeId(2));
        assert_eq!(b.command.len(), 10);
        assert_eq!(b.rssi, None);
        // RSSI and then bytes newer firmware adds.
        let mut longer = p.clone();
        longer.extend([0xB0, 0x00, 0x01, 0x02]);
        let b = BridgeApplicationCommand::parse(&longer, NodeIdType::Bits8).unwrap();
        assert_eq!(b.rssi, Some(-80));
        // No multicast length byte at all.
        let b = BridgeApplicationCommand::parse(&p[..p.len() - 1], NodeIdType::Bits8).unwrap();
        assert!(b.multicast_mask.is_empty());
    }

    #[test]
    fn application_update_nif_and_failure() {
        // From the zwave-js mock: 84 02 0A 04 40 03 86 72 6C 63 62 71 80
        let p = hex::decode("84020a04400386726c63627180").unwrap();
        let u = ApplicationUpdate::parse(&p, NodeIdType::Bits8).unwrap();
        assert_eq!(u.state, update_state::NODE_INFO_RECEIVED);
        assert_eq!(u.node_id, NodeId(2));
        let nif = u.node_info.clone().unwrap();
        assert_eq!(nif.generic, 0x40);
        assert!(nif.supports(0x63));
        assert_eq!(nif.supported().len(), 7);
        let mut out = Vec::new();
        u.encode(&mut out, NodeIdType::Bits8).unwrap();
        assert_eq!(out, p);
        let failed = ApplicationUpdate::parse(&[0x81], NodeIdType::Bits8).unwrap();
        assert_eq!(failed.state, update_state::NODE_INFO_REQUEST_FAILED);
        assert_eq!(failed.node_info, None);
        let failed = ApplicationUpdate::parse(&[0x81, 0x00, 0x00], NodeIdType::Bits8).unwrap();
        assert_eq!(failed.node_id, NodeId(0));
    }

    #[test]
    fn controlled_classes_after_the_mark() {
        let n = NodeInformation::from_bytes(&[4, 0x40, 3, 0x63, 0x62, CC_MARK, 0x20]).unwrap();
        assert_eq!(n.supported(), vec![0x63, 0x62]);
        assert_eq!(n.controlled(), vec![0x20]);
    }
}
