//! Radio spent watching locks for outside changes, against a per-slot sweep of every slot.
//!
//! `cargo bench --bench watch_radio` runs the engine on a simulated network on a paused
//! clock (an hour takes well under a second) and prints commands sent to each lock. Every
//! Get also brings one report back, so airtime frames are about twice the Gets.
//!
//! Locks: a 250-slot User Code v2 lock (checksum, bulk reports) and a 30-slot v1 lock, each
//! with 10 managed codes, with the default watch settings (checksum every 15 min, 12 slot
//! reads an hour on v1).

#[path = "../tests/common/world.rs"]
mod world;

use std::time::Duration;

use world::{quiet_config, Ground, World};
use zwlock::codes::watch::WatchConfig;
use zwlock::codes::{CreateRequest, EngineConfig};
use zwlock::driver::Priority;
use zwlock::serialapi::NodeId;
use zwlock::sim::KeypadAction;

const NET: &str = r#"
[[network]]
name = "t"
radio_ms = 20

[[network.lock]]
node_id = 5
name = "v2-250"
slots = 250

[[network.lock]]
node_id = 6
name = "v1-30"
user_code_version = 1
slots = 30
supervision = false
notification = "alarm"
"#;

const LOCKS: [(u8, &str, u16); 2] = [(5, "v2, 250 slots", 250), (6, "v1, 30 slots", 30)];

/// Let the engine work until a lock has had no command for 20 s; return commands sent.
async fn settle(w: &World, node: u8, from: u64) -> u64 {
    let mut last = w.commands_received(node).await;
    let mut quiet = 0;
    while quiet < 4 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let now = w.commands_received(node).await;
        quiet = if now == last { quiet + 1 } else { 0 };
        last = now;
    }
    last - from
}

/// Wait until `slot` holds `pin` again; return commands sent and the time it took.
async fn until_restored(w: &World, node: u8, slot: u16, pin: &str, from: u64) -> (u64, Duration) {
    let t0 = tokio::time::Instant::now();
    while w.pin_on_lock(node, slot).await.as_deref() != Some(pin) {
        assert!(
            t0.elapsed() < Duration::from_secs(6 * 3600),
            "never restored"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = t0.elapsed();
    (settle(w, node, from).await, took)
}

fn minutes(d: Duration) -> String {
    format!("{:.1} min", d.as_secs_f64() / 60.0)
}

async fn run() {
    let config = EngineConfig {
        watch: WatchConfig::default(),
        ..quiet_config()
    };
    let poll = config.watch.poll_frames_per_hour;
    let w = World::start(Ground::new(NET), config, 2).await;
    // Interview and the first full read.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut managed = Vec::new();
    for (node, _, _) in LOCKS {
        let mut ids = Vec::new();
        for i in 0..10u32 {
            let (c, _) = w
                .engine
                .create(CreateRequest {
                    device_id: w.device(u16::from(node)),
                    code: Some(format!("{}", 402_817 + i * 7_919)),
                    ..Default::default()
                })
                .unwrap();
            ids.push(c.access_code_id);
        }
        managed.push(ids);
    }
    w.until("all set", Duration::from_secs(3600), |w| {
        managed.iter().flatten().all(|id| w.status(id) == "set")
    })
    .await;
    for (node, _, _) in LOCKS {
        settle(&w, node, 0).await;
    }

    // A full read on demand.
    for (node, name, _) in LOCKS {
        let from = w.commands_received(node).await;
        w.engine.request_full_read(&w.device(u16::from(node)));
        let n = settle(&w, node, from).await;
        rows.push((format!("full read, {name}"), n.to_string(), String::new()));
    }

    // An hour of keeping 10 managed codes verified.
    let from: Vec<u64> = counts(&w).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    for (i, (node, name, _)) in LOCKS.iter().enumerate() {
        let n = w.commands_received(*node).await - from[i];
        let note = if *node == 5 {
            "checksum every 15 min: every slot verified each poll".to_string()
        } else {
            format!("each managed slot verified every {} min", 10 * 60 / poll)
        };
        rows.push((format!("per hour, {name}"), n.to_string(), note));
    }

    // One keypad change, with a notification and without.
    for (li, (node, name, _)) in LOCKS.iter().enumerate() {
        let code = w.engine.get(&managed[li][0]).unwrap();
        let (slot, pin) = (code.slot.unwrap(), code.code.unwrap());
        let from = w.commands_received(*node).await;
        w.net
            .keypad(
                *node,
                KeypadAction::Program {
                    slot,
                    pin: "918273".into(),
                },
            )
            .await
            .unwrap();
        let (n, took) = until_restored(&w, *node, slot, &pin, from).await;
        rows.push((
            format!("keypad change with notification, {name}"),
            n.to_string(),
            format!("put back in {}", minutes(took)),
        ));
        let code = w.engine.get(&managed[li][1]).unwrap();
        let (slot, pin) = (code.slot.unwrap(), code.code.unwrap());
        let from = w.commands_received(*node).await;
        w.net
            .keypad(
                *node,
                KeypadAction::ExternalWrite {
                    slot,
                    pin: Some("918273".into()),
                },
            )
            .await
            .unwrap();
        let (n, took) = until_restored(&w, *node, slot, &pin, from).await;
        rows.push((
            format!("silent change, {name}"),
            n.to_string(),
            format!(
                "put back in {} (includes the polls meanwhile)",
                minutes(took)
            ),
        ));
    }

    // What a per-slot sweep of every slot costs, each time.
    let driver = w.engine.driver().expect("a driver");
    for (node, name, slots) in LOCKS {
        let from = w.commands_received(node).await;
        for slot in 1..=slots {
            let cmd = zwlock::cc::Command::UserCode(zwlock::cc::UserCodeCommand::Get {
                user_id: slot as u8,
            });
            driver
                .get(NodeId(u16::from(node)), cmd, Priority::Background)
                .await
                .unwrap();
        }
        let n = w.commands_received(node).await - from;
        rows.push((
            format!("per-slot sweep, {name}"),
            n.to_string(),
            "an hourly sweep spends this every hour".into(),
        ));
    }

    // A restart: what verifying the codes costs before they are trusted (the interview is
    // handed back from the store), and a code removed while the daemon was down.
    let config = w.engine.watch_config();
    let before = counts(&w).await;
    let ground = w.stop().await;
    let engine_config = EngineConfig {
        watch: config.clone(),
        ..quiet_config()
    };
    let w = World::start(ground, engine_config.clone(), 2).await;
    for (i, (node, name, _)) in LOCKS.iter().enumerate() {
        let n = settle(&w, *node, before[i]).await;
        rows.push((
            format!("start-up verification, {name}, 10 codes"),
            n.to_string(),
            if *node == 5 {
                "one checksum".into()
            } else {
                "the managed slots".into()
            },
        ));
    }
    let code = w.engine.get(&managed[1][2]).unwrap();
    let (slot6, pin6) = (code.slot.unwrap(), code.code.unwrap());
    let code = w.engine.get(&managed[0][2]).unwrap();
    let (slot5, pin5) = (code.slot.unwrap(), code.code.unwrap());
    let before = counts(&w).await;
    let ground = w.stop().await;
    for (node, slot) in [(5u8, slot5), (6u8, slot6)] {
        ground
            .net
            .keypad(node, KeypadAction::ExternalWrite { slot, pin: None })
            .await
            .unwrap();
    }
    let w = World::start(ground, engine_config, 2).await;
    for (node, name, slot, pin, from) in [
        (5u8, LOCKS[0].1, slot5, &pin5, before[0]),
        (6u8, LOCKS[1].1, slot6, &pin6, before[1]),
    ] {
        let (n, took) = until_restored(&w, node, slot, pin, from).await;
        rows.push((
            format!("removed while down, {name}"),
            n.to_string(),
            format!("put back {} after the start", minutes(took)),
        ));
    }

    println!("| what | commands to the lock | note |");
    println!("|---|---:|---|");
    for (what, n, note) in rows {
        println!("| {what} | {n} | {note} |");
    }
}

async fn counts(w: &World) -> Vec<u64> {
    let mut v = Vec::new();
    for (node, _, _) in LOCKS {
        v.push(w.commands_received(node).await);
    }
    v
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it too (cheap: paused clock).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(run());
}
