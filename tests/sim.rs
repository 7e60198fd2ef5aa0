//! The simulator against our link, session and command class layers: the startup sequence,
//! every lock command, each quirk, each fault, and determinism.

mod common;

use std::time::Duration;

use common::TestHost;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zwlock::cc::notification::{access_control, NotificationCommand};
use zwlock::cc::schedule_entry_lock::YearDaySchedule;
use zwlock::cc::user_code::UserCodeEntry;
use zwlock::cc::{
    code::user_code_checksum, BatteryCommand, CodeBytes, Command, DoorLockCommand,
    ManufacturerSpecificCommand, RawCommand, ScheduleEntryLockCommand, SupervisionCommand,
    SupervisionStatus, TimeParametersCommand, UserCodeCommand as U, UserIdStatus, VersionCommand,
};
use zwlock::serialapi::controller::{Flirs, SetupRequest, SetupResponse};
use zwlock::serialapi::{HostRequest, NodeId, StickRequest, StickResponse, TransmitStatus};
use zwlock::sim::{Faults, KeypadAction, SimConfig, SimHandle, Simulator};

fn config() -> SimConfig {
    SimConfig::from_toml(include_str!("../fixtures/sim/locks.toml")).unwrap()
}

fn network() -> SimHandle {
    Simulator::new(config()).network("test").unwrap()
}

fn host(net: &SimHandle) -> TestHost {
    TestHost::new(net.connect().unwrap())
}

fn set(user_id: u8, pin: &str) -> Command {
    Command::UserCode(U::Set {
        user_id,
        user_id_status: UserIdStatus::Enabled,
        user_code: CodeBytes::from_pin(pin),
    })
}

fn get(user_id: u8) -> Command {
    Command::UserCode(U::Get { user_id })
}

fn supervised(session_id: u8, inner: Command) -> Command {
    Command::Supervision(SupervisionCommand::Get {
        status_updates: false,
        session_id,
        encapsulated: RawCommand(inner.encode()),
    })
}

fn supervision_status(answers: &[Command]) -> Option<SupervisionStatus> {
    answers.iter().find_map(|c| match c {
        Command::Supervision(SupervisionCommand::Report { status, .. }) => Some(*status),
        _ => None,
    })
}

fn report(answers: &[Command]) -> (u8, UserIdStatus, CodeBytes) {
    answers
        .iter()
        .find_map(|c| match c {
            Command::UserCode(U::Report {
                user_id,
                user_id_status,
                user_code,
            }) => Some((*user_id, *user_id_status, user_code.clone())),
            _ => None,
        })
        .expect("a User Code Report")
}

#[tokio::test(start_paused = true)]
async fn startup_sequence_is_answered() {
    let net = network();
    let h = host(&net);
    let caps = h
        .request(HostRequest::GetSerialApiCapabilities)
        .await
        .unwrap();
    let Some(StickResponse::GetSerialApiCapabilities(c)) = caps.response else {
        panic!("{caps:?}")
    };
    for f in [0x02, 0x05, 0x0B, 0x13, 0x15, 0x16, 0x20, 0x41, 0x60] {
        assert!(c.supports(f), "function {f:#x}");
    }
    let id = h.request(HostRequest::GetControllerId).await.unwrap();
    assert!(
        matches!(id.response, Some(StickResponse::GetControllerId(c)) if c.home_id == 0xC0FFEE01 && c.node_id == NodeId(1))
    );
    let v = h.request(HostRequest::GetControllerVersion).await.unwrap();
    assert!(
        matches!(v.response, Some(StickResponse::GetControllerVersion(ref v)) if v.library == "Z-Wave 7.19")
    );
    let init = h.request(HostRequest::GetSerialApiInitData).await.unwrap();
    let Some(StickResponse::GetSerialApiInitData(d)) = init.response else {
        panic!()
    };
    assert_eq!(d.nodes, [1, 5, 6, 7, 8, 9].map(NodeId).to_vec());
    let info = h
        .request(HostRequest::GetNodeProtocolInfo { node_id: NodeId(5) })
        .await
        .unwrap();
    let Some(StickResponse::GetNodeProtocolInfo(i)) = info.response else {
        panic!()
    };
    assert_eq!(i.flirs(), Some(Flirs::Ms1000));
    assert!(!i.is_listening());
    let info = h
        .request(HostRequest::GetNodeProtocolInfo { node_id: NodeId(9) })
        .await
        .unwrap();
    assert!(
        matches!(info.response, Some(StickResponse::GetNodeProtocolInfo(i)) if i.is_listening())
    );
    let sup = h
        .request(HostRequest::SerialApiSetup(
            SetupRequest::GetSupportedCommands,
        ))
        .await
        .unwrap();
    assert!(matches!(
        sup.response,
        Some(StickResponse::SerialApiSetup(SetupResponse::GetSupportedCommands { ref supported })) if supported.contains(&0x02)
    ));
    let cap = h
        .request(HostRequest::GetControllerCapabilities)
        .await
        .unwrap();
    assert!(cap.response.is_some());
    // Soft reset: no RES, then SerialApiStarted arrives unsolicited.
    let mut h = h;
    h.request(HostRequest::SoftReset).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(2), h.events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        ev,
        zwlock::serialapi::session::SessionEvent::Unsolicited(StickRequest::SerialApiStarted(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn tx_reports_and_node_info() {
    let net = network();
    let mut h = host(&net);
    h.request(HostRequest::SerialApiSetup(
        SetupRequest::SetTxStatusReport { enable: true },
    ))
    .await
    .unwrap();
    let cb = h.send(5, &get(1)).await.unwrap();
    let rep = cb.tx_report.expect("TX report once enabled");
    assert_eq!(rep.beam(), Some(Flirs::Ms1000));
    let ex = h
        .request(HostRequest::RequestNodeInfo { node_id: NodeId(5) })
        .await
        .unwrap();
    assert_eq!(
        ex.response,
        Some(StickResponse::RequestNodeInfo { success: true })
    );
    let mut nif = None;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(3), h.events.recv()).await {
        if let zwlock::serialapi::session::SessionEvent::Unsolicited(
            StickRequest::ApplicationUpdate(u),
        ) = ev
        {
            nif = u.node_info;
            break;
        }
    }
    let nif = nif.expect("node information");
    for cc in [0x63, 0x62, 0x71, 0x80, 0x86, 0x72, 0x6C] {
        assert!(nif.supports(cc), "{cc:#x}");
    }
}

#[tokio::test(start_paused = true)]
async fn every_user_code_command_round_trips_on_a_v2_lock() {
    let net = network();
    let mut h = host(&net);
    // Get / Report of a seeded code, a disabled one, an empty one, one past the end.
    assert_eq!(report(&h.ask(5, &get(1)).await).2.pin(), Some("1234"));
    let (_, st, code) = report(&h.ask(5, &get(7)).await);
    assert_eq!((st, code.pin()), (UserIdStatus::Disabled, Some("24680")));
    let (_, st, code) = report(&h.ask(5, &get(2)).await);
    assert_eq!(st, UserIdStatus::Available);
    assert!(code.is_empty());
    assert_eq!(
        report(&h.ask(5, &get(31)).await).1,
        UserIdStatus::NotAvailable
    );
    // Users Number, Capabilities.
    let n = h.ask(5, &Command::UserCode(U::UsersNumberGet)).await;
    assert_eq!(
        n[0],
        Command::UserCode(U::UsersNumberReport {
            supported_users: 30,
            extended_supported_users: Some(30)
        })
    );
    let caps = h.ask(5, &Command::UserCode(U::CapabilitiesGet)).await;
    let Command::UserCode(U::CapabilitiesReport(c)) = &caps[0] else {
        panic!("{caps:?}")
    };
    assert!(c.checksum_supported && c.multiple_report_supported);
    assert_eq!(c.supported_characters(), "0123456789");
    // Set under Supervision, then read back.
    let a = h.ask(5, &supervised(1, set(3, "13579"))).await;
    assert_eq!(supervision_status(&a), Some(SupervisionStatus::Success));
    assert_eq!(report(&h.ask(5, &get(3)).await).2.pin(), Some("13579"));
    // A plain Set gets no answer.
    assert!(h.ask(5, &set(2, "5678")).await.is_empty());
    // Checksum against a hand computation of the table {1, 2, 3, 7}.
    let cs = h.ask(5, &Command::UserCode(U::UserCodeChecksumGet)).await;
    assert_eq!(
        cs[0],
        Command::UserCode(U::UserCodeChecksumReport { checksum: 0xE94B })
    );
    assert_eq!(
        user_code_checksum([
            (1, UserIdStatus::Enabled, &b"1234"[..]),
            (2, UserIdStatus::Enabled, b"5678"),
            (3, UserIdStatus::Enabled, b"13579"),
            (7, UserIdStatus::Disabled, b"24680"),
        ]),
        0xE94B
    );
    // Extended Get in bulk: several codes per report, with the next user id to ask for.
    let e = h
        .ask(
            5,
            &Command::UserCode(U::ExtendedUserCodeGet {
                user_id: 1,
                report_more: true,
            }),
        )
        .await;
    let Command::UserCode(U::ExtendedUserCodeReport {
        entries,
        next_user_id,
    }) = &e[0]
    else {
        panic!("{e:?}")
    };
    assert!(entries.len() > 3, "{}", entries.len());
    assert_eq!(entries[2].user_code.pin(), Some("13579"));
    assert_eq!(*next_user_id, entries.len() as u16 + 1);
    // Extended Set, clear one slot, erase all.
    let a = h
        .ask(
            5,
            &supervised(
                2,
                Command::UserCode(U::ExtendedUserCodeSet {
                    entries: vec![UserCodeEntry {
                        user_id: 25,
                        user_id_status: UserIdStatus::Enabled,
                        user_code: CodeBytes::from_pin("8642"),
                    }],
                }),
            ),
        )
        .await;
    assert_eq!(supervision_status(&a), Some(SupervisionStatus::Success));
    assert_eq!(
        net.snapshot(5).await.unwrap().unwrap().code(25),
        Some("8642")
    );
    h.ask(5, &Command::UserCode(U::clear(25))).await;
    assert_eq!(net.snapshot(5).await.unwrap().unwrap().code(25), None);
    // Keypad mode, admin code.
    h.ask(5, &Command::UserCode(U::KeypadModeSet { keypad_mode: 0 }))
        .await;
    assert_eq!(
        h.ask(5, &Command::UserCode(U::KeypadModeGet)).await[0],
        Command::UserCode(U::KeypadModeReport { keypad_mode: 0 })
    );
    h.ask(
        5,
        &Command::UserCode(U::AdminCodeSet {
            admin_code: CodeBytes::from_pin("9876"),
        }),
    )
    .await;
    let a = h.ask(5, &Command::UserCode(U::AdminCodeGet)).await;
    assert!(
        matches!(&a[0], Command::UserCode(U::AdminCodeReport { admin_code }) if admin_code.pin() == Some("9876"))
    );
    // Invalid codes are refused under Supervision and change nothing.
    for bad in ["12", "12345678901", "12a4"] {
        let a = h.ask(5, &supervised(3, set(4, bad))).await;
        assert_eq!(
            supervision_status(&a),
            Some(SupervisionStatus::Fail),
            "{bad}"
        );
    }
    assert_eq!(net.snapshot(5).await.unwrap().unwrap().code(4), None);
    h.ask(
        5,
        &Command::UserCode(U::ExtendedUserCodeSet {
            entries: vec![UserCodeEntry {
                user_id: 0,
                user_id_status: UserIdStatus::Available,
                user_code: CodeBytes::default(),
            }],
        }),
    )
    .await;
    assert!(net.snapshot(5).await.unwrap().unwrap().slots.is_empty());
    let cs = h.ask(5, &Command::UserCode(U::UserCodeChecksumGet)).await;
    assert_eq!(
        cs[0],
        Command::UserCode(U::UserCodeChecksumReport { checksum: 0 })
    );
}

#[tokio::test(start_paused = true)]
async fn other_lock_classes_answer() {
    let net = network();
    let mut h = host(&net);
    let v = h
        .ask(
            5,
            &Command::Version(VersionCommand::CommandClassGet {
                requested_class: 0x63,
            }),
        )
        .await;
    assert_eq!(
        v[0],
        Command::Version(VersionCommand::CommandClassReport {
            requested_class: 0x63,
            version: 2
        })
    );
    let v = h
        .ask(
            6,
            &Command::Version(VersionCommand::CommandClassGet {
                requested_class: 0x6C,
            }),
        )
        .await;
    assert_eq!(
        v[0],
        Command::Version(VersionCommand::CommandClassReport {
            requested_class: 0x6C,
            version: 0
        })
    );
    assert!(matches!(
        h.ask(5, &Command::Version(VersionCommand::Get)).await[0],
        Command::Version(VersionCommand::Report { .. })
    ));
    let m = h
        .ask(
            5,
            &Command::ManufacturerSpecific(ManufacturerSpecificCommand::Get),
        )
        .await;
    assert!(matches!(
        m[0],
        Command::ManufacturerSpecific(ManufacturerSpecificCommand::Report {
            manufacturer_id: 0x0129,
            ..
        })
    ));
    let b = h.ask(5, &Command::Battery(BatteryCommand::Get)).await;
    assert_eq!(
        b[0],
        Command::Battery(BatteryCommand::Report {
            level: 90,
            flags: None
        })
    );
    net.set_battery(5, 12).await.unwrap();
    let b = h.ask(5, &Command::Battery(BatteryCommand::Get)).await;
    assert!(matches!(
        b[0],
        Command::Battery(BatteryCommand::Report { level: 12, .. })
    ));
    let a = h
        .ask(
            5,
            &supervised(
                4,
                Command::DoorLock(DoorLockCommand::OperationSet { mode: 0x00 }),
            ),
        )
        .await;
    assert_eq!(supervision_status(&a), Some(SupervisionStatus::Success));
    let r = h
        .ask(5, &Command::DoorLock(DoorLockCommand::OperationGet))
        .await;
    assert!(
        matches!(&r[0], Command::DoorLock(DoorLockCommand::OperationReport(r)) if r.is_locked() == Some(false))
    );
    let n = h
        .ask(5, &Command::Notification(NotificationCommand::SupportedGet))
        .await;
    assert!(matches!(
        &n[0],
        Command::Notification(NotificationCommand::SupportedReport {
            v1_alarm: false,
            ..
        })
    ));
    // A class the lock lacks: Supervision says so.
    let a = h
        .ask(
            5,
            &supervised(
                5,
                Command::ScheduleEntryLock(ScheduleEntryLockCommand::SupportedGet),
            ),
        )
        .await;
    assert_eq!(supervision_status(&a), Some(SupervisionStatus::NoSupport));
}

#[tokio::test(start_paused = true)]
async fn on_lock_schedules_are_enforced_by_the_lock() {
    let net = network();
    let mut h = host(&net);
    let s = h
        .ask(
            9,
            &Command::ScheduleEntryLock(ScheduleEntryLockCommand::SupportedGet),
        )
        .await;
    assert!(matches!(
        s[0],
        Command::ScheduleEntryLock(ScheduleEntryLockCommand::SupportedReport {
            year_day_slots: 1,
            ..
        })
    ));
    h.ask(9, &set(4, "4444")).await;
    // The lock's clock: 2026-11-26 12:00 UTC.
    let dt = zwlock::cc::time_parameters::DateTime {
        year: 2026,
        month: 11,
        day: 26,
        hour: 12,
        minute: 0,
        second: 0,
    };
    h.ask(9, &Command::TimeParameters(TimeParametersCommand::Set(dt)))
        .await;
    let sched = YearDaySchedule {
        start_year: 26,
        start_month: 11,
        start_day: 26,
        start_hour: 13,
        start_minute: 0,
        stop_year: 26,
        stop_month: 11,
        stop_day: 26,
        stop_hour: 14,
        stop_minute: 0,
    };
    h.ask(
        9,
        &Command::ScheduleEntryLock(ScheduleEntryLockCommand::YearDaySet {
            action: 1,
            user_id: 4,
            slot_id: 1,
            schedule: sched,
        }),
    )
    .await;
    h.ask(
        9,
        &Command::ScheduleEntryLock(ScheduleEntryLockCommand::EnableSet {
            user_id: 4,
            enabled: true,
        }),
    )
    .await;
    let r = h
        .ask(
            9,
            &Command::ScheduleEntryLock(ScheduleEntryLockCommand::YearDayGet {
                user_id: 4,
                slot_id: 1,
            }),
        )
        .await;
    assert!(
        matches!(r[0], Command::ScheduleEntryLock(ScheduleEntryLockCommand::YearDayReport { schedule, .. }) if schedule == sched)
    );
    // 12:00: too early.
    assert!(!net
        .keypad(9, KeypadAction::Enter { pin: "4444".into() })
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_secs(3600 + 60)).await;
    assert!(net
        .keypad(9, KeypadAction::Enter { pin: "4444".into() })
        .await
        .unwrap());
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(!net
        .keypad(9, KeypadAction::Enter { pin: "4444".into() })
        .await
        .unwrap());
}

#[tokio::test(start_paused = true)]
async fn keypad_events_as_each_model_reports_them() {
    let net = network();
    let mut h = host(&net);
    // v8 lock: keypad unlock names the slot in a nested User Code Report.
    assert!(net
        .keypad(5, KeypadAction::Enter { pin: "1234".into() })
        .await
        .unwrap());
    let ev = h.node_commands(Duration::from_secs(2)).await;
    let Command::Notification(NotificationCommand::Report(r)) = &ev[0].1 else {
        panic!("{ev:?}")
    };
    assert_eq!(
        r.details.as_ref().unwrap().event,
        access_control::KEYPAD_UNLOCK
    );
    assert_eq!(r.user_id(), Some(1));
    assert!(!net.snapshot(5).await.unwrap().unwrap().locked);
    // Wrong PIN: nothing.
    assert!(!net
        .keypad(5, KeypadAction::Enter { pin: "0000".into() })
        .await
        .unwrap());
    assert!(h.node_commands(Duration::from_secs(2)).await.is_empty());
    // Program and delete at the keypad.
    net.keypad(
        5,
        KeypadAction::Program {
            slot: 9,
            pin: "9999".into(),
        },
    )
    .await
    .unwrap();
    let ev = h.node_commands(Duration::from_secs(2)).await;
    assert!(
        matches!(&ev[0].1, Command::Notification(NotificationCommand::Report(r)) if r.user_id() == Some(9) && r.details.as_ref().unwrap().event == access_control::NEW_USER_CODE_ADDED)
    );
    net.keypad(5, KeypadAction::Delete { slot: 9 })
        .await
        .unwrap();
    let ev = h.node_commands(Duration::from_secs(2)).await;
    assert!(
        matches!(&ev[0].1, Command::Notification(NotificationCommand::Report(r)) if r.details.as_ref().unwrap().event == access_control::SINGLE_USER_CODE_DELETED)
    );
    // v1 lock: legacy alarm type 0x13, level = slot.
    assert!(net
        .keypad(6, KeypadAction::Enter { pin: "5678".into() })
        .await
        .unwrap());
    let ev = h.node_commands(Duration::from_secs(2)).await;
    assert!(
        matches!(&ev[0], (6, Command::Notification(NotificationCommand::Report(r))) if r.alarm_type == 0x13 && r.alarm_level == 2 && r.details.is_none())
    );
    // Factory reset.
    net.keypad(6, KeypadAction::FactoryReset).await.unwrap();
    let ev = h.node_commands(Duration::from_secs(2)).await;
    assert!(
        matches!(&ev[0].1, Command::Notification(NotificationCommand::Report(r)) if r.alarm_type == 0x20)
    );
    assert!(net.snapshot(6).await.unwrap().unwrap().slots.is_empty());
    // A silent lock: keypad changes, no frames.
    net.keypad(
        8,
        KeypadAction::Program {
            slot: 3,
            pin: "3333".into(),
        },
    )
    .await
    .unwrap();
    assert!(h.node_commands(Duration::from_secs(5)).await.is_empty());
    assert_eq!(
        net.snapshot(8).await.unwrap().unwrap().code(3),
        Some("3333")
    );
    // Another controller writes silently.
    net.keypad(
        5,
        KeypadAction::ExternalWrite {
            slot: 4,
            pin: Some("4321".into()),
        },
    )
    .await
    .unwrap();
    assert!(h.node_commands(Duration::from_secs(2)).await.is_empty());
    assert_eq!(report(&h.ask(5, &get(4)).await).2.pin(), Some("4321"));
}

#[tokio::test(start_paused = true)]
async fn quirks_of_the_fussy_lock() {
    let net = network();
    let mut h = host(&net);
    // Masked reports and 0xFE for empty slots.
    let (_, st, code) = report(&h.ask(7, &get(1)).await);
    assert_eq!(st, UserIdStatus::Enabled);
    assert!(code.is_hidden());
    assert_eq!(
        report(&h.ask(7, &get(2)).await).1,
        UserIdStatus::NotAvailable
    );
    // Duplicate PIN: refused, with Access Control event 15 naming the slot.
    let a = h.ask(7, &supervised(1, set(2, "1111"))).await;
    assert_eq!(supervision_status(&a), Some(SupervisionStatus::Fail));
    let dup = a.iter().find_map(|c| match c {
        Command::Notification(NotificationCommand::Report(r)) => Some(r.clone()),
        _ => None,
    });
    let dup = dup.expect("duplicate notification");
    assert_eq!(
        dup.details.as_ref().unwrap().event,
        access_control::NEW_USER_CODE_NOT_ADDED_DUPLICATE
    );
    assert_eq!(dup.user_id(), Some(2));
    // Capacity 3: the fourth code is refused.
    for (slot, pin) in [(2, "2222"), (3, "3333")] {
        let a = h.ask(7, &supervised(slot, set(slot, pin))).await;
        assert_eq!(supervision_status(&a), Some(SupervisionStatus::Success));
    }
    let a = h.ask(7, &supervised(4, set(4, "4444"))).await;
    assert_eq!(supervision_status(&a), Some(SupervisionStatus::Fail));
    assert_eq!(net.snapshot(7).await.unwrap().unwrap().slots.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn quirks_of_the_forgetful_slow_lock() {
    let net = network();
    let mut h = host(&net);
    assert!(h.ask(8, &set(1, "1357")).await.is_empty());
    // Reads back as available, zero padded; and only after the slow delay.
    let t0 = tokio::time::Instant::now();
    let cb = h.send(8, &get(1)).await.unwrap();
    assert_eq!(cb.transmit_status, TransmitStatus::Ok);
    let ev = h.node_commands(Duration::from_millis(1500)).await;
    assert!(ev.is_empty(), "answered before its slow delay: {ev:?}");
    let ev = h.node_commands(Duration::from_secs(2)).await;
    let (_, st, _) = report(&[ev[0].1.clone()]);
    assert_eq!(st, UserIdStatus::Available);
    assert!(t0.elapsed() >= Duration::from_secs(2));
    net.keypad(
        8,
        KeypadAction::Program {
            slot: 2,
            pin: "2468".into(),
        },
    )
    .await
    .unwrap();
    let (_, _, code) = report(&h.ask(8, &get(2)).await);
    assert_eq!(code.as_bytes().len(), 10, "zero padded");
    assert_eq!(code.pin(), Some("2468"));
}

#[tokio::test(start_paused = true)]
async fn out_of_range_and_dead_locks_do_not_ack() {
    let net = network();
    let mut h = host(&net);
    net.set_in_range(5, false).await.unwrap();
    let cb = h.send(5, &get(1)).await.unwrap();
    assert_eq!(cb.transmit_status, TransmitStatus::NoAck);
    assert!(net
        .keypad(
            5,
            KeypadAction::Program {
                slot: 3,
                pin: "3333".into()
            }
        )
        .await
        .is_ok());
    assert!(
        h.node_commands(Duration::from_secs(2)).await.is_empty(),
        "out of range: nothing heard"
    );
    net.set_in_range(5, true).await.unwrap();
    assert_eq!(
        h.send(5, &get(1)).await.unwrap().transmit_status,
        TransmitStatus::Ok
    );
    net.set_battery(6, 0).await.unwrap();
    assert_eq!(
        h.send(6, &get(1)).await.unwrap().transmit_status,
        TransmitStatus::NoAck
    );
    // A node that does not exist.
    assert_eq!(
        h.send(42, &get(1)).await.unwrap().transmit_status,
        TransmitStatus::NoAck
    );
}

#[tokio::test(start_paused = true)]
async fn nak_and_can_from_the_stick_are_retransmitted_by_the_link() {
    let net = network();
    let mut h = host(&net);
    net.set_faults(Faults {
        nak_host_frame: 0.15,
        can_host_frame: 0.1,
        ..Faults::default()
    })
    .await
    .unwrap();
    for _ in 0..20 {
        let r = h.ask(5, &get(1)).await;
        assert_eq!(report(&r).2.pin(), Some("1234"));
    }
    let s = h.link.stats();
    assert!(
        s.naks_received + s.cans_received > 0,
        "{s:?} {:?}",
        net.stats().await
    );
    assert_eq!(s.retransmissions, s.naks_received + s.cans_received);
}

#[tokio::test(start_paused = true)]
async fn line_noise_is_survived() {
    let net = network();
    let mut h = host(&net);
    net.set_faults(Faults {
        drop_byte: 0.01,
        corrupt_byte: 0.01,
        ..Faults::default()
    })
    .await
    .unwrap();
    let mut ok = 0;
    for _ in 0..20 {
        let cb = h.callback_id();
        let r = h
            .request(HostRequest::SendData(zwlock::serialapi::SendDataRequest {
                node_id: NodeId(5),
                command: get(1).encode(),
                tx_options: 0x25,
                callback_id: cb,
            }))
            .await;
        if r.is_ok() {
            ok += 1;
        }
        h.node_commands(Duration::from_secs(3)).await;
    }
    let s = h.link.stats();
    assert!(
        s.bad_checksums + s.garbage_bytes + s.discarded_partials > 0,
        "{s:?}"
    );
    assert!(ok >= 10, "only {ok} of 20 requests survived 2% line noise");
}

#[tokio::test(start_paused = true)]
async fn callbacks_delayed_lost_and_duplicated() {
    let net = network();
    let mut h = host(&net);
    // Delayed: still paired with its request.
    net.set_faults(Faults {
        callback_delay_ms: 5000,
        ..Faults::default()
    })
    .await
    .unwrap();
    let t0 = tokio::time::Instant::now();
    assert_eq!(
        h.send(5, &get(1)).await.unwrap().transmit_status,
        TransmitStatus::Ok
    );
    assert!(t0.elapsed() >= Duration::from_secs(5));
    h.node_commands(Duration::from_secs(2)).await;
    // Duplicated: the second copy is dropped by the session, not taken for the next request.
    net.set_faults(Faults {
        duplicate_callback: 1.0,
        ..Faults::default()
    })
    .await
    .unwrap();
    for _ in 0..3 {
        assert_eq!(
            h.send(5, &get(1)).await.unwrap().transmit_status,
            TransmitStatus::Ok
        );
    }
    // Lost: the session aborts after 20 s and the stick answers with a failure.
    net.set_faults(Faults {
        drop_callback: 1.0,
        ..Faults::default()
    })
    .await
    .unwrap();
    let t0 = tokio::time::Instant::now();
    let cb = h.send(5, &get(1)).await.unwrap();
    assert_eq!(cb.transmit_status, TransmitStatus::Fail);
    assert!(t0.elapsed() >= Duration::from_secs(20));
    net.set_faults(Faults::default()).await.unwrap();
    assert_eq!(
        h.send(5, &get(1)).await.unwrap().transmit_status,
        TransmitStatus::Ok
    );
}

#[tokio::test(start_paused = true)]
async fn unplugging_the_stick_closes_the_port_until_it_is_back() {
    let net = network();
    let h = host(&net);
    net.unplug().await.unwrap();
    let err = h.request(HostRequest::GetControllerId).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let url: zwlock::serial::PortUrl = "sim://test".parse().unwrap();
    let sim = Simulator::new(config());
    // The unplugged network of `net` is its own; a fresh simulator shows the same for its own.
    let other = sim.network("test").unwrap();
    other.unplug().await.unwrap();
    let e = zwlock::serial::transport::open(&url, Some(&sim))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, zwlock::serial::TransportError::DeviceNotFound { .. }),
        "{e}"
    );
    other.plug().await.unwrap();
    let stream = zwlock::serial::transport::open(&url, Some(&sim))
        .await
        .unwrap();
    let h2 = TestHost::new(stream);
    assert!(h2.request(HostRequest::GetControllerId).await.is_ok());
    // And the first network comes back too, state kept.
    net.plug().await.unwrap();
    let mut h3 = host(&net);
    assert_eq!(report(&h3.ask(5, &get(1)).await).2.pin(), Some("1234"));
    let e = zwlock::serial::transport::open(&"sim://nope".parse().unwrap(), Some(&sim))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("defined: test"), "{e}");
}

/// Drive the stick with fixed bytes at fixed times and record what it writes back.
async fn scripted_run(seed: u64) -> Vec<(u128, Vec<u8>)> {
    let mut cfg = config();
    cfg.network[0].seed = seed;
    cfg.network[0].faults = Faults {
        corrupt_byte: 0.05,
        drop_byte: 0.02,
        duplicate_callback: 0.5,
        ..Faults::default()
    };
    let net = Simulator::new(cfg).network("test").unwrap();
    let mut s = net.connect().unwrap();
    let start = tokio::time::Instant::now();
    let mut log = Vec::new();
    let frames: Vec<Vec<u8>> = (1..=8u8)
        .map(|i| {
            HostRequest::SendData(zwlock::serialapi::SendDataRequest {
                node_id: NodeId(5),
                command: get(i).encode(),
                tx_options: 0x25,
                callback_id: i,
            })
            .encode(zwlock::serialapi::NodeIdType::Bits8)
            .unwrap()
            .to_bytes()
            .unwrap()
        })
        .collect();
    for f in frames {
        s.write_all(&f).await.unwrap();
        let until = tokio::time::Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 256];
        while let Ok(Ok(n)) = tokio::time::timeout_at(until, s.read(&mut buf)).await {
            if n == 0 {
                break;
            }
            log.push((start.elapsed().as_millis(), buf[..n].to_vec()));
            // ACK whatever looks like a frame end, as a host would; keeps the stick moving.
            s.write_all(&[0x06]).await.unwrap();
        }
    }
    log
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_bytes() {
    let a = scripted_run(42).await;
    let b = scripted_run(42).await;
    assert!(!a.is_empty());
    assert_eq!(a, b);
    let c = scripted_run(43).await;
    assert_ne!(a, c, "a different seed should inject different faults");
}

#[tokio::test(start_paused = true)]
async fn a_request_the_stick_ignores_times_out_cleanly() {
    let net = network();
    let h = host(&net);
    // 0x28 is a function the simulated stick neither advertises nor answers.
    let t0 = tokio::time::Instant::now();
    let e = h
        .request(HostRequest::Other {
            function: 0x28,
            payload: vec![],
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            zwlock::serialapi::session::SessionError::ResponseTimeout { .. }
        ),
        "{e}"
    );
    assert!(e.is_retryable());
    assert!(t0.elapsed() >= Duration::from_secs(10));
    // The session is not stuck behind it.
    let id = h.request(HostRequest::GetControllerId).await.unwrap();
    assert!(id.response.is_some());
}

/// The stick's own transaction: a RequestNodeInfo holds it until the node information goes to
/// the host, a SendData until its callback. Another SendData or RequestNodeInfo meanwhile is
/// refused (`RES 13 00`, `RES 60 00`), as the zwave-js mock refuses a SendData while it is
/// not idle, and counted; once the answer is out, the next one is taken.
#[tokio::test(start_paused = true)]
async fn requests_on_top_of_the_sticks_own_transaction_are_refused() {
    let net = network();
    let mut h = host(&net);
    let ex = h
        .request(HostRequest::RequestNodeInfo { node_id: NodeId(5) })
        .await
        .unwrap();
    assert_eq!(
        ex.response,
        Some(StickResponse::RequestNodeInfo { success: true })
    );
    // The node information is not here yet (a FLiRS lock: beam and two radio frames).
    assert_eq!(
        h.send(6, &get(2)).await,
        None,
        "SendData during RequestNodeInfo"
    );
    let ex = h
        .request(HostRequest::RequestNodeInfo { node_id: NodeId(6) })
        .await
        .unwrap();
    assert_eq!(
        ex.response,
        Some(StickResponse::RequestNodeInfo { success: false })
    );
    assert_eq!(net.stats().await.unwrap().refused_busy, 2);
    let mut nif = None;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(3), h.events.recv()).await {
        if let zwlock::serialapi::session::SessionEvent::Unsolicited(
            StickRequest::ApplicationUpdate(u),
        ) = ev
        {
            nif = u.node_info;
            break;
        }
    }
    assert!(nif.expect("node information").supports(0x63));
    // Idle again: taken.
    let cb = h.send(6, &get(2)).await.expect("accepted once idle");
    assert_eq!(cb.transmit_status, TransmitStatus::Ok);
    assert_eq!(net.stats().await.unwrap().refused_busy, 2);
}
