//! The driver replayed against captured sessions: its host bytes must match byte for byte.

use std::sync::{Arc, Mutex};

use zwlock::driver::{Driver, DriverConfig, DriverEvent};
use zwlock::replay::{spawn_stick, Fixture, ReplayOptions};
use zwlock::serial::transport::{BoxedStream, SimConnector, TransportError};

/// Hands out one prepared stream, then refuses (as an unplugged stick would).
struct OneStream(Mutex<Option<BoxedStream>>);

impl SimConnector for OneStream {
    fn connect(&self, name: &str) -> Result<BoxedStream, TransportError> {
        self.0
            .lock()
            .unwrap()
            .take()
            .ok_or_else(|| TransportError::DeviceNotFound {
                url: format!("sim://{name}"),
            })
    }
}

async fn replay_startup(fixture: &str) -> DriverEvent {
    let path = format!("{}/fixtures/replay/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let (stream, player) = spawn_stick(Fixture::load(&path).unwrap(), ReplayOptions::default());
    let mut config = DriverConfig::new("sim://replay".parse().unwrap());
    config.simulator = Some(Arc::new(OneStream(Mutex::new(Some(stream)))));
    config.interview = false;
    let (_driver, mut events) = Driver::spawn(config);
    let connected = events.recv().await.unwrap();
    player
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{fixture}: {e}"));
    connected
}

#[tokio::test(start_paused = true)]
async fn driver_startup_matches_the_capture() {
    let ev = replay_startup("startup.txt").await;
    let DriverEvent::Connected(c) = ev else {
        panic!("{ev:?}")
    };
    assert_eq!(c.home_id, 0xC0FFEE01);
    assert_eq!(c.library, "Z-Wave 7.19");
    assert!(c.tx_status_reports);
    assert_eq!(c.nodes.len(), 1);
    assert_eq!(c.nodes[0].0 .0, 5);
}

/// The session recorded against the zwave-js mock (tests/interop.rs), replayed without it.
#[tokio::test(start_paused = true)]
async fn driver_replays_the_zwave_js_mock_capture() {
    use zwlock::cc::{CodeBytes, Command, UserCodeCommand as U, UserIdStatus};
    use zwlock::driver::{Priority, SetOutcome};
    use zwlock::serialapi::NodeId;

    let path = format!(
        "{}/fixtures/replay/mock_startup_set_get.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let (stream, player) = spawn_stick(Fixture::load(&path).unwrap(), ReplayOptions::default());
    let mut config = DriverConfig::new("sim://replay".parse().unwrap());
    config.simulator = Some(Arc::new(OneStream(Mutex::new(Some(stream)))));
    config.interview = false;
    let (d, mut events) = Driver::spawn(config);
    let ev = events.recv().await.unwrap();
    assert!(
        matches!(ev, DriverEvent::Connected(ref c) if c.home_id == 0x7E57_0001),
        "{ev:?}"
    );
    let n2 = NodeId(2);
    let mut info = d.node(n2).await.unwrap().unwrap();
    info.command_classes = Some(vec![0x86, 0x72, 0x6C, 0x63, 0x62, 0x71, 0x80]);
    d.seed_node(info).await.unwrap();
    let r = d
        .get(
            n2,
            Command::UserCode(U::Get { user_id: 1 }),
            Priority::Normal,
        )
        .await
        .unwrap();
    assert!(
        matches!(r, Command::UserCode(U::Report { ref user_code, .. }) if user_code.pin() == Some("1234"))
    );
    let set = Command::UserCode(U::Set {
        user_id: 5,
        user_id_status: UserIdStatus::Enabled,
        user_code: CodeBytes::from_pin("4321"),
    });
    assert_eq!(
        d.set(n2, set, Priority::Normal).await.unwrap(),
        SetOutcome::Confirmed
    );
    let r = d
        .get(
            n2,
            Command::UserCode(U::Get { user_id: 5 }),
            Priority::Normal,
        )
        .await
        .unwrap();
    assert!(
        matches!(r, Command::UserCode(U::Report { ref user_code, .. }) if user_code.pin() == Some("4321"))
    );
    player.await.unwrap().unwrap();
}
