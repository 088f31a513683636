//! The last few outcomes of a connector, oldest first: a small ring of codes, fixed in size so
//! that a connector's state stays small and cheap to copy, for the status page's strip.

use crate::outcome::Code;

/// How many outcomes are kept.
pub const RECENT_OUTCOMES: usize = 30;

/// The codes of the last [`RECENT_OUTCOMES`] probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecentCodes {
    /// The ring; the slots from `len` on are unused until it fills.
    codes: [Code; RECENT_OUTCOMES],
    /// How many slots hold a code.
    len: usize,
    /// The slot the next code goes to (the oldest, once full).
    next: usize,
}

impl Default for RecentCodes {
    fn default() -> Self {
        RecentCodes {
            codes: [Code::Ok; RECENT_OUTCOMES],
            len: 0,
            next: 0,
        }
    }
}

impl RecentCodes {
    /// Adds the newest code, forgetting the oldest once full.
    pub fn push(&mut self, code: Code) {
        self.codes[self.next] = code;
        self.next = (self.next + 1) % RECENT_OUTCOMES;
        self.len = (self.len + 1).min(RECENT_OUTCOMES);
    }

    /// The codes, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = Code> + '_ {
        let start = (self.next + RECENT_OUTCOMES - self.len) % RECENT_OUTCOMES;
        (0..self.len).map(move |i| self.codes[(start + i) % RECENT_OUTCOMES])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_in_order() {
        let mut recent = RecentCodes::default();
        assert_eq!(recent.iter().count(), 0);
        recent.push(Code::Ok);
        recent.push(Code::ConnectionRefused);
        assert_eq!(
            recent.iter().collect::<Vec<_>>(),
            [Code::Ok, Code::ConnectionRefused]
        );
        for _ in 0..RECENT_OUTCOMES - 1 {
            recent.push(Code::Other);
        }
        let codes: Vec<Code> = recent.iter().collect();
        assert_eq!(codes.len(), RECENT_OUTCOMES);
        // The first one fell out; the refused one is now the oldest.
        assert_eq!(codes[0], Code::ConnectionRefused);
        assert!(codes[1..].iter().all(|c| *c == Code::Other));
    }
}
