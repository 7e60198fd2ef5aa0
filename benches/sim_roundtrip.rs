//! How many SendData round trips per second the simulator sustains against the link layer,
//! in process, on a real clock: the simulator must not be the bottleneck of other benchmarks.
//!
//! `cargo bench --bench sim_roundtrip`: criterion reports time per round trip (a User Code Get
//! through SendData, its RES, callback and the lock's report); round trips/s = 1 / that.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use zwlock::cc::{Command, UserCodeCommand};
use zwlock::serial::link::{self, LinkConfig};
use zwlock::serialapi::session::{self, SessionConfig, SessionEvent};
use zwlock::serialapi::{HostRequest, NodeId, SendDataRequest};
use zwlock::sim::{SimConfig, SimHandle};

const NET: &str = r#"
[[network]]
name = "bench"
radio_ms = 0
tx_reports = false
[[network.lock]]
node_id = 5
listening = "always"
slots = 250
initial_codes = [{ slot = 1, code = "1234" }]
"#;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (_net, session, mut events) = rt.block_on(async {
        let model = SimConfig::from_toml(NET).unwrap().network[0].clone();
        let net = SimHandle::spawn(model);
        let (link, link_events, _t) = link::spawn(net.connect().unwrap(), LinkConfig::default());
        let (session, events) = session::spawn(link, link_events, SessionConfig::default());
        // The network runs as long as a handle to it lives.
        (net, session, events)
    });
    let get = Command::UserCode(UserCodeCommand::Get { user_id: 1 }).encode();
    let mut cb: u8 = 0;
    c.bench_function("sim_senddata_round_trip", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    cb = cb % 255 + 1;
                    session
                        .request(HostRequest::SendData(SendDataRequest {
                            node_id: NodeId(5),
                            command: get.clone(),
                            tx_options: 0x25,
                            callback_id: cb,
                        }))
                        .await
                        .unwrap();
                    // Wait for the lock's report.
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
                            Ok(Some(SessionEvent::Unsolicited(m)))
                                if m.node_command().is_some() =>
                            {
                                break
                            }
                            Ok(Some(_)) => continue,
                            _ => panic!("no report"),
                        }
                    }
                }
                start.elapsed()
            })
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
