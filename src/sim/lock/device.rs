//! What a simulated lock answers besides its codes, as a certified Z-Wave Plus lock does, so
//! that other controllers (zwave-js) interview it without timeouts: Z-Wave Plus Info,
//! Association (the lifeline), Door Lock capabilities and configuration, Notification Get,
//! Manufacturer Specific device ids.

use super::*;
use crate::cc::door_lock::{Configuration, ConfigurationV4};

/// Z-Wave Plus Info, Association.
pub(super) const ZWAVE_PLUS_INFO: u8 = 0x5E;
pub(super) const ASSOCIATION: u8 = 0x85;

/// Members an association group holds.
const GROUP_CAPACITY: u8 = 5;
/// Role type of a lock: always listening, or frequently listening (FLiRS).
const ROLE_ALWAYS_ON: u8 = 0x05;
const ROLE_LISTENING_SLEEPING: u8 = 0x07;
/// Icon of a keypad door lock.
const ICON_DOOR_LOCK_KEYPAD: u16 = 0x0300;

/// The door lock's configuration when the simulation starts: constant operation, every
/// handle can open it, no timeout, no auto-relock.
pub(super) fn initial_configuration() -> Configuration {
    Configuration {
        operation_type: 0x01,
        outside_handles: 0x0F,
        inside_handles: 0x0F,
        lock_timeout_minutes: 0xFE,
        lock_timeout_seconds: 0xFE,
        v4: Some(ConfigurationV4 {
            auto_relock_seconds: 0,
            hold_and_release_seconds: 0,
            flags: 0,
        }),
    }
}

impl Lock {
    /// A command of the classes above; `None` when it is none of them.
    pub(super) fn device(&mut self, cmd: &Command, out: &mut Vec<Vec<u8>>) -> Option<Outcome> {
        let mut send = |c: Command| out.push(c.encode());
        match cmd {
            Command::Raw {
                class: ZWAVE_PLUS_INFO,
                command: Some(0x01),
                ..
            } => {
                let role = if self.model.listening == super::super::model::Listening::Always {
                    ROLE_ALWAYS_ON
                } else {
                    ROLE_LISTENING_SLEEPING
                };
                let [hi, lo] = ICON_DOOR_LOCK_KEYPAD.to_be_bytes();
                out.push(vec![
                    ZWAVE_PLUS_INFO,
                    0x02,
                    0x02,
                    role,
                    0x00,
                    hi,
                    lo,
                    hi,
                    lo,
                ]);
            }
            Command::Raw {
                class: ASSOCIATION,
                command: Some(command),
                payload,
            } => return Some(self.association(*command, &payload.0, out)),
            Command::DoorLock(DoorLockCommand::CapabilitiesGet) => {
                send(Command::DoorLock(DoorLockCommand::CapabilitiesReport {
                    raw: vec![
                        0x01, // one byte of operation types:
                        0x06, // constant and timed
                        0x02, // two modes:
                        door_lock::mode::UNSECURED,
                        door_lock::mode::SECURED,
                        0xFF, // every outside and inside handle
                        0x07, // door, bolt and latch
                        0x00, // no block-to-block, twist assist, hold and release, auto-relock
                    ],
                }))
            }
            Command::DoorLock(DoorLockCommand::ConfigurationGet) => send(Command::DoorLock(
                DoorLockCommand::ConfigurationReport(self.door_config.clone()),
            )),
            Command::DoorLock(DoorLockCommand::ConfigurationSet(c)) => {
                if !matches!(c.operation_type, 0x01 | 0x02) {
                    return Some(Outcome::Rejected);
                }
                self.door_config = c.clone();
            }
            Command::Notification(NotificationCommand::Get {
                alarm_type,
                notification_type,
                ..
            }) => {
                let report = match self.model.notification {
                    NotificationKind::None => return Some(Outcome::Unsupported),
                    NotificationKind::Alarm => NotificationReport::alarm(*alarm_type, 0),
                    NotificationKind::V8 => {
                        // Nothing pending: the type asked for, status on, event "idle".
                        let mut r = NotificationReport::access_control(0x00, Vec::new());
                        if let Some(d) = r.details.as_mut() {
                            d.notification_type =
                                notification_type.unwrap_or(notification::types::ACCESS_CONTROL);
                        }
                        r
                    }
                };
                send(Command::Notification(NotificationCommand::Report(report)))
            }
            Command::ManufacturerSpecific(ManufacturerSpecificCommand::DeviceSpecificGet {
                ..
            }) => {
                // Device id type 1 (serial number), UTF-8, the node id in eight digits.
                let serial = format!("{:08}", self.model.node_id);
                let mut raw = vec![0x01, serial.len() as u8];
                raw.extend_from_slice(serial.as_bytes());
                send(Command::ManufacturerSpecific(
                    ManufacturerSpecificCommand::DeviceSpecificReport { raw },
                ))
            }
            _ => return None,
        }
        Some(Outcome::Accepted)
    }

    /// Association: one group (the lifeline), holding up to five nodes.
    fn association(&mut self, command: u8, p: &[u8], out: &mut Vec<Vec<u8>>) -> Outcome {
        match (command, p) {
            // Set: group, nodes.
            (0x01, [1, nodes @ ..]) => {
                for n in nodes {
                    if self.lifeline.len() < usize::from(GROUP_CAPACITY) {
                        self.lifeline.insert(*n);
                    }
                }
            }
            // Get: group (an unknown group reports group 1, as the specification says).
            (0x02, [_, ..]) => {
                let mut r = vec![ASSOCIATION, 0x03, 1, GROUP_CAPACITY, 0];
                r.extend(self.lifeline.iter());
                out.push(r);
            }
            // Remove: group and nodes, or every node of every group.
            (0x04, [] | [0]) => self.lifeline.clear(),
            (0x04, [1]) => self.lifeline.clear(),
            (0x04, [1 | 0, nodes @ ..]) => {
                for n in nodes {
                    self.lifeline.remove(n);
                }
            }
            // Groupings Get.
            (0x05, _) => out.push(vec![ASSOCIATION, 0x06, 1]),
            // Specific Group Get: no group is tied to a button.
            (0x0B, _) => out.push(vec![ASSOCIATION, 0x0C, 0]),
            _ => return Outcome::Rejected,
        }
        Outcome::Accepted
    }
}
