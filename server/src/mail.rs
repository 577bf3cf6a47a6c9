//! Where undelivered messages wait, as plain data. A public message is kept
//! once, in one timeline that everyone shares, and each user has a
//! position in it (like a read marker); a direct message goes into the
//! mailbox of each of its two people. So a public message costs the same
//! however many users are registered.
//!
//! Everything is bounded: the timeline and each mailbox hold at most
//! [`Caps::messages`] messages and [`Caps::bytes`] bytes, which is how far
//! behind a user may fall (the oldest go, and the user is told how many);
//! and all of it together holds at most [`Caps::store_bytes`], beyond which
//! new messages are refused ([`Store::fits`]) rather than anything dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// The limits, from the flags.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// `--mailbox`: messages a user may fall behind, in the timeline and
    /// in their mailbox each.
    pub messages: usize,
    /// `--mailbox-bytes`: the same in bytes.
    pub bytes: usize,
    /// `--store-bytes`: everything stored, together.
    pub store_bytes: usize,
}

/// One user's share: a position in the timeline and a mailbox of direct
/// messages.
#[derive(Debug, Default)]
pub struct Mailbox {
    /// Position in the timeline of the first public message not yet
    /// acknowledged.
    pos: u64,
    direct: VecDeque<(u64, Arc<[u8]>)>,
    direct_bytes: usize,
    /// Direct messages dropped from a full mailbox since last told.
    pub dropped: u64,
}

/// The timeline and the byte counts.
pub struct Store {
    caps: Caps,
    /// Public messages, by id, oldest first.
    timeline: VecDeque<(u64, Arc<[u8]>)>,
    /// Position of the front of the timeline.
    base: u64,
    timeline_bytes: usize,
    /// How many users stand at each position: the timeline keeps nothing
    /// before the lowest.
    positions: BTreeMap<u64, usize>,
    /// Messages and bytes in every mailbox together.
    direct: (usize, usize),
}

/// What a delivery round takes for one user.
#[derive(Default)]
pub struct Taken {
    /// Payloads of MSG frames, in id order.
    pub messages: Vec<Arc<[u8]>>,
    /// Messages that were dropped before this user got them, since last told.
    pub dropped: u64,
    /// More is waiting beyond this batch.
    pub more: bool,
    /// The id of the last message taken (0 if none).
    pub last_id: u64,
}

impl Store {
    /// An empty store.
    pub fn new(caps: Caps) -> Self {
        let (timeline, positions) = (VecDeque::new(), BTreeMap::new());
        Store { caps, timeline, base: 0, timeline_bytes: 0, positions, direct: (0, 0) }
    }

    fn end(&self) -> u64 {
        self.base + self.timeline.len() as u64
    }

    /// A mailbox for a new user, who has no public messages waiting.
    pub fn open(&mut self) -> Mailbox {
        let mailbox = Mailbox { pos: self.end(), ..Mailbox::default() };
        *self.positions.entry(mailbox.pos).or_default() += 1;
        mailbox
    }

    /// Forgets a user's mailbox and position.
    pub fn close(&mut self, mailbox: Mailbox) {
        self.direct = (self.direct.0 - mailbox.direct.len(), self.direct.1 - mailbox.direct_bytes);
        self.move_position(mailbox.pos, None);
    }

    /// Whether `bytes` more fit within `--store-bytes`.
    pub fn fits(&self, bytes: usize) -> bool {
        self.timeline_bytes + self.direct.1 + bytes <= self.caps.store_bytes
    }

    /// Messages and bytes stored (a public message once, a direct one in
    /// each of its mailboxes).
    pub fn size(&self) -> (usize, usize) {
        (self.timeline.len() + self.direct.0, self.timeline_bytes + self.direct.1)
    }

    /// Appends a public message; the oldest goes when the timeline is full.
    pub fn add_public(&mut self, id: u64, payload: &Arc<[u8]>) {
        self.timeline.push_back((id, payload.clone()));
        self.timeline_bytes += payload.len();
        // SECURITY: the timeline is capped in messages and bytes; a user further behind loses the oldest, and is told.
        while self.timeline.len() > self.caps.messages || self.timeline_bytes > self.caps.bytes {
            self.pop_front();
        }
    }

    /// Appends a direct message to one mailbox; the oldest goes when full.
    pub fn add_direct(&mut self, mailbox: &mut Mailbox, id: u64, payload: &Arc<[u8]>) {
        mailbox.direct.push_back((id, payload.clone()));
        mailbox.direct_bytes += payload.len();
        self.direct = (self.direct.0 + 1, self.direct.1 + payload.len());
        // SECURITY: every mailbox is capped in messages and bytes; when full the oldest goes, counted so the user is told.
        while mailbox.direct.len() > self.caps.messages || mailbox.direct_bytes > self.caps.bytes {
            self.pop_direct(mailbox);
            mailbox.dropped += 1;
        }
    }

    fn pop_direct(&mut self, mailbox: &mut Mailbox) {
        if let Some((_, gone)) = mailbox.direct.pop_front() {
            mailbox.direct_bytes -= gone.len();
            self.direct = (self.direct.0 - 1, self.direct.1 - gone.len());
        }
    }

    fn pop_front(&mut self) {
        if let Some((_, gone)) = self.timeline.pop_front() {
            self.timeline_bytes -= gone.len();
            self.base += 1;
        }
    }

    /// Everything up to message `up_to` is acknowledged.
    pub fn ack(&mut self, mailbox: &mut Mailbox, up_to: u64) {
        while mailbox.direct.front().is_some_and(|(id, _)| *id <= up_to) {
            self.pop_direct(mailbox);
        }
        let pos = self.base + self.timeline.partition_point(|(id, _)| *id <= up_to) as u64;
        if pos > mailbox.pos {
            self.move_position(mailbox.pos, Some(pos));
            mailbox.pos = pos;
        }
    }

    /// Moves one user from position `from` to `to` (or away), then lets the
    /// timeline forget what every user has acknowledged.
    fn move_position(&mut self, from: u64, to: Option<u64>) {
        if let Some(count) = self.positions.get_mut(&from) {
            *count -= 1;
            if *count == 0 {
                self.positions.remove(&from);
            }
        }
        if let Some(to) = to {
            *self.positions.entry(to).or_default() += 1;
        }
        let lowest = self.positions.keys().next().copied().unwrap_or(self.end());
        while self.base < lowest && !self.timeline.is_empty() {
            self.pop_front();
        }
    }

    /// Up to `max` messages with an id above `after`, public and direct
    /// merged in id order, and how many were dropped before this user got
    /// them (counted once).
    pub fn take(&mut self, mailbox: &mut Mailbox, after: u64, max: usize) -> Taken {
        let mut taken = Taken { dropped: std::mem::take(&mut mailbox.dropped), ..Taken::default() };
        if mailbox.pos < self.base {
            taken.dropped += self.base - mailbox.pos;
            self.move_position(mailbox.pos, Some(self.base));
            mailbox.pos = self.base;
        }
        let start = ((mailbox.pos - self.base) as usize).max(self.timeline.partition_point(|(id, _)| *id <= after));
        let mut public = self.timeline.range(start..).peekable();
        let mut direct = mailbox.direct.range(mailbox.direct.partition_point(|(id, _)| *id <= after)..).peekable();
        while taken.messages.len() < max {
            let next = match (public.peek(), direct.peek()) {
                (Some(p), Some(d)) if p.0 < d.0 => public.next(),
                (Some(_), None) => public.next(),
                (_, Some(_)) => direct.next(),
                (None, None) => break,
            };
            if let Some((id, payload)) = next {
                taken.messages.push(payload.clone());
                taken.last_id = *id;
            }
        }
        taken.more = public.peek().is_some() || direct.peek().is_some();
        taken
    }

    /// Messages waiting for the owner of `mailbox`.
    pub fn waiting(&self, mailbox: &Mailbox) -> usize {
        (self.end().saturating_sub(mailbox.pos.max(self.base))) as usize + mailbox.direct.len()
    }

    /// Every stored message (each once), for compaction.
    pub fn all<'a>(&'a self, mailboxes: impl Iterator<Item = &'a Mailbox>) -> BTreeMap<u64, Arc<[u8]>> {
        let mut all: BTreeMap<u64, Arc<[u8]>> = self.timeline.iter().cloned().collect();
        for mailbox in mailboxes {
            all.extend(mailbox.direct.iter().cloned());
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: usize) -> Arc<[u8]> {
        vec![0u8; n].into()
    }

    const ROOMY: Caps = Caps { messages: 100, bytes: 1 << 20, store_bytes: 1 << 20 };

    #[test]
    fn public_and_direct_messages_come_out_merged_in_id_order() {
        let mut store = Store::new(ROOMY);
        let (mut a, mut b) = (store.open(), store.open());
        store.add_public(1, &payload(1));
        store.add_direct(&mut a, 2, &payload(2));
        store.add_public(3, &payload(3));
        let sizes = |taken: Taken| taken.messages.iter().map(|m| m.len()).collect::<Vec<_>>();
        assert_eq!(sizes(store.take(&mut a, 0, 10)), [1, 2, 3]);
        assert_eq!(sizes(store.take(&mut b, 0, 10)), [1, 3], "b never had the direct message");
        assert_eq!(sizes(store.take(&mut a, 1, 10)), [2, 3], "after id 1");
        let first = store.take(&mut a, 0, 2);
        assert!(first.more && first.messages.len() == 2);
    }

    #[test]
    fn the_timeline_forgets_what_everyone_acknowledged_and_a_new_user_starts_at_its_end() {
        let mut store = Store::new(ROOMY);
        let (mut a, mut b) = (store.open(), store.open());
        for id in 1..=3 {
            store.add_public(id, &payload(10));
        }
        store.ack(&mut a, 3);
        assert_eq!(store.size(), (3, 30), "b has not acknowledged");
        store.ack(&mut b, 2);
        assert_eq!(store.size(), (1, 10));
        let mut c = store.open();
        assert!(store.take(&mut c, 0, 10).messages.is_empty());
        store.close(b);
        assert_eq!(store.size(), (0, 0), "only b held message 3");
    }

    #[test]
    fn falling_too_far_behind_drops_the_oldest_and_says_how_many() {
        let mut store = Store::new(Caps { messages: 3, bytes: 25, store_bytes: 1000 });
        let (mut a, mut reader) = (store.open(), store.open());
        for id in 1..=5 {
            store.add_public(id, &payload(10));
            store.ack(&mut reader, id);
        }
        let taken = store.take(&mut a, 0, 10);
        assert_eq!((taken.messages.len(), taken.dropped), (2, 3), "25 bytes hold two messages of 10");
        assert_eq!(store.take(&mut a, 5, 10).dropped, 0, "told once");
        for id in 6..=9 {
            store.add_direct(&mut a, id, &payload(1));
        }
        assert_eq!(store.take(&mut a, 5, 10).dropped, 1, "the mailbox holds 3");
    }

    #[test]
    fn the_store_budget_counts_every_byte_kept() {
        let mut store = Store::new(Caps { messages: 100, bytes: 100, store_bytes: 50 });
        let mut a = store.open();
        store.add_direct(&mut a, 1, &payload(30));
        assert!(store.fits(20) && !store.fits(21));
        store.ack(&mut a, 1);
        assert!(store.fits(50));
    }
}
