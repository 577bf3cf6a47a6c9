//! The teacher's console: while the server's standard input is open, it
//! reads one command per line and answers on standard output. It is how the
//! person running the class sees who is there and acts: kick, ban, forget.
//! Every action is logged; bans and forgets are journaled, so they survive
//! a restart. The end of input just ends the console.

use std::io::{self, BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use chat_common::log::{Clip, Level, log, utc_timestamp};

use crate::shared::Shared;

/// The `/help` text.
pub const HELP: &str = "\
/users        who is registered and online, and how many messages wait for each
/stats        connections, handshakes, stored messages and bytes, messages per second
/kick NICK    close NICK's connection (the client reconnects)
/ban NICK     refuse NICK's logins until /unban NICK (kept across restarts)
/unban NICK   let NICK log in again
/forget NICK  remove NICK's registration and mail (kept across restarts)
/help         this list";

/// Reads commands from standard input until it ends.
pub fn run(shared: Arc<Shared>) {
    let mut since = (Instant::now(), shared.state().messages_stored());
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let answer = command(&shared, line.trim(), &mut since);
        let _ = writeln!(io::stdout(), "{answer}");
    }
}

/// Carries out one command; returns its answer. `since` is when `/stats`
/// last counted messages, and how many had been stored then.
fn command(shared: &Shared, line: &str, since: &mut (Instant, u64)) -> String {
    let (name, nick) = line.split_once(' ').map_or((line, ""), |(name, rest)| (name, rest.trim()));
    let result = match (name, nick.is_empty()) {
        ("/help", _) => Ok(HELP.to_string()),
        ("/users", _) => Ok(users(shared)),
        ("/stats", _) => Ok(stats(shared, since)),
        ("/kick", false) => {
            let conn = shared.state().online_conn(nick);
            conn.map(|conn| conn.close("kicked by the teacher")).map(|()| format!("kicked {nick}"))
        }
        .ok_or(format!("{nick} is not online")),
        ("/ban", false) | ("/unban", false) => {
            let banned = name == "/ban";
            let result = shared.state().ban(nick, banned);
            result.map(|conn| {
                shared.commit();
                conn.inspect(|conn| conn.close("banned by the teacher"));
                format!("{} {nick}", if banned { "banned" } else { "unbanned" })
            })
        }
        ("/forget", false) => {
            let result = shared.state().forget(nick);
            result.map(|conn| {
                shared.commit();
                conn.inspect(|conn| conn.close("forgotten by the teacher"));
                format!("forgot {nick} and its mail")
            })
        }
        ("/kick" | "/ban" | "/unban" | "/forget", true) => Err(format!("usage: {name} NICK")),
        _ => Err(format!("unknown command {}; /help lists them", Clip(name))),
    };
    match result {
        Ok(answer) => {
            if !matches!(name, "/help" | "/users" | "/stats") {
                log(Level::Info, "teacher", format_args!("{answer}"));
            }
            answer
        }
        Err(why) => why,
    }
}

fn users(shared: &Shared) -> String {
    let users = shared.state().users();
    let online = users.iter().filter(|user| user.online).count();
    let mut out = format!("{} registered, {online} online", users.len());
    for user in users {
        let seen = utc_timestamp(UNIX_EPOCH + Duration::from_millis(user.seen_ms));
        let status = match (user.online, user.banned) {
            (_, true) => "banned".to_string(),
            (true, false) => "online".to_string(),
            (false, false) => format!("last seen {seen}"),
        };
        out.push_str(&format!("\n  {:<32} {status}, {} waiting", user.nick, user.waiting));
    }
    out
}

fn stats(shared: &Shared, since: &mut (Instant, u64)) -> String {
    let (users, online, messages, bytes) = shared.state().counts();
    let stored = shared.state().messages_stored();
    let elapsed = since.0.elapsed().as_secs_f64().max(0.001);
    let rate = (stored - since.1) as f64 / elapsed;
    *since = (Instant::now(), stored);
    format!(
        "connections: {} open, {} in the handshake\nusers: {users} registered, {online} online\n\
         stored: {messages} messages, {bytes} bytes, of --store-bytes {}\nmessages: {stored} since start, {rate:.1} per second since the last /stats",
        shared.conns.taken(),
        shared.handshakes.taken(),
        shared.config.store_bytes,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_readme_shows_this_help() {
        assert!(include_str!("../../README.md").contains(super::HELP), "update README.md's console section");
    }
}
