//! The textbook server: hmac-chat's whole protocol in the shape of the Rust
//! Book's chapter 21, for reading before `src/`. Each connection gets a
//! reader thread (handshake, LOGIN, then read → verify → act) and a writer
//! thread (waits for frames in its outbox, seals them, writes them). All
//! users and their mailboxes sit in one `Mutex<HashMap<..>>`; a message is
//! copied into every recipient's mailbox and every online recipient's
//! outbox.
//!
//! What it leaves out, and the real server adds: the journal (a restart
//! loses everything), limits on queues and connections, the writer pool,
//! batched presence. docs/PERFORMANCE.md measures this shape as its
//! "before" column and says what each of those bought.
//!
//! As in the Book, `lock().unwrap()`: a thread that panicked while holding
//! the lock takes the others down with it.
//!
//! ```sh
//! cargo run -p chat-server --example textbook -- --port 5555
//! ```
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Instant;

use chat_common::auth::{Key, Opener};
use chat_common::frame::{Deadline, read_frame};
use chat_common::handshake::server_handshake;
use chat_common::keyfile::load_key;
use chat_common::log::{Level, log, unix_ms};
use chat_common::message::{ChatMsg, ClientMsg, ServerMsg};
use chat_common::validate::{nick_key, validate_nick, validate_text};
use chat_common::{DEFAULT_PORT, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, MAX_FRAME_LEN, MAX_TEXT_LEN};

/// Frames waiting for a connection's writer thread.
#[derive(Default)]
struct Outbox {
    queue: Mutex<(VecDeque<ServerMsg>, bool)>, // (frames, closed)
    ready: Condvar,
}

impl Outbox {
    fn push(&self, msg: ServerMsg) {
        self.queue.lock().unwrap().0.push_back(msg);
        self.ready.notify_one();
    }

    fn close(&self) {
        self.queue.lock().unwrap().1 = true;
        self.ready.notify_one();
    }
}

/// One registered nickname.
struct User {
    nick: String,
    verifier: [u8; 32],
    /// Messages not yet acknowledged, in id order.
    mailbox: VecDeque<ChatMsg>,
    last_client_id: u64,
    /// The connection logged in as this user: its number and its outbox.
    online: Option<(u64, Arc<Outbox>)>,
}

/// Everything the threads share, behind one lock.
struct Chat {
    users: HashMap<String, User>,
    next_id: u64,
}

type Shared = Arc<(Mutex<Chat>, Key)>;

fn main() {
    let (mut host, mut port, mut key_file) =
        ("127.0.0.1".to_string(), DEFAULT_PORT.to_string(), "chat.key".to_string());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_default();
        match flag.as_str() {
            "--host" => host = value(),
            "--port" => port = value(),
            "--key-file" => key_file = value(),
            "--memory" => {} // It always keeps everything in memory.
            _ => return eprintln!("usage: textbook [--host HOST] [--port PORT] [--key-file FILE]"),
        }
    }
    let key = match load_key(key_file.as_ref()) {
        Ok(key) => key,
        Err(err) => return eprintln!("textbook: {err}"),
    };
    let listener = match TcpListener::bind(format!("{host}:{port}")) {
        Ok(listener) => listener,
        Err(err) => return eprintln!("textbook: cannot listen on {host}:{port}: {err}"),
    };
    println!("listening on {}", listener.local_addr().map_or(port, |addr| addr.to_string()));
    let shared: Shared = Arc::new((Mutex::new(Chat { users: HashMap::new(), next_id: 1 }), key));
    for (id, stream) in listener.incoming().enumerate() {
        let Ok(stream) = stream else { continue };
        let shared = shared.clone();
        thread::spawn(move || serve(&shared, stream, id as u64));
    }
}

/// One connection, on its own thread, from handshake to close.
fn serve(shared: &Shared, stream: TcpStream, conn: u64) {
    let stream = Arc::new(stream);
    let (chat, key) = (&shared.0, &shared.1);
    let peer = stream.peer_addr().map_or("?".into(), |addr| addr.to_string());
    let mut timed = Deadline { stream: &stream, deadline: Instant::now() + HANDSHAKE_TIMEOUT };
    let side = match server_handshake(
        &mut timed,
        key,
        |nick| chat.lock().unwrap().users.get(&nick_key(nick)).map(|u| u.verifier),
        None,
    ) {
        Ok(side) => side,
        Err(err) => return log(Level::Warn, &peer, format_args!("handshake failed: {err}")),
    };
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let (mut reader, mut opener, mut sealer) = (BufReader::new(&*stream), side.opener, side.sealer);
    let (last_seen, register) = match read(&mut reader, &mut opener) {
        Some(ClientMsg::Login { last_seen, register }) => (last_seen, register),
        _ => return,
    };
    let outbox = Arc::new(Outbox::default());
    let nick = match login(chat, &side.nick, side.registered, last_seen, register, conn, &outbox) {
        Ok(nick) => nick,
        Err(reason) => {
            let mut frame = Vec::new();
            let reject = ServerMsg::Reject { reason };
            let mut payload = Vec::new();
            reject.encode_payload(&mut payload);
            sealer.seal(reject.kind(), &payload, &mut frame);
            return drop((&*stream).write_all(&frame));
        }
    };
    log(Level::Info, &nick, format_args!("logged in from {peer}"));
    // The writer: waits for frames, seals them in order, writes them.
    let (writer_outbox, writer_stream) = (outbox.clone(), stream.clone());
    let writer = thread::spawn(move || {
        loop {
            let mut queue = writer_outbox.queue.lock().unwrap();
            while queue.0.is_empty() && !queue.1 {
                queue = writer_outbox.ready.wait(queue).unwrap();
            }
            if queue.1 {
                return;
            }
            let mut bytes = Vec::new();
            for msg in queue.0.drain(..) {
                let mut payload = Vec::new();
                msg.encode_payload(&mut payload);
                sealer.seal(msg.kind(), &payload, &mut bytes);
            }
            drop(queue); // Lock, copy out, unlock, then write.
            if (&*writer_stream).write_all(&bytes).is_err() {
                return;
            }
        }
    });
    while let Some(msg) = read(&mut reader, &mut opener) {
        let mut chat = chat.lock().unwrap();
        match msg {
            ClientMsg::Send { client_id, to, text } => send(&mut chat, &nick, client_id, &to, &text, &outbox),
            ClientMsg::Ack { up_to } => {
                let user = chat.users.get_mut(&nick_key(&nick)).expect("logged in users exist");
                user.mailbox.retain(|msg| msg.id > up_to);
            }
            ClientMsg::Ping => outbox.push(ServerMsg::Pong),
            ClientMsg::Login { .. } => break,
        }
    }
    let mut chat = chat.lock().unwrap();
    let user = chat.users.get_mut(&nick_key(&nick)).expect("logged in users exist");
    if user.online.as_ref().is_some_and(|(online, _)| *online == conn) {
        user.online = None;
        tell_everyone(&chat, ServerMsg::Left { nicks: vec![nick.clone()] });
    }
    drop(chat);
    outbox.close();
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    log(Level::Info, &nick, format_args!("disconnected"));
}

/// Reads, verifies and decodes one frame; `None` ends the connection.
fn read(reader: &mut BufReader<&TcpStream>, opener: &mut Opener) -> Option<ClientMsg> {
    let mut frame = Vec::new();
    if !read_frame(reader, MAX_FRAME_LEN, &mut frame).ok()? {
        return None;
    }
    ClientMsg::decode(&opener.open(&frame).ok()?).ok()
}

/// Registers or logs in `nick`, queues WELCOME, the online list and the
/// mailbox, and tells everyone else.
fn login(
    chat: &Mutex<Chat>,
    nick: &str,
    registered: bool,
    last_seen: u64,
    register: Option<[u8; 32]>,
    conn: u64,
    outbox: &Arc<Outbox>,
) -> Result<String, String> {
    validate_nick(nick)?;
    let mut chat = chat.lock().unwrap();
    let key = nick_key(nick);
    match (registered, register) {
        (false, Some(verifier)) if !chat.users.contains_key(&key) => {
            let user = User { nick: nick.into(), verifier, mailbox: VecDeque::new(), last_client_id: 0, online: None };
            chat.users.insert(key.clone(), user);
        }
        (true, None) => {}
        _ => return Err("nickname taken, or LOGIN does not match the handshake".into()),
    }
    let user = chat.users.get_mut(&key).expect("registered just now or before");
    user.mailbox.retain(|msg| msg.id > last_seen);
    if let Some((_, old)) = user.online.replace((conn, outbox.clone())) {
        old.close();
    }
    let nick = user.nick.clone();
    let mailbox: Vec<ChatMsg> = user.mailbox.iter().cloned().collect();
    outbox.push(ServerMsg::Welcome { nick: nick.clone(), server_time_ms: unix_ms() });
    let online: Vec<String> = chat.users.values().filter(|u| u.online.is_some()).map(|u| u.nick.clone()).collect();
    let chunks: Vec<&[String]> = online.chunks(1000).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        outbox.push(ServerMsg::Users { last: index + 1 == chunks.len(), nicks: chunk.to_vec() });
    }
    for msg in mailbox {
        outbox.push(ServerMsg::Msg(msg));
    }
    for (other, user) in &chat.users {
        if let (Some((_, outbox)), true) = (&user.online, *other != key) {
            outbox.push(ServerMsg::Joined { nicks: vec![nick.clone()] });
        }
    }
    Ok(nick)
}

/// Stores a SEND in every recipient's mailbox, delivers it to those
/// online, and confirms it to the sender.
fn send(chat: &mut Chat, from: &str, client_id: u64, to: &str, text: &str, outbox: &Outbox) {
    if let Err(reason) = validate_text(text, MAX_TEXT_LEN) {
        return outbox.push(ServerMsg::Error { client_id, reason });
    }
    let (from_key, to_key) = (nick_key(from), nick_key(to));
    if !to.is_empty() && !chat.users.contains_key(&to_key) {
        return outbox.push(ServerMsg::Error { client_id, reason: format!("no such user: {to}") });
    }
    let sender = chat.users.get_mut(&from_key).expect("logged in users exist");
    if client_id <= sender.last_client_id {
        // A re-send of something already stored: confirm it again, once more.
        return outbox.push(ServerMsg::Sent { client_id, id: 0 });
    }
    sender.last_client_id = client_id;
    let id = chat.next_id;
    chat.next_id += 1;
    let to_nick = chat.users.get(&to_key).map_or(String::new(), |user| user.nick.clone());
    let msg = ChatMsg { id, time_ms: unix_ms(), from: from.into(), to: to_nick, text: text.into() };
    outbox.push(ServerMsg::Sent { client_id, id });
    for (key, user) in chat.users.iter_mut() {
        if to.is_empty() || *key == to_key || *key == from_key {
            user.mailbox.push_back(msg.clone());
            if let Some((_, outbox)) = &user.online {
                outbox.push(ServerMsg::Msg(msg.clone()));
            }
        }
    }
    log(Level::Info, from, format_args!("message {id} to {}", if to.is_empty() { "*" } else { to }));
}

/// Queues `msg` for every online user.
fn tell_everyone(chat: &Chat, msg: ServerMsg) {
    for (_, outbox) in chat.users.values().filter_map(|user| user.online.as_ref()) {
        outbox.push(msg.clone());
    }
}
