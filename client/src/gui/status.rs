//! What the status bar and the title say, decided without drawing: the
//! connection's state as a coloured indicator and a sentence in the
//! user's language, with a live countdown to the next attempt and the
//! reason in plain words; and how to shorten a sentence that does not fit
//! (the view shows the whole of it as a tooltip). Pure, so unit tests
//! cover it without a display.

use std::time::Instant;

use chat_client::{KeyTrouble, Rejection, Trouble, Unreachable};

use super::strings::{S, Texts};

/// The indicator's colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Indicator {
    /// Connected: green.
    Connected,
    /// Connecting or about to: amber.
    Connecting,
    /// No connection, waiting for the next attempt: red.
    Offline,
    /// The window is closing: grey.
    Closing,
}

impl Indicator {
    /// The name tests read in the event log.
    pub fn name(self) -> &'static str {
        match self {
            Indicator::Connected => "green",
            Indicator::Connecting => "amber",
            Indicator::Offline => "red",
            Indicator::Closing => "grey",
        }
    }
}

/// The connection, as the status bar and the title tell it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    /// Down because of `reason`; the next attempt is at `retry_at`.
    Offline {
        reason: Trouble,
        retry_at: Instant,
    },
    /// The window was closed: sending what is left, then exiting.
    Closing,
}

/// What the status bar and the title are made of.
#[derive(Clone, Debug)]
pub struct Status {
    pub nick: String,
    /// `host:port`.
    pub server: String,
    pub link: Link,
    /// Messages typed and not yet confirmed by the server.
    pub outbox: usize,
}

/// Whole seconds left until `at`, rounded up, so the countdown shows 1 s
/// until the attempt, never 0 s before it.
pub fn seconds_until(at: Instant, now: Instant) -> u64 {
    let left = at.saturating_duration_since(now);
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

impl Status {
    /// The indicator and the status bar's sentence at `now`: the state
    /// and countdown first, then what waits to be sent, then why the
    /// connection is down (the longest part, so the one cut if need be).
    pub fn line(&self, now: Instant, texts: Texts) -> (Indicator, String) {
        let (nick, server) = (self.nick.as_str(), self.server.as_str());
        let (indicator, mut sentence) = match &self.link {
            Link::Connecting => {
                (Indicator::Connecting, texts.fill(S::StatusConnecting, &[("server", server), ("nick", nick)]))
            }
            Link::Connected => {
                (Indicator::Connected, texts.fill(S::StatusConnected, &[("server", server), ("nick", nick)]))
            }
            Link::Offline { retry_at, .. } => match seconds_until(*retry_at, now) {
                0 => (Indicator::Connecting, texts.get(S::StatusTrying).to_owned()),
                secs => (Indicator::Offline, texts.fill(S::StatusOffline, &[("secs", &secs.to_string())])),
            },
            Link::Closing if self.outbox > 0 => {
                let count = texts.messages(self.outbox);
                return (Indicator::Closing, texts.fill(S::StatusClosingSending, &[("count", &count)]));
            }
            Link::Closing => (Indicator::Closing, texts.get(S::StatusClosing).to_owned()),
        };
        if self.outbox > 0 {
            let count = texts.messages(self.outbox);
            sentence = texts.fill(S::StatusWaiting, &[("status", &sentence), ("count", &count)]);
        }
        if let Link::Offline { reason, .. } = &self.link {
            let reason = trouble_text(reason, texts);
            sentence = texts.fill(S::StatusReason, &[("status", &sentence), ("reason", &reason)]);
        }
        (indicator, sentence)
    }

    /// The window title: the nickname and the state.
    pub fn title(&self, now: Instant, texts: Texts) -> String {
        let state = match self.line(now, texts).0 {
            Indicator::Connected => S::StateConnected,
            Indicator::Connecting => S::StateConnecting,
            Indicator::Offline => S::StateOffline,
            Indicator::Closing => S::StateClosing,
        };
        format!("{} — {} — hmac-chat", self.nick, texts.get(state))
    }
}

/// Why the connection is down, in the user's language.
pub fn trouble_text(trouble: &Trouble, texts: Texts) -> String {
    match trouble {
        Trouble::Unreachable { server, cause } => {
            let what = texts.fill(S::Unreachable, &[("server", server)]);
            let (key, detail) = match cause {
                Unreachable::Refused => (S::CauseRefused, ""),
                Unreachable::TimedOut => (S::CauseTimedOut, ""),
                Unreachable::NoRoute => (S::CauseNoRoute, ""),
                Unreachable::UnknownHost => (S::CauseUnknownHost, ""),
                Unreachable::Other(detail) => (S::CauseOther, detail.as_str()),
            };
            texts.fill(key, &[("what", &what), ("detail", detail)])
        }
        Trouble::KeyRefused => texts.get(S::KeyRefused).into(),
        Trouble::FakeServer => texts.get(S::FakeServer).into(),
        Trouble::Refused(reason) => texts.fill(S::Refused, &[("reason", reason)]),
        Trouble::Handshake(detail) => texts.fill(S::HandshakeFailed, &[("detail", detail)]),
        Trouble::Closed => texts.get(S::Closed).into(),
        Trouble::Silent { secs } => texts.fill(S::Silent, &[("secs", &secs.to_string())]),
        Trouble::Lost(detail) => texts.fill(S::Lost, &[("detail", detail)]),
        Trouble::BadFrame(detail) => texts.fill(S::BadFrame, &[("detail", detail)]),
        Trouble::Local(detail) => detail.clone(),
    }
}

/// Why the key file cannot be used, in the user's language.
pub fn key_text(trouble: &KeyTrouble, texts: Texts) -> String {
    let path = trouble.path().display().to_string();
    match trouble {
        KeyTrouble::Missing { .. } => texts.fill(S::KeyMissing, &[("path", &path)]),
        KeyTrouble::TooOpen { mode, .. } => {
            let mode = format!("{mode:04o}");
            texts.fill(S::KeyTooOpen, &[("path", &path), ("mode", &mode), ("chmod", &trouble.chmod())])
        }
        KeyTrouble::Patterned { .. } => texts.fill(S::KeyPatterned, &[("path", &path)]),
        KeyTrouble::Malformed { why, .. } => texts.fill(S::KeyMalformed, &[("path", &path), ("why", why)]),
        KeyTrouble::Unreadable { detail, .. } => texts.fill(S::KeyUnreadable, &[("path", &path), ("detail", detail)]),
    }
}

/// Why a nickname was refused, in the user's language (the server's own
/// reason as it came).
pub fn rejection_text(rejection: &Rejection, texts: Texts) -> String {
    match rejection {
        Rejection::NicknameOwned => texts.get(S::NicknameOwned).into(),
        Rejection::TokenUnknown => texts.get(S::TokenUnknown).into(),
        Rejection::Server(reason) => reason.clone(),
    }
}

/// `text` cut at a character boundary and ended with "…" so that
/// `measure` says it fits in `width`; `None` when it fits whole.
pub fn elide(text: &str, width: f64, measure: impl Fn(&str) -> f64) -> Option<String> {
    if measure(text) <= width {
        return None;
    }
    // The longest prefix that fits, by bisection over character boundaries.
    let bounds: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
    let (mut fits, mut too_long) = (0, bounds.len());
    while too_long - fits > 1 {
        let middle = (fits + too_long) / 2;
        if measure(&format!("{}…", &text[..bounds[middle]])) <= width {
            fits = middle;
        } else {
            too_long = middle;
        }
    }
    Some(format!("{}…", text[..bounds[fits]].trim_end()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_client::Language;
    use std::time::Duration;

    const EN: Texts = Texts { language: Language::English };
    const ES: Texts = Texts { language: Language::Spanish };

    fn status(link: Link, outbox: usize) -> Status {
        Status { nick: "ana".into(), server: "192.168.1.10:5555".into(), link, outbox }
    }

    #[test]
    fn each_state_has_its_colour_and_sentence() {
        let now = Instant::now();
        assert_eq!(
            status(Link::Connected, 0).line(now, EN),
            (Indicator::Connected, "connected to 192.168.1.10:5555 as ana".into())
        );
        assert_eq!(status(Link::Connected, 0).title(now, EN), "ana — connected — hmac-chat");
        assert_eq!(status(Link::Connecting, 0).line(now, ES).0, Indicator::Connecting);
        let waiting = status(Link::Connected, 2).line(now, EN).1;
        assert_eq!(waiting, "connected to 192.168.1.10:5555 as ana · 2 messages waiting to be sent");
        assert_eq!(
            status(Link::Closing, 1).line(now, EN),
            (Indicator::Closing, "closing: sending 1 message first…".into())
        );
        assert_eq!(status(Link::Closing, 0).line(now, ES).1, "cerrando…");
    }

    #[test]
    fn offline_counts_down_in_plain_words_then_says_it_is_trying() {
        let now = Instant::now();
        let reason = Trouble::Unreachable { server: "192.168.1.10:5555".into(), cause: Unreachable::Refused };
        let offline = status(Link::Offline { reason, retry_at: now + Duration::from_millis(4200) }, 0);
        let (indicator, text) = offline.line(now, EN);
        assert_eq!(indicator, Indicator::Offline);
        assert_eq!(
            text,
            "offline · next try in 5 s · server not reachable at 192.168.1.10:5555: nothing answers on that port \
             (is the server running?)"
        );
        assert!(offline.line(now + Duration::from_millis(1500), EN).1.starts_with("offline · next try in 3 s · "));
        let spanish = Status { outbox: 2, ..offline.clone() }.line(now + Duration::from_millis(1500), ES).1;
        assert!(
            spanish.starts_with("sin conexión · nuevo intento en 3 s · 2 mensajes por enviar · no se llega"),
            "{spanish}"
        );
        let (indicator, text) = offline.line(now + Duration::from_secs(5), EN);
        assert_eq!(indicator, Indicator::Connecting);
        assert!(text.starts_with("offline · trying again… · "), "{text}");
        assert_eq!(offline.title(now, ES), "ana — sin conexión — hmac-chat");
    }

    #[test]
    fn reasons_have_no_error_numbers_in_either_language() {
        let cases = [
            Trouble::KeyRefused,
            Trouble::FakeServer,
            Trouble::Closed,
            Trouble::Silent { secs: 60 },
            Trouble::Unreachable { server: "h:1".into(), cause: Unreachable::UnknownHost },
        ];
        for trouble in cases {
            for texts in [EN, ES] {
                let text = trouble_text(&trouble, texts);
                assert!(!text.contains("os error") && !text.contains('{'), "{text}");
            }
        }
        assert_eq!(
            trouble_text(&Trouble::KeyRefused, ES),
            "el servidor rechazó nuestra clave (¿es tu fichero de clave el del servidor?)"
        );
        assert_eq!(rejection_text(&Rejection::Server("taken".into()), ES), "taken");
    }

    #[test]
    fn key_troubles_give_the_clients_advice_in_either_language() {
        let open = KeyTrouble::TooOpen { path: "my key".into(), mode: 0o644 };
        assert_eq!(
            key_text(&open, ES),
            "my key: otros usuarios de este ordenador pueden leer la clave (modo 0644); hazlo privado con: chmod 600 'my key'"
        );
        let missing = KeyTrouble::Missing { looked: "/home/ana/chat.key".into() };
        assert!(key_text(&missing, EN).starts_with("no key file at /home/ana/chat.key: copy the server's chat.key"));
        let cases = [
            missing,
            open,
            KeyTrouble::Patterned { path: "k".into() },
            KeyTrouble::Malformed { path: "k".into(), why: "holds 4 characters".into() },
            KeyTrouble::Unreadable { path: "k".into(), detail: "permission denied".into() },
        ];
        for trouble in cases {
            for texts in [EN, ES] {
                let text = key_text(&trouble, texts);
                let suggests_a_key =
                    ["make key", "new key", "nueva clave", "crea"].iter().any(|words| text.contains(words));
                assert!(!text.contains('{') && !suggests_a_key, "{text}");
            }
        }
    }

    #[test]
    fn a_long_status_is_cut_with_an_ellipsis_to_fit() {
        let chars = |text: &str| text.chars().count() as f64;
        assert_eq!(elide("short", 10.0, chars), None);
        assert_eq!(elide("a sentence that is far too long", 12.0, chars), Some("a sentence…".into()));
        assert_eq!(elide("ñandú es un ave", 6.0, chars), Some("ñandú…".into()));
        assert_eq!(elide("abc", 0.0, chars), Some("…".into()));
    }
}
