//! Telling systemd how the service is doing (sd_notify): readiness, status lines, the
//! watchdog and stopping. Outside systemd (no NOTIFY_SOCKET) every call does nothing.
//!
//! The datagrams go out from a thread of their own: a notify socket nobody reads fills after
//! a few messages and then blocks the sender, and the daemon's main loop must never wait on
//! it. When that thread falls behind, messages are dropped (the next status replaces them).

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::time::Duration;

use sd_notify::NotifyState;

/// What to tell systemd.
#[derive(Debug, Clone)]
enum Note {
    Ready(String),
    Status(String),
    Watchdog,
    Reloading,
    Stopping,
    /// Answer when everything before it has been sent.
    Flush(SyncSender<()>),
}

fn send(note: &Note) {
    let result = match note {
        Note::Ready(s) => sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(s)]),
        Note::Status(s) => sd_notify::notify(false, &[NotifyState::Status(s)]),
        Note::Watchdog => sd_notify::notify(false, &[NotifyState::Watchdog]),
        Note::Reloading => sd_notify::notify(false, &[NotifyState::Reloading]),
        Note::Stopping => sd_notify::notify(
            false,
            &[NotifyState::Stopping, NotifyState::Status("stopping")],
        ),
        Note::Flush(done) => {
            let _ = done.try_send(());
            Ok(())
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

#[derive(Debug, Clone)]
pub struct Notifier {
    tx: Option<SyncSender<Note>>,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return Notifier {
                tx: None,
                watchdog: None,
            };
        }
        let mut usec = 0;
        let watchdog = (sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec) / 2);
        let (tx, rx) = sync_channel::<Note>(16);
        let spawned = std::thread::Builder::new()
            .name("sd-notify".into())
            .spawn(move || {
                while let Ok(note) = rx.recv() {
                    send(&note);
                }
            });
        Notifier {
            tx: spawned.is_ok().then_some(tx),
            watchdog,
        }
    }

    fn post(&self, note: Note) {
        if let Some(tx) = &self.tx {
            if let Err(TrySendError::Full(n)) = tx.try_send(note) {
                tracing::debug!(note = ?n, "systemd is not reading notifications: one dropped");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.post(Note::Ready(status.into()));
    }

    pub fn status(&self, status: &str) {
        self.post(Note::Status(status.into()));
    }

    pub fn watchdog(&self) {
        self.post(Note::Watchdog);
    }

    pub fn reloading(&self) {
        self.post(Note::Reloading);
    }

    pub fn reloaded(&self, status: &str) {
        self.post(Note::Ready(status.into()));
    }

    /// STOPPING=1, sent before returning (within `within`), since the process exits next.
    pub fn stopping(&self, within: Duration) {
        self.post(Note::Stopping);
        let (done, wait) = sync_channel(1);
        self.post(Note::Flush(done));
        let _ = wait.recv_timeout(within);
    }

    /// How often to feed the watchdog: half of WatchdogSec, when systemd asks for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }
}
