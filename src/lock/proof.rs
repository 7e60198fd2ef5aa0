//! A whole-lock read cut short by the lock's User Code checksum (v2 locks that have one).
//!
//! The checksum is a CRC over every occupied slot (`userId:u16be status code`, ascending), and
//! 0x0000 when none is. So the read asks for it first: 0x0000 says every slot is empty, and no
//! slot is read at all. Otherwise the slots are read in order, and once the CRC of the occupied
//! slots read so far equals the lock's checksum, the slots not read yet hold nothing, and the
//! read ends there: a 250-slot lock holding codes in slots 1 and 7 is read in 1 + 7 Gets.
//!
//! What could make it wrong, and what is done about it:
//! * a CRC-16 collision (slots beyond the read that do hold codes, whose CRC happens to come
//!   out the same): the CRC is compared only after a page that brought an occupied slot, so
//!   a read makes at most one comparison per code found, each with a 2^-16 chance;
//! * a code the lock hides (a masked report): its CRC cannot be computed, so nothing is
//!   proven and every slot is read;
//! * a lock whose checksum is computed otherwise than the reports read (padding, statuses):
//!   the CRC never matches, and every slot is read (slower, never wrong);
//! * a code changed at the keypad during the read: the same as for any read (the change's
//!   notification, or the next checksum poll, tells).

use crate::cc::code::user_code_checksum;
use crate::cc::{CodeBytes, UserIdStatus};

/// A whole-lock read that the checksum may cut short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumRead {
    checksum: u16,
    /// The occupied slots read so far.
    codes: Vec<(u16, UserIdStatus, Vec<u8>)>,
    /// Where the next page must start for the read to go on.
    next: u16,
}

/// What a page of the read says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Read on from `next` (`None`: the lock has no more slots).
    Continue(Option<u16>),
    /// The slots from `from` on are empty: the read is done.
    RestEmpty { from: u16 },
    /// Nothing can be proven any more (a hidden code): read on, without the checksum.
    GiveUp(Option<u16>),
}

impl ChecksumRead {
    /// A read of a lock whose checksum is `checksum`. `None` when the checksum already says
    /// every slot is empty.
    pub fn start(checksum: u16) -> Option<ChecksumRead> {
        (checksum != 0).then_some(ChecksumRead {
            checksum,
            codes: Vec::new(),
            next: 1,
        })
    }

    /// Whether the page starting at `from` goes on with this read.
    pub fn continues_at(&self, from: u16) -> bool {
        self.next == from
    }

    /// A page of `entries` (as the lock reported them) was read; `next` is where the lock says
    /// the following page starts (`None` at the end).
    pub fn page(&mut self, entries: &[(u16, UserIdStatus, &CodeBytes)], next: Option<u16>) -> Step {
        let mut found = false;
        for (slot, status, code) in entries {
            if !status.is_occupied() || code.as_bytes().is_empty() {
                continue;
            }
            if code.is_hidden() {
                return Step::GiveUp(next);
            }
            self.codes.push((*slot, *status, code.as_bytes().to_vec()));
            found = true;
        }
        let Some(n) = next else {
            return Step::Continue(None);
        };
        self.next = n;
        let crc = user_code_checksum(self.codes.iter().map(|(s, st, c)| (*s, *st, c.as_slice())));
        if found && crc == self.checksum {
            Step::RestEmpty { from: n }
        } else {
            Step::Continue(Some(n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> CodeBytes {
        CodeBytes::new(s.as_bytes().to_vec())
    }

    #[test]
    fn an_empty_lock_needs_no_read() {
        assert_eq!(ChecksumRead::start(0), None);
        assert!(ChecksumRead::start(0x1234).is_some());
    }

    #[test]
    fn the_read_ends_once_the_codes_found_explain_the_checksum() {
        let c1 = code("1234");
        let c7 = code("24680");
        let checksum = user_code_checksum([
            (1, UserIdStatus::Enabled, c1.as_bytes()),
            (7, UserIdStatus::Disabled, c7.as_bytes()),
        ]);
        let mut r = ChecksumRead::start(checksum).unwrap();
        let empty = CodeBytes::default();
        assert_eq!(
            r.page(&[(1, UserIdStatus::Enabled, &c1)], Some(2)),
            Step::Continue(Some(2))
        );
        for s in 2..7 {
            assert!(r.continues_at(s));
            assert_eq!(
                r.page(&[(s, UserIdStatus::Available, &empty)], Some(s + 1)),
                Step::Continue(Some(s + 1)),
                "an empty slot proves nothing new"
            );
        }
        assert_eq!(
            r.page(&[(7, UserIdStatus::Disabled, &c7)], Some(8)),
            Step::RestEmpty { from: 8 }
        );
    }

    #[test]
    fn a_status_or_a_code_the_checksum_does_not_hold_reads_on() {
        let c1 = code("1234");
        let checksum = user_code_checksum([(1, UserIdStatus::Disabled, c1.as_bytes())]);
        let mut r = ChecksumRead::start(checksum).unwrap();
        // Read as enabled: not what the checksum holds, so slot 1 does not explain it.
        assert_eq!(
            r.page(&[(1, UserIdStatus::Enabled, &c1)], Some(2)),
            Step::Continue(Some(2))
        );
        // A bulk page with several codes, one more than the checksum holds.
        let c2 = code("9999");
        let checksum = user_code_checksum([(1, UserIdStatus::Enabled, c1.as_bytes())]);
        let mut r = ChecksumRead::start(checksum).unwrap();
        assert_eq!(
            r.page(
                &[
                    (1, UserIdStatus::Enabled, &c1),
                    (2, UserIdStatus::Enabled, &c2)
                ],
                Some(3)
            ),
            Step::Continue(Some(3))
        );
    }

    #[test]
    fn a_hidden_code_proves_nothing_and_the_end_is_the_end() {
        let masked = code("******");
        let mut r = ChecksumRead::start(0x1234).unwrap();
        assert_eq!(
            r.page(&[(1, UserIdStatus::Enabled, &masked)], Some(2)),
            Step::GiveUp(Some(2))
        );
        let mut r = ChecksumRead::start(0x1234).unwrap();
        let c = code("1234");
        assert_eq!(
            r.page(&[(250, UserIdStatus::Enabled, &c)], None),
            Step::Continue(None)
        );
    }
}
