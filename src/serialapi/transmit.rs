//! Sending commands to nodes: SendData, SendDataBridge, their callbacks and TX reports.

use bytes::BufMut;
use nom::bytes::complete::take;
use nom::combinator::rest;
use nom::number::complete::be_u8;
use serde::Serialize;

use super::error::{parse_with, SerialApiError};
use super::node_id::{node_id, put_node_id, NodeId, NodeIdType};

/// Transmit options: ACK | AUTO_ROUTE | EXPLORE, as zwave-js sends by default.
pub const TX_OPTIONS_DEFAULT: u8 = 0x25;

/// SendData (0x13) request.
#[derive(Clone, PartialEq, Eq)]
pub struct SendDataRequest {
    pub node_id: NodeId,
    /// The command class payload (may hold a PIN: never logged by `Debug`).
    pub command: Vec<u8>,
    pub tx_options: u8,
    /// 1–255; 0 asks for no callback.
    pub callback_id: u8,
}

impl std::fmt::Debug for SendDataRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendDataRequest")
            .field("node_id", &self.node_id)
            .field("command", &crate::util::redact::CommandBytes(&self.command))
            .field("tx_options", &self.tx_options)
            .field("callback_id", &self.callback_id)
            .finish()
    }
}

impl SendDataRequest {
    pub fn parse(p: &[u8], ty: NodeIdType) -> Result<Self, SerialApiError> {
        parse_with("SendData", p, |i| {
            let (i, node_id) = node_id(ty)(i)?;
            let (i, len) = be_u8(i)?;
            let (i, command) = take(len)(i)?;
            let (i, tx_options) = be_u8(i)?;
            let (i, callback_id) = be_u8(i)?;
            Ok((
                i,
                SendDataRequest {
                    node_id,
                    command: command.to_vec(),
                    tx_options,
                    callback_id,
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>, ty: NodeIdType) -> Result<(), SerialApiError> {
        check_node_id(self.node_id, ty)?;
        check_command_len("SendData", &self.command)?;
        put_node_id(out, ty, self.node_id);
        out.put_u8(self.command.len() as u8);
        out.put_slice(&self.command);
        out.put_u8(self.tx_options);
        out.put_u8(self.callback_id);
        Ok(())
    }
}

/// SendDataBridge (0xA9) request.
#[derive(Clone, PartialEq, Eq)]
pub struct SendDataBridgeRequest {
    pub source: NodeId,
    pub destination: NodeId,
    pub command: Vec<u8>,
    pub tx_options: u8,
    pub route: [u8; 4],
    pub callback_id: u8,
}

impl std::fmt::Debug for SendDataBridgeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendDataBridgeRequest")
            .field("source", &self.source)
            .field("destination", &self.destination)
            .field("command", &crate::util::redact::CommandBytes(&self.command))
            .field("tx_options", &self.tx_options)
            .field("callback_id", &self.callback_id)
            .finish()
    }
}

impl SendDataBridgeRequest {
    pub fn parse(p: &[u8], ty: NodeIdType) -> Result<Self, SerialApiError> {
        parse_with("SendDataBridge", p, |i| {
            let (i, source) = node_id(ty)(i)?;
            let (i, destination) = node_id(ty)(i)?;
            let (i, len) = be_u8(i)?;
            let (i, command) = take(len)(i)?;
            let (i, tx_options) = be_u8(i)?;
            let (i, r) = take(4usize)(i)?;
            let (i, callback_id) = be_u8(i)?;
            Ok((
                i,
                SendDataBridgeRequest {
                    source,
                    destination,
                    command: command.to_vec(),
                    tx_options,
                    route: [r[0], r[1], r[2], r[3]],
                    callback_id,
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>, ty: NodeIdType) -> Result<(), SerialApiError> {
        check_node_id(self.source, ty)?;
        check_node_id(self.destination, ty)?;
        check_command_len("SendDataBridge", &self.command)?;
        put_node_id(out, ty, self.source);
        put_node_id(out, ty, self.destination);
        out.put_u8(self.command.len() as u8);
        out.put_slice(&self.command);
        out.put_u8(self.tx_options);
        out.put_slice(&self.route);
        out.put_u8(self.callback_id);
        Ok(())
    }
}

pub(crate) fn check_node_id(id: NodeId, ty: NodeIdType) -> Result<(), SerialApiError> {
    if ty == NodeIdType::Bits8 && id.0 > 255 {
        return Err(SerialApiError::NodeIdTooLarge { node_id: id.0 });
    }
    Ok(())
}

pub(crate) fn check_command_len(message: &'static str, cmd: &[u8]) -> Result<(), SerialApiError> {
    // The whole frame payload must stay within 252 bytes; leave room for the other fields.
    if cmd.len() > 240 {
        return Err(SerialApiError::CommandTooLong {
            message,
            len: cmd.len(),
        });
    }
    Ok(())
}

/// The outcome of a transmission, from the SendData callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransmitStatus {
    /// The destination acknowledged the frame.
    Ok,
    /// The destination did not acknowledge (asleep, out of range, gone).
    NoAck,
    /// The stick could not transmit (jammed or busy radio).
    Fail,
    /// The network was busy.
    NotIdle,
    /// No route to the destination.
    NoRoute,
    Other(u8),
}

impl TransmitStatus {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => TransmitStatus::Ok,
            1 => TransmitStatus::NoAck,
            2 => TransmitStatus::Fail,
            3 => TransmitStatus::NotIdle,
            4 => TransmitStatus::NoRoute,
            o => TransmitStatus::Other(o),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            TransmitStatus::Ok => 0,
            TransmitStatus::NoAck => 1,
            TransmitStatus::Fail => 2,
            TransmitStatus::NotIdle => 3,
            TransmitStatus::NoRoute => 4,
            TransmitStatus::Other(o) => o,
        }
    }

    /// The name `zwlock decode` prints: ok, no_ack, fail, not_idle, no_route.
    pub fn name(self) -> String {
        match self {
            TransmitStatus::Ok => "ok".into(),
            TransmitStatus::NoAck => "no_ack".into(),
            TransmitStatus::Fail => "fail".into(),
            TransmitStatus::NotIdle => "not_idle".into(),
            TransmitStatus::NoRoute => "no_route".into(),
            TransmitStatus::Other(o) => format!("0x{o:02x}"),
        }
    }
}

impl Serialize for TransmitStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

/// The optional TX status report appended to a SendData callback (SerialApiSetup 0x02).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TxReport {
    /// Transmission time in 10 ms ticks.
    pub tx_ticks: u16,
    pub repeater_count: u8,
    /// 127 = not available.
    pub ack_rssi: i8,
    pub ack_repeater_rssi: [i8; 4],
    pub ack_channel: u8,
    pub tx_channel: u8,
    pub route_scheme_state: u8,
    pub repeaters: [u8; 4],
    /// bits2..0 speed (1 = 9.6k, 2 = 40k, 3 = 100k, 4 = LR), bit5 beam 250 ms, bit6 beam 1000 ms.
    pub route_speed: u8,
    pub routing_attempts: u8,
    pub failed_route_last_functional_node: u8,
    pub failed_route_first_non_functional_node: u8,
    /// Long Range fields (only when tx_channel ≥ 3).
    pub long_range: Option<LongRangeTxReport>,
}

/// Long Range extension of a [`TxReport`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LongRangeTxReport {
    pub tx_power: i8,
    pub noise_floor: i8,
    pub destination_ack_tx_power: i8,
    pub destination_ack_rssi: i8,
    pub destination_ack_noise_floor: i8,
}

/// Shortest TX report worth parsing (zwave-js uses the same limit).
pub const TX_REPORT_MIN_LEN: usize = 17;

impl TxReport {
    pub fn transmit_time_ms(&self) -> u32 {
        u32::from(self.tx_ticks) * 10
    }

    pub fn beam(&self) -> Option<super::controller::Flirs> {
        if self.route_speed & 0x40 != 0 {
            Some(super::controller::Flirs::Ms1000)
        } else if self.route_speed & 0x20 != 0 {
            Some(super::controller::Flirs::Ms250)
        } else {
            None
        }
    }

    fn parse(p: &[u8]) -> Option<TxReport> {
        if p.len() < TX_REPORT_MIN_LEN {
            return None;
        }
        let g = |i: usize| p.get(i).copied().unwrap_or(0);
        let s = |i: usize| g(i) as i8;
        let tx_channel = g(9);
        let long_range = (tx_channel >= 3 && p.len() >= 25).then(|| LongRangeTxReport {
            tx_power: s(20),
            noise_floor: s(21),
            destination_ack_tx_power: s(22),
            destination_ack_rssi: s(23),
            destination_ack_noise_floor: s(24),
        });
        Some(TxReport {
            tx_ticks: u16::from_be_bytes([g(0), g(1)]),
            repeater_count: g(2),
            ack_rssi: s(3),
            ack_repeater_rssi: [s(4), s(5), s(6), s(7)],
            ack_channel: g(8),
            tx_channel,
            route_scheme_state: g(10),
            repeaters: [g(11), g(12), g(13), g(14)],
            route_speed: g(15),
            routing_attempts: g(16),
            failed_route_last_functional_node: g(17),
            failed_route_first_non_functional_node: g(18),
            long_range,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u16(self.tx_ticks);
        out.put_u8(self.repeater_count);
        out.put_i8(self.ack_rssi);
        for r in self.ack_repeater_rssi {
            out.put_i8(r);
        }
        out.put_u8(self.ack_channel);
        out.put_u8(self.tx_channel);
        out.put_u8(self.route_scheme_state);
        out.put_slice(&self.repeaters);
        out.put_u8(self.route_speed);
        out.put_u8(self.routing_attempts);
        out.put_u8(self.failed_route_last_functional_node);
        out.put_u8(self.failed_route_first_non_functional_node);
        // Byte 19 is reserved in the 20-byte base report.
        out.put_u8(0);
        if let Some(lr) = self.long_range {
            out.put_i8(lr.tx_power);
            out.put_i8(lr.noise_floor);
            out.put_i8(lr.destination_ack_tx_power);
            out.put_i8(lr.destination_ack_rssi);
            out.put_i8(lr.destination_ack_noise_floor);
        }
    }
}

/// The callback of SendData / SendDataBridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendDataCallback {
    pub callback_id: u8,
    pub transmit_status: TransmitStatus,
    pub tx_report: Option<TxReport>,
}

impl SendDataCallback {
    pub fn parse(p: &[u8]) -> Result<Self, SerialApiError> {
        parse_with("SendData callback", p, |i| {
            let (i, callback_id) = be_u8(i)?;
            let (i, status) = be_u8(i)?;
            let (i, tail) = rest(i)?;
            Ok((
                i,
                SendDataCallback {
                    callback_id,
                    transmit_status: TransmitStatus::from_byte(status),
                    tx_report: TxReport::parse(tail),
                },
            ))
        })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.callback_id);
        out.put_u8(self.transmit_status.to_byte());
        if let Some(r) = &self.tx_report {
            r.encode(out);
        }
    }
}

/// Parse a one-byte boolean response (`[retVal]`).
pub(crate) fn parse_flag(message: &'static str, p: &[u8]) -> Result<bool, SerialApiError> {
    parse_with(message, p, |i| {
        let (i, v) = be_u8(i)?;
        Ok((i, v != 0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::hex;

    #[test]
    fn senddata_vectors() {
        // senddata_req_usercode_set (8-bit) and its 16-bit twin.
        let r = SendDataRequest {
            node_id: NodeId(5),
            command: hex::decode("6301050131323334").unwrap(),
            tx_options: 0x25,
            callback_id: 0x07,
        };
        let mut out = Vec::new();
        r.encode(&mut out, NodeIdType::Bits8).unwrap();
        assert_eq!(hex::encode(&out), "050863010501313233342507");
        assert_eq!(SendDataRequest::parse(&out, NodeIdType::Bits8).unwrap(), r);
        let mut out16 = Vec::new();
        r.encode(&mut out16, NodeIdType::Bits16).unwrap();
        assert_eq!(hex::encode(&out16), "00050863010501313233342507");
        assert_eq!(
            SendDataRequest::parse(&out16, NodeIdType::Bits16).unwrap(),
            r
        );
    }

    #[test]
    fn debug_hides_the_pin() {
        let r = SendDataRequest {
            node_id: NodeId(5),
            command: hex::decode("6301050131323334").unwrap(),
            tx_options: 0x25,
            callback_id: 0x07,
        };
        let s = format!("{r:?}");
        assert!(
            !s.contains("49, 50, 51, 52") && !s.contains("31323334"),
            "{s}"
        );
    }

    #[test]
    fn callback_with_and_without_tx_report() {
        let short = SendDataCallback::parse(&hex::decode("0f000002").unwrap()).unwrap();
        assert_eq!(short.callback_id, 0x0f);
        assert_eq!(short.transmit_status, TransmitStatus::Ok);
        assert_eq!(short.tx_report, None);
        let noack = SendDataCallback::parse(&hex::decode("0701").unwrap()).unwrap();
        assert_eq!(noack.transmit_status, TransmitStatus::NoAck);
        // A 700-series callback with a full report: 30 ms, beam 1000 ms.
        let full = hex::decode("07000003007f7f7f7f7f000000000000004301000000").unwrap();
        let cb = SendDataCallback::parse(&full).unwrap();
        let rep = cb.tx_report.unwrap();
        assert_eq!(rep.transmit_time_ms(), 30);
        assert_eq!(rep.beam(), Some(super::super::controller::Flirs::Ms1000));
        let mut out = Vec::new();
        cb.encode(&mut out);
        assert_eq!(out, full);
    }

    #[test]
    fn node_id_too_large_for_8_bit() {
        let r = SendDataRequest {
            node_id: NodeId(300),
            command: vec![0],
            tx_options: 0x25,
            callback_id: 1,
        };
        assert_eq!(
            r.encode(&mut Vec::new(), NodeIdType::Bits8),
            Err(SerialApiError::NodeIdTooLarge { node_id: 300 })
        );
    }
}
