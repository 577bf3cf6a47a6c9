//! What the teacher's console asks of the state: who is registered and
//! online, and the actions that change it (ban, unban, forget), plus the
//! forgetting of nicknames unused for `--forget-after-days`. Every action
//! is journaled like any other change, so it survives a restart.

use chat_common::validate::nick_key;

use super::{Connection, State};
use crate::journal::Record;

/// What `/users` shows of one user.
pub struct UserReport {
    /// Display nickname.
    pub nick: String,
    /// Logged in now.
    pub online: bool,
    /// Banned by the teacher.
    pub banned: bool,
    /// Last login, Unix milliseconds.
    pub seen_ms: u64,
    /// Messages waiting for it.
    pub waiting: usize,
}

impl<C: Connection> State<C> {
    /// Every registered user, for the teacher's `/users`.
    pub fn users(&self) -> Vec<UserReport> {
        let mut users: Vec<UserReport> = self
            .users
            .iter()
            .map(|(key, user)| UserReport {
                nick: user.nick.clone(),
                online: self.online.contains_key(key),
                banned: user.banned,
                seen_ms: user.seen_ms,
                waiting: self.mail.waiting(&user.mailbox),
            })
            .collect();
        users.sort_by(|a, b| a.nick.cmp(&b.nick));
        users
    }

    /// The connection `nick` is logged in on, if any (the teacher's `/kick`).
    pub fn online_conn(&self, nick: &str) -> Option<C> {
        self.online.get(&nick_key(nick)).map(|online| online.conn.clone())
    }

    /// Message ids given out so far.
    pub fn messages_stored(&self) -> u64 {
        self.next_id - 1
    }

    /// The teacher's `/ban` and `/unban`; returns the connection to close.
    pub fn ban(&mut self, nick: &str, banned: bool) -> Result<Option<C>, String> {
        let key = nick_key(nick);
        let Some(user) = self.users.get_mut(&key) else { return Err(format!("no such user: {nick}")) };
        user.banned = banned;
        let nick = user.nick.clone();
        self.record(Record::Ban { nick, banned });
        Ok(if banned { self.online.get(&key).map(|online| online.conn.clone()) } else { None })
    }

    /// Forgets `nick` and its mail (the teacher's `/forget`); returns the
    /// connection to close.
    pub fn forget(&mut self, nick: &str) -> Result<Option<C>, String> {
        let key = nick_key(nick);
        let Some(user) = self.users.remove(&key) else { return Err(format!("no such user: {nick}")) };
        self.mail.close(user.mailbox);
        self.record(Record::Forget { nick: user.nick });
        Ok(self.online.get(&key).map(|online| online.conn.clone()))
    }

    /// Forgets every nickname not logged in since `before_ms`
    /// (`--forget-after-days`); returns their names.
    pub fn forget_idle(&mut self, before_ms: u64) -> Vec<String> {
        let idle: Vec<String> = self
            .users
            .iter()
            .filter(|(key, user)| user.seen_ms < before_ms && !self.online.contains_key(*key))
            .map(|(_, user)| user.nick.clone())
            .collect();
        for nick in &idle {
            let _ = self.forget(nick);
        }
        idle
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{HERE, limits, logged_in, request};
    use super::*;

    #[test]
    fn the_teacher_bans_and_forgets_and_idle_nicknames_are_forgotten() {
        let mut state = State::new(limits(10), true);
        logged_in(&mut state, "a", 1);
        logged_in(&mut state, "b", 2);
        assert_eq!(state.ban("A", true), Ok(Some(1)), "the connection to close");
        state.logout("a", &1);
        assert_eq!(state.login(request("a", true, HERE), 3, 0).err().unwrap(), "the teacher has banned this nickname");
        state.ban("a", false).unwrap();
        assert!(state.login(request("a", true, HERE), 3, 0).is_ok());
        assert_eq!(state.forget("b"), Ok(Some(2)));
        assert_eq!(state.verifier("b"), None);
        state.logout("a", &3);
        assert_eq!(state.forget_idle(1), ["a"], "a last logged in at 0");
        assert_eq!(state.counts().0, 0);
        assert_eq!(state.forget("zed"), Err("no such user: zed".into()));
    }
}
