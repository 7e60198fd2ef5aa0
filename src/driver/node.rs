//! What the driver knows about a node: protocol info from the stick and what the interview
//! learned from the node itself. Serializable so the engine can store it and hand it back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cc::user_code::Capabilities;
use crate::cc::{notification, supervision, user_code};
use crate::serialapi::controller::{Flirs, NodeProtocolInfo};
use crate::serialapi::NodeId;

/// The generic device class of door locks and other entry control devices.
pub const GENERIC_ENTRY_CONTROL: u8 = 0x40;

/// How a node can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reachability {
    /// Always listening.
    Listening,
    /// Frequently listening: woken by a 250 ms beam.
    Flirs250,
    /// Frequently listening: woken by a 1000 ms beam (most locks).
    Flirs1000,
    /// Asleep except at wake-up.
    Sleeping,
}

impl Reachability {
    pub fn from_protocol_info(p: &NodeProtocolInfo) -> Self {
        if p.is_listening() {
            Reachability::Listening
        } else {
            match p.flirs() {
                Some(Flirs::Ms250) => Reachability::Flirs250,
                Some(Flirs::Ms1000) => Reachability::Flirs1000,
                None => Reachability::Sleeping,
            }
        }
    }
}

/// User Code support learned in the interview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserCodeSupport {
    pub version: u8,
    /// Number of user ids (slots).
    pub slots: u16,
    pub checksum: bool,
    /// Extended Get returns several codes per report.
    pub bulk_reports: bool,
    /// Characters allowed in a code ("0123456789" when the lock does not say).
    pub characters: String,
    pub admin_code: bool,
}

/// Notification support learned in the interview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NotificationSupport {
    /// Notification v3+ with Access Control events.
    AccessControl,
    /// Legacy Alarm v1/v2 type/level reports.
    LegacyAlarm,
    #[default]
    None,
}

/// Everything known about a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub node_id: NodeId,
    pub reachability: Reachability,
    /// Device classes from the protocol info.
    pub generic_class: u8,
    pub specific_class: u8,
    /// Command classes the node supports (from its node information frame).
    pub command_classes: Option<Vec<u8>>,
    /// Version of each supported command class (0 = not supported).
    pub versions: BTreeMap<u8, u8>,
    pub manufacturer: Option<Manufacturer>,
    pub user_code: Option<UserCodeSupport>,
    pub notification: Option<NotificationSupport>,
    pub battery_level: Option<u8>,
    pub door_locked: Option<bool>,
    /// Every interview step is done.
    pub interviewed: bool,
    /// The security class the node was granted (learnt by probing), if any.
    #[serde(default)]
    pub security_class: Option<crate::security::SecurityClass>,
    /// The command classes the node lists only under security (its S2 or S0 Commands
    /// Supported Report at the granted class), once asked. They are in `command_classes` too.
    #[serde(default)]
    pub secure_command_classes: Option<Vec<u8>>,
    /// The node must be spoken to securely and cannot be: nothing of User Code, Door Lock or
    /// Schedule Entry Lock goes to it or is taken from it ([`NodeInfo::security_required`]).
    #[serde(default)]
    pub security_failure: Option<SecurityFailure>,
}

/// Why a node that must be reached through security cannot be. Its codes would travel in
/// clear, so none are: the lock shows a device error until it is excluded and included again
/// (or, for [`SecurityFailure::NoKey`], the keys it was included with are imported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum SecurityFailure {
    /// zwlock included it asking for security, the key exchange failed (a wrong PIN, a KEX
    /// Fail, no answer in time), and it could not be removed afterwards.
    #[error("secure inclusion failed: exclude and include again")]
    KeyExchangeFailed,
    /// It advertises Security 0 or Security 2 but answers under none of the keys this hub
    /// holds (another controller's keys, or a key exchange that failed earlier).
    #[error("secure inclusion failed: exclude and include again")]
    NoKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manufacturer {
    pub manufacturer_id: u16,
    pub product_type: u16,
    pub product_id: u16,
}

impl NodeInfo {
    pub fn new(node_id: NodeId, protocol: &NodeProtocolInfo) -> Self {
        NodeInfo {
            node_id,
            reachability: Reachability::from_protocol_info(protocol),
            generic_class: protocol.generic,
            specific_class: protocol.specific,
            command_classes: None,
            versions: BTreeMap::new(),
            manufacturer: None,
            user_code: None,
            notification: None,
            battery_level: None,
            door_locked: None,
            interviewed: false,
            security_class: None,
            secure_command_classes: None,
            security_failure: None,
        }
    }

    /// Whether the node must only be spoken to securely: it advertises Security 0 or 2 in
    /// its node information, or zwlock's inclusion of it asked for security.
    pub fn security_required(&self) -> bool {
        self.supports(crate::cc::security0::ID)
            || self.supports(crate::cc::security2::ID)
            || self.security_failure.is_some()
    }

    /// Looks like a lock: it speaks User Code, or its device class is Entry Control (a
    /// secure lock whose plain node information lists no User Code).
    pub fn looks_like_lock(&self) -> bool {
        self.is_lock() || self.generic_class == GENERIC_ENTRY_CONTROL
    }

    pub fn supports(&self, cc: u8) -> bool {
        self.command_classes
            .as_ref()
            .is_some_and(|ccs| ccs.contains(&cc))
    }

    /// The version of a class: interviewed, or 1 if the node lists it without a version.
    pub fn version(&self, cc: u8) -> u8 {
        match self.versions.get(&cc) {
            Some(v) => *v,
            None if self.supports(cc) => 1,
            None => 0,
        }
    }

    pub fn supports_supervision(&self) -> bool {
        self.version(supervision::ID) >= 1
    }

    /// A keypad lock: it speaks User Code.
    pub fn is_lock(&self) -> bool {
        self.supports(user_code::ID)
    }

    /// Fill in User Code support from a Users Number Report and, for v2, Capabilities.
    pub fn set_user_code(&mut self, slots: u16, caps: Option<&Capabilities>) {
        let version = self.version(user_code::ID).max(1);
        self.user_code = Some(UserCodeSupport {
            version,
            slots,
            checksum: caps.is_some_and(|c| c.checksum_supported),
            bulk_reports: caps.is_some_and(|c| c.multiple_report_supported),
            characters: caps
                .map(|c| c.supported_characters())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "0123456789".into()),
            admin_code: caps.is_some_and(|c| c.admin_code_supported),
        });
    }

    /// Notification support from the class version (v1/v2 = legacy alarm reports).
    pub fn derive_notification(&mut self) {
        let v = self.version(notification::ID);
        self.notification = Some(match v {
            0 => NotificationSupport::None,
            1 | 2 => NotificationSupport::LegacyAlarm,
            _ => NotificationSupport::AccessControl,
        });
    }
}
