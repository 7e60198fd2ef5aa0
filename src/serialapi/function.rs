//! Serial API function ids (the FUNC byte of a data frame) and their names.

macro_rules! functions {
    ($($name:ident = $id:literal,)*) => {
        /// A Serial API function id. Unknown ids are kept as [`FunctionId::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum FunctionId {
            $($name,)*
            Unknown(u8),
        }

        impl FunctionId {
            pub fn from_byte(b: u8) -> Self {
                match b {
                    $($id => FunctionId::$name,)*
                    other => FunctionId::Unknown(other),
                }
            }

            pub fn to_byte(self) -> u8 {
                match self {
                    $(FunctionId::$name => $id,)*
                    FunctionId::Unknown(b) => b,
                }
            }

            /// The function's name, or `None` when the id is not one we know.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(FunctionId::$name => Some(stringify!($name)),)*
                    FunctionId::Unknown(_) => None,
                }
            }
        }
    };
}

functions! {
    GetSerialApiInitData = 0x02,
    SetApplicationNodeInformation = 0x03,
    ApplicationCommandHandler = 0x04,
    GetControllerCapabilities = 0x05,
    SetSerialApiTimeouts = 0x06,
    GetSerialApiCapabilities = 0x07,
    SoftReset = 0x08,
    GetProtocolVersion = 0x09,
    SerialApiStarted = 0x0A,
    SerialApiSetup = 0x0B,
    SetRfReceiveMode = 0x10,
    SendNodeInformation = 0x12,
    SendData = 0x13,
    SendDataMulticast = 0x14,
    GetControllerVersion = 0x15,
    SendDataAbort = 0x16,
    GetRandom = 0x1C,
    GetControllerId = 0x20,
    GetBackgroundRssi = 0x3B,
    GetNodeProtocolInfo = 0x41,
    SetDefault = 0x42,
    AssignReturnRoute = 0x46,
    DeleteReturnRoute = 0x47,
    RequestNodeNeighborUpdate = 0x48,
    ApplicationUpdate = 0x49,
    AddNodeToNetwork = 0x4A,
    RemoveNodeFromNetwork = 0x4B,
    SetLearnMode = 0x50,
    AssignSucReturnRoute = 0x51,
    SetSucNodeId = 0x54,
    DeleteSucReturnRoute = 0x55,
    GetSucNodeId = 0x56,
    RequestNodeInfo = 0x60,
    RemoveFailedNode = 0x61,
    IsFailedNode = 0x62,
    ReplaceFailedNode = 0x63,
    GetRoutingInfo = 0x80,
    BridgeApplicationCommandHandler = 0xA8,
    SendDataBridge = 0xA9,
    SendDataMulticastBridge = 0xAB,
    GetLongRangeNodes = 0xDA,
}

impl From<u8> for FunctionId {
    fn from(b: u8) -> Self {
        FunctionId::from_byte(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        for b in 0..=255u8 {
            assert_eq!(FunctionId::from_byte(b).to_byte(), b);
        }
    }

    #[test]
    fn names() {
        assert_eq!(FunctionId::from_byte(0x13).name(), Some("SendData"));
        assert_eq!(
            FunctionId::from_byte(0xA8).name(),
            Some("BridgeApplicationCommandHandler")
        );
        assert_eq!(FunctionId::from_byte(0xFF).name(), None);
    }
}
