//! The lock port over the Z-Wave driver: slots and PINs become User Code commands, reports
//! become readings, notifications become [`PortEvent`]s.
//!
//! Command choices, all made here:
//! * a slot above 255 is written and read with the Extended User Code commands (v2), others
//!   with plain Set / Get;
//! * a whole-lock read pages Extended User Code Get with "report more" on locks that send
//!   several codes per report, and reads slot by slot elsewhere; on a lock with a checksum it
//!   asks the checksum first and stops once the codes read explain it ([`super::proof`]);
//! * a write the lock supervises is confirmed by its Supervision Report; one it cannot
//!   supervise is read back: the same PIN is confirmed, an occupied slot whose code the lock
//!   hides is done-but-unverified, anything else is a refusal of a kind;
//! * an on-lock schedule goes before its code ([`super::schedule`]);
//! * legacy alarm type/level pairs are read with the manufacturer's table ([`super::alarms`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::alarms::{self, LockEvent};
use super::proof::{ChecksumRead, Step};
use super::schedule;
use super::{
    LockCaps, LockInfo, LockPort, Notifications, Outcome, Page, PortError, PortEvent, Refusal,
    SetCode, SlotContent, SlotReading, Written,
};
use crate::cc::notification::NotificationCommand;
use crate::cc::user_code::UserCodeEntry;
use crate::cc::{
    BatteryCommand, CodeBytes, Command, DoorLockCommand, SupervisionStatus, UserCodeCommand,
    UserIdStatus,
};
use crate::driver::node::NotificationSupport;
use crate::driver::{DriverEvent, DriverHandle, NodeInfo, Priority, SetOutcome};
use crate::serialapi::NodeId;

/// The port over a running driver.
pub struct ZwavePort {
    driver: DriverHandle,
    /// Whole-lock reads under way that the checksum may cut short, by node.
    proofs: Mutex<HashMap<u16, ChecksumRead>>,
}

impl ZwavePort {
    /// The port, and the stream of what locks say, translated from the driver's events.
    pub fn new(
        driver: DriverHandle,
        events: mpsc::Receiver<DriverEvent>,
    ) -> (Arc<ZwavePort>, mpsc::Receiver<PortEvent>) {
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(translate(events, tx));
        (
            Arc::new(ZwavePort {
                driver,
                proofs: Mutex::new(HashMap::new()),
            }),
            rx,
        )
    }

    /// The driver behind the port (network management and the watchdog's round trip).
    pub fn driver(&self) -> &DriverHandle {
        &self.driver
    }
}

/// Put `pin` in `slot` (Extended Set above slot 255).
pub fn set_command(slot: u16, pin: &str) -> Command {
    match u8::try_from(slot) {
        Ok(id) => Command::UserCode(UserCodeCommand::Set {
            user_id: id,
            user_id_status: UserIdStatus::Enabled,
            user_code: CodeBytes::from_pin(pin),
        }),
        Err(_) => Command::UserCode(UserCodeCommand::ExtendedUserCodeSet {
            entries: vec![UserCodeEntry {
                user_id: slot,
                user_id_status: UserIdStatus::Enabled,
                user_code: CodeBytes::from_pin(pin),
            }],
        }),
    }
}

/// Empty `slot`.
pub fn clear_command(slot: u16) -> Command {
    match u8::try_from(slot) {
        Ok(id) => Command::UserCode(UserCodeCommand::clear(id)),
        Err(_) => Command::UserCode(UserCodeCommand::ExtendedUserCodeSet {
            entries: vec![UserCodeEntry {
                user_id: slot,
                user_id_status: UserIdStatus::Available,
                user_code: CodeBytes::default(),
            }],
        }),
    }
}

/// Read `slot`.
pub fn get_command(slot: u16) -> Command {
    match u8::try_from(slot) {
        Ok(id) => Command::UserCode(UserCodeCommand::Get { user_id: id }),
        Err(_) => Command::UserCode(UserCodeCommand::ExtendedUserCodeGet {
            user_id: slot,
            report_more: false,
        }),
    }
}

fn content(status: UserIdStatus, code: &CodeBytes) -> SlotContent {
    if status == UserIdStatus::NotAvailable {
        SlotContent::Unavailable
    } else if !status.is_occupied() {
        SlotContent::Empty
    } else if code.is_hidden() {
        SlotContent::Hidden
    } else {
        match code.pin() {
            Some(p) => SlotContent::Code(p.to_string()),
            None => SlotContent::Hidden,
        }
    }
}

/// Every slot a User Code report tells of, as the lock put it (for the checksum).
fn entries(report: &Command) -> Vec<(u16, UserIdStatus, &CodeBytes)> {
    match report {
        Command::UserCode(UserCodeCommand::Report {
            user_id,
            user_id_status,
            user_code,
        }) => vec![(u16::from(*user_id), *user_id_status, user_code)],
        Command::UserCode(UserCodeCommand::ExtendedUserCodeReport { entries, .. }) => entries
            .iter()
            .map(|e| (e.user_id, e.user_id_status, &e.user_code))
            .collect(),
        _ => Vec::new(),
    }
}

/// Slots `from..=last`, empty.
fn empty_from(from: u16, last: u16) -> Vec<SlotReading> {
    (from..=last)
        .map(|slot| SlotReading {
            slot,
            content: SlotContent::Empty,
            disabled: false,
        })
        .collect()
}

/// Every slot a User Code report tells of.
pub fn readings(report: &Command) -> Vec<SlotReading> {
    match report {
        Command::UserCode(UserCodeCommand::Report {
            user_id,
            user_id_status,
            user_code,
        }) => vec![SlotReading {
            slot: u16::from(*user_id),
            content: content(*user_id_status, user_code),
            disabled: *user_id_status == UserIdStatus::Disabled,
        }],
        Command::UserCode(UserCodeCommand::ExtendedUserCodeReport { entries, .. }) => entries
            .iter()
            .map(|e| SlotReading {
                slot: e.user_id,
                content: content(e.user_id_status, &e.user_code),
                disabled: e.user_id_status == UserIdStatus::Disabled,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn refusal(s: SupervisionStatus) -> Refusal {
    match s {
        SupervisionStatus::NoSupport => Refusal::NotSupported,
        _ => Refusal::Rejected,
    }
}

impl ZwavePort {
    /// The lock's User Code checksum (`None` when it has none).
    async fn lock_checksum(&self, lock: &LockCaps) -> Result<Option<u16>, PortError> {
        if !(lock.checksum && lock.user_code_version >= 2) {
            return Ok(None);
        }
        match self
            .driver
            .get(
                NodeId(lock.node),
                Command::UserCode(UserCodeCommand::UserCodeChecksumGet),
                Priority::Background,
            )
            .await
        {
            Ok(Command::UserCode(UserCodeCommand::UserCodeChecksumReport { checksum })) => {
                Ok(Some(checksum))
            }
            Ok(_) => Ok(None),
            Err(e) => Err(PortError::new("reading the checksum", e)),
        }
    }

    fn set_proof(&self, node: u16, proof: Option<ChecksumRead>) {
        let mut proofs = self.proofs.lock().unwrap_or_else(|e| e.into_inner());
        match proof {
            Some(p) => proofs.insert(node, p),
            None => proofs.remove(&node),
        };
    }

    /// The read under way on `node`, when the page at `from` goes on with it.
    fn take_proof(&self, node: u16, from: u16) -> Option<ChecksumRead> {
        let mut proofs = self.proofs.lock().unwrap_or_else(|e| e.into_inner());
        proofs.remove(&node).filter(|p| p.continues_at(from))
    }

    async fn read(&self, lock: &LockCaps, slot: u16) -> Result<SlotReading, PortError> {
        let report = self
            .driver
            .get(NodeId(lock.node), get_command(slot), Priority::Normal)
            .await
            .map_err(|e| PortError::new("reading a slot", e))?;
        readings(&report)
            .into_iter()
            .find(|r| r.slot == slot)
            .ok_or_else(|| {
                PortError::new(
                    "reading a slot",
                    crate::driver::DriverError::UnexpectedAnswer {
                        context: "a User Code report for another slot",
                        answer: report.command_name().to_string(),
                    },
                )
            })
    }

    /// A supervised write, or one read back when the lock cannot supervise it.
    async fn write(
        &self,
        lock: &LockCaps,
        slot: u16,
        command: Command,
        verify: impl Fn(&SlotContent) -> Result<Written, Refusal>,
    ) -> Outcome<Written> {
        let during = "writing a slot";
        match self
            .driver
            .set(NodeId(lock.node), command, Priority::Normal)
            .await
        {
            Ok(SetOutcome::Confirmed) => Ok(Ok(Written::Confirmed)),
            Ok(SetOutcome::Refused(s)) => Ok(Err(refusal(s))),
            Ok(SetOutcome::Transmitted) => {
                let reading = self.read(lock, slot).await?;
                Ok(verify(&reading.content))
            }
            Err(e) => Err(PortError::new(during, e)),
        }
    }

    async fn send_all(&self, lock: &LockCaps, commands: Vec<Command>) -> Outcome<Written> {
        for cmd in commands {
            match self
                .driver
                .set(NodeId(lock.node), cmd, Priority::Normal)
                .await
            {
                Ok(SetOutcome::Refused(s)) => return Ok(Err(refusal(s))),
                Ok(_) => {}
                Err(e) => return Err(PortError::new("programming a schedule", e)),
            }
        }
        Ok(Ok(Written::Confirmed))
    }
}

impl LockPort for ZwavePort {
    fn set_code<'a>(
        &'a self,
        lock: &'a LockCaps,
        req: SetCode<'a>,
    ) -> BoxFuture<'a, Outcome<Written>> {
        Box::pin(async move {
            let user_id = u8::try_from(req.slot).ok();
            // The schedule first, so the code never works outside its window; or, for a code
            // without one, away with a schedule an earlier code left in the slot.
            let prelude = match (req.schedule, user_id) {
                (Some(w), Some(id)) => {
                    schedule::program_commands(id, &w.starts_at, &w.ends_at, &req.now)
                }
                (None, Some(id)) if req.clear_schedule => schedule::unprogram_commands(id),
                _ => Vec::new(),
            };
            if let Err(r) = self.send_all(lock, prelude).await? {
                return Ok(Err(r));
            }
            let pin = req.pin;
            self.write(lock, req.slot, set_command(req.slot, pin), |c| match c {
                SlotContent::Code(p) if p == pin => Ok(Written::Confirmed),
                SlotContent::Hidden => Ok(Written::Unverified),
                SlotContent::Code(_) => Err(Refusal::Different),
                SlotContent::Empty | SlotContent::Unavailable => Err(Refusal::NotKept),
            })
            .await
        })
    }

    fn clear_slot<'a>(&'a self, lock: &'a LockCaps, slot: u16) -> BoxFuture<'a, Outcome<Written>> {
        Box::pin(self.write(lock, slot, clear_command(slot), |c| match c {
            SlotContent::Empty | SlotContent::Unavailable => Ok(Written::Confirmed),
            SlotContent::Code(_) | SlotContent::Hidden => Err(Refusal::StillThere),
        }))
    }

    fn clear_schedule<'a>(
        &'a self,
        lock: &'a LockCaps,
        slot: u16,
    ) -> BoxFuture<'a, Outcome<Written>> {
        Box::pin(async move {
            match u8::try_from(slot) {
                Ok(id) => self.send_all(lock, schedule::unprogram_commands(id)).await,
                // Schedule Entry Lock user ids are one byte: there is none to clear.
                Err(_) => Ok(Ok(Written::Confirmed)),
            }
        })
    }

    fn read_slot<'a>(
        &'a self,
        lock: &'a LockCaps,
        slot: u16,
    ) -> BoxFuture<'a, Result<SlotReading, PortError>> {
        Box::pin(self.read(lock, slot))
    }

    fn read_page<'a>(
        &'a self,
        lock: &'a LockCaps,
        from: u16,
    ) -> BoxFuture<'a, Result<Page, PortError>> {
        Box::pin(async move {
            // A whole-lock read of a lock with a checksum asks for it first ([`super::proof`]).
            let provable = lock.checksum && lock.user_code_version >= 2;
            if provable && from == 1 {
                let proof = match self.lock_checksum(lock).await? {
                    Some(cs) => match ChecksumRead::start(cs) {
                        Some(p) => Some(p),
                        None => {
                            tracing::debug!(node = lock.node, "checksum 0: every slot is empty");
                            return Ok(Page {
                                readings: empty_from(1, lock.slots),
                                next: None,
                            });
                        }
                    },
                    None => None,
                };
                self.set_proof(lock.node, proof);
            }
            let bulk = lock.user_code_version >= 2 && lock.bulk_reports;
            let cmd = if bulk {
                Command::UserCode(UserCodeCommand::ExtendedUserCodeGet {
                    user_id: from,
                    report_more: true,
                })
            } else {
                get_command(from)
            };
            let report = self
                .driver
                .get(NodeId(lock.node), cmd, Priority::Background)
                .await
                .map_err(|e| PortError::new("reading the lock's codes", e))?;
            let next = match &report {
                Command::UserCode(UserCodeCommand::ExtendedUserCodeReport {
                    next_user_id, ..
                }) if bulk => *next_user_id,
                _ => from.saturating_add(1),
            };
            let count = lock.slots.max(1);
            let done = next == 0 || next > count || next <= from;
            let next = (!done).then_some(next);
            let mut readings = readings(&report);
            let step = self.take_proof(lock.node, from).map(|mut proof| {
                let step = proof.page(&entries(&report), next);
                (proof, step)
            });
            match step {
                Some((proof, Step::Continue(n))) => {
                    if n.is_some() {
                        self.set_proof(lock.node, Some(proof));
                    }
                    Ok(Page { readings, next })
                }
                Some((_, Step::RestEmpty { from: rest })) => {
                    tracing::debug!(
                        node = lock.node,
                        from = rest,
                        "the codes read explain the checksum: the other slots are empty"
                    );
                    readings.extend(empty_from(rest, lock.slots));
                    Ok(Page {
                        readings,
                        next: None,
                    })
                }
                Some((_, Step::GiveUp(_))) | None => Ok(Page { readings, next }),
            }
        })
    }

    fn checksum<'a>(&'a self, lock: &'a LockCaps) -> BoxFuture<'a, Result<Option<u16>, PortError>> {
        Box::pin(self.lock_checksum(lock))
    }

    fn set_bolt<'a>(&'a self, lock: &'a LockCaps, locked: bool) -> BoxFuture<'a, Outcome<Written>> {
        Box::pin(async move {
            let mode = if locked {
                crate::cc::door_lock::mode::SECURED
            } else {
                crate::cc::door_lock::mode::UNSECURED
            };
            match self
                .driver
                .set(
                    NodeId(lock.node),
                    Command::DoorLock(DoorLockCommand::OperationSet { mode }),
                    Priority::High,
                )
                .await
            {
                Ok(SetOutcome::Confirmed) => Ok(Ok(Written::Confirmed)),
                Ok(SetOutcome::Transmitted) => Ok(Ok(Written::Unverified)),
                Ok(SetOutcome::Refused(s)) => Ok(Err(refusal(s))),
                Err(e) => Err(PortError::new("working the bolt", e)),
            }
        })
    }

    fn restore(&self, cache: &str) {
        match serde_json::from_str::<NodeInfo>(cache) {
            Ok(info) => {
                let driver = self.driver.clone();
                tokio::spawn(async move {
                    let _ = driver.seed_node(info).await;
                });
            }
            Err(e) => tracing::warn!(
                error = %e,
                "a lock's cached interview is unreadable (written by another version?); it is interviewed again"
            ),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.driver.shutdown())
    }
}

/// What the port tells of a node the driver knows, when it is a keypad lock.
pub fn lock_info(info: &NodeInfo) -> Option<LockInfo> {
    // A lock that must be reached securely and cannot be is told of as such, whatever its
    // interview could learn (a secure lock lists User Code only under security).
    let failure = info
        .security_failure
        .filter(|_| info.security_class.is_none() && info.looks_like_lock());
    let unknown = crate::driver::UserCodeSupport::default();
    let uc = match (&info.user_code, failure) {
        (Some(uc), _) if info.is_lock() => uc,
        (_, Some(_)) => &unknown,
        _ => return None,
    };
    let has = |cc: u8| info.versions.get(&cc).is_some_and(|v| *v > 0) || info.supports(cc);
    Some(LockInfo {
        node: info.node_id.0,
        caps: LockCaps {
            node: info.node_id.0,
            slots: uc.slots,
            user_code_version: uc.version,
            bulk_reports: uc.bulk_reports,
            checksum: uc.checksum,
            schedule: has(crate::cc::schedule_entry_lock::ID)
                && has(crate::cc::time_parameters::ID),
        },
        manufacturer: info
            .manufacturer
            .map(|m| (m.manufacturer_id, m.product_type, m.product_id)),
        characters: uc.characters.clone(),
        notifications: match info.notification {
            Some(NotificationSupport::AccessControl) => Notifications::AccessControl,
            Some(NotificationSupport::LegacyAlarm) => Notifications::LegacyAlarm,
            _ => Notifications::None,
        },
        battery_level: info.battery_level,
        locked: info.door_locked,
        security_class: info.security_class,
        security_failure: failure,
        cache: serde_json::to_string(info).ok(),
    })
}

/// The events of one unsolicited command from `node`.
pub fn report_events(
    node: u16,
    command: &Command,
    manufacturer: Option<u16>,
    at: chrono::DateTime<Utc>,
) -> Vec<PortEvent> {
    let mut out = vec![PortEvent::Contact { node, at }];
    match command {
        Command::Notification(NotificationCommand::Report(r)) => {
            if let Some(ev) = alarms::interpret(r, manufacturer) {
                out.push(match ev {
                    LockEvent::KeypadUnlock(slot) => PortEvent::Keypad {
                        node,
                        unlocked: true,
                        slot,
                        at,
                    },
                    LockEvent::KeypadLock(slot) => PortEvent::Keypad {
                        node,
                        unlocked: false,
                        slot,
                        at,
                    },
                    LockEvent::CodeAdded(slot) | LockEvent::CodeDeleted(slot) => {
                        PortEvent::SlotChanged { node, slot }
                    }
                    LockEvent::AllCodesDeleted => PortEvent::AllCleared { node, at },
                    LockEvent::Duplicate(slot) => PortEvent::Duplicate { node, slot },
                });
            }
        }
        Command::UserCode(
            UserCodeCommand::Report { .. } | UserCodeCommand::ExtendedUserCodeReport { .. },
        ) => out.push(PortEvent::Slots {
            node,
            readings: readings(command),
            at,
        }),
        Command::Battery(b @ BatteryCommand::Report { .. }) => {
            if let Some(level) = b.percent() {
                out.push(PortEvent::Battery { node, level });
            }
        }
        Command::DoorLock(DoorLockCommand::OperationReport(r)) => {
            if let Some(locked) = r.is_locked() {
                out.push(PortEvent::Bolt { node, locked });
            }
        }
        _ => {}
    }
    out
}

/// Translate the driver's events until it stops.
async fn translate(mut events: mpsc::Receiver<DriverEvent>, out: mpsc::Sender<PortEvent>) {
    let manufacturers: Mutex<HashMap<u16, u16>> = Mutex::new(HashMap::new());
    while let Some(ev) = events.recv().await {
        let translated = match ev {
            DriverEvent::Connected(_) => vec![PortEvent::Connected],
            DriverEvent::Disconnected { reason } => vec![PortEvent::Disconnected { reason }],
            DriverEvent::NodeUpdated(info) => {
                if let Some(m) = info.manufacturer {
                    manufacturers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(info.node_id.0, m.manufacturer_id);
                }
                lock_info(&info)
                    .map(|l| PortEvent::Lock(Box::new(l)))
                    .into_iter()
                    .collect()
            }
            DriverEvent::NodeReachability { node, reachable } => vec![PortEvent::Reachable {
                node: node.0,
                reachable,
            }],
            DriverEvent::Report {
                node,
                command,
                received_at,
            } => {
                let m = manufacturers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&node.0)
                    .copied();
                report_events(node.0, &command, m, received_at)
            }
            DriverEvent::NodeRemoved { node } => vec![PortEvent::Removed { node: node.0 }],
        };
        for ev in translated {
            if out.send(ev).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::notification::{access_control, NotificationReport};

    #[test]
    fn commands_pick_plain_or_extended_by_slot() {
        assert_eq!(
            set_command(5, "1234").encode(),
            [0x63, 0x01, 5, 0x01, b'1', b'2', b'3', b'4']
        );
        assert_eq!(clear_command(5).encode()[..4], [0x63, 0x01, 5, 0x00]);
        assert_eq!(get_command(5).encode(), [0x63, 0x02, 5]);
        // Above 255: Extended User Code Set / Get (v2).
        let e = set_command(300, "1234").encode();
        assert_eq!(e[..2], [0x63, 0x0B]);
        assert_eq!(get_command(300).encode()[..4], [0x63, 0x0C, 0x01, 0x2C]);
    }

    #[test]
    fn readings_tell_empty_hidden_codes_and_unavailable() {
        let r = |status, code: &[u8]| {
            readings(&Command::UserCode(UserCodeCommand::Report {
                user_id: 3,
                user_id_status: status,
                user_code: CodeBytes::new(code.to_vec()),
            }))
            .pop()
            .unwrap()
            .content
        };
        assert_eq!(
            r(UserIdStatus::Enabled, b"2468"),
            SlotContent::Code("2468".into())
        );
        assert_eq!(r(UserIdStatus::Enabled, b"******"), SlotContent::Hidden);
        assert_eq!(r(UserIdStatus::Available, b""), SlotContent::Empty);
        assert_eq!(r(UserIdStatus::NotAvailable, b""), SlotContent::Unavailable);
    }

    #[test]
    fn a_lock_that_cannot_be_reached_securely_is_told_of_with_its_failure() {
        use crate::driver::SecurityFailure;
        use crate::serialapi::controller::NodeProtocolInfo;
        let protocol = NodeProtocolInfo {
            capability: 0x53,
            security: 0x5C,
            reserved: 0x01,
            basic: 0x04,
            generic: crate::driver::node::GENERIC_ENTRY_CONTROL,
            specific: 0x03,
        };
        // An S2 lock whose plain node information lists no User Code, nothing interviewed.
        let mut info = NodeInfo::new(NodeId(7), &protocol);
        info.command_classes = Some(vec![0x9F, 0x5E, 0x86]);
        assert_eq!(lock_info(&info), None, "not known as a lock yet");
        info.security_failure = Some(SecurityFailure::KeyExchangeFailed);
        let l = lock_info(&info).expect("told of, to show the device error");
        assert_eq!(l.security_failure, Some(SecurityFailure::KeyExchangeFailed));
        assert_eq!(l.caps.slots, 0);
        assert_eq!(
            l.security_failure.unwrap().to_string(),
            "secure inclusion failed: exclude and include again"
        );
        // Granted after all (keys imported, probed again): no failure.
        info.security_failure = None;
        info.security_class = Some(crate::security::SecurityClass::S2AccessControl);
        info.command_classes = Some(vec![0x9F, 0x63]);
        info.set_user_code(20, None);
        let l = lock_info(&info).unwrap();
        assert_eq!((l.security_failure, l.caps.slots), (None, 20));
    }

    #[test]
    fn notifications_become_events() {
        let at = Utc::now();
        let r = NotificationReport::access_control(access_control::NEW_USER_CODE_ADDED, vec![7]);
        let ev = report_events(
            5,
            &Command::Notification(NotificationCommand::Report(r)),
            None,
            at,
        );
        assert_eq!(
            ev,
            vec![
                PortEvent::Contact { node: 5, at },
                PortEvent::SlotChanged { node: 5, slot: 7 }
            ]
        );
        // A legacy alarm from a Schlage lock: type 0x10 is a keypad unlock there.
        let r = NotificationReport::alarm(0x10, 3);
        let ev = report_events(
            5,
            &Command::Notification(NotificationCommand::Report(r)),
            Some(0x003B),
            at,
        );
        assert!(ev.contains(&PortEvent::Keypad {
            node: 5,
            unlocked: true,
            slot: Some(3),
            at
        }));
    }
}
