//! What the driver knows about a node: protocol info from the stick and what the interview
//! learned from the node itself. Serializable so the engine can store it and hand it back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cc::user_code::Capabilities;
use crate::cc::{notification, supervision, user_code};
use crate::serialapi::controller::{Flirs, NodeProtocolInfo};
use crate::serialapi::NodeId;

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
        }
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
