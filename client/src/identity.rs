//! Moving a nickname to another computer: `--export-identity FILE` writes
//! everything the state directory holds for one nickname in one chat (the
//! owner token, the last message id seen, the unsent messages and the next
//! client message id) to one file, and marks the identity here as moved;
//! `--import-identity FILE` on the other computer files it in its state
//! directory. Both refuse to overwrite: an existing file on export, a
//! different identity on import.
//!
//! It is a move, not a copy, because two computers using one identity
//! would both number their messages from the same next client id, and the
//! server takes a repeated id for a re-send and does not store it [P-22].
//!
//! The file is text (mode 0600; it holds the token, a secret):
//!
//! ```text
//! hmac-chat identity 1
//! key 3f0c1e2d4b5a6978
//! nick alice
//! token 0011…ff
//! accepted yes
//! last_seen 41
//! next 7
//! 5<TAB><TAB>a message not yet confirmed
//! ```
//!
//! `key` is the shared key's fingerprint, so the file is refused in any
//! other chat; from `next` on it is the outbox's saved form.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::SystemTime;

use chat_common::auth::Key;
use chat_common::handshake::OwnerToken;
use chat_common::log::utc_timestamp;
use chat_common::validate::{nick_key, validate_nick};

use crate::config::Config;
use crate::outbox::Outbox;
use crate::store::{Chat, Store, parse_token_hex, token_hex};

/// The first line of an identity file.
const MAGIC: &str = "hmac-chat identity 1";

/// Everything a nickname's state holds in one chat.
#[derive(Debug)]
pub struct Identity {
    /// The shared key's fingerprint.
    pub fingerprint: String,
    /// The nickname, as typed.
    pub nick: String,
    /// The owner token and whether the server accepted it.
    pub token: OwnerToken,
    /// The highest message id received.
    pub last_seen: u64,
    /// Unconfirmed messages and the next client message id.
    pub outbox: Outbox,
}

impl Identity {
    /// The file's text.
    pub fn to_text(&self) -> String {
        let accepted = if self.token.accepted { "yes" } else { "no" };
        format!(
            "{MAGIC}\nkey {}\nnick {}\ntoken {}\naccepted {accepted}\nlast_seen {}\n{}",
            self.fingerprint,
            self.nick,
            token_hex(&self.token.token),
            self.last_seen,
            self.outbox.to_text()
        )
    }

    /// Reads [`Identity::to_text`]'s form. The error names the line and
    /// never quotes it (it may hold the token).
    pub fn from_text(text: &str) -> Result<Identity, String> {
        let mut lines = text.splitn(7, '\n');
        let mut field = |number: usize, name: &str| -> Result<&str, String> {
            let line = lines.next().unwrap_or_default();
            let expected = || format!("line {number}: expected \"{name} …\"");
            line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')).ok_or_else(expected)
        };
        if field(1, "hmac-chat identity") != Ok("1") {
            return Err(format!("line 1: expected {MAGIC:?}; this is not an identity file"));
        }
        let fingerprint = field(2, "key")?.to_owned();
        let nick = field(3, "nick")?.to_owned();
        validate_nick(&nick).map_err(|why| format!("line 3: {why}"))?;
        let token = parse_token_hex(field(4, "token")?).ok_or("line 4: expected 64 hex digits")?;
        let accepted = match field(5, "accepted")? {
            "yes" => true,
            "no" => false,
            _ => return Err("line 5: expected \"accepted yes\" or \"accepted no\"".into()),
        };
        let last_seen = field(6, "last_seen")?.parse().map_err(|_| "line 6: expected a message id")?;
        let outbox = Outbox::from_text(lines.next().unwrap_or_default()).map_err(|why| {
            // The outbox's line numbers count from its own first line, line 7 here.
            let (line, rest) = why.split_once(": ").unwrap_or(("", &why));
            let number = line.strip_prefix("line ").and_then(|n| n.parse::<usize>().ok()).map_or(0, |n| n + 6);
            format!("line {number}: {rest}")
        })?;
        Ok(Identity { fingerprint, nick, token: OwnerToken { token, accepted }, last_seen, outbox })
    }
}

/// What importing does with the state already there.
#[derive(Debug, PartialEq)]
enum Merge {
    /// Nothing there: file the identity.
    Fresh,
    /// The same token: keep everything of both.
    Same,
    /// A token the server never accepted, with nothing waiting to be sent:
    /// it cannot be the nickname's (the imported one was accepted), so it goes.
    ReplaceUnused,
    /// Another identity: leave it alone.
    Refuse,
}

fn merge_kind(local: Option<&OwnerToken>, local_outbox_empty: bool, imported: &OwnerToken) -> Merge {
    match local {
        None => Merge::Fresh,
        Some(local) if local.token == imported.token => Merge::Same,
        Some(local) if !local.accepted && imported.accepted && local_outbox_empty => Merge::ReplaceUnused,
        Some(_) => Merge::Refuse,
    }
}

/// `--export-identity FILE`: writes the identity of `config`'s nickname
/// to `file` and marks it here as moved. Returns what to tell the user.
pub fn export(config: &Config, key: &Key, file: &Path) -> Result<String, String> {
    let nick = config.nick.as_deref().ok_or("--export-identity needs --nick NAME")?;
    let fingerprint = key.fingerprint();
    let chat = Chat { fingerprint: &fingerprint, address: Some((&config.host, config.port)) };
    let store = Store::open(&config.state_dir, chat, nick).map_err(|err| err.to_string())?;
    let Some(token) = store.load_token().map_err(|err| err.to_string())? else {
        return Err(format!("{}: no identity for {nick} in this chat here; nothing to export", store.dir().display()));
    };
    let last_seen = store.load_last_seen().map_err(|err| err.to_string())?;
    let outbox = store.load_outbox().map_err(|err| err.to_string())?;
    let identity = Identity { fingerprint, nick: nick.to_owned(), token, last_seen, outbox };
    write_new(file, &identity.to_text()).map_err(|err| match err.kind() {
        io::ErrorKind::AlreadyExists => {
            format!("{}: already exists; an identity file is never overwritten", file.display())
        }
        _ => format!("{}: {err}", file.display()),
    })?;
    let note = format!("exported to {} at {}", file.display(), utc_timestamp(SystemTime::now()));
    store.mark_exported(&note).map_err(|err| err.to_string())?;
    Ok(format!(
        "moved {nick}'s identity to {}; on the other computer run: chat-client --import-identity FILE \
         (the file holds the owner token: carry it privately and delete it after the import)",
        file.display()
    ))
}

/// `--import-identity FILE`: files the identity in `file` in `config`'s
/// state directory. Returns what to tell the user.
pub fn import(config: &Config, key: &Key, file: &Path) -> Result<String, String> {
    let in_file = |why: String| format!("{}: {why}", file.display());
    let text = fs::read_to_string(file).map_err(|err| in_file(err.to_string()))?;
    let identity = Identity::from_text(&text).map_err(in_file)?;
    let fingerprint = key.fingerprint();
    if identity.fingerprint != fingerprint {
        return Err(in_file(format!(
            "belongs to the chat whose key has fingerprint {}, but {} has {fingerprint}; use that chat's key file",
            identity.fingerprint,
            config.key_file.display()
        )));
    }
    let nick = identity.nick.as_str();
    if let Some(wanted) = config.nick.as_deref().filter(|wanted| nick_key(wanted) != nick_key(nick)) {
        return Err(in_file(format!("holds the identity of {nick}, not of {wanted}")));
    }
    let chat = Chat { fingerprint: &fingerprint, address: None };
    let store = Store::open_even_if_exported(&config.state_dir, chat, nick).map_err(|err| err.to_string())?;
    let local_token = store.load_token().map_err(|err| err.to_string())?;
    let mut outbox = store.load_outbox().map_err(|err| err.to_string())?;
    let mut token = identity.token;
    let mut last_seen = identity.last_seen;
    match merge_kind(local_token.as_ref(), outbox.is_empty(), &identity.token) {
        Merge::Refuse => {
            return Err(format!(
                "{}: already holds another identity for {nick} in this chat; nothing was changed \
                 (to replace it, move that directory away first)",
                store.dir().display()
            ));
        }
        Merge::Same => {
            token.accepted |= local_token.is_some_and(|local| local.accepted);
            last_seen = last_seen.max(store.load_last_seen().map_err(|err| err.to_string())?);
            outbox.merge(identity.outbox);
        }
        Merge::Fresh | Merge::ReplaceUnused => outbox = identity.outbox,
    }
    let saved = store.save_token(&token).and_then(|()| store.save_last_seen(last_seen));
    saved.and_then(|()| store.save_outbox(&outbox)).and_then(|()| store.clear_exported()).map_err(|e| e.to_string())?;
    Ok(format!(
        "imported {nick}'s identity into {}; now delete {}: it holds the owner token",
        store.dir().display(),
        file.display()
    ))
}

/// Creates `path` (never replacing a file), private from the start, and
/// makes it durable.
fn write_new(path: &Path, contents: &str) -> io::Result<()> {
    // SECURITY: 0600 from creation on; the file holds an owner token.
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    let parent = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    File::open(parent)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Identity {
        let mut outbox = Outbox::default();
        outbox.push("bob".into(), "hola".into());
        Identity {
            fingerprint: "3f0c1e2d4b5a6978".into(),
            nick: "Alice".into(),
            token: OwnerToken { token: [0xab; 32], accepted: true },
            last_seen: 41,
            outbox,
        }
    }

    #[test]
    fn the_file_round_trips_and_reads_as_documented() {
        let text = sample().to_text();
        assert!(text.starts_with("hmac-chat identity 1\nkey 3f0c1e2d4b5a6978\nnick Alice\ntoken abab"), "{text}");
        assert!(text.ends_with("\naccepted yes\nlast_seen 41\nnext 2\n1\tbob\thola\n"), "{text}");
        let read = Identity::from_text(&text).unwrap();
        let want = sample();
        assert_eq!((read.fingerprint, read.nick, read.last_seen), (want.fingerprint, want.nick, want.last_seen));
        assert_eq!((read.token.token, read.token.accepted), (want.token.token, want.token.accepted));
        assert_eq!(read.outbox, want.outbox);
    }

    #[test]
    fn a_bad_file_names_the_line_and_never_shows_the_token() {
        let text = sample().to_text();
        assert_eq!(
            Identity::from_text("").unwrap_err(),
            format!("line 1: expected {MAGIC:?}; this is not an identity file")
        );
        let short_token = text.replace(&"ab".repeat(32), "abcd");
        assert_eq!(Identity::from_text(&short_token).unwrap_err(), "line 4: expected 64 hex digits");
        let bad_outbox = format!("{text}2\tx\n");
        let err = Identity::from_text(&bad_outbox).unwrap_err();
        assert!(err.starts_with("line 9: "), "{err}");
        let wrong_label = text.replace("token ", "secret ");
        let err = Identity::from_text(&wrong_label).unwrap_err();
        assert_eq!(err, "line 4: expected \"token …\"");
        assert!(!err.contains("abab"));
    }

    #[test]
    fn import_keeps_a_different_identity_and_replaces_only_an_unused_one() {
        let token = |byte: u8, accepted: bool| OwnerToken { token: [byte; 32], accepted };
        let imported = token(1, true);
        assert_eq!(merge_kind(None, true, &imported), Merge::Fresh);
        assert_eq!(merge_kind(Some(&token(1, false)), false, &imported), Merge::Same);
        assert_eq!(merge_kind(Some(&token(2, false)), true, &imported), Merge::ReplaceUnused);
        assert_eq!(merge_kind(Some(&token(2, false)), false, &imported), Merge::Refuse, "its unsent messages");
        assert_eq!(merge_kind(Some(&token(2, true)), true, &imported), Merge::Refuse);
        assert_eq!(merge_kind(Some(&token(2, false)), true, &token(1, false)), Merge::Refuse);
    }
}
