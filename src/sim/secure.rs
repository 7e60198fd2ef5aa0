//! A simulated lock that was included with S2: it accepts its secure command classes only
//! inside S2 Message Encapsulation, answers encrypted, and sends its own reports once a SPAN
//! with the controller exists (asking for a nonce first when there is none).
//!
//! Uses the same S2 state machine as the driver ([`crate::security::s2::peer`]); entropy
//! comes from the simulator's seeded generator, so runs are repeatable.

use crate::security::s2::bootstrap::Joining;
use crate::security::s2::peer::{Incoming, NeedNonce, S2};
use crate::security::SecurityClass;

use super::rng::SimRng;

/// Command classes a secure lock answers in plain text (everything else needs S2).
const PLAIN_CLASSES: [u8; 3] = [
    0x9F, // Security 2 itself
    0x5E, // Z-Wave Plus Info
    0x86, // Version (of the S2 class, asked before the secure interview)
];

/// The controller's node id.
const CONTROLLER: u16 = 1;

#[derive(Debug, Clone)]
pub struct SecureLink {
    s2: S2,
    class: SecurityClass,
    /// Key exchange in progress (a lock being included); its class is not granted yet.
    joining: Option<std::sync::Arc<std::sync::Mutex<Joining>>>,
    /// The 5-digit PIN printed on the lock, when it was made to be included.
    pin: Option<u16>,
    join_failed: bool,
    rng: SimRng,
    /// Reports waiting for a SPAN with the controller.
    waiting: Vec<Vec<u8>>,
    /// Frames that failed to decrypt (for tests).
    pub rejected: u64,
}

/// What became of a frame from the controller.
#[derive(Debug, PartialEq, Eq)]
pub enum FromController {
    /// Decrypted (or allowed in plain text): the lock handles this command.
    Command(Vec<u8>),
    /// Send these back as they are (a nonce report, or reports that waited for a SPAN).
    Send(Vec<Vec<u8>>),
    /// Ignored: a secure class in plain text, or a repeat.
    Ignore,
}

impl SecureLink {
    pub fn new(
        node: u8,
        home_id: u32,
        class: SecurityClass,
        key: [u8; 16],
        seed: u64,
    ) -> SecureLink {
        SecureLink {
            s2: S2::new(u16::from(node), home_id, &[(class, key)]),
            class,
            joining: None,
            pin: None,
            join_failed: false,
            rng: SimRng::new(seed ^ 0x5345_4355_5245),
            waiting: Vec::new(),
            rejected: 0,
        }
    }

    /// A secure lock not included yet: it will ask for `class` during S2 bootstrapping,
    /// with a key pair of its own from `seed`.
    pub fn joining(node: u8, home_id: u32, class: SecurityClass, seed: u64) -> SecureLink {
        let mut rng = SimRng::new(seed ^ 0x4453_4B00);
        let mut secret = [0u8; 32];
        for chunk in secret.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let join = Joining::new(CONTROLLER, class.key_bit(), secret);
        SecureLink {
            s2: S2::new(u16::from(node), home_id, &[]),
            class,
            pin: Some(join.pin()),
            join_failed: false,
            joining: Some(std::sync::Arc::new(std::sync::Mutex::new(join))),
            rng: SimRng::new(seed ^ 0x5345_4355_5245),
            waiting: Vec::new(),
            rejected: 0,
        }
    }

    /// The PIN printed on the lock (the first five digits of its DSK).
    pub fn pin(&self) -> Option<u16> {
        self.pin
    }

    /// Key exchange done and successful (the lock holds its network key).
    pub fn is_secured(&self) -> bool {
        self.joining.is_none() && !self.join_failed
    }

    /// Lose the SPAN with the controller (a reboot), and anything waiting for one.
    pub fn forget_spans(&mut self) {
        self.s2.reset(CONTROLLER);
        self.waiting.clear();
    }

    pub fn class(&self) -> SecurityClass {
        self.class
    }

    fn entropy(rng: &mut SimRng) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        out[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        out
    }

    pub fn from_controller(&mut self, bytes: &[u8]) -> FromController {
        if let Some(join) = self.joining.clone() {
            if bytes.first() != Some(&0x9F) {
                return if PLAIN_CLASSES.contains(bytes.first().unwrap_or(&0)) {
                    FromController::Command(bytes.to_vec())
                } else {
                    FromController::Ignore
                };
            }
            let rng = &mut self.rng;
            let mut random = || SecureLink::entropy(rng);
            let mut join = join.lock().unwrap_or_else(|e| e.into_inner());
            let step = join.on_frame(&mut self.s2, bytes, &mut random);
            if matches!(step.outcome, Some(Err(_))) {
                self.join_failed = true;
            }
            if join.is_finished() {
                drop(join);
                self.joining = None;
                if self.join_failed {
                    // Key exchange failed: the lock stays without keys.
                    self.s2 = S2::new(self.s2.own(), self.s2.home_id(), &[]);
                }
            }
            return FromController::Send(step.send);
        }
        match bytes.first() {
            Some(0x9F) => {
                let rng = &mut self.rng;
                let mut random = || SecureLink::entropy(rng);
                match self
                    .s2
                    .receive(CONTROLLER, bytes, &[self.class], &mut random)
                {
                    Ok(Incoming::Command { command, .. }) => FromController::Command(command),
                    Ok(Incoming::Reply(frame)) => {
                        if bytes.get(1) == Some(&0x03) {
                            self.rejected += 1;
                        }
                        FromController::Send(vec![frame])
                    }
                    Ok(Incoming::Synced) => {
                        // The controller answered our Nonce Get: send what waited.
                        let waiting = std::mem::take(&mut self.waiting);
                        FromController::Send(self.to_controller(waiting))
                    }
                    Ok(Incoming::Duplicate) | Err(_) => FromController::Ignore,
                }
            }
            Some(cc) if PLAIN_CLASSES.contains(cc) => FromController::Command(bytes.to_vec()),
            _ => FromController::Ignore,
        }
    }

    /// Encapsulate the lock's commands for the controller; without a SPAN, one Nonce Get
    /// goes out and they wait.
    pub fn to_controller(&mut self, commands: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for cmd in commands {
            if !self.waiting.is_empty() {
                self.waiting.push(cmd);
                continue;
            }
            let rng = &mut self.rng;
            let mut random = || SecureLink::entropy(rng);
            match self
                .s2
                .encapsulate(CONTROLLER, self.class, &cmd, &mut random)
            {
                Ok(frame) => out.push(frame),
                Err(NeedNonce(get)) => {
                    self.waiting.push(cmd);
                    out.push(get);
                }
            }
        }
        out
    }

    /// The S2 Commands Supported Report of a lock supporting `classes` securely.
    pub fn commands_supported(classes: &[u8]) -> Vec<u8> {
        let mut out = vec![0x9F, 0x0E];
        out.extend(classes.iter().filter(|c| !PLAIN_CLASSES.contains(c)));
        out
    }
}

/// A simulated lock's security layer: S2 or S0.
#[derive(Debug, Clone)]
pub enum Security {
    S2(SecureLink),
    S0(super::secure_s0::S0Link),
}

impl Security {
    pub fn from_controller(&mut self, bytes: &[u8]) -> FromController {
        match self {
            Security::S2(l) => l.from_controller(bytes),
            Security::S0(l) => l.from_controller(bytes),
        }
    }

    pub fn to_controller(&mut self, commands: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        match self {
            Security::S2(l) => l.to_controller(commands),
            Security::S0(l) => l.to_controller(commands),
        }
    }

    /// Frames to send after the command just handled (S0: a nonce the controller asked for).
    pub fn take_extra(&mut self) -> Vec<Vec<u8>> {
        match self {
            Security::S2(_) => Vec::new(),
            Security::S0(l) => l.take_extra(),
        }
    }

    /// The command class of the scheme (0x9F or 0x98).
    pub fn cc(&self) -> u8 {
        match self {
            Security::S2(_) => 0x9F,
            Security::S0(_) => crate::security::s0::CC,
        }
    }

    /// Whether the lock answers commands of class `cc` in plain.
    pub fn answers_in_plain(&self, cc: u8) -> bool {
        match self {
            Security::S2(_) => PLAIN_CLASSES.contains(&cc),
            Security::S0(_) => super::secure_s0::PLAIN_CLASSES.contains(&cc),
        }
    }

    /// Whether `cmd` asks which classes the lock supports securely, and the answer.
    pub fn commands_supported(&self, cmd: &[u8], classes: &[u8]) -> Option<Vec<u8>> {
        match (self, cmd) {
            (Security::S2(_), [0x9F, 0x0D]) => Some(SecureLink::commands_supported(classes)),
            (Security::S0(_), [0x98, 0x02]) => {
                Some(super::secure_s0::S0Link::commands_supported(classes))
            }
            _ => None,
        }
    }

    pub fn pin(&self) -> Option<u16> {
        match self {
            Security::S2(l) => l.pin(),
            Security::S0(_) => None,
        }
    }

    pub fn rejected(&self) -> u64 {
        match self {
            Security::S2(l) => l.rejected,
            Security::S0(l) => l.rejected,
        }
    }

    /// A reboot: volatile nonce state is lost.
    pub fn forget_spans(&mut self) {
        match self {
            Security::S2(l) => l.forget_spans(),
            Security::S0(l) => l.forget_nonces(),
        }
    }

    /// Excluded: the network keys go; the next inclusion exchanges keys again.
    pub fn forget_network(&mut self, node: u8, home_id: u32) {
        match self {
            Security::S2(l) => *l = SecureLink::joining(node, home_id, l.class(), u64::from(node)),
            Security::S0(l) => l.forget_network(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = [0x42; 16];
    const HOME: u32 = 0xC0FFEE01;

    fn controller_rng() -> impl FnMut() -> [u8; 16] {
        let mut n = 0u8;
        move || {
            n = n.wrapping_add(1);
            [n; 16]
        }
    }

    #[test]
    fn the_lock_decrypts_the_controller_and_answers_encrypted() {
        let mut lock = SecureLink::new(5, HOME, SecurityClass::S2AccessControl, KEY, 7);
        let mut ctl = S2::new(1, HOME, &[(SecurityClass::S2AccessControl, KEY)]);
        let mut r = controller_rng();
        let get = match ctl.encapsulate(
            5,
            SecurityClass::S2AccessControl,
            &[0x63, 0x02, 0x01],
            &mut r,
        ) {
            Err(NeedNonce(g)) => g,
            Ok(_) => panic!("no SPAN yet"),
        };
        let FromController::Send(report) = lock.from_controller(&get) else {
            panic!()
        };
        ctl.receive(5, &report[0], &[], &mut r).unwrap();
        let frame = ctl
            .encapsulate(
                5,
                SecurityClass::S2AccessControl,
                &[0x63, 0x02, 0x01],
                &mut r,
            )
            .unwrap();
        assert_eq!(
            lock.from_controller(&frame),
            FromController::Command(vec![0x63, 0x02, 0x01])
        );
        // Plain text for a secure class is ignored.
        assert_eq!(
            lock.from_controller(&[0x63, 0x02, 0x01]),
            FromController::Ignore
        );
        // The answer is encrypted and the controller reads it.
        let out = lock.to_controller(vec![vec![0x63, 0x03, 0x01, 0x01, b'1', b'2', b'3', b'4']]);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][..2], &[0x9F, 0x03]);
        let got = ctl
            .receive(5, &out[0], &[SecurityClass::S2AccessControl], &mut r)
            .unwrap();
        assert!(matches!(got, Incoming::Command { .. }));
    }

    #[test]
    fn a_report_without_a_span_waits_for_the_controllers_nonce() {
        let mut lock = SecureLink::new(5, HOME, SecurityClass::S2AccessControl, KEY, 7);
        let mut ctl = S2::new(1, HOME, &[(SecurityClass::S2AccessControl, KEY)]);
        let mut r = controller_rng();
        let out = lock.to_controller(vec![vec![0x71, 0x05], vec![0x71, 0x06]]);
        assert_eq!(out.len(), 1, "one Nonce Get, the reports wait");
        assert_eq!(&out[0][..2], &[0x9F, 0x01]);
        let Incoming::Reply(report) = ctl.receive(5, &out[0], &[], &mut r).unwrap() else {
            panic!()
        };
        let FromController::Send(sent) = lock.from_controller(&report) else {
            panic!()
        };
        assert_eq!(sent.len(), 2);
        for (f, want) in sent.iter().zip([[0x71, 0x05], [0x71, 0x06]]) {
            assert_eq!(
                ctl.receive(5, f, &[SecurityClass::S2AccessControl], &mut r)
                    .unwrap(),
                Incoming::Command {
                    slot: SecurityClass::S2AccessControl.into(),
                    command: want.to_vec()
                }
            );
        }
    }
}
