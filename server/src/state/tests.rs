//! The state's tests: the chat as data, driven with numbers for
//! connections, no sockets and no files. The helpers are shared with the
//! tests of `state/teacher.rs` and `state/replay.rs`.

use super::*;
use chat_common::auth::{Opener, Sealer};
use chat_common::message::kind;

/// In these tests a connection is just its number.
impl Connection for u64 {
    fn id(&self) -> u64 {
        *self
    }
}

pub(super) const HERE: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

pub(super) fn limits(messages: usize) -> Limits {
    let mail = Caps { messages, bytes: 1 << 20, store_bytes: 1 << 24 };
    Limits { mail, max_users: 100_000, new_users_per_hour: 100_000, max_listed: 1000 }
}

pub(super) fn decode(out: &Outgoing) -> ServerMsg {
    let mut frame = Vec::new();
    Sealer::new(&[1; 32]).seal(out.kind, &out.payload, &mut frame);
    ServerMsg::decode(&Opener::new(&[1; 32]).open(&frame).unwrap()).unwrap()
}

pub(super) fn request(nick: &str, registered: bool, from: IpAddr) -> LoginRequest<'_> {
    LoginRequest { nick, registered, last_seen: 0, register: (!registered).then_some([1; 32]), from }
}

pub(super) fn logged_in(state: &mut State<u64>, nick: &str, conn: u64) -> Login<u64> {
    let registered = state.verifier(nick).is_some();
    state.login(request(nick, registered, HERE), conn, 0).unwrap()
}

pub(super) fn texts(state: &mut State<u64>, nick: &str, conn: u64) -> Vec<String> {
    let taken = state.take_mail(nick, &conn, 100);
    let frames = taken.messages.iter().map(|payload| Outgoing { kind: kind::MSG, payload: payload.clone() });
    frames
        .map(|out| match decode(&out) {
            ServerMsg::Msg(msg) => msg.text,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn login_queues_welcome_and_the_online_list_and_registers_once() {
    let mut state = State::new(limits(10), true);
    let login = logged_in(&mut state, "Ana", 1);
    assert!(login.registered_now && login.replaced.is_none());
    let frames: Vec<ServerMsg> = login.frames.iter().map(decode).collect();
    assert!(matches!(&frames[0], ServerMsg::Welcome { nick, .. } if nick == "Ana"));
    assert_eq!(frames[1], ServerMsg::Users { last: true, nicks: vec!["Ana".into()] });
    let (records, _) = state.take_records();
    assert!(matches!(records[..], [Record::User { .. }, Record::Seen { .. }]), "{records:?}");
    let again = logged_in(&mut state, "ana", 2);
    assert!(!again.registered_now && again.replaced == Some(1), "the newer login takes over");
}

#[test]
fn a_public_message_is_stored_once_however_many_are_registered() {
    for registered in [10, 10_000] {
        let mut state = State::new(limits(10), false);
        for n in 0..registered {
            state.login(request(&format!("u{n}"), false, HERE), n, 0).unwrap();
            state.logout(&format!("u{n}"), &n);
        }
        logged_in(&mut state, "a", 1);
        assert_eq!(state.send("a", 1, "", "hi", 5, false), Stored::New { id: 1, recipients: registered as usize + 1 });
        assert_eq!(state.counts().2, 0, "staged, not yet published");
        let published = state.publish(u64::MAX);
        assert_eq!(published.wake, [1], "only the online are woken");
        assert_eq!(decode(&published.sent[0].1), ServerMsg::Sent { client_id: 1, id: 1 });
        assert_eq!(state.counts().2, 1, "one message, kept once");
    }
}

#[test]
fn a_message_is_published_only_once_its_record_is_durable() {
    let mut state = State::new(limits(10), true);
    logged_in(&mut state, "a", 1);
    state.take_records();
    state.send("a", 1, "", "x", 0, false);
    let (records, ticket) = state.take_records();
    assert!(matches!(records[..], [Record::Message { client_id: 1, .. }]));
    assert!(state.publish(ticket - 1).wake.is_empty(), "not yet on disk");
    assert_eq!(state.publish(ticket).wake, [1]);
}

#[test]
fn direct_messages_reach_only_the_two_and_acks_trim() {
    let mut state = State::new(limits(10), false);
    for (n, nick) in ["a", "b", "c"].iter().enumerate() {
        logged_in(&mut state, nick, n as u64);
    }
    state.send("a", 1, "", "all", 0, false);
    state.publish(u64::MAX);
    state.send("a", 2, "B", "psst", 0, false);
    let mut woken = state.publish(u64::MAX).wake;
    woken.sort_unstable();
    assert_eq!(woken, [0, 1], "a direct message wakes only its two people");
    assert_eq!(texts(&mut state, "b", 1), ["all", "psst"]);
    assert_eq!(texts(&mut state, "c", 2), ["all"]);
    assert!(texts(&mut state, "b", 1).is_empty(), "taken already");
    state.ack("a", 1);
    logged_in(&mut state, "a", 9);
    assert_eq!(texts(&mut state, "a", 9), ["psst"], "after a reconnect, only what is unacknowledged");
}

#[test]
fn an_old_connection_gets_no_mail_and_cannot_log_out_its_successor() {
    let mut state = State::new(limits(10), false);
    logged_in(&mut state, "w", 1);
    logged_in(&mut state, "a", 2);
    logged_in(&mut state, "a", 3);
    state.send("w", 1, "a", "for a", 0, false);
    state.publish(u64::MAX);
    assert!(texts(&mut state, "a", 2).is_empty(), "the replaced connection");
    assert_eq!(texts(&mut state, "a", 3), ["for a"]);
    state.logout("a", &2);
    state.logout("a", &3);
    let frames: Vec<ServerMsg> = state.take_presence("w", &1).iter().map(decode).collect();
    assert_eq!(frames, [ServerMsg::Joined { nicks: vec!["a".into()] }, ServerMsg::Left { nicks: vec!["a".into()] }]);
}

#[test]
fn resent_client_ids_are_duplicates_with_their_original_id() {
    let mut state = State::new(limits(10), false);
    logged_in(&mut state, "a", 1);
    assert_eq!(state.send("a", 7, "", "x", 0, false), Stored::New { id: 1, recipients: 1 });
    assert_eq!(state.send("a", 7, "", "x", 0, false), Stored::Staged);
    state.publish(u64::MAX);
    assert_eq!(state.send("a", 7, "", "x", 0, false), Stored::Duplicate { id: 1 });
    assert_eq!(state.send("a", 3, "", "x", 0, false), Stored::Duplicate { id: 0 });
    assert_eq!(state.send("a", 8, "nobody", "x", 0, false), Stored::UnknownRecipient);
}

#[test]
fn falling_behind_drops_the_oldest_and_the_store_budget_refuses_rather_than_drops() {
    let mut state = State::new(limits(2), false);
    logged_in(&mut state, "a", 1);
    for n in 1..=5 {
        state.send("a", n, "", "x", 0, false);
    }
    state.publish(u64::MAX);
    let taken = state.take_mail("a", &1, 10);
    assert_eq!((taken.messages.len(), taken.dropped), (2, 3));
    let mut tight =
        State::new(Limits { mail: Caps { messages: 10, bytes: 1000, store_bytes: 200 }, ..limits(10) }, false);
    logged_in(&mut tight, "a", 1);
    assert!(matches!(tight.send("a", 1, "", &"x".repeat(100), 0, false), Stored::New { .. }));
    assert_eq!(tight.send("a", 2, "", &"x".repeat(100), 0, false), Stored::Full, "staged bytes count");
    tight.publish(u64::MAX);
    tight.ack("a", 1);
    assert!(matches!(tight.send("a", 2, "", &"x".repeat(100), 0, false), Stored::New { .. }), "room again");
}

#[test]
fn registrations_are_capped_in_all_and_per_address_per_hour() {
    let mut state = State::new(Limits { max_users: 3, new_users_per_hour: 2, ..limits(10) }, false);
    let register = |state: &mut State<u64>, nick: &str, from: &str, at_ms: u64| {
        state.login(request(nick, false, from.parse().unwrap()), 1, at_ms).map(|_| ())
    };
    assert!(register(&mut state, "a", "10.0.0.1", 0).is_ok() && register(&mut state, "b", "10.0.0.1", 0).is_ok());
    let refused = register(&mut state, "c", "10.0.0.1", 0).unwrap_err();
    assert_eq!(refused, "too many new nicknames from your address; try again in 30 minutes");
    assert!(register(&mut state, "c", "10.0.0.1", HOUR_MS / 2).is_ok(), "one more after half an hour");
    let full = register(&mut state, "d", "10.0.0.2", HOUR_MS).unwrap_err();
    assert!(full.contains("limit of 3 nicknames"), "{full}");
}

#[test]
fn presence_is_shared_trimmed_once_sent_and_never_about_oneself() {
    let mut state = State::new(limits(10), false);
    logged_in(&mut state, "a", 1);
    logged_in(&mut state, "B", 2);
    let kinds: Vec<u8> = state.take_presence("a", &1).iter().map(|o| o.kind).collect();
    assert_eq!(kinds, [kind::JOINED], "a hears of B, not of itself");
    assert!(state.take_presence("b", &2).is_empty(), "B joined after a: in its USERS, not JOINED");
    assert!(state.presence_due().is_empty());
    assert!(state.presence.is_empty(), "everyone has sent everything");
    state.logout("b", &2);
    assert_eq!(state.presence_due(), [1], "a has a LEFT to send");
    let kinds: Vec<u8> = state.take_presence("a", &1).iter().map(|o| o.kind).collect();
    assert_eq!(kinds, [kind::LEFT]);
}

#[test]
fn the_list_names_the_first_max_listed_online_and_counts_the_rest() {
    let mut state = State::new(Limits { max_listed: 2, ..limits(10) }, false);
    let users = |login: Login<u64>| login.frames[1..].iter().map(decode).collect::<Vec<_>>();
    let names = |nicks: &[&str]| nicks.iter().map(|nick| nick.to_string()).collect::<Vec<_>>();
    logged_in(&mut state, "a", 1);
    logged_in(&mut state, "b", 2);
    let (login_c, login_d) = (logged_in(&mut state, "c", 3), logged_in(&mut state, "d", 4));
    assert!(Arc::ptr_eq(&login_c.frames[1].payload, &login_d.frames[1].payload), "a full list is encoded once");
    let (for_c, for_d) = (users(login_c), users(login_d));
    assert_eq!(for_c, [ServerMsg::Users { last: true, nicks: names(&["a", "b"]) }, ServerMsg::Unlisted { count: 1 }]);
    assert_eq!(for_d[1], ServerMsg::Unlisted { count: 2 }, "c and d, not named");
    let for_a: Vec<ServerMsg> = state.take_presence("a", &1).iter().map(decode).collect();
    assert_eq!(for_a, [ServerMsg::Joined { nicks: names(&["b"]) }, ServerMsg::Unlisted { count: 2 }]);

    // A listed user leaves: the longest online of the others takes the place.
    state.logout("a", &1);
    let for_b: Vec<ServerMsg> = state.take_presence("b", &2).iter().map(decode).collect();
    let expected = [ServerMsg::Left { nicks: names(&["a"]) }, ServerMsg::Joined { nicks: names(&["c"]) }];
    assert_eq!(for_b[..2], expected);
    assert_eq!(for_b[2..], [ServerMsg::Unlisted { count: 1 }], "only the latest count");
    // Reconnecting keeps one's place; an unlisted user leaving changes the count only.
    assert_eq!(users(logged_in(&mut state, "c", 5))[0], ServerMsg::Users { last: true, nicks: names(&["b", "c"]) });
    state.logout("d", &4);
    let for_b: Vec<ServerMsg> = state.take_presence("b", &2).iter().map(decode).collect();
    assert_eq!(for_b, [ServerMsg::Unlisted { count: 0 }]);
    state.logout("b", &2);
    let for_c: Vec<ServerMsg> = state.take_presence("c", &5).iter().map(decode).collect();
    assert_eq!(
        for_c,
        [ServerMsg::Left { nicks: names(&["b"]) }, ServerMsg::Unlisted { count: 0 }],
        "no one to move up"
    );
}

#[test]
fn connections_at_one_cursor_share_one_encoding_and_others_get_their_own() {
    let mut state = State::new(limits(10), false);
    logged_in(&mut state, "a", 1);
    logged_in(&mut state, "b", 2);
    state.take_presence("a", &1);
    logged_in(&mut state, "c", 3);
    logged_in(&mut state, "d", 4);
    let (for_a, for_b) = (state.take_presence("a", &1), state.take_presence("b", &2));
    assert_eq!(for_a, for_b, "both hear of c and d");
    assert!(Arc::ptr_eq(&for_a[0].payload, &for_b[0].payload), "encoded once");
    let for_c = state.take_presence("c", &3);
    let heard = |frames: &[Outgoing]| match decode(&frames[0]) {
        ServerMsg::Joined { nicks } => nicks,
        other => panic!("{other:?}"),
    };
    assert_eq!(heard(&for_a), ["c", "d"]);
    assert_eq!(heard(&for_c), ["d"], "c was at its own cursor");
    assert!(state.take_presence("d", &4).is_empty() && state.take_presence("a", &1).is_empty());
}
