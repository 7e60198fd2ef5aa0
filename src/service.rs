//! Telling systemd how the service is doing (sd_notify): readiness, status lines, the
//! watchdog and stopping. Outside systemd (no NOTIFY_SOCKET) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(&self, state: &[NotifyState<'_>]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(false, state) {
                tracing::debug!(error = %e, "sd_notify failed");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    pub fn reloading(&self) {
        self.send(&[NotifyState::Reloading]);
    }

    pub fn reloaded(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// How often to feed the watchdog: half of WatchdogSec, when systemd asks for it.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        let mut usec = 0;
        (self.enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec) / 2)
    }
}
