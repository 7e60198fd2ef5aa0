//! Helpers shared by integration tests: a minimal host on top of the link and session layers.
#![allow(dead_code)]

use std::time::Duration;

use tokio::sync::mpsc;
use zwlock::cc::Command;
use zwlock::serial::link::{self, LinkConfig, LinkHandle};
use zwlock::serial::transport::BoxedStream;
use zwlock::serialapi::session::{
    self, Exchange, SessionConfig, SessionError, SessionEvent, SessionHandle,
};
use zwlock::serialapi::transmit::TX_OPTIONS_DEFAULT;
use zwlock::serialapi::{HostRequest, NodeId, SendDataCallback, SendDataRequest, StickRequest};

pub struct TestHost {
    pub link: LinkHandle,
    pub session: SessionHandle,
    pub events: mpsc::Receiver<SessionEvent>,
    next_callback: u8,
}

impl TestHost {
    pub fn new(stream: BoxedStream) -> Self {
        let (link, link_events, _task) = link::spawn(stream, LinkConfig::default());
        let (session, events) = session::spawn(link.clone(), link_events, SessionConfig::default());
        TestHost {
            link,
            session,
            events,
            next_callback: 0,
        }
    }

    pub async fn request(&self, req: HostRequest) -> Result<Exchange, SessionError> {
        self.session.request(req).await
    }

    pub fn callback_id(&mut self) -> u8 {
        self.next_callback = self.next_callback % 255 + 1;
        self.next_callback
    }

    /// SendData `cmd` to `node`; returns the callback (None when the RES refused it).
    pub async fn send(&mut self, node: u8, cmd: &Command) -> Option<SendDataCallback> {
        let callback_id = self.callback_id();
        let ex = self
            .request(HostRequest::SendData(SendDataRequest {
                node_id: NodeId::from(node),
                command: cmd.encode(),
                tx_options: TX_OPTIONS_DEFAULT,
                callback_id,
            }))
            .await
            .expect("SendData");
        match ex.callback {
            Some(StickRequest::SendDataCallback(c)) => Some(c),
            _ => None,
        }
    }

    /// Commands nodes send within `window` (on a paused clock this costs no real time).
    pub async fn node_commands(&mut self, window: Duration) -> Vec<(u8, Command)> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, self.events.recv()).await {
            if let SessionEvent::Unsolicited(m) = ev {
                if let Some((src, bytes)) = m.node_command() {
                    out.push((
                        src.0 as u8,
                        Command::parse(bytes).expect("node command parses"),
                    ));
                }
            }
        }
        out
    }

    /// SendData and collect what the node answers within 3 s.
    pub async fn ask(&mut self, node: u8, cmd: &Command) -> Vec<Command> {
        let cb = self.send(node, cmd).await.expect("callback");
        assert_eq!(cb.transmit_status, zwlock::serialapi::TransmitStatus::Ok);
        self.node_commands(Duration::from_secs(3))
            .await
            .into_iter()
            .filter(|(n, _)| *n == node)
            .map(|(_, c)| c)
            .collect()
    }
}
