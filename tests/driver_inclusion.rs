//! Including and excluding locks through the driver, against simulated locks waiting beside
//! the network: learn mode, the lock's button, S2 key exchange with the PIN printed on the
//! lock, then the interview and secure traffic. Wrong PIN, timeouts and exclusion too.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Recording;

use tokio::sync::mpsc;
use zwlock::cc::{Command, UserCodeCommand as U};
use zwlock::driver::{
    Driver, DriverConfig, DriverError, DriverEvent, DriverHandle, ErrorClass, InclusionEvent,
    NodeInfo, Priority, SecurityFailure,
};
use zwlock::security::keys::NetworkKeys;
use zwlock::security::SecurityClass;
use zwlock::serialapi::NodeId;
use zwlock::sim::{SimConfig, SimHandle, Simulator};

const NET: &str = r#"
[[network]]
name = "i"
radio_ms = 5
[[network.lock]]
node_id = 5
listening = "always"
slots = 10
[[network.lock]]
node_id = 9
listening = "always"
slots = 20
initial_codes = [{ slot = 1, code = "2468" }]
security = "s2_access_control"
included = false
[[network.lock]]
node_id = 11
listening = "always"
slots = 10
initial_codes = [{ slot = 3, code = "97531" }]
security = "s0"
included = false
[[network.lock]]
node_id = 12
listening = "always"
slots = 10
initial_codes = [{ slot = 2, code = "86420" }]
security = "s0"
network_key = "44444444444444444444444444444444"
"#;

fn start() -> (DriverHandle, mpsc::Receiver<DriverEvent>, SimHandle) {
    let sim = Simulator::new(SimConfig::from_toml(NET).unwrap());
    let net = sim.network("i").unwrap();
    let (driver, events) = spawn_on(Arc::new(sim));
    (driver, events, net)
}

fn keys() -> NetworkKeys {
    NetworkKeys::import("S0_Legacy = 44444444444444444444444444444444")
        .unwrap()
        .0
}

fn spawn_on(
    sim: Arc<dyn zwlock::serial::transport::SimConnector>,
) -> (DriverHandle, mpsc::Receiver<DriverEvent>) {
    let mut config = DriverConfig::new("sim://i".parse().unwrap());
    config.simulator = Some(sim);
    config.keys = Some(keys());
    Driver::spawn(config)
}

/// The network of [`NET`] with a recording of what the host sends.
fn start_recorded() -> (
    DriverHandle,
    mpsc::Receiver<DriverEvent>,
    SimHandle,
    Arc<Recording>,
) {
    let sim = Simulator::new(SimConfig::from_toml(NET).unwrap());
    let net = sim.network("i").unwrap();
    let rec = Arc::new(Recording::new(sim));
    let (driver, events) = spawn_on(rec.clone());
    (driver, events, net, rec)
}

async fn updated(
    events: &mut mpsc::Receiver<DriverEvent>,
    what: &str,
    mut pred: impl FnMut(&NodeInfo) -> bool,
) -> NodeInfo {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(DriverEvent::NodeUpdated(i))) if pred(&i) => return i,
            Ok(Some(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// Commands that carry PINs or work the door, or a Supervision Get around one.
fn pin_or_door_class(command: &[u8]) -> bool {
    let class = match command {
        [0x6C, 0x01, _, _, inner, ..] => *inner,
        [c, ..] => *c,
        [] => return false,
    };
    zwlock::driver::guard::guarded(class)
}

async fn wait_for(
    events: &mut mpsc::Receiver<DriverEvent>,
    what: &str,
    mut pred: impl FnMut(&DriverEvent) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return,
            Ok(Some(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// Start an inclusion, press lock 9's button once learn mode is open; the result.
async fn include(
    driver: &DriverHandle,
    net: &SimHandle,
    pin: Option<u16>,
) -> (Result<NodeId, DriverError>, Vec<InclusionEvent>) {
    include_node(driver, net, 9, pin, Some(SecurityClass::S2AccessControl)).await
}

async fn include_node(
    driver: &DriverHandle,
    net: &SimHandle,
    button: u8,
    pin: Option<u16>,
    required: Option<SecurityClass>,
) -> (Result<NodeId, DriverError>, Vec<InclusionEvent>) {
    let (tx, mut rx) = mpsc::channel(32);
    let d = driver.clone();
    let task =
        tokio::spawn(async move { d.include(pin, required, Duration::from_secs(60), tx).await });
    let mut seen = Vec::new();
    while let Some(ev) = rx.recv().await {
        let ready = ev == InclusionEvent::Ready;
        seen.push(ev);
        if ready {
            net.press_button(button).await.unwrap();
        }
    }
    (task.await.unwrap(), seen)
}

#[tokio::test(start_paused = true)]
async fn a_lock_is_included_with_s2_access_control_and_then_excluded() {
    let (driver, mut events, net) = start();
    wait_for(&mut events, "connected", |e| {
        matches!(e, DriverEvent::Connected(_))
    })
    .await;
    let printed_pin = net
        .snapshot(9)
        .await
        .unwrap()
        .unwrap()
        .dsk_pin
        .expect("a PIN on the lock");
    assert!(!net.snapshot(9).await.unwrap().unwrap().included);

    let (result, seen) = include(&driver, &net, Some(printed_pin)).await;
    assert_eq!(result.unwrap(), NodeId(9));
    assert!(
        seen.contains(&InclusionEvent::KeyExchange { node: NodeId(9) }),
        "{seen:?}"
    );
    assert!(seen.contains(&InclusionEvent::Secured {
        node: NodeId(9),
        class: Some(SecurityClass::S2AccessControl)
    }));
    wait_for(
        &mut events,
        "interview of 9",
        |e| matches!(e, DriverEvent::NodeUpdated(i) if i.node_id == NodeId(9) && i.interviewed),
    )
    .await;
    let info = driver
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.node_id == NodeId(9))
        .unwrap();
    assert_eq!(info.security_class, Some(SecurityClass::S2AccessControl));
    assert_eq!(info.user_code.map(|u| u.slots), Some(20));
    // User Code and Door Lock are only in the lock's secure list, asked after the inclusion.
    let plain = driver.request_node_info(NodeId(9)).await.unwrap();
    assert!(!plain.supports(0x63) && !plain.supports(0x62), "{plain:?}");
    let secure = info.secure_command_classes.expect("asked under S2");
    assert!(
        secure.contains(&0x63) && secure.contains(&0x62),
        "{secure:?}"
    );
    assert_eq!(info.security_failure, None);
    assert_eq!(pin_in(&driver, 9, 1).await.as_deref(), Some("2468"));
    assert!(net.snapshot(9).await.unwrap().unwrap().included);

    // Exclusion: the lock's button again, in remove mode.
    let (tx, mut rx) = mpsc::channel(32);
    let d = driver.clone();
    let task = tokio::spawn(async move { d.exclude(Duration::from_secs(60), tx).await });
    while let Some(ev) = rx.recv().await {
        if ev == InclusionEvent::Ready {
            net.press_button(9).await.unwrap();
        }
    }
    assert_eq!(task.await.unwrap().unwrap(), NodeId(9));
    wait_for(
        &mut events,
        "removal",
        |e| matches!(e, DriverEvent::NodeRemoved { node } if *node == NodeId(9)),
    )
    .await;
    assert!(driver
        .nodes()
        .await
        .unwrap()
        .iter()
        .all(|n| n.node_id != NodeId(9)));
    assert!(!net.snapshot(9).await.unwrap().unwrap().included);
}

#[tokio::test(start_paused = true)]
async fn a_wrong_pin_fails_with_a_clear_error_and_no_secure_traffic() {
    let (driver, mut events, net) = start();
    wait_for(&mut events, "connected", |e| {
        matches!(e, DriverEvent::Connected(_))
    })
    .await;
    let pin = net.snapshot(9).await.unwrap().unwrap().dsk_pin.unwrap();
    let (result, _) = include(&driver, &net, Some(pin.wrapping_add(1))).await;
    let err = result.unwrap_err();
    assert!(matches!(err, DriverError::Security { .. }), "{err:?}");
    assert!(err.to_string().contains("wrong PIN"), "{err}");
    let info = driver
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.node_id == NodeId(9))
        .unwrap();
    assert_eq!(info.security_class, None);
}

#[tokio::test(start_paused = true)]
async fn learn_mode_gives_up_when_no_lock_joins() {
    let (driver, mut events, _net) = start();
    wait_for(&mut events, "connected", |e| {
        matches!(e, DriverEvent::Connected(_))
    })
    .await;
    let (tx, _rx) = mpsc::channel(32);
    let err = driver
        .include(None, None, Duration::from_secs(5), tx)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("button"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn s0_locks_included_with_s0_keys_and_reached_only_through_s0() {
    let (driver, mut events, net) = start();
    // A lock included earlier with our S0 key: found by probing, spoken to through S0 only.
    wait_for(
        &mut events,
        "interview of 12",
        |e| matches!(e, DriverEvent::NodeUpdated(i) if i.node_id == NodeId(12) && i.interviewed),
    )
    .await;
    let twelve = driver
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.node_id == NodeId(12))
        .unwrap();
    assert_eq!(twelve.security_class, Some(SecurityClass::S0Legacy));
    assert_eq!(pin_in(&driver, 12, 2).await.as_deref(), Some("86420"));

    // A new S0-only lock: Scheme Get, the network key under the temporary key, verified.
    let (result, seen) = include_node(&driver, &net, 11, None, None).await;
    assert_eq!(result.unwrap(), NodeId(11), "{seen:?}");
    assert!(seen.contains(&InclusionEvent::Secured {
        node: NodeId(11),
        class: Some(SecurityClass::S0Legacy)
    }));
    wait_for(
        &mut events,
        "interview of 11",
        |e| matches!(e, DriverEvent::NodeUpdated(i) if i.node_id == NodeId(11) && i.interviewed),
    )
    .await;
    assert_eq!(pin_in(&driver, 11, 3).await.as_deref(), Some("97531"));
    assert_eq!(driver.stats().await.unwrap().security_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn a_failed_lock_is_removed_only_when_it_no_longer_answers() {
    let (driver, mut events, net) = start();
    wait_for(
        &mut events,
        "interview of 5",
        |e| matches!(e, DriverEvent::NodeUpdated(i) if i.node_id == NodeId(5) && i.interviewed),
    )
    .await;
    let err = driver.remove_failed(NodeId(5)).await.unwrap_err();
    assert!(err.to_string().contains("still answers"), "{err}");
    net.set_in_range(5, false).await.unwrap();
    assert_eq!(driver.remove_failed(NodeId(5)).await.unwrap(), NodeId(5));
    wait_for(
        &mut events,
        "removal",
        |e| matches!(e, DriverEvent::NodeRemoved { node } if *node == NodeId(5)),
    )
    .await;
    assert!(driver
        .nodes()
        .await
        .unwrap()
        .iter()
        .all(|n| n.node_id != NodeId(5)));
}

/// The PIN a lock reports for `slot`, read through whatever security it has.
async fn pin_in(driver: &DriverHandle, node: u16, slot: u8) -> Option<String> {
    let report = driver
        .get(
            NodeId(node),
            Command::UserCode(U::Get { user_id: slot }),
            Priority::Normal,
        )
        .await
        .unwrap();
    match report {
        Command::UserCode(U::Report { user_code, .. }) => user_code.pin().map(str::to_string),
        other => panic!("{other:?}"),
    }
}

/// A wrong PIN: the lock joined the network but got no key. It is marked (the lock port
/// tells why, for the engine's device error), nothing that carries a PIN or works the door
/// goes to it in clear, not now and not after a restart, and it stays while it answers.
#[tokio::test(start_paused = true)]
async fn after_a_wrong_pin_nothing_goes_to_the_lock_in_clear_and_it_says_why() {
    let (driver, mut events, net, rec) = start_recorded();
    wait_for(&mut events, "connected", |e| {
        matches!(e, DriverEvent::Connected(_))
    })
    .await;
    let pin = net.snapshot(9).await.unwrap().unwrap().dsk_pin.unwrap();
    let (result, _) = include(&driver, &net, Some(pin.wrapping_add(1))).await;
    assert!(result.unwrap_err().to_string().contains("wrong PIN"));
    let info = updated(&mut events, "marked", |i| {
        i.node_id == NodeId(9) && i.security_failure.is_some()
    })
    .await;
    assert_eq!(
        info.security_failure,
        Some(SecurityFailure::KeyExchangeFailed)
    );
    let port = zwlock::lock::zwave::lock_info(&info).expect("the lock port tells of it");
    assert_eq!(
        port.security_failure.map(|f| f.to_string()).as_deref(),
        Some("secure inclusion failed: exclude and include again")
    );
    // The removal: the lock still answers, so the stick keeps it.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(net.snapshot(9).await.unwrap().unwrap().included);
    let nine = driver.node(NodeId(9)).await.unwrap().expect("still listed");
    assert_eq!(
        nine.security_failure,
        Some(SecurityFailure::KeyExchangeFailed)
    );
    let refused = |r: Result<(), DriverError>| {
        let e = r.unwrap_err();
        assert!(
            matches!(
                e,
                DriverError::SecurityRequired {
                    node: NodeId(9),
                    ..
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.class(), ErrorClass::Permanent);
    };
    let get = Command::UserCode(U::Get { user_id: 1 });
    refused(
        driver
            .get(NodeId(9), get.clone(), Priority::Normal)
            .await
            .map(|_| ()),
    );
    let set = Command::UserCode(U::Set {
        user_id: 2,
        user_id_status: zwlock::cc::UserIdStatus::Enabled,
        user_code: zwlock::cc::CodeBytes::from_pin("1357"),
    });
    refused(
        driver
            .set(NodeId(9), set, Priority::Normal)
            .await
            .map(|_| ()),
    );
    let bolt = Command::DoorLock(zwlock::cc::DoorLockCommand::OperationSet { mode: 0x00 });
    refused(
        driver
            .set(NodeId(9), bolt, Priority::High)
            .await
            .map(|_| ()),
    );

    // The next start: the lock is in the stick's node table; probed under each key, it
    // answers none, and is marked again; still nothing in clear.
    driver.shutdown().await;
    let (driver, mut events) = spawn_on(rec.clone());
    let info = updated(&mut events, "marked after restart", |i| {
        i.node_id == NodeId(9) && i.security_failure.is_some()
    })
    .await;
    assert_eq!(info.security_failure, Some(SecurityFailure::NoKey));
    assert!(!info.interviewed);
    refused(
        driver
            .get(NodeId(9), get, Priority::Normal)
            .await
            .map(|_| ()),
    );
    // The plain lock beside it works as ever.
    assert!(pin_in(&driver, 5, 1).await.is_none());

    let to_nine = rec.send_data_to(9);
    assert!(
        to_nine.iter().any(|f| f[0] == 0x9F),
        "key exchange and probes went"
    );
    let clear: Vec<_> = to_nine.iter().filter(|f| pin_or_door_class(f)).collect();
    assert!(clear.is_empty(), "sent to node 9 in clear: {clear:02x?}");
    assert!(
        !to_nine.iter().any(|f| f.windows(4).any(|w| w == b"1357")),
        "a PIN went to node 9"
    );
}

/// A lock that stops answering during its key exchange: the exchange fails in time, and the
/// stick removes the node (RemoveFailedNode), which it can since the node no longer answers.
#[tokio::test(start_paused = true)]
async fn a_lock_gone_during_key_exchange_is_removed() {
    let (driver, mut events, net) = start();
    wait_for(&mut events, "connected", |e| {
        matches!(e, DriverEvent::Connected(_))
    })
    .await;
    let pin = net.snapshot(9).await.unwrap().unwrap().dsk_pin;
    let (tx, mut rx) = mpsc::channel(32);
    let d = driver.clone();
    let task = tokio::spawn(async move {
        d.include(
            pin,
            Some(SecurityClass::S2AccessControl),
            Duration::from_secs(60),
            tx,
        )
        .await
    });
    while let Some(ev) = rx.recv().await {
        match ev {
            InclusionEvent::Ready => {
                net.press_button(9).await.unwrap();
            }
            InclusionEvent::KeyExchange { .. } => net.set_in_range(9, false).await.unwrap(),
            _ => {}
        }
    }
    let err = task.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("stopped answering"), "{err}");
    wait_for(
        &mut events,
        "removal",
        |e| matches!(e, DriverEvent::NodeRemoved { node } if *node == NodeId(9)),
    )
    .await;
    assert!(driver.node(NodeId(9)).await.unwrap().is_none());
    // The stick no longer lists it.
    assert!(net.snapshot(9).await.unwrap().is_none_or(|s| !s.included));
}
