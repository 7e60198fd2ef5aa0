//! The driver against the simulator: startup, interview, transactions, queues, unsolicited
//! reports, faults and reconnection. Runs on a paused clock.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use zwlock::cc::notification::NotificationCommand;
use zwlock::cc::{CodeBytes, Command, SupervisionStatus, UserCodeCommand as U, UserIdStatus};
use zwlock::driver::{
    Driver, DriverConfig, DriverError, DriverEvent, DriverHandle, NodeInfo, Priority, Reachability,
    SetOutcome,
};
use zwlock::serialapi::NodeId;
use zwlock::sim::{Faults, KeypadAction, SimConfig, SimHandle, Simulator};

fn sim_config() -> SimConfig {
    SimConfig::from_toml(include_str!("../fixtures/sim/locks.toml")).unwrap()
}

struct Setup {
    driver: DriverHandle,
    events: mpsc::Receiver<DriverEvent>,
    net: SimHandle,
    /// Interviews seen complete, whatever was being waited for at the time.
    interviewed: std::collections::BTreeMap<u16, NodeInfo>,
}

fn start_with(cfg: SimConfig, tweak: impl FnOnce(&mut DriverConfig)) -> Setup {
    let sim = Simulator::new(cfg);
    let net = sim.network("test").unwrap();
    let mut config = DriverConfig::new("sim://test".parse().unwrap());
    config.simulator = Some(Arc::new(sim));
    tweak(&mut config);
    let (driver, events) = Driver::spawn(config);
    Setup {
        driver,
        events,
        net,
        interviewed: Default::default(),
    }
}

fn start() -> Setup {
    start_with(sim_config(), |_| {})
}

impl Setup {
    /// Wait for an event matching `pred`, skipping others.
    async fn wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&DriverEvent) -> bool,
    ) -> DriverEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev)) if pred(&ev) => {
                    if let DriverEvent::NodeUpdated(i) = &ev {
                        if i.interviewed {
                            self.interviewed.insert(i.node_id.0, i.clone());
                        }
                    }
                    return ev;
                }
                Ok(Some(DriverEvent::NodeUpdated(i))) if i.interviewed => {
                    self.interviewed.insert(i.node_id.0, i);
                }
                Ok(Some(_)) => continue,
                Ok(None) => panic!("driver stopped while waiting for {what}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    async fn interviewed(&mut self, node: u8) -> NodeInfo {
        if let Some(i) = self.interviewed.get(&u16::from(node)) {
            return i.clone();
        }
        match self
            .wait_for("interview", |e| matches!(e, DriverEvent::NodeUpdated(i) if i.node_id == NodeId(node.into()) && i.interviewed))
            .await
        {
            DriverEvent::NodeUpdated(i) => i,
            _ => unreachable!(),
        }
    }
}

fn get(user_id: u8) -> Command {
    Command::UserCode(U::Get { user_id })
}

fn set(user_id: u8, pin: &str) -> Command {
    Command::UserCode(U::Set {
        user_id,
        user_id_status: UserIdStatus::Enabled,
        user_code: CodeBytes::from_pin(pin),
    })
}

fn pin_of(c: &Command) -> Option<String> {
    match c {
        Command::UserCode(U::Report { user_code, .. }) => user_code.pin().map(str::to_string),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn startup_lists_nodes_and_the_interview_learns_each_lock() {
    let mut s = start();
    let ev = s
        .wait_for("connected", |e| matches!(e, DriverEvent::Connected(_)))
        .await;
    let DriverEvent::Connected(c) = ev else {
        unreachable!()
    };
    assert_eq!(c.home_id, 0xC0FFEE01);
    assert!(c.tx_status_reports);
    assert_eq!(c.nodes.len(), 5);
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < 5 {
        if let DriverEvent::NodeUpdated(i) = s
            .wait_for(
                "interviews",
                |e| matches!(e, DriverEvent::NodeUpdated(i) if i.interviewed),
            )
            .await
        {
            seen.insert(i.node_id.0, i);
        }
    }
    let v2 = &seen[&5];
    assert_eq!(v2.reachability, Reachability::Flirs1000);
    let uc = v2.user_code.as_ref().unwrap();
    assert_eq!(
        (uc.version, uc.slots, uc.checksum, uc.bulk_reports),
        (2, 30, true, true)
    );
    assert_eq!(uc.characters, "0123456789");
    assert!(v2.supports_supervision());
    assert_eq!(v2.manufacturer.unwrap().manufacturer_id, 0x0129);
    assert_eq!(v2.battery_level, Some(90));
    assert_eq!(v2.door_locked, Some(true));
    assert_eq!(
        v2.notification,
        Some(zwlock::driver::node::NotificationSupport::AccessControl)
    );
    let v1 = &seen[&6];
    assert_eq!(v1.user_code.as_ref().unwrap().version, 1);
    assert_eq!(v1.user_code.as_ref().unwrap().slots, 20);
    assert!(!v1.supports_supervision());
    assert_eq!(
        v1.notification,
        Some(zwlock::driver::node::NotificationSupport::LegacyAlarm)
    );
    assert_eq!(seen[&8].reachability, Reachability::Flirs250);
    assert_eq!(seen[&9].reachability, Reachability::Listening);
    assert_eq!(seen[&9].user_code.as_ref().unwrap().slots, 250);
}

#[tokio::test(start_paused = true)]
async fn gets_sets_and_refusals() {
    let mut s = start();
    s.interviewed(5).await;
    let r = s
        .driver
        .get(NodeId(5), get(1), Priority::Normal)
        .await
        .unwrap();
    assert_eq!(pin_of(&r).as_deref(), Some("1234"));
    // Supervised set on a v2 lock: confirmed by the lock itself.
    assert_eq!(
        s.driver
            .set(NodeId(5), set(3, "4321"), Priority::Normal)
            .await
            .unwrap(),
        SetOutcome::Confirmed
    );
    assert_eq!(
        s.net.snapshot(5).await.unwrap().unwrap().code(3),
        Some("4321")
    );
    // An invalid code: refused by the lock, not a transport error.
    assert_eq!(
        s.driver
            .set(NodeId(5), set(4, "12"), Priority::Normal)
            .await
            .unwrap(),
        SetOutcome::Refused(SupervisionStatus::Fail)
    );
    // A v1 lock without Supervision: only transmitted; a Get tells the truth.
    s.interviewed(6).await;
    assert_eq!(
        s.driver
            .set(NodeId(6), set(3, "9753"), Priority::Normal)
            .await
            .unwrap(),
        SetOutcome::Transmitted
    );
    let r = s
        .driver
        .get(NodeId(6), get(3), Priority::Normal)
        .await
        .unwrap();
    assert_eq!(pin_of(&r).as_deref(), Some("9753"));
    // Not a Get, unknown node.
    assert!(matches!(
        s.driver
            .get(NodeId(5), set(1, "1111"), Priority::Normal)
            .await,
        Err(DriverError::NotAGet { .. })
    ));
    assert!(matches!(
        s.driver.get(NodeId(77), get(1), Priority::Normal).await,
        Err(DriverError::UnknownNode { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn unsolicited_reports_arrive_as_events() {
    let mut s = start();
    s.interviewed(5).await;
    s.interviewed(6).await;
    s.net
        .keypad(5, KeypadAction::Enter { pin: "1234".into() })
        .await
        .unwrap();
    let ev = s
        .wait_for("keypad report", |e| matches!(e, DriverEvent::Report { .. }))
        .await;
    let DriverEvent::Report { node, command, .. } = ev else {
        unreachable!()
    };
    assert_eq!(node, NodeId(5));
    let Command::Notification(NotificationCommand::Report(r)) = command else {
        panic!()
    };
    assert_eq!(r.user_id(), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_lock_that_supervises_its_notifications_gets_its_answer() {
    let mut cfg = sim_config();
    cfg.network[0].locks[0].quirks.supervised_notifications = true;
    let mut s = start_with(cfg, |_| {});
    s.interviewed(5).await;
    s.net
        .keypad(
            5,
            KeypadAction::Program {
                slot: 12,
                pin: "1212".into(),
            },
        )
        .await
        .unwrap();
    let ev = s
        .wait_for("report", |e| matches!(e, DriverEvent::Report { .. }))
        .await;
    let DriverEvent::Report { command, .. } = ev else {
        unreachable!()
    };
    assert!(
        matches!(command, Command::Notification(_)),
        "the inner command is delivered"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        s.net
            .snapshot(5)
            .await
            .unwrap()
            .unwrap()
            .supervision_reports_received,
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_lock_does_not_hold_up_the_others() {
    let mut s = start_with(sim_config(), |c| c.interview = false);
    s.wait_for("connected", |e| matches!(e, DriverEvent::Connected(_)))
        .await;
    s.net.set_in_range(5, false).await.unwrap();
    let d = s.driver.clone();
    let t0 = tokio::time::Instant::now();
    let silent = tokio::spawn(async move { d.get(NodeId(5), get(1), Priority::Normal).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    let r = s.driver.get(NodeId(9), get(1), Priority::Normal).await;
    let took = t0.elapsed();
    assert!(
        matches!(r, Ok(Command::UserCode(U::Report { .. }))),
        "{r:?}"
    );
    // The other lock waited at most for one NoAck of the silent lock.
    assert!(took < Duration::from_secs(3), "{took:?}");
    let e = silent.await.unwrap().unwrap_err();
    assert!(matches!(e, DriverError::NodeUnreachable { .. }), "{e}");
    assert!(e.is_retryable());
    let ev = s
        .wait_for("unreachable", |e| {
            matches!(e, DriverEvent::NodeReachability { .. })
        })
        .await;
    assert_eq!(
        ev,
        DriverEvent::NodeReachability {
            node: NodeId(5),
            reachable: false
        }
    );
    // Background work for the node fails fast during its backoff.
    let t0 = tokio::time::Instant::now();
    let e = s
        .driver
        .get(NodeId(5), get(1), Priority::Background)
        .await
        .unwrap_err();
    assert!(matches!(e, DriverError::NodeUnreachable { .. }));
    assert!(t0.elapsed() < Duration::from_millis(100));
    // Back in range: an API request gets through at once, and the node is reachable again.
    s.net.set_in_range(5, true).await.unwrap();
    assert!(s
        .driver
        .get(NodeId(5), get(1), Priority::High)
        .await
        .is_ok());
    let ev = s
        .wait_for("reachable", |e| {
            matches!(e, DriverEvent::NodeReachability { .. })
        })
        .await;
    assert_eq!(
        ev,
        DriverEvent::NodeReachability {
            node: NodeId(5),
            reachable: true
        }
    );
}

#[tokio::test(start_paused = true)]
async fn high_priority_jumps_the_queue_and_depth_is_bounded() {
    let mut s = start_with(sim_config(), |c| {
        c.interview = false;
        c.queue_depth = 8;
    });
    s.wait_for("connected", |e| matches!(e, DriverEvent::Connected(_)))
        .await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let d = s.driver.clone();
        let order = order.clone();
        tasks.push(tokio::spawn(async move {
            let r = d.get(NodeId(5), get(i + 1), Priority::Background).await;
            order.lock().unwrap().push(format!("bg{i}"));
            r
        }));
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    // The ninth job for node 5 does not fit.
    let e = s
        .driver
        .get(NodeId(5), get(20), Priority::Background)
        .await
        .unwrap_err();
    assert!(matches!(e, DriverError::QueueFull { depth: 8, .. }), "{e}");
    // Once there is room again, a high-priority job overtakes the background ones.
    while order.lock().unwrap().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let d = s.driver.clone();
    let o = order.clone();
    let hi = tokio::spawn(async move {
        let r = d.get(NodeId(5), get(1), Priority::High).await;
        o.lock().unwrap().push("high".into());
        r
    });
    // Wait for everything.
    for t in tasks {
        t.await.unwrap().ok();
    }
    hi.await.unwrap().unwrap();
    let order = order.lock().unwrap().clone();
    let pos = order.iter().position(|x| x == "high").unwrap();
    assert!(
        pos <= 3,
        "high priority finished at position {pos}: {order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn faults_on_the_stick_are_absorbed() {
    let mut s = start_with(sim_config(), |c| c.interview = false);
    s.wait_for("connected", |e| matches!(e, DriverEvent::Connected(_)))
        .await;
    // Busy stick: not accepted, retried after 500 ms.
    s.net
        .set_faults(Faults {
            busy_send_data: 0.5,
            ..Faults::default()
        })
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(s
            .driver
            .get(NodeId(9), get(1), Priority::Normal)
            .await
            .is_ok());
    }
    // Duplicate callbacks: pairing is unaffected.
    s.net
        .set_faults(Faults {
            duplicate_callback: 1.0,
            ..Faults::default()
        })
        .await
        .unwrap();
    for slot in [1u8, 2, 3] {
        let r = s
            .driver
            .get(NodeId(9), get(slot), Priority::Normal)
            .await
            .unwrap();
        assert!(matches!(r, Command::UserCode(U::Report { user_id, .. }) if user_id == slot));
    }
    // Lost callbacks: SendDataAbort brings a failure, retried, then given up as retryable.
    s.net
        .set_faults(Faults {
            drop_callback: 1.0,
            ..Faults::default()
        })
        .await
        .unwrap();
    let e = s
        .driver
        .get(NodeId(9), get(1), Priority::Normal)
        .await
        .unwrap_err();
    assert!(matches!(e, DriverError::TransmitFailed { .. }), "{e}");
    assert!(e.is_retryable());
    s.net.set_faults(Faults::default()).await.unwrap();
    assert!(s
        .driver
        .get(NodeId(9), get(1), Priority::Normal)
        .await
        .is_ok());
    let stats = s.driver.stats().await.unwrap();
    assert!(
        stats.callbacks_failed.get("fail").copied().unwrap_or(0) >= 3,
        "{stats:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_report_times_out() {
    let mut s = start_with(sim_config(), |c| {
        c.interview = false;
        c.report_timeout = Duration::from_millis(1000);
    });
    s.wait_for("connected", |e| matches!(e, DriverEvent::Connected(_)))
        .await;
    let e = s
        .driver
        .get(NodeId(8), get(1), Priority::Normal)
        .await
        .unwrap_err();
    assert!(matches!(e, DriverError::NoReport { .. }), "{e}");
    // The late report then arrives unsolicited, and does not answer the next Get for slot 2.
    let r = s.driver.get(NodeId(9), get(2), Priority::Normal).await;
    assert!(r.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_interview_resumes_from_where_it_stopped() {
    // Seed what an earlier, interrupted interview learned: the node's classes and some versions.
    let mut s = start_with(sim_config(), |c| c.interview = false);
    s.wait_for("connected", |e| matches!(e, DriverEvent::Connected(_)))
        .await;
    let mut partial = s.driver.node(NodeId(5)).await.unwrap().unwrap();
    partial.command_classes = Some(vec![0x86, 0x72, 0x63, 0x62, 0x71, 0x80, 0x6C]);
    for cc in [0x86u8, 0x72, 0x63, 0x62] {
        partial.versions.insert(cc, if cc == 0x63 { 2 } else { 1 });
    }
    s.driver.seed_node(partial).await.unwrap();
    let before = s.net.snapshot(5).await.unwrap().unwrap().commands_received;
    // Take the lock out of range: the interview stops, then resumes once it is back.
    s.net.set_in_range(5, false).await.unwrap();
    s.driver.reinterview(NodeId(5)).await.unwrap();
    s.wait_for(
        "interrupted",
        |e| matches!(e, DriverEvent::NodeUpdated(i) if i.node_id == NodeId(5) && !i.interviewed),
    )
    .await;
    s.net.set_in_range(5, true).await.unwrap();
    let info = s.interviewed(5).await;
    assert!(info.user_code.is_some());
    // reinterview() starts from scratch; check the resume logic with a seeded partial record.
    let mut partial = info.clone();
    partial.interviewed = false;
    partial.user_code = None;
    partial.battery_level = None;
    s.driver.seed_node(partial).await.unwrap();
    let before2 = s.net.snapshot(5).await.unwrap().unwrap().commands_received;
    let (done, err) =
        zwlock::driver::interview::run(&s.driver, s.driver.node(NodeId(5)).await.unwrap().unwrap())
            .await;
    assert!(err.is_none());
    assert!(done.interviewed);
    let after = s.net.snapshot(5).await.unwrap().unwrap().commands_received;
    // Only Users Number, Capabilities and Battery were asked again.
    assert_eq!(after - before2, 3, "commands sent on resume");
    assert!(before <= before2);
}

#[tokio::test(start_paused = true)]
async fn unplugged_stick_fails_work_and_reconnects() {
    let mut s = start_with(sim_config(), |c| c.interview = false);
    s.wait_for("connected", |e| matches!(e, DriverEvent::Connected(_)))
        .await;
    s.net.unplug().await.unwrap();
    s.wait_for("disconnected", |e| {
        matches!(e, DriverEvent::Disconnected { .. })
    })
    .await;
    let e = s
        .driver
        .get(NodeId(5), get(1), Priority::Normal)
        .await
        .unwrap_err();
    assert!(matches!(e, DriverError::Disconnected { .. }), "{e}");
    assert!(e.is_retryable());
    // Several reconnection attempts fail while it is out, then it comes back.
    tokio::time::sleep(Duration::from_secs(30)).await;
    s.net.plug().await.unwrap();
    s.wait_for("connected again", |e| {
        matches!(e, DriverEvent::Connected(_))
    })
    .await;
    let r = s
        .driver
        .get(NodeId(5), get(1), Priority::Normal)
        .await
        .unwrap();
    assert_eq!(pin_of(&r).as_deref(), Some("1234"));
    assert!(s.driver.stats().await.unwrap().reconnects >= 1);
}

#[tokio::test(start_paused = true)]
async fn a_stick_that_stops_answering_is_reset_and_recovers() {
    let mut s = start_with(sim_config(), |c| {
        c.interview = false;
        c.reconnect_initial = Duration::from_secs(1);
    });
    s.wait_for("connected", |e| matches!(e, DriverEvent::Connected(_)))
        .await;
    // The stick refuses every frame: each request fails after its retransmissions.
    s.net
        .set_faults(Faults {
            nak_host_frame: 1.0,
            ..Faults::default()
        })
        .await
        .unwrap();
    for _ in 0..3 {
        let e = s
            .driver
            .get(NodeId(5), get(1), Priority::Normal)
            .await
            .unwrap_err();
        assert!(e.is_retryable(), "{e}");
    }
    s.wait_for("reset", |e| matches!(e, DriverEvent::Disconnected { .. }))
        .await;
    s.net.set_faults(Faults::default()).await.unwrap();
    s.wait_for("connected again", |e| {
        matches!(e, DriverEvent::Connected(_))
    })
    .await;
    assert!(s
        .driver
        .get(NodeId(5), get(1), Priority::Normal)
        .await
        .is_ok());
}

/// Twenty FLiRS locks on first start: every lock interviewed (RequestNodeInfo first) while
/// the locks already interviewed have all their slots read, as the engine does. The stick
/// refuses a SendData or RequestNodeInfo on top of its own transaction, as the zwave-js mock
/// does (`RES 13 00`); the driver never gives it the chance.
#[tokio::test(start_paused = true)]
async fn twenty_locks_first_start_never_overlaps_the_sticks_transaction() {
    let mut toml = String::from("[[network]]\nname = \"test\"\nseed = 3\n");
    for n in 2..22 {
        toml.push_str(&format!(
            "[[network.lock]]\nnode_id = {n}\nuser_code_version = 1\nslots = 30\nsupervision = false\n\
             initial_codes = [{{ slot = 1, code = \"1234\" }}, {{ slot = 7, code = \"2468{}\" }}]\n",
            n % 10
        ));
    }
    let s = start_with(SimConfig::from_toml(&toml).unwrap(), |_| {});
    let mut tasks = Vec::new();
    for n in 2u16..22 {
        let d = s.driver.clone();
        tasks.push(tokio::spawn(async move {
            let node = NodeId(n);
            loop {
                if let Ok(Some(i)) = d.node(node).await {
                    if i.interviewed {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut codes = Vec::new();
            for slot in 1..=30u8 {
                match d.get(node, get(slot), Priority::Background).await {
                    Ok(r) => {
                        if let Some(pin) = pin_of(&r) {
                            codes.push((slot, pin));
                        }
                    }
                    Err(e) => return Err(format!("node {n} slot {slot}: {e}")),
                }
            }
            Ok(codes)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let stick = s.net.stats().await.unwrap();
    eprintln!(
        "20 locks, first start: {} SendData, {} refused as overlapping, {} soft resets",
        stick.send_data, stick.refused_busy, stick.soft_resets
    );
    assert_eq!(
        stick.refused_busy, 0,
        "the stick refused requests: {stick:?}"
    );
    for (i, r) in results.into_iter().enumerate() {
        let n = i + 2;
        assert_eq!(
            r,
            Ok(vec![
                (1, "1234".to_string()),
                (7, format!("2468{}", n % 10))
            ]),
            "node {n}"
        );
    }
}
