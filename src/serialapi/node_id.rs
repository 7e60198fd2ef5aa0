//! Node ids on the Serial API: 8-bit by default, 16-bit after SetNodeIdType (Long Range).

use bytes::BufMut;
use nom::number::complete::{be_u16, be_u8};
use nom::IResult;
use serde::{Deserialize, Serialize};

/// A Z-Wave node id (1–232 classic, 256–4000 Long Range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub u16);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<u8> for NodeId {
    fn from(v: u8) -> Self {
        NodeId(u16::from(v))
    }
}

/// How node ids are written in Serial API frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum NodeIdType {
    #[default]
    Bits8,
    Bits16,
}

impl NodeIdType {
    pub fn width(self) -> usize {
        match self {
            NodeIdType::Bits8 => 1,
            NodeIdType::Bits16 => 2,
        }
    }

    /// The value SerialApiSetup SetNodeIdType takes (1 = 8-bit, 2 = 16-bit).
    pub fn to_byte(self) -> u8 {
        match self {
            NodeIdType::Bits8 => 1,
            NodeIdType::Bits16 => 2,
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(NodeIdType::Bits8),
            2 => Some(NodeIdType::Bits16),
            _ => None,
        }
    }
}

/// Parse a node id in the given width.
pub fn node_id(ty: NodeIdType) -> impl Fn(&[u8]) -> IResult<&[u8], NodeId> {
    move |i| match ty {
        NodeIdType::Bits8 => be_u8(i).map(|(r, v)| (r, NodeId::from(v))),
        NodeIdType::Bits16 => be_u16(i).map(|(r, v)| (r, NodeId(v))),
    }
}

/// Write a node id in the given width. In 8-bit mode an id above 255 is truncated, which the
/// callers prevent by refusing such ids before encoding.
pub fn put_node_id(dst: &mut Vec<u8>, ty: NodeIdType, id: NodeId) {
    match ty {
        NodeIdType::Bits8 => dst.put_u8(id.0 as u8),
        NodeIdType::Bits16 => dst.put_u16(id.0),
    }
}

/// A set of node ids as a bitmask (bit i of byte i/8 = node i+1).
pub fn nodes_from_bitmask(mask: &[u8]) -> Vec<NodeId> {
    let mut out = Vec::new();
    for (byte_i, b) in mask.iter().enumerate() {
        for bit in 0..8 {
            if b & (1 << bit) != 0 {
                out.push(NodeId((byte_i * 8 + bit + 1) as u16));
            }
        }
    }
    out
}

/// The bitmask form of a node set, `len` bytes long (ids that do not fit are left out).
pub fn nodes_to_bitmask(nodes: &[NodeId], len: usize) -> Vec<u8> {
    let mut mask = vec![0u8; len];
    for n in nodes {
        if n.0 == 0 {
            continue;
        }
        let i = usize::from(n.0 - 1);
        if let Some(b) = mask.get_mut(i / 8) {
            *b |= 1 << (i % 8);
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmask_round_trip() {
        let nodes = vec![NodeId(1), NodeId(2), NodeId(3), NodeId(232)];
        let mask = nodes_to_bitmask(&nodes, 29);
        assert_eq!(mask[0], 0x07);
        assert_eq!(mask[28], 0x80);
        assert_eq!(nodes_from_bitmask(&mask), nodes);
    }

    #[test]
    fn widths() {
        let mut v = Vec::new();
        put_node_id(&mut v, NodeIdType::Bits16, NodeId(5));
        assert_eq!(v, [0, 5]);
        assert_eq!(node_id(NodeIdType::Bits16)(&v).unwrap().1, NodeId(5));
        assert_eq!(node_id(NodeIdType::Bits8)(&[7]).unwrap().1, NodeId(7));
    }
}
