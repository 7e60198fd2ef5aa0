//! The driver with a lock included with S2 Access Control: it learns the class by probing,
//! then every command is sealed and every report opened without the caller seeing it. A
//! driver holding other keys gets nothing from the lock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use zwlock::cc::{CodeBytes, Command, UserCodeCommand as U, UserIdStatus};
use zwlock::driver::{
    Driver, DriverConfig, DriverEvent, DriverHandle, NodeInfo, Priority, SetOutcome,
};
use zwlock::security::keys::NetworkKeys;
use zwlock::security::SecurityClass;
use zwlock::serialapi::NodeId;
use zwlock::sim::{KeypadAction, SimConfig, SimHandle, Simulator};

const KEY: &str = "7d5b0d1e4f1c3a2b9e8f7a6b5c4d3e2f";

fn net_toml() -> String {
    format!(
        r#"
[[network]]
name = "s"
radio_ms = 5
[[network.lock]]
node_id = 5
listening = "always"
slots = 20
initial_codes = [{{ slot = 1, code = "2468" }}]
security = "s2_access_control"
network_key = "{KEY}"
[[network.lock]]
node_id = 6
listening = "always"
user_code_version = 1
slots = 10
"#
    )
}

fn start(access_key: &str) -> (DriverHandle, mpsc::Receiver<DriverEvent>, SimHandle) {
    let sim = Simulator::new(SimConfig::from_toml(&net_toml()).unwrap());
    let net = sim.network("s").unwrap();
    let mut config = DriverConfig::new("sim://s".parse().unwrap());
    config.simulator = Some(Arc::new(sim));
    let (keys, _) = NetworkKeys::import(&format!("S2_AccessControl = {access_key}")).unwrap();
    config.keys = Some(keys);
    let (driver, events) = Driver::spawn(config);
    (driver, events, net)
}

async fn interview_of(events: &mut mpsc::Receiver<DriverEvent>, node: u16) -> NodeInfo {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(DriverEvent::NodeUpdated(i))) if i.node_id.0 == node && i.interviewed => {
                return i
            }
            Ok(Some(_)) => {}
            other => panic!("no interview of node {node}: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_s2_lock_is_spoken_to_at_its_class_transparently() {
    let (driver, mut events, net) = start(KEY);
    let info = interview_of(&mut events, 5).await;
    assert_eq!(info.security_class, Some(SecurityClass::S2AccessControl));
    let uc = info.user_code.expect("users learnt through S2");
    assert_eq!(uc.slots, 20);
    // A Get and a supervised Set, both inside S2.
    let node = NodeId(5);
    let report = driver
        .get(
            node,
            Command::UserCode(U::Get { user_id: 1 }),
            Priority::Normal,
        )
        .await
        .unwrap();
    let Command::UserCode(U::Report { user_code, .. }) = report else {
        panic!("{report:?}")
    };
    assert_eq!(user_code.pin(), Some("2468"));
    let set = Command::UserCode(U::Set {
        user_id: 2,
        user_id_status: UserIdStatus::Enabled,
        user_code: CodeBytes::from_pin("1357"),
    });
    assert_eq!(
        driver.set(node, set, Priority::Normal).await.unwrap(),
        SetOutcome::Confirmed
    );
    assert_eq!(
        net.snapshot(5).await.unwrap().unwrap().code(2),
        Some("1357")
    );
    // A keypad event comes in encrypted and reaches the caller as a plain report.
    assert!(net
        .keypad(5, KeypadAction::Enter { pin: "1357".into() })
        .await
        .unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(DriverEvent::Report {
                node: n,
                command: Command::Notification(_),
                ..
            })) if n.0 == 5 => break,
            Ok(Some(_)) => {}
            other => panic!("no notification: {other:?}"),
        }
    }
    // The lock reboots and forgets the SPAN: the next command fails to decrypt there, the
    // lock asks to start over, and the driver sends it once more with a new SPAN.
    net.keypad(5, KeypadAction::PowerCycle).await.unwrap();
    let report = driver
        .get(
            node,
            Command::UserCode(U::Get { user_id: 2 }),
            Priority::Normal,
        )
        .await
        .unwrap();
    let Command::UserCode(U::Report { user_code, .. }) = report else {
        panic!("{report:?}")
    };
    assert_eq!(user_code.pin(), Some("1357"));
    // The plain lock is untouched by all this.
    let nodes = driver.nodes().await.unwrap();
    let plain = nodes.iter().find(|n| n.node_id.0 == 6).unwrap();
    assert!(plain.interviewed);
    assert_eq!(plain.security_class, None);
    let stats = driver.stats().await.unwrap();
    assert_eq!(stats.security_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn with_other_keys_the_lock_answers_nothing() {
    let (driver, mut events, _net) = start("00112233445566778899aabbccddeeff");
    // The interview of the secure lock cannot finish; the plain lock's does.
    let plain = interview_of(&mut events, 6).await;
    assert!(plain.interviewed);
    let r = driver
        .get(
            NodeId(5),
            Command::UserCode(U::Get { user_id: 1 }),
            Priority::Normal,
        )
        .await;
    assert!(r.is_err(), "{r:?}");
    let nodes = driver.nodes().await.unwrap();
    let five = nodes.iter().find(|n| n.node_id.0 == 5).unwrap();
    assert_eq!(five.security_class, None);
    assert!(!five.interviewed);
}
