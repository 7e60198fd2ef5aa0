//! A simulated lock included with S2 Access Control, driven through the real stick protocol
//! by a controller-side S2 state (the same code the driver will use).

mod common;

use std::time::Duration;

use common::TestHost;
use zwlock::cc::{Command, UserCodeCommand};
use zwlock::security::s2::peer::{Incoming, NeedNonce, S2};
use zwlock::security::SecurityClass;
use zwlock::sim::{KeypadAction, SimConfig, Simulator};

const KEY: [u8; 16] = [0x5A; 16];
const ACCESS: SecurityClass = SecurityClass::S2AccessControl;

const NET: &str = r#"
[[network]]
name = "s"
radio_ms = 2
[[network.lock]]
node_id = 5
listening = "always"
slots = 10
initial_codes = [{ slot = 1, code = "2468" }]
security = "s2_access_control"
network_key = "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
"#;

struct Controller {
    host: TestHost,
    s2: S2,
    n: u8,
}

impl Controller {
    /// What the lock sends within a second: S2 traffic handled, commands decrypted.
    async fn hear(&mut self) -> Vec<Command> {
        let mut out = Vec::new();
        for (node, bytes) in self.host.node_frames(Duration::from_secs(1)).await {
            assert_eq!(node, 5);
            let mut n = self.n;
            let mut r = || {
                n = n.wrapping_add(1);
                [n; 16]
            };
            match self.s2.receive(5, &bytes, &[ACCESS], &mut r).unwrap() {
                Incoming::Command { slot, command } => {
                    assert_eq!(slot, ACCESS.into());
                    out.push(Command::parse(&command).unwrap());
                }
                Incoming::Reply(frame) => {
                    self.host.send_raw(5, frame).await.unwrap();
                    // Whatever waited for that nonce follows.
                    out.extend(Box::pin(self.hear()).await);
                }
                Incoming::Synced | Incoming::Duplicate => {}
            }
            self.n = n;
        }
        out
    }

    /// Send `cmd` under S2 (fetching a nonce first when needed); what the lock answers.
    async fn ask(&mut self, cmd: &Command) -> Vec<Command> {
        let mut random = {
            let mut n = self.n;
            move || {
                n = n.wrapping_add(1);
                [n; 16]
            }
        };
        let frame = match self.s2.encapsulate(5, ACCESS, &cmd.encode(), &mut random) {
            Ok(f) => f,
            Err(NeedNonce(get)) => {
                self.host.send_raw(5, get).await.unwrap();
                let (_, report) = self
                    .host
                    .node_frames(Duration::from_secs(1))
                    .await
                    .remove(0);
                assert_eq!(
                    self.s2.receive(5, &report, &[], &mut random).unwrap(),
                    Incoming::Synced
                );
                self.s2
                    .encapsulate(5, ACCESS, &cmd.encode(), &mut random)
                    .unwrap()
            }
        };
        self.n = self.n.wrapping_add(10);
        self.host.send_raw(5, frame).await.unwrap();
        self.hear().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_secure_lock_speaks_only_s2_with_the_right_key() {
    let sim = Simulator::new(SimConfig::from_toml(NET).unwrap());
    let net = sim.network("s").unwrap();
    let mut c = Controller {
        host: TestHost::new(net.connect().unwrap()),
        s2: S2::new(1, 0xC0FFEE01, &[(ACCESS, KEY)]),
        n: 0,
    };
    let get = Command::UserCode(UserCodeCommand::Get { user_id: 1 });
    // In plain text the lock says nothing.
    assert!(c.host.ask(5, &get).await.is_empty());
    // Under S2 it answers, encrypted.
    let answers = c.ask(&get).await;
    assert!(
        matches!(
            &answers[..],
            [Command::UserCode(UserCodeCommand::Report {
                user_id: 1,
                ..
            })]
        ),
        "{answers:?}"
    );
    // What it supports securely.
    let supported = c.ask(&Command::parse(&[0x9F, 0x0D]).unwrap()).await;
    assert_eq!(supported.len(), 1, "{supported:?}");
    // A keypad event arrives encrypted.
    let keypad = net.keypad(5, KeypadAction::Enter { pin: "2468".into() });
    assert!(keypad.await.unwrap());
    let heard = c.hear().await;
    assert!(
        matches!(heard.first(), Some(Command::Notification(_))),
        "{heard:?}"
    );
    // A controller with another key gets a Nonce Report (resync), never an answer.
    let mut stranger = Controller {
        host: c.host,
        s2: S2::new(1, 0xC0FFEE01, &[(ACCESS, [0x11; 16])]),
        n: 50,
    };
    let mut r = || [0x77; 16];
    let Err(NeedNonce(nonce_get)) = stranger.s2.encapsulate(5, ACCESS, &get.encode(), &mut r)
    else {
        panic!()
    };
    stranger.host.send_raw(5, nonce_get).await.unwrap();
    let (_, report) = stranger
        .host
        .node_frames(Duration::from_secs(1))
        .await
        .remove(0);
    stranger.s2.receive(5, &report, &[], &mut r).unwrap();
    let forged = stranger
        .s2
        .encapsulate(5, ACCESS, &get.encode(), &mut r)
        .unwrap();
    stranger.host.send_raw(5, forged).await.unwrap();
    let back = stranger.host.node_frames(Duration::from_secs(1)).await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        &back[0].1[..2],
        &[0x9F, 0x02],
        "a Nonce Report, not a User Code Report"
    );
}
