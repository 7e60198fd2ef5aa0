//! SendData spent bringing locks up, against the simulator: a first start on an empty
//! database until every lock is interviewed and all its codes are read, and a second start
//! from the same database until every lock is ready again (what the engine then does to
//! verify the codes it holds comes after "ready" and is not counted). With and without the
//! lock-model cache the daemon keeps in the store.
//!
//! `cargo bench --bench interview_radio` prints a table; the locks are the side-by-side
//! benchmark's (Supervision, Door Lock, Notification v8, Battery; codes in slots 1 and 7).
//! `tests/interview.rs` asserts the same counts; `tools/bench-side-by-side` measures against
//! the zwave-js mock and zwave-js's own Driver.

#[path = "../tests/common/radio_counts.rs"]
mod radio_counts;
#[path = "../tests/common/world.rs"]
mod world;

use radio_counts::{first_start, second_start, Locks, Models};

async fn run() {
    let scenarios = [
        ("1 lock, v1, 30 slots", Locks::v1(1, 30), "36"),
        (
            "1 lock, v2, 250 slots, checksum, one code per Get",
            Locks::v2(250, true, false),
            "255",
        ),
        (
            "1 lock, v2, 250 slots, checksum, several codes per Get",
            Locks::v2(250, true, true),
            "40",
        ),
        ("20 locks, v1, 30 slots", Locks::v1(20, 30), "720"),
    ];
    println!(
        "| locks | first start, SendData (no model cache) | first start, SendData | per lock, most | goal | second start, SendData per lock |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, locks, goal) in scenarios {
        let (_w, uncached) = first_start(&locks, Models::Uncached).await;
        let (w, c) = first_start(&locks, Models::Cached).await;
        let (_w, again) = second_start(w, &locks, Models::Cached).await;
        println!(
            "| {name} | {} | {} | {} | ≤ {goal} | {} |",
            uncached.send_data,
            c.send_data,
            c.max_per_lock(),
            again.max_per_lock()
        );
    }
}

fn main() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(run());
}
