//! The stick recovery ladder against the simulator: a lost callback is aborted; a jammed stick
//! (every SendData answered "not accepted") is soft-reset and works again; one that stays
//! jammed through the soft reset gets its port closed and reopened; one that no step fixes is
//! given up, and its pings stop feeding the watchdog. Runs on a paused clock.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use zwlock::cc::{CodeBytes, Command, UserCodeCommand as U, UserIdStatus};
use zwlock::driver::{
    feeds_watchdog, Driver, DriverConfig, DriverError, DriverEvent, DriverHandle, ErrorClass,
    NotConnected, Priority,
};
use zwlock::serialapi::NodeId;
use zwlock::sim::{Faults, JamClearedBy, SimConfig, SimHandle, Simulator};

/// A listening lock: no wake-up beam, so frames are quick.
const LOCK: NodeId = NodeId(9);
const PING: Duration = Duration::from_secs(5);

struct Setup {
    driver: DriverHandle,
    events: mpsc::Receiver<DriverEvent>,
    net: SimHandle,
}

fn start_with(tweak: impl FnOnce(&mut DriverConfig)) -> Setup {
    let cfg = SimConfig::from_toml(include_str!("../fixtures/sim/locks.toml")).unwrap();
    let sim = Simulator::new(cfg);
    let net = sim.network("test").unwrap();
    let mut config = DriverConfig::new("sim://test".parse().unwrap());
    config.simulator = Some(Arc::new(sim));
    config.interview = false;
    config.reconnect_initial = Duration::from_secs(1);
    config.reconnect_max = Duration::from_secs(8);
    tweak(&mut config);
    let (driver, events) = Driver::spawn(config);
    Setup {
        driver,
        events,
        net,
    }
}

impl Setup {
    /// The next Connected or Disconnected event (others are skipped).
    async fn next_link_event(&mut self) -> DriverEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(ev @ (DriverEvent::Connected(_) | DriverEvent::Disconnected { .. }))) => {
                    return ev
                }
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the driver stopped"),
                Err(_) => panic!("no Connected or Disconnected event"),
            }
        }
    }

    async fn connected(&mut self) {
        let ev = self.next_link_event().await;
        assert!(matches!(ev, DriverEvent::Connected(_)), "{ev:?}");
    }

    async fn disconnected(&mut self) -> String {
        match self.next_link_event().await {
            DriverEvent::Disconnected { reason } => reason,
            other => panic!("expected Disconnected, got {other:?}"),
        }
    }

    /// Events already queued (no waiting).
    fn pending_link_events(&mut self) -> Vec<DriverEvent> {
        let mut out = Vec::new();
        while let Ok(ev) = self.events.try_recv() {
            if matches!(
                ev,
                DriverEvent::Connected(_) | DriverEvent::Disconnected { .. }
            ) {
                out.push(ev);
            }
        }
        out
    }

    async fn write(&self, slot: u8, pin: &str) -> Result<(), DriverError> {
        self.driver
            .set(LOCK, set(slot, pin), Priority::Normal)
            .await
            .map(|_| ())
    }

    /// Write until the stick goes down (the ladder took a step): the errors on the way.
    async fn write_until_down(&self, slot: u8) -> Vec<DriverError> {
        let mut errors = Vec::new();
        for _ in 0..20 {
            let e = self
                .write(slot, "4711")
                .await
                .expect_err("a jammed stick takes no write");
            let down = e.class() == ErrorClass::NotConnected;
            errors.push(e);
            if down {
                return errors;
            }
        }
        panic!("the stick never went down: {errors:?}");
    }

    async fn pin_on_lock(&self, slot: u16) -> Option<String> {
        let snap = self.net.snapshot(9).await.unwrap().unwrap();
        snap.code(slot).map(str::to_string)
    }
}

fn set(user_id: u8, pin: &str) -> Command {
    Command::UserCode(U::Set {
        user_id,
        user_id_status: UserIdStatus::Enabled,
        user_code: CodeBytes::from_pin(pin),
    })
}

fn jam(cleared_by: JamClearedBy) -> Faults {
    Faults {
        jammed: true,
        jam_cleared_by: cleared_by,
        ..Faults::default()
    }
}

fn not_connected(r: &Result<(), DriverError>) -> Option<&NotConnected> {
    match r {
        Err(DriverError::Disconnected { reason }) => Some(reason),
        _ => None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_lost_callback_is_aborted_and_counted() {
    let mut s = start_with(|_| {});
    s.connected().await;
    s.net
        .set_faults(Faults {
            drop_callback: 1.0,
            ..Faults::default()
        })
        .await
        .unwrap();
    // Each of the three sends loses its callback; the abort brings it back as a failure.
    let e = s.write(3, "2468").await.unwrap_err();
    assert!(matches!(e, DriverError::TransmitFailed { .. }), "{e}");
    assert_eq!(e.class(), ErrorClass::Transient);
    let stats = s.driver.stats().await.unwrap();
    assert_eq!(stats.stick_aborts, 3, "{stats:?}");
    assert_eq!(s.net.stats().await.unwrap().send_data_aborts, 3);
    // Three lost callbacks are fewer than the five that make a jam: no soft reset.
    assert_eq!((stats.stick_soft_resets, stats.stick_reopens), (0, 0));
    assert!(s.pending_link_events().is_empty());
    s.net.set_faults(Faults::default()).await.unwrap();
    s.write(3, "2468").await.unwrap();
    assert_eq!(s.pin_on_lock(3).await.as_deref(), Some("2468"));
    assert!(s.driver.ping(PING).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_jammed_stick_is_soft_reset_and_writes_work_again() {
    let mut s = start_with(|_| {});
    s.connected().await;
    assert!(s.driver.ping(PING).await.is_ok());
    let resets_at_start = s.net.stats().await.unwrap().soft_resets;
    s.net
        .set_faults(jam(JamClearedBy::SoftReset))
        .await
        .unwrap();
    let errors = s.write_until_down(4).await;
    // First the stick is busy (a transient error) ...
    assert!(matches!(errors[0], DriverError::StickBusy), "{errors:?}");
    assert_eq!(errors[0].class(), ErrorClass::Transient);
    // ... then, five refusals in a row, it is taken down for a soft reset: the write in
    // flight fails as not connected, with the reason as its source.
    let last = errors.last().unwrap();
    assert!(
        matches!(
            last,
            DriverError::Disconnected {
                reason: NotConnected::SoftReset
            }
        ),
        "{last}"
    );
    assert!(last.source().is_some());
    let reason = s.disconnected().await;
    assert!(reason.contains("soft reset"), "{reason}");
    // While it restarts, requests fail at once as not connected, and so does a ping (which
    // still feeds the watchdog: the ladder is at work).
    let e = s.write(4, "4711").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotConnected, "{e}");
    let ping = s.driver.ping(PING).await;
    assert_eq!(not_connected(&ping), Some(&NotConnected::SoftReset));
    assert!(feeds_watchdog(&ping));
    s.connected().await;
    // The soft reset cleared the jam: writes land.
    s.write(4, "4711").await.unwrap();
    assert_eq!(s.pin_on_lock(4).await.as_deref(), Some("4711"));
    assert!(s.driver.ping(PING).await.is_ok());
    let stats = s.driver.stats().await.unwrap();
    assert_eq!((stats.stick_soft_resets, stats.stick_reopens), (1, 0));
    let sim = s.net.stats().await.unwrap();
    assert_eq!(sim.soft_resets, resets_at_start + 1);
    assert_eq!(sim.connections, 1, "the port stayed open");
    assert_eq!(sim.send_data_refused_jammed, 5);
}

#[tokio::test(start_paused = true)]
async fn a_jam_that_survives_the_soft_reset_is_cleared_by_reopening_the_port() {
    let mut s = start_with(|_| {});
    s.connected().await;
    s.net.set_faults(jam(JamClearedBy::Reopen)).await.unwrap();
    s.write_until_down(5).await;
    assert!(s.disconnected().await.contains("soft reset"));
    s.connected().await;
    // Still jammed after the soft reset: five more refusals and the port is closed.
    let errors = s.write_until_down(5).await;
    assert!(
        matches!(
            errors.last(),
            Some(DriverError::Disconnected {
                reason: NotConnected::Reopening { attempt: 1 }
            })
        ),
        "{errors:?}"
    );
    let reason = s.disconnected().await;
    assert!(reason.contains("reopening"), "{reason}");
    let ping = s.driver.ping(PING).await;
    assert_eq!(
        not_connected(&ping),
        Some(&NotConnected::Reopening { attempt: 1 })
    );
    assert!(feeds_watchdog(&ping));
    s.connected().await;
    s.write(5, "1357").await.unwrap();
    assert_eq!(s.pin_on_lock(5).await.as_deref(), Some("1357"));
    assert!(s.driver.ping(PING).await.is_ok());
    let stats = s.driver.stats().await.unwrap();
    assert_eq!((stats.stick_soft_resets, stats.stick_reopens), (1, 1));
    assert_eq!(s.net.stats().await.unwrap().connections, 2);
    assert!(
        s.pending_link_events().is_empty(),
        "one outage, one event each"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stick_no_step_fixes_stops_feeding_the_watchdog_until_it_works_again() {
    let mut s = start_with(|c| c.reopen_attempts = 2);
    s.connected().await;
    s.net.set_faults(jam(JamClearedBy::Nothing)).await.unwrap();
    // Drive writes (as the engine's retries would) until the ladder gives up.
    let mut given_up = false;
    for _ in 0..100 {
        let ping = s.driver.ping(PING).await;
        if let Some(NotConnected::Unresponsive { reopens }) = not_connected(&ping) {
            assert_eq!(*reopens, 2);
            assert!(!feeds_watchdog(&ping), "the watchdog must expire");
            given_up = true;
            break;
        }
        assert!(
            feeds_watchdog(&ping),
            "fed while the ladder is at work: {ping:?}"
        );
        if let Err(e) = s.write(6, "8642").await {
            if e.class() == ErrorClass::NotConnected {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    assert!(given_up, "the ladder never gave up");
    let stats = s.driver.stats().await.unwrap();
    assert_eq!(stats.stick_soft_resets, 1, "{stats:?}");
    assert!(stats.stick_reopens >= 3, "{stats:?}");
    assert!(s.pin_on_lock(6).await.is_none());
    // The jam goes away (as after the restart systemd would do): the next write that gets
    // through ends it, and pings feed the watchdog again.
    s.net.set_faults(Faults::default()).await.unwrap();
    let mut landed = false;
    for _ in 0..30 {
        if s.write(6, "8642").await.is_ok() {
            landed = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(landed, "no write got through after the jam cleared");
    assert_eq!(s.pin_on_lock(6).await.as_deref(), Some("8642"));
    let ping = s.driver.ping(PING).await;
    assert!(ping.is_ok(), "{ping:?}");
}

#[tokio::test(start_paused = true)]
async fn an_absent_stick_keeps_the_watchdog_fed_one_that_opens_but_never_starts_does_not() {
    let mut s = start_with(|c| c.reopen_attempts = 2);
    s.connected().await;
    s.net.unplug().await.unwrap();
    s.disconnected().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ping = s.driver.ping(PING).await;
    let Some(NotConnected::Absent { source }) = not_connected(&ping) else {
        panic!("{ping:?}");
    };
    assert!(
        matches!(
            **source,
            zwlock::serial::TransportError::DeviceNotFound { .. }
        ),
        "{source}"
    );
    assert!(feeds_watchdog(&ping), "a restart would not bring it back");
    let e = s.write(7, "1212").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::NotConnected);
    // It comes back, but refuses every frame: the port opens, the stick never starts.
    s.net
        .set_faults(Faults {
            nak_host_frame: 1.0,
            ..Faults::default()
        })
        .await
        .unwrap();
    s.net.plug().await.unwrap();
    let mut given_up = false;
    for _ in 0..100 {
        let ping = s.driver.ping(PING).await;
        if not_connected(&ping).is_some_and(NotConnected::is_unresponsive) {
            assert!(!feeds_watchdog(&ping));
            given_up = true;
            break;
        }
        assert!(feeds_watchdog(&ping), "{ping:?}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(given_up, "the ladder never gave up");
    assert!(s.driver.stats().await.unwrap().stick_reopens >= 3);
    s.net.set_faults(Faults::default()).await.unwrap();
    s.connected().await;
    assert!(s.driver.ping(PING).await.is_ok());
    s.write(7, "1212").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_lost_callback_that_jams_the_stick_no_longer_wedges_it() {
    // The measured failure: after a lost callback the stick refused every SendData, and every
    // write failed with "the stick stayed busy" until the daemon was stopped.
    let mut s = start_with(|_| {});
    s.connected().await;
    s.net
        .set_faults(Faults {
            drop_callback: 1.0,
            jam_on_lost_callback: 1.0,
            ..Faults::default()
        })
        .await
        .unwrap();
    let e = s.write(8, "9090").await.unwrap_err();
    assert!(e.is_retryable(), "{e}");
    assert!(s.disconnected().await.contains("soft reset"));
    // The callbacks come again (the faults are gone).
    s.net.set_faults(Faults::default()).await.unwrap();
    s.connected().await;
    s.write(8, "9090").await.unwrap();
    assert_eq!(s.pin_on_lock(8).await.as_deref(), Some("9090"));
    let stats = s.driver.stats().await.unwrap();
    assert_eq!(stats.stick_aborts, 1, "{stats:?}");
    assert_eq!(stats.stick_soft_resets, 1);
}
