//! A simulated keypad lock: slots that hold codes, and the command classes a lock answers.
//!
//! Pure and synchronous: [`Lock::handle`] takes the bytes of a command from the controller and
//! returns the commands the lock sends back; keypad actions return the notifications the
//! model sends. The stick decides when those reach the host.

mod device;
mod keypad;
mod schedules;
mod user_codes;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{NaiveDate, NaiveDateTime};

use super::model::{LockModel, NotificationKind, UserIdForm};
use crate::cc::notification::{access_control, NotificationReport};
use crate::cc::schedule_entry_lock::{YearDaySchedule, ACTION_SET};
use crate::cc::user_code::{Capabilities, UserCodeEntry};
use crate::cc::{
    battery, door_lock, manufacturer_specific, notification, schedule_entry_lock, supervision,
    time_parameters, user_code, version,
};
use crate::cc::{
    code::user_code_checksum, BatteryCommand, CodeBytes, Command, DoorLockCommand,
    ManufacturerSpecificCommand, NotificationCommand, ScheduleEntryLockCommand, SupervisionCommand,
    SupervisionStatus, TimeParametersCommand, UserCodeCommand, UserIdStatus, VersionCommand,
};

/// One slot (user id) of the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub status: UserIdStatus,
    pub code: Vec<u8>,
}

/// What became of a command that changes the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Accepted,
    Rejected,
    Unsupported,
}

/// Legacy alarm types the simulated Alarm-v1 locks use (Yale/Kwikset conventions).
pub mod alarm {
    pub const KEYPAD_UNLOCK: u8 = 0x13;
    pub const ALL_CODES_DELETED: u8 = 0x20;
    pub const CODE_DELETED: u8 = 0x21;
    pub const CODE_ADDED: u8 = 0x70;
    pub const DUPLICATE_CODE: u8 = 0x71;
}

/// A simulated lock.
#[derive(Debug, Clone)]
pub struct Lock {
    pub model: LockModel,
    slots: BTreeMap<u16, Slot>,
    admin_code: Vec<u8>,
    keypad_mode: u8,
    door_mode: u8,
    pub battery_level: u8,
    /// Out of range: the stick's transmissions get no ACK.
    pub in_range: bool,
    year_day: BTreeMap<(u8, u8), YearDaySchedule>,
    schedule_enabled: BTreeMap<u8, bool>,
    /// The lock's clock as set by Time Parameters, and when (host seconds) it was set.
    clock: Option<(NaiveDateTime, f64)>,
    /// Commands received, for tests that count radio traffic.
    pub commands_received: u64,
    /// Supervision Reports received for the lock's own supervised notifications.
    pub supervision_reports_received: u64,
    supervision_session: u8,
    /// S2 or S0, when the lock is secure.
    secure: Option<super::secure::Security>,
    /// The nodes in the lock's association group 1 (the lifeline).
    lifeline: BTreeSet<u8>,
    door_config: crate::cc::door_lock::Configuration,
}

impl Lock {
    /// A lock of `model` in the network `home_id`.
    pub fn new(model: LockModel, home_id: u32) -> Self {
        use super::model::LockSecurity as L;
        use super::secure::{SecureLink, Security};
        use super::secure_s0::S0Link;
        let seed = u64::from(model.node_id);
        let key = model.secure_key().map(|(_, k)| k);
        let secure = match (model.included, model.security) {
            (_, L::None) => None,
            (true, L::S2AccessControl) => key.map(|k| {
                Security::S2(SecureLink::new(
                    model.node_id,
                    home_id,
                    crate::security::SecurityClass::S2AccessControl,
                    k,
                    seed,
                ))
            }),
            (false, L::S2AccessControl) => Some(Security::S2(SecureLink::joining(
                model.node_id,
                home_id,
                crate::security::SecurityClass::S2AccessControl,
                seed,
            ))),
            (true, L::S0) => key.map(|k| Security::S0(S0Link::new(model.node_id, Some(k), seed))),
            (false, L::S0) => Some(Security::S0(S0Link::new(model.node_id, None, seed))),
        };
        let mut slots = BTreeMap::new();
        for c in &model.initial_codes {
            slots.insert(
                c.slot,
                Slot {
                    status: if c.disabled {
                        UserIdStatus::Disabled
                    } else {
                        UserIdStatus::Enabled
                    },
                    code: c.code.as_bytes().to_vec(),
                },
            );
        }
        Lock {
            battery_level: model.battery_level,
            model,
            slots,
            admin_code: Vec::new(),
            keypad_mode: 0,
            door_mode: door_lock::mode::SECURED,
            in_range: true,
            year_day: BTreeMap::new(),
            schedule_enabled: BTreeMap::new(),
            clock: None,
            commands_received: 0,
            supervision_reports_received: 0,
            supervision_session: 0,
            secure,
            lifeline: BTreeSet::new(),
            door_config: device::initial_configuration(),
        }
    }

    /// Frames the lock sends on its own (or in answer to a plain command): encrypted when the
    /// lock is secure.
    pub(super) fn seal(&mut self, frames: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        match &mut self.secure {
            Some(link) if !frames.is_empty() => link.to_controller(frames),
            _ => frames,
        }
    }

    /// The 5-digit PIN printed on a lock made to be included securely.
    pub fn dsk_pin(&self) -> Option<u16> {
        self.secure.as_ref().and_then(|l| l.pin())
    }

    /// Excluded: a secure lock drops its network keys and will exchange keys again when it is
    /// included next (its DSK, and so its PIN, stays).
    pub fn forget_network(&mut self, home_id: u32) {
        let node = self.model.node_id;
        if let Some(link) = self.secure.as_mut() {
            link.forget_network(node, home_id);
        }
    }

    /// A reboot: codes stay, volatile S2 state (SPANs) is gone.
    pub fn power_cycle(&mut self) {
        if let Some(link) = self.secure.as_mut() {
            link.forget_spans();
        }
    }

    /// Frames from the controller that the lock's S2 layer turned away.
    pub fn rejected_secure_frames(&self) -> u64 {
        self.secure.as_ref().map_or(0, |l| l.rejected())
    }

    pub fn node_id(&self) -> u8 {
        self.model.node_id
    }

    /// The occupied slots, ascending.
    pub fn slots(&self) -> &BTreeMap<u16, Slot> {
        &self.slots
    }

    pub fn slot(&self, id: u16) -> Option<&Slot> {
        self.slots.get(&id)
    }

    pub fn is_locked(&self) -> bool {
        self.door_mode == door_lock::mode::SECURED
    }

    /// The command classes in the node information frame. A secure lock lists there only
    /// the classes it answers in plain (its security class, Version); the others, User Code
    /// and Door Lock among them, only in its S2 (or S0) Commands Supported Report, as real
    /// S2 locks do.
    pub fn command_classes(&self) -> Vec<u8> {
        let all = self.all_classes();
        match &self.secure {
            Some(link) => all
                .into_iter()
                .filter(|cc| *cc == link.cc() || link.answers_in_plain(*cc))
                .collect(),
            None => all,
        }
    }

    /// Every command class the lock supports, at whatever security.
    fn all_classes(&self) -> Vec<u8> {
        let m = &self.model;
        let mut v = vec![
            device::ZWAVE_PLUS_INFO,
            version::ID,
            manufacturer_specific::ID,
            user_code::ID,
            device::ASSOCIATION,
        ];
        if m.door_lock {
            v.push(door_lock::ID);
        }
        if m.notification != NotificationKind::None {
            v.push(notification::ID);
        }
        if m.battery {
            v.push(battery::ID);
        }
        if m.supervision {
            v.push(supervision::ID);
        }
        if m.schedule_entry_lock {
            v.push(schedule_entry_lock::ID);
            v.push(time_parameters::ID);
        }
        if let Some(link) = &self.secure {
            v.push(link.cc());
        }
        v
    }

    fn class_version(&self, class: u8) -> u8 {
        let m = &self.model;
        match class {
            user_code::ID => m.user_code_version,
            version::ID => 2,
            manufacturer_specific::ID => 2,
            device::ZWAVE_PLUS_INFO | device::ASSOCIATION => 2,
            door_lock::ID if m.door_lock => 4,
            notification::ID => match m.notification {
                NotificationKind::V8 => 8,
                NotificationKind::Alarm => 1,
                NotificationKind::None => 0,
            },
            battery::ID if m.battery => 1,
            supervision::ID if m.supervision => 1,
            schedule_entry_lock::ID if m.schedule_entry_lock => 3,
            time_parameters::ID if m.schedule_entry_lock => 1,
            crate::security::s2::encap::CC | crate::security::s0::CC
                if self.secure.as_ref().is_some_and(|l| l.cc() == class) =>
            {
                1
            }
            _ => 0,
        }
    }

    /// Handle a command from the controller; returns the commands the lock sends back.
    /// `now_secs` is the host clock (seconds), used for the lock's own clock.
    pub fn handle(&mut self, bytes: &[u8], now_secs: f64) -> Vec<Vec<u8>> {
        self.commands_received += 1;
        let Some(link) = self.secure.as_mut() else {
            return self.handle_plain(bytes, now_secs);
        };
        let scheme = link.cc();
        let verdict = link.from_controller(bytes);
        match verdict {
            super::secure::FromController::Command(inner) if bytes.first() == Some(&scheme) => {
                let classes = self.all_classes();
                let link = self.secure.as_mut().expect("secure");
                let mut out = link.take_extra();
                let answers = match link.commands_supported(&inner, &classes) {
                    Some(report) => vec![report],
                    None => self.handle_plain(&inner, now_secs),
                };
                out.extend(self.seal(answers));
                out
            }
            super::secure::FromController::Command(plain) => self.handle_plain(&plain, now_secs),
            super::secure::FromController::Send(frames) => frames,
            super::secure::FromController::Ignore => Vec::new(),
        }
    }

    fn handle_plain(&mut self, bytes: &[u8], now_secs: f64) -> Vec<Vec<u8>> {
        let Ok(cmd) = Command::parse(bytes) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Command::Supervision(SupervisionCommand::Report { .. }) = &cmd {
            self.supervision_reports_received += 1;
            return out;
        }
        if let Command::Supervision(SupervisionCommand::Get {
            session_id,
            encapsulated,
            ..
        }) = &cmd
        {
            if !self.model.supervision {
                return out;
            }
            let outcome = match Command::parse(&encapsulated.0) {
                Ok(inner) => self.apply(&inner, now_secs, &mut out),
                Err(_) => Outcome::Unsupported,
            };
            let status = match outcome {
                Outcome::Accepted => SupervisionStatus::Success,
                Outcome::Rejected => SupervisionStatus::Fail,
                Outcome::Unsupported => SupervisionStatus::NoSupport,
            };
            out.insert(
                0,
                Command::Supervision(SupervisionCommand::Report {
                    more_status_updates: false,
                    wake_up_request: false,
                    session_id: *session_id,
                    status,
                    duration: 0,
                })
                .encode(),
            );
            return out;
        }
        self.apply(&cmd, now_secs, &mut out);
        out
    }

    fn apply(&mut self, cmd: &Command, now_secs: f64, out: &mut Vec<Vec<u8>>) -> Outcome {
        if self.class_version(cmd.class_id()) == 0 {
            return Outcome::Unsupported;
        }
        if let Some(outcome) = self.device(cmd, out) {
            return outcome;
        }
        let mut send = |c: Command| out.push(c.encode());
        match cmd {
            Command::UserCode(u) => return self.user_code(u, out),
            Command::Version(VersionCommand::Get) => {
                send(Command::Version(VersionCommand::Report {
                    library_type: 0x03,
                    protocol_version: 7,
                    protocol_sub_version: 18,
                    firmware_version: 1,
                    firmware_sub_version: 4,
                    extra: Vec::new(),
                }))
            }
            Command::Version(VersionCommand::CommandClassGet { requested_class }) => {
                send(Command::Version(VersionCommand::CommandClassReport {
                    requested_class: *requested_class,
                    version: self.class_version(*requested_class),
                }))
            }
            Command::ManufacturerSpecific(ManufacturerSpecificCommand::Get) => send(
                Command::ManufacturerSpecific(ManufacturerSpecificCommand::Report {
                    manufacturer_id: self.model.manufacturer_id,
                    product_type: self.model.product_type,
                    product_id: self.model.product_id,
                }),
            ),
            Command::Battery(BatteryCommand::Get) => {
                send(Command::Battery(BatteryCommand::Report {
                    level: self.battery_level,
                    flags: None,
                }))
            }
            Command::DoorLock(DoorLockCommand::OperationSet { mode }) => {
                self.door_mode = *mode;
            }
            Command::DoorLock(DoorLockCommand::OperationGet) => send(Command::DoorLock(
                DoorLockCommand::OperationReport(self.door_report()),
            )),
            Command::Notification(NotificationCommand::SupportedGet) => send(
                Command::Notification(NotificationCommand::SupportedReport {
                    v1_alarm: self.model.notification == NotificationKind::Alarm,
                    types_mask: vec![1 << notification::types::ACCESS_CONTROL],
                }),
            ),
            Command::Notification(NotificationCommand::EventSupportedGet { notification_type }) => {
                let mask = if *notification_type == notification::types::ACCESS_CONTROL {
                    // Events 1-6 and 0x0B-0x0F.
                    vec![0x7E, 0xF8]
                } else {
                    Vec::new()
                };
                send(Command::Notification(
                    NotificationCommand::EventSupportedReport {
                        notification_type: *notification_type,
                        events_mask: mask,
                    },
                ))
            }
            Command::ScheduleEntryLock(s) => return self.schedule(s, out),
            Command::TimeParameters(TimeParametersCommand::Set(d)) => {
                let t = NaiveDate::from_ymd_opt(
                    i32::from(d.year),
                    u32::from(d.month),
                    u32::from(d.day),
                )
                .and_then(|date| {
                    date.and_hms_opt(u32::from(d.hour), u32::from(d.minute), u32::from(d.second))
                });
                match t {
                    Some(t) => self.clock = Some((t, now_secs)),
                    None => return Outcome::Rejected,
                }
            }
            Command::TimeParameters(TimeParametersCommand::Get) => {
                if let Some(t) = self.lock_time(now_secs) {
                    use chrono::{Datelike, Timelike};
                    send(Command::TimeParameters(TimeParametersCommand::Report(
                        crate::cc::time_parameters::DateTime {
                            year: t.year() as u16,
                            month: t.month() as u8,
                            day: t.day() as u8,
                            hour: t.hour() as u8,
                            minute: t.minute() as u8,
                            second: t.second() as u8,
                        },
                    )))
                }
            }
            _ => return Outcome::Unsupported,
        }
        Outcome::Accepted
    }

    fn door_report(&self) -> crate::cc::door_lock::OperationReport {
        crate::cc::door_lock::OperationReport {
            current_mode: self.door_mode,
            outside_handles: 0x0F,
            inside_handles: 0x0F,
            condition: if self.is_locked() { 0x01 } else { 0x03 },
            timeout_minutes: 0xFE,
            timeout_seconds: 0xFE,
            target_mode: Some(self.door_mode),
            duration: Some(0),
        }
    }

    fn lock_time(&self, now_secs: f64) -> Option<NaiveDateTime> {
        self.clock
            .map(|(t, at)| t + chrono::Duration::milliseconds(((now_secs - at) * 1000.0) as i64))
    }

    fn max_slots(&self) -> u16 {
        self.model.slots
    }

    /// An Access Control event (or its legacy alarm) about `user_id`, as the model sends it.
    fn event(&mut self, event: u8, alarm_type: u8, user_id: u16) -> Option<Vec<u8>> {
        let bytes = self.event_bytes(event, alarm_type, user_id)?;
        if !self.model.quirks.supervised_notifications {
            return Some(bytes);
        }
        self.supervision_session = (self.supervision_session + 1) % 64;
        Some(
            Command::Supervision(SupervisionCommand::Get {
                status_updates: false,
                session_id: self.supervision_session,
                encapsulated: crate::cc::RawCommand(bytes),
            })
            .encode(),
        )
    }

    fn event_bytes(&self, event: u8, alarm_type: u8, user_id: u16) -> Option<Vec<u8>> {
        let report = match self.model.notification {
            NotificationKind::None => return None,
            NotificationKind::Alarm => {
                NotificationReport::alarm(alarm_type, user_id.min(255) as u8)
            }
            NotificationKind::V8 => {
                let params = match (self.model.user_id_form, event) {
                    (_, access_control::ALL_USER_CODES_DELETED) => Vec::new(),
                    (UserIdForm::Byte, _) => vec![user_id.min(255) as u8],
                    (UserIdForm::Report, _) => {
                        let (status, code) = self.report(user_id);
                        Command::UserCode(UserCodeCommand::Report {
                            user_id: user_id.min(255) as u8,
                            user_id_status: status,
                            user_code: CodeBytes::new(code),
                        })
                        .encode()
                    }
                };
                NotificationReport::access_control(event, params)
            }
        };
        Some(Command::Notification(NotificationCommand::Report(report)).encode())
    }
}
