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
