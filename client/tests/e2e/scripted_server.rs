//! A stand-in server for what the real one does only under pressure: it
//! speaks the real protocol (chat-common's handshake and sealing) but
//! answers by a script. It says that messages to the client were dropped
//! from a full mailbox (DROPPED [P-25]), and it cannot store the first
//! SENDs (RETRY [P-27]): after refusing one, it refuses every later SEND of
//! the session until that one comes again, as a server with full storage
//! does. It records every SEND it receives, so tests can check the order
//! in which they came. The Python client's test uses it too (`#[path]`).

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chat_common::MAX_FRAME_LEN;
use chat_common::auth::{Key, Sealer};
use chat_common::frame::read_frame;
use chat_common::handshake::server_handshake;
use chat_common::keyfile::create_key;
use chat_common::message::{ChatMsg, ClientMsg, ServerMsg};
use chat_common::validate::nick_key;

use crate::support::PATIENCE;

/// The reason RETRY gives.
pub const FULL: &str = "server storage is full";

/// What the server does.
#[derive(Clone, Copy)]
pub struct Script {
    /// How many SENDs to refuse with RETRY before storing any (the ones
    /// refused while waiting for a re-send are not counted).
    pub refuse: usize,
    /// DROPPED (count, limit) right after WELCOME, if any.
    pub dropped: Option<(u64, u64)>,
}

/// What became of a SEND.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered with RETRY.
    Retry,
    /// Stored as this message id.
    Stored(u64),
    /// A re-send of a stored one: answered SENT again, not stored.
    Duplicate,
}

/// One SEND, as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Which connection, counting from 0.
    pub connection: usize,
    pub client_id: u64,
    pub text: String,
    pub outcome: Outcome,
    /// When the answer went out.
    pub at: Instant,
}

/// What every connection shares.
#[derive(Default)]
struct Shared {
    /// Registered nicknames' token verifiers.
    verifiers: HashMap<String, [u8; 32]>,
    /// SENDs refused so far (not counting those refused while holding).
    refused: usize,
    /// Per nickname, client id → message id of what was stored.
    stored: HashMap<(String, u64), u64>,
    next_id: u64,
    log: Vec<Received>,
}

/// A running scripted server; it stops when dropped.
pub struct ScriptedServer {
    pub port: u16,
    pub key_file: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedServer {
    /// Listens on 127.0.0.1 with a new key in `dir`.
    pub fn start(dir: &Path, script: Script) -> ScriptedServer {
        fs::create_dir_all(dir).unwrap();
        let key_file = dir.join("chat.key");
        let key = create_key(&key_file).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Mutex::new(Shared { next_id: 1, ..Shared::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (accepted_shared, accepted_stop) = (shared.clone(), stop.clone());
        let thread = thread::spawn(move || {
            for (connection, stream) in listener.incoming().enumerate() {
                if accepted_stop.load(Ordering::SeqCst) {
                    break;
                }
                let (Ok(stream), key, shared) = (stream, key.clone(), accepted_shared.clone()) else { continue };
                thread::spawn(move || serve(stream, connection, &key, script, &shared));
            }
        });
        ScriptedServer { port, key_file, shared, stop, thread: Some(thread) }
    }

    /// Every SEND received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().log.clone()
    }
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        // Connecting to ourselves unblocks `accept`, which then sees the flag.
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn write(stream: &mut TcpStream, sealer: &mut Sealer, messages: &[ServerMsg]) -> bool {
    let (mut frames, mut payload) = (Vec::new(), Vec::new());
    for message in messages {
        payload.clear();
        message.encode_payload(&mut payload);
        sealer.seal(message.kind(), &payload, &mut frames);
    }
    stream.write_all(&frames).is_ok()
}

/// One connection, until it closes.
fn serve(mut stream: TcpStream, connection: usize, key: &Key, script: Script, shared: &Mutex<Shared>) {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let lookup = |nick: &str| shared.lock().unwrap().verifiers.get(&nick_key(nick)).copied();
    let Ok(side) = server_handshake(&mut stream, key, lookup, None) else { return };
    let (nick, mut sealer, mut opener) = (side.nick, side.sealer, side.opener);
    // The SEND this session waits for after a RETRY; every other is refused.
    let mut holding: Option<u64> = None;
    let mut frame = Vec::new();
    while let Ok(true) = read_frame(&mut stream, MAX_FRAME_LEN, &mut frame) {
        let Ok(message) = opener.open(&frame).and_then(|verified| ClientMsg::decode(&verified)) else { return };
        let answer = match message {
            ClientMsg::Login { register, .. } => {
                if let Some(verifier) = register {
                    shared.lock().unwrap().verifiers.insert(nick_key(&nick), verifier);
                }
                let mut answer = vec![
                    ServerMsg::Welcome { nick: nick.clone(), server_time_ms: now_ms() },
                    ServerMsg::Users { last: true, nicks: vec![nick.clone()] },
                ];
                answer.extend(script.dropped.map(|(count, limit)| ServerMsg::Dropped { count, limit }));
                answer
            }
            ClientMsg::Send { client_id, to, text } => {
                let mut shared = shared.lock().unwrap();
                let stored = shared.stored.get(&(nick_key(&nick), client_id)).copied();
                let outcome = match (stored, holding) {
                    (Some(_), _) => Outcome::Duplicate,
                    (None, Some(held)) if held != client_id => Outcome::Retry,
                    (None, _) if shared.refused < script.refuse => {
                        shared.refused += 1;
                        holding = Some(client_id);
                        Outcome::Retry
                    }
                    (None, _) => {
                        holding = None;
                        let id = shared.next_id;
                        shared.next_id += 1;
                        shared.stored.insert((nick_key(&nick), client_id), id);
                        Outcome::Stored(id)
                    }
                };
                shared.log.push(Received { connection, client_id, text: text.clone(), outcome, at: Instant::now() });
                match outcome {
                    Outcome::Retry => vec![ServerMsg::Retry { client_id, reason: FULL.into() }],
                    Outcome::Duplicate => vec![ServerMsg::Sent { client_id, id: stored.unwrap_or(0) }],
                    Outcome::Stored(id) => {
                        let echo = ChatMsg { id, time_ms: now_ms(), from: nick.clone(), to, text };
                        vec![ServerMsg::Sent { client_id, id }, ServerMsg::Msg(echo)]
                    }
                }
            }
            ClientMsg::Ping => vec![ServerMsg::Pong],
            ClientMsg::Ack { .. } => Vec::new(),
        };
        if !write(&mut stream, &mut sealer, &answer) {
            return;
        }
    }
}
