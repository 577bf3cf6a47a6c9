//! The outbox: messages typed but not yet confirmed by the server, in the
//! order they were typed, with the client message id each one got.
//!
//! Sans-IO: the session decides when to send and when to save; this file
//! keeps the bookkeeping right. An entry leaves only on the server's SENT
//! (or an ERROR about it), so a dropped connection loses nothing; after a
//! reconnect every entry is sent again, in order, with its original id, and
//! the server answers a re-sent id without storing it twice [P-22].
//!
//! RETRY [P-27] holds the outbox: the named entry and every later one count
//! as not sent, and nothing goes out until [`Outbox::release`] (the
//! session's retry timer) or a new connection; then they go again, in
//! order, from the held entry on (go-back-N).

use std::collections::VecDeque;

use chat_common::MAX_UNCONFIRMED_SENDS;

/// One message waiting for the server's SENT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Our id for it; ids increase across sessions, never reused [P-22].
    pub client_id: u64,
    /// A nickname, or empty for everyone.
    pub to: String,
    /// The text, already validated.
    pub text: String,
}

/// The messages waiting to be confirmed, and the next client message id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbox {
    /// The id the next typed message gets; saved with the entries so a
    /// restart never reuses one (the server would take it for a re-send).
    next_client_id: u64,
    /// Oldest first.
    pending: VecDeque<Pending>,
    /// How many entries at the front were sent on the current connection.
    in_flight: usize,
    /// The server asked us to wait (RETRY): send nothing until released.
    held: bool,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox { next_client_id: 1, pending: VecDeque::new(), in_flight: 0, held: false }
    }
}

impl Outbox {
    /// Number of messages not yet confirmed.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether every message has been confirmed.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues a message and returns the client id it got.
    pub fn push(&mut self, to: String, text: String) -> u64 {
        let client_id = self.next_client_id;
        self.next_client_id += 1;
        self.pending.push_back(Pending { client_id, to, text });
        client_id
    }

    /// Removes the entry the server answered (SENT, or ERROR about it).
    /// Returns it, or `None` for an id no longer waiting (a repeated answer).
    pub fn confirm(&mut self, client_id: u64) -> Option<Pending> {
        let index = self.pending.iter().position(|entry| entry.client_id == client_id)?;
        if index < self.in_flight {
            self.in_flight -= 1;
        }
        self.pending.remove(index)
    }

    /// The entries waiting, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &Pending> {
        self.pending.iter()
    }

    /// The server did not store `client_id` for now (RETRY): it and every
    /// later entry count as not sent, and nothing is sent until
    /// [`Outbox::release`]. False for an id no longer waiting.
    pub fn hold(&mut self, client_id: u64) -> bool {
        let Some(index) = self.pending.iter().position(|entry| entry.client_id == client_id) else {
            return false;
        };
        self.in_flight = self.in_flight.min(index);
        self.held = true;
        true
    }

    /// Whether [`Outbox::hold`] stopped sending.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Sending may go on, from the first entry not sent.
    pub fn release(&mut self) {
        self.held = false;
    }

    /// The entries to send now: those not yet sent on this connection, while
    /// at most [`MAX_UNCONFIRMED_SENDS`] are unconfirmed and the outbox is
    /// not held. Marks them sent.
    pub fn take_sendable(&mut self) -> Vec<Pending> {
        if self.held {
            return Vec::new();
        }
        let end = self.pending.len().min(MAX_UNCONFIRMED_SENDS);
        let start = self.in_flight.min(end);
        self.in_flight = end;
        self.pending.range(start..end).cloned().collect()
    }

    /// A new connection: nothing has been sent on it yet, and a hold from
    /// the old one no longer applies.
    pub fn reconnected(&mut self) {
        (self.in_flight, self.held) = (0, false);
    }

    /// Adds the entries of `other` that this outbox lacks, in client id
    /// order, and keeps the higher next id, so that no id is ever used
    /// twice (for importing an identity that was used elsewhere).
    pub fn merge(&mut self, other: Outbox) {
        for entry in other.pending {
            if !self.pending.iter().any(|mine| mine.client_id == entry.client_id) {
                self.pending.push_back(entry);
            }
        }
        self.pending.make_contiguous().sort_by_key(|entry| entry.client_id);
        self.next_client_id = self.next_client_id.max(other.next_client_id);
        self.in_flight = 0;
    }

    /// The saved form: a `next N` line, then one `client_id TAB to TAB text`
    /// line per entry. Texts and nicknames hold no tabs or newlines (both
    /// are validated before they enter the outbox).
    pub fn to_text(&self) -> String {
        let mut out = format!("next {}\n", self.next_client_id);
        for entry in &self.pending {
            out.push_str(&format!("{}\t{}\t{}\n", entry.client_id, entry.to, entry.text));
        }
        out
    }

    /// Reads the form [`Outbox::to_text`] writes; the error names the line.
    pub fn from_text(text: &str) -> Result<Outbox, String> {
        let mut lines = text.lines().enumerate();
        let next_client_id = match lines.next() {
            None => return Ok(Outbox::default()),
            Some((_, first)) => first.strip_prefix("next ").and_then(|n| n.parse::<u64>().ok()),
        };
        let Some(next_client_id) = next_client_id.filter(|&n| n >= 1) else {
            return Err("line 1: expected \"next N\"".into());
        };
        let mut outbox = Outbox { next_client_id, ..Outbox::default() };
        let mut previous_id = 0;
        for (index, line) in lines {
            let bad = || format!("line {}: expected \"client_id<TAB>to<TAB>text\"", index + 1);
            let mut fields = line.splitn(3, '\t');
            let (Some(id), Some(to), Some(text)) = (fields.next(), fields.next(), fields.next()) else {
                return Err(bad());
            };
            let client_id = id.parse::<u64>().map_err(|_| bad())?;
            if client_id <= previous_id || client_id >= next_client_id {
                return Err(format!("line {}: client id {client_id} is out of order", index + 1));
            }
            previous_id = client_id;
            outbox.pending.push_back(Pending { client_id, to: to.into(), text: text.into() });
        }
        Ok(outbox)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(entries: &[Pending]) -> Vec<u64> {
        entries.iter().map(|entry| entry.client_id).collect()
    }

    #[test]
    fn ids_increase_and_are_never_reused_after_confirmation() {
        let mut outbox = Outbox::default();
        assert_eq!(outbox.push(String::new(), "a".into()), 1);
        assert_eq!(outbox.push("bob".into(), "b".into()), 2);
        assert_eq!(outbox.confirm(1).map(|e| e.text), Some("a".into()));
        assert_eq!(outbox.confirm(2).map(|e| e.to), Some("bob".into()));
        assert!(outbox.is_empty());
        assert_eq!(outbox.push(String::new(), "c".into()), 3);
    }

    #[test]
    fn repeated_confirmation_is_ignored() {
        let mut outbox = Outbox::default();
        outbox.push(String::new(), "a".into());
        assert!(outbox.confirm(1).is_some());
        assert!(outbox.confirm(1).is_none());
        assert!(outbox.confirm(99).is_none());
    }

    #[test]
    fn sends_each_entry_once_per_connection_and_all_again_after_reconnect() {
        let mut outbox = Outbox::default();
        outbox.push(String::new(), "a".into());
        outbox.push(String::new(), "b".into());
        assert_eq!(ids(&outbox.take_sendable()), [1, 2]);
        assert!(outbox.take_sendable().is_empty());
        outbox.push(String::new(), "c".into());
        assert_eq!(ids(&outbox.take_sendable()), [3]);
        outbox.confirm(1);
        outbox.reconnected();
        assert_eq!(ids(&outbox.take_sendable()), [2, 3]);
    }

    /// [P-27] Go-back-N: a held entry and every later one go again, in
    /// order, once released or on a new connection; earlier ones do not.
    #[test]
    fn a_hold_resends_from_the_held_entry_on_after_release() {
        let mut outbox = Outbox::default();
        for text in ["a", "b", "c", "d"] {
            outbox.push(String::new(), text.into());
        }
        assert_eq!(ids(&outbox.take_sendable()), [1, 2, 3, 4]);
        assert!(outbox.hold(2));
        assert!(outbox.hold(3), "a later hold keeps the earlier start");
        outbox.push(String::new(), "e".into());
        assert!(outbox.take_sendable().is_empty(), "nothing goes out while held");
        assert!(outbox.is_held());
        outbox.release();
        assert_eq!(ids(&outbox.take_sendable()), [2, 3, 4, 5]);
        assert!(!outbox.hold(99), "an id no longer waiting holds nothing");
        assert!(outbox.hold(4));
        outbox.reconnected();
        assert!(!outbox.is_held());
        assert_eq!(ids(&outbox.take_sendable()), [1, 2, 3, 4, 5]);
    }

    #[test]
    fn keeps_at_most_256_sends_unconfirmed() {
        let mut outbox = Outbox::default();
        for i in 0..300 {
            outbox.push(String::new(), format!("m{i}"));
        }
        let first = outbox.take_sendable();
        assert_eq!(first.len(), MAX_UNCONFIRMED_SENDS);
        assert!(outbox.take_sendable().is_empty());
        outbox.confirm(1);
        outbox.confirm(2);
        assert_eq!(ids(&outbox.take_sendable()), [257, 258]);
    }

    #[test]
    fn confirming_an_unsent_entry_keeps_the_in_flight_count_right() {
        let mut outbox = Outbox::default();
        for _ in 0..3 {
            outbox.push(String::new(), "x".into());
        }
        assert_eq!(ids(&outbox.take_sendable()), [1, 2, 3]);
        outbox.push(String::new(), "y".into());
        outbox.confirm(4);
        outbox.confirm(2);
        outbox.push(String::new(), "z".into());
        assert_eq!(ids(&outbox.take_sendable()), [5]);
    }

    #[test]
    fn saved_form_round_trips_including_the_next_id_of_an_empty_outbox() {
        let mut outbox = Outbox::default();
        outbox.push(String::new(), "hola, ¿qué tal? \\ back slash".into());
        outbox.push("bob".into(), "direct".into());
        outbox.confirm(1);
        let loaded = Outbox::from_text(&outbox.to_text()).unwrap();
        assert_eq!(loaded, Outbox { in_flight: 0, held: false, ..outbox.clone() });
        outbox.confirm(2);
        let mut loaded = Outbox::from_text(&outbox.to_text()).unwrap();
        assert!(loaded.is_empty());
        assert_eq!(loaded.push(String::new(), "next".into()), 3);
        assert_eq!(Outbox::from_text("").unwrap(), Outbox::default());
    }

    #[test]
    fn merging_keeps_every_entry_once_and_the_higher_next_id() {
        let mut here = Outbox::from_text("next 5\n2\t\tb\n4\t\td\n").unwrap();
        let there = Outbox::from_text("next 9\n1\t\ta\n2\t\tb\n8\t\th\n").unwrap();
        here.merge(there);
        assert_eq!(here.to_text(), "next 9\n1\t\ta\n2\t\tb\n4\t\td\n8\t\th\n");
        assert_eq!(here.push(String::new(), "new".into()), 9);
    }

    #[test]
    fn corrupt_saved_form_is_an_error_naming_the_line() {
        assert_eq!(Outbox::from_text("nxt 3\n").unwrap_err(), "line 1: expected \"next N\"");
        assert!(Outbox::from_text("next 3\n1\tonly two\n").unwrap_err().starts_with("line 2:"));
        assert!(Outbox::from_text("next 3\n2\t\ta\n1\t\tb\n").unwrap_err().contains("out of order"));
        assert!(Outbox::from_text("next 3\n3\t\ta\n").unwrap_err().contains("out of order"));
    }
}
