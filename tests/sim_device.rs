//! What another controller (zwave-js) needs from the simulated stick and locks, byte by byte:
//! the SUC and SIS told consistently, a protocol version that matches the SerialApiSetup
//! bitmask's layout, SUC return routes as a transaction of their own, and the lock classes a
//! certified lock answers (Z-Wave Plus Info, Association, Door Lock capabilities and
//! configuration, Notification Get), an empty v1 slot with its code field, and a keypad
//! action on a slot the lock does not have refused.

mod common;

use std::time::Duration;

use common::TestHost;
use zwlock::cc::door_lock::Configuration;
use zwlock::cc::notification::NotificationCommand;
use zwlock::cc::{Command, DoorLockCommand, RawCommand, UserCodeCommand as U};
use zwlock::serialapi::controller::{SetupRequest, SetupResponse};
use zwlock::serialapi::session::SessionEvent;
use zwlock::serialapi::{HostRequest, NodeIdType, StickRequest, StickResponse, TransmitStatus};
use zwlock::sim::{KeypadAction, SimConfig, SimHandle, Simulator};

const NET: &str = r#"
[[network]]
name = "d"
radio_ms = 5
[[network.lock]]
node_id = 5
slots = 8
[[network.lock]]
node_id = 6
user_code_version = 1
slots = 10
notification = "alarm"
listening = "always"
"#;

fn network() -> SimHandle {
    Simulator::new(SimConfig::from_toml(NET).unwrap())
        .network("d")
        .unwrap()
}

async fn other(h: &TestHost, function: u8, payload: Vec<u8>) -> Vec<u8> {
    match h
        .request(HostRequest::Other { function, payload })
        .await
        .unwrap()
        .response
    {
        Some(StickResponse::Other {
            function: f,
            payload,
        }) if f == function => payload,
        other => panic!("function {function:#04x}: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_stick_tells_one_story_about_itself() {
    let net = network();
    let h = TestHost::new(net.connect().unwrap());
    // GetSUCNodeId: the stick itself is the SUC.
    assert_eq!(other(&h, 0x56, vec![]).await, [0x01]);
    // GetControllerCapabilities: SIS present, was real primary, SUC; GetSerialApiInitData:
    // a primary controller that is the SIS. Both say the same.
    let caps = h
        .request(HostRequest::GetControllerCapabilities)
        .await
        .unwrap();
    assert_eq!(
        caps.response,
        Some(StickResponse::GetControllerCapabilities { flags: 0x1C })
    );
    let Some(StickResponse::GetSerialApiInitData(init)) = h
        .request(HostRequest::GetSerialApiInitData)
        .await
        .unwrap()
        .response
    else {
        panic!()
    };
    assert_eq!(init.capabilities & 0x0D, 0x08, "controller, primary, SIS");
    // GetProtocolVersion: 7.19.3, so a host reads the SerialApiSetup bitmask in the SDK
    // >= 7.19.1 layout, which the stick uses (0xFF, then bit 0 = GetSupportedCommands).
    assert_eq!(other(&h, 0x09, vec![]).await, [0x00, 7, 19, 3, 0x00, 0x00]);
    let Some(StickResponse::GetSerialApiCapabilities(c)) = h
        .request(HostRequest::GetSerialApiCapabilities)
        .await
        .unwrap()
        .response
    else {
        panic!()
    };
    for f in [0x09, 0x51, 0x55, 0x56] {
        assert!(c.supports(f), "function {f:#04x} advertised");
    }
    let setup = h
        .request(HostRequest::SerialApiSetup(
            SetupRequest::GetSupportedCommands,
        ))
        .await
        .unwrap();
    let frame = setup
        .response
        .clone()
        .unwrap()
        .encode(NodeIdType::Bits8)
        .unwrap();
    assert_eq!(frame.payload[..3], [0x01, 0xFF, 0b0000_0011], "{frame:?}");
    assert!(matches!(
        setup.response,
        Some(StickResponse::SerialApiSetup(SetupResponse::GetSupportedCommands { ref supported }))
            if supported.contains(&0x01) && supported.contains(&0x02) && supported.contains(&0x80)
    ));
}

/// Assign SUC Return Route: RES 01, then the callback with the node's acknowledgement; the
/// stick is busy with it meanwhile, as with a SendData.
#[tokio::test(start_paused = true)]
async fn suc_return_routes_are_a_transaction_with_the_node() {
    let net = network();
    let mut h = TestHost::new(net.connect().unwrap());
    assert_eq!(other(&h, 0x51, vec![0x06, 0x21]).await, [0x01]);
    // On top of it: refused.
    assert_eq!(other(&h, 0x55, vec![0x06, 0x22]).await, [0x00]);
    assert_eq!(
        h.send(6, &Command::UserCode(U::Get { user_id: 1 })).await,
        None
    );
    let mut callback = None;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(2), h.events.recv()).await {
        if let SessionEvent::Unsolicited(StickRequest::Other {
            function: 0x51,
            payload,
        }) = ev
        {
            callback = Some(payload);
            break;
        }
    }
    assert_eq!(callback, Some(vec![0x21, TransmitStatus::Ok.to_byte()]));
    assert_eq!(net.stats().await.unwrap().refused_busy, 2);
    // Idle again; a node out of range gets NoAck.
    net.set_in_range(6, false).await.unwrap();
    assert_eq!(other(&h, 0x55, vec![0x06, 0x23]).await, [0x01]);
    let mut callback = None;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(3), h.events.recv()).await {
        if let SessionEvent::Unsolicited(StickRequest::Other {
            function: 0x55,
            payload,
        }) = ev
        {
            callback = Some(payload);
            break;
        }
    }
    assert_eq!(callback, Some(vec![0x23, TransmitStatus::NoAck.to_byte()]));
}

/// The lock answers what a Z-Wave Plus lock answers.
#[tokio::test(start_paused = true)]
async fn a_lock_answers_its_device_classes() {
    let net = network();
    let mut h = TestHost::new(net.connect().unwrap());
    let raw = |bytes: &[u8]| Command::parse(bytes).unwrap();
    let encoded =
        |answers: Vec<Command>| answers.into_iter().map(|c| c.encode()).collect::<Vec<_>>();
    // Z-Wave Plus Info: v2, listening-sleeping (FLiRS) / always on, a keypad door lock icon.
    assert_eq!(
        encoded(h.ask(5, &raw(&[0x5E, 0x01])).await),
        [vec![0x5E, 0x02, 0x02, 0x07, 0x00, 0x03, 0x00, 0x03, 0x00]]
    );
    assert_eq!(h.ask(6, &raw(&[0x5E, 0x01])).await[0].encode()[3], 0x05);
    // Association: one group of five; the lifeline set, read, removed.
    assert_eq!(
        encoded(h.ask(5, &raw(&[0x85, 0x05])).await),
        [vec![0x85, 0x06, 0x01]]
    );
    assert!(h.ask(5, &raw(&[0x85, 0x01, 0x01, 0x01])).await.is_empty());
    assert_eq!(
        encoded(h.ask(5, &raw(&[0x85, 0x02, 0x01])).await),
        [vec![0x85, 0x03, 0x01, 0x05, 0x00, 0x01]]
    );
    assert!(h.ask(5, &raw(&[0x85, 0x04, 0x01])).await.is_empty());
    assert_eq!(
        encoded(h.ask(5, &raw(&[0x85, 0x02, 0x01])).await),
        [vec![0x85, 0x03, 0x01, 0x05, 0x00]]
    );
    // Door Lock v4: capabilities, configuration read and written (supervised).
    assert_eq!(
        encoded(
            h.ask(5, &Command::DoorLock(DoorLockCommand::CapabilitiesGet))
                .await
        ),
        [vec![
            0x62, 0x08, 0x01, 0x06, 0x02, 0x00, 0xFF, 0xFF, 0x07, 0x00
        ]]
    );
    let get_config = Command::DoorLock(DoorLockCommand::ConfigurationGet);
    let Command::DoorLock(DoorLockCommand::ConfigurationReport(c)) =
        h.ask(5, &get_config).await.remove(0)
    else {
        panic!()
    };
    assert_eq!((c.operation_type, c.lock_timeout_minutes), (0x01, 0xFE));
    let timed = Configuration {
        operation_type: 0x02,
        lock_timeout_minutes: 1,
        lock_timeout_seconds: 30,
        ..c
    };
    let set = Command::Supervision(zwlock::cc::SupervisionCommand::Get {
        status_updates: false,
        session_id: 9,
        encapsulated: RawCommand(
            Command::DoorLock(DoorLockCommand::ConfigurationSet(timed.clone())).encode(),
        ),
    });
    assert!(matches!(
        h.ask(5, &set).await[0],
        Command::Supervision(zwlock::cc::SupervisionCommand::Report {
            status: zwlock::cc::SupervisionStatus::Success,
            ..
        })
    ));
    assert_eq!(
        h.ask(5, &get_config).await,
        [Command::DoorLock(DoorLockCommand::ConfigurationReport(
            timed
        ))]
    );
    // Notification Get: Access Control, nothing pending (event 0, status on).
    let Command::Notification(NotificationCommand::Report(r)) = h
        .ask(5, &raw(&[0x71, 0x04, 0x00, 0x06, 0x00]))
        .await
        .remove(0)
    else {
        panic!()
    };
    let d = r.details.unwrap();
    assert_eq!((d.status, d.notification_type, d.event), (0xFF, 0x06, 0x00));
}

/// A v1 lock reports an empty slot with its code field (four 0x00), as version 1 requires.
#[tokio::test(start_paused = true)]
async fn an_empty_v1_slot_has_a_code_field() {
    let net = network();
    let mut h = TestHost::new(net.connect().unwrap());
    assert_eq!(
        h.ask(6, &Command::UserCode(U::Get { user_id: 4 })).await[0].encode(),
        [0x63, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00]
    );
    // v2 keeps the status only.
    assert_eq!(
        h.ask(5, &Command::UserCode(U::Get { user_id: 4 })).await[0].encode(),
        [0x63, 0x03, 0x04, 0x00]
    );
}

/// A keypad action on a slot the lock does not have is an error naming it; nothing changes.
#[tokio::test(start_paused = true)]
async fn programming_a_slot_the_lock_lacks_is_refused() {
    let net = network();
    let e = net
        .keypad(
            5,
            KeypadAction::Program {
                slot: 9,
                pin: "2468".into(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "slot 9 is not on lock 5: it has slots 1-8");
    for action in [
        KeypadAction::Delete { slot: 0 },
        KeypadAction::ExternalWrite {
            slot: 11,
            pin: Some("1357".into()),
        },
    ] {
        assert!(net.keypad(5, action).await.is_err());
    }
    let lock = net.snapshot(5).await.unwrap().unwrap();
    assert!(lock.slots.is_empty());
    assert_eq!(lock.commands_received, 0);
    // In range it works, and the lock tells.
    assert!(!net
        .keypad(
            5,
            KeypadAction::Program {
                slot: 8,
                pin: "2468".into()
            }
        )
        .await
        .unwrap());
    assert_eq!(
        net.snapshot(5).await.unwrap().unwrap().code(8),
        Some("2468")
    );
}
