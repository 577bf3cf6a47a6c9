//! The state and the journal: [`State::replay`] rebuilds the state from the
//! records at start-up (through the same bookkeeping that made them), and
//! [`State::snapshot`] writes the live state as records for compaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use chat_common::validate::nick_key;

use super::{Connection, State, remember_client_id};
use crate::journal::{self, Record};

impl<C: Connection> State<C> {
    /// Applies one journal record at start-up; [`State::settle`] finishes.
    pub fn replay(&mut self, record: Record) {
        match record {
            Record::User { nick, verifier, last_client_id, acked_up_to, dropped } => {
                let user = self.add_user(&nick, verifier, acked_up_to);
                user.last_client_id = last_client_id;
                user.mailbox.dropped = dropped;
            }
            Record::Message { client_id, payload } => {
                let Some(msg) = journal::chat_msg(&payload) else { return };
                self.next_id = self.next_id.max(msg.id + 1);
                let from = nick_key(&msg.from);
                let to = (!msg.to.is_empty()).then(|| nick_key(&msg.to));
                self.deliver(msg.id, &from, to.as_deref(), &payload);
                if let (Some(user), true) = (self.users.get_mut(&from), client_id > 0) {
                    remember_client_id(user, client_id, msg.id);
                }
            }
            Record::Ack { nick, up_to } => {
                if let Some(user) = self.users.get_mut(&nick_key(&nick)) {
                    user.acked_up_to = user.acked_up_to.max(up_to);
                }
            }
            Record::NextId(id) => self.next_id = self.next_id.max(id),
            Record::Seen { nick, at_ms } => {
                if let Some(user) = self.users.get_mut(&nick_key(&nick)) {
                    user.seen_ms = at_ms;
                }
            }
            Record::Ban { nick, banned } => {
                if let Some(user) = self.users.get_mut(&nick_key(&nick)) {
                    user.banned = banned;
                }
            }
            Record::Forget { nick } => {
                if let Some(user) = self.users.remove(&nick_key(&nick)) {
                    self.mail.close(user.mailbox);
                }
            }
        }
    }

    /// After replay: every user's acknowledgements are applied to the mail.
    pub fn settle(&mut self) {
        for user in self.users.values_mut() {
            self.mail.ack(&mut user.mailbox, user.acked_up_to);
        }
    }

    /// The live state as journal records, for compaction: the next id,
    /// every user, then every message still stored or staged.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut records = vec![Record::NextId(self.next_id)];
        for user in self.users.values() {
            let nick = user.nick.clone();
            records.push(Record::User {
                nick: nick.clone(),
                verifier: user.verifier,
                last_client_id: user.last_client_id,
                acked_up_to: user.acked_up_to,
                dropped: user.mailbox.dropped,
            });
            records.push(Record::Seen { nick: nick.clone(), at_ms: user.seen_ms });
            if user.banned {
                records.push(Record::Ban { nick, banned: true });
            }
        }
        let mut live: BTreeMap<u64, (u64, Arc<[u8]>)> = BTreeMap::new();
        for (id, payload) in self.mail.all(self.users.values().map(|user| &user.mailbox)) {
            live.insert(id, (0, payload));
        }
        for staged in &self.staged {
            live.insert(staged.id, (staged.client_id, staged.payload.clone()));
        }
        records.extend(live.into_values().map(|(client_id, payload)| Record::Message { client_id, payload }));
        records
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HERE, limits, logged_in, request, texts};
    use super::*;
    use crate::state::Stored;

    #[test]
    fn replaying_the_snapshot_rebuilds_the_same_state() {
        let mut state = State::new(limits(10), true);
        logged_in(&mut state, "a", 1);
        state.send("a", 1, "", "before b", 0, false);
        state.publish(u64::MAX);
        logged_in(&mut state, "b", 2);
        state.send("a", 2, "", "to all", 0, false);
        state.send("b", 1, "a", "direct", 0, false);
        state.publish(u64::MAX);
        state.ack("a", 2);
        state.ban("b", true).unwrap();
        let mut copy = State::<u64>::new(limits(10), true);
        for record in state.snapshot() {
            copy.replay(record);
        }
        copy.settle();
        logged_in(&mut copy, "a", 1);
        assert_eq!(texts(&mut copy, "a", 1), ["direct"], "a acknowledged the rest");
        assert!(copy.login(request("b", true, HERE), 2, 0).is_err(), "still banned");
        copy.ban("b", false).unwrap();
        copy.login(request("b", true, HERE), 2, 0).unwrap();
        assert_eq!(texts(&mut copy, "b", 2), ["to all", "direct"], "b never had the message from before it");
        assert_eq!(copy.send("a", 2, "", "resent", 0, false), Stored::Duplicate { id: 0 });
        assert!(matches!(copy.send("a", 3, "", "new", 0, false), Stored::New { id: 4, .. }));
    }
}
