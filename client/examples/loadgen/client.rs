//! One simulated client: connect, handshake and log in with `chat-common`,
//! queue frames, read and verify many frames per read.

use super::*;

/// One logged-in connection with its read buffer and outgoing buffer.
pub struct Client {
    pub stream: TcpStream,
    pub sealer: Sealer,
    pub opener: Opener,
    /// Bytes read but not yet parsed live in `inbox[start..end]`.
    pub inbox: Vec<u8>,
    pub start: usize,
    pub end: usize,
    /// Sealed frames waiting for [`Client::flush`].
    pub out: Vec<u8>,
    pub payload: Vec<u8>,
    /// The owner token this client registered its nickname with.
    pub token: [u8; 32],
    /// Highest message id seen, and the highest acknowledged.
    pub max_id: u64,
    pub acked: u64,
    /// When the oldest unacknowledged message arrived.
    pub unacked_since: Option<Instant>,
}

impl Client {
    /// Connects, runs the handshake, logs in (registering the nickname with
    /// a new token if `token` is `None`) and reads up to WELCOME.
    pub fn connect(server: &Server, nick: &str, token: Option<[u8; 32]>, inbox: usize) -> Res<Client> {
        let fail = |what: &str, err: &dyn std::fmt::Display| format!("{nick}: {what}: {err}");
        let mut stream = TcpStream::connect(server.addr).map_err(|e| fail("connect", &e))?;
        let _ = stream.set_nodelay(true);
        stream.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| fail("socket", &e))?;
        stream.set_write_timeout(Some(Duration::from_secs(30))).map_err(|e| fail("socket", &e))?;
        let owned = match token {
            Some(token) => OwnerToken { token, accepted: true },
            None => OwnerToken { token: random_bytes().map_err(|e| fail("token", &e))?, accepted: false },
        };
        let token = owned.token;
        let side =
            client_handshake(&mut stream, &server.key, nick, Some(&owned), None).map_err(|e| fail("handshake", &e))?;
        let register = (!side.registered).then(|| token_verifier(&token));
        let mut client = Client {
            stream,
            sealer: side.sealer,
            opener: side.opener,
            inbox: vec![0; inbox],
            start: 0,
            end: 0,
            out: Vec::new(),
            payload: Vec::new(),
            token,
            max_id: 0,
            acked: 0,
            unacked_since: None,
        };
        client.queue(&ClientMsg::Login { last_seen: 0, register });
        client.flush()?;
        loop {
            while let Some((kind_byte, _)) = client.next_frame()? {
                match kind_byte {
                    kind::WELCOME => return Ok(client),
                    kind::REJECT => return Err(format!("{nick}: login rejected")),
                    _ => {}
                }
            }
            if client.fill()? == 0 {
                return Err(format!("{nick}: no WELCOME within 30 s"));
            }
        }
    }

    /// Seals a client message into the outgoing buffer.
    pub fn queue(&mut self, msg: &ClientMsg) {
        self.payload.clear();
        msg.encode_payload(&mut self.payload);
        self.sealer.seal(msg.kind(), &self.payload, &mut self.out);
    }

    /// Seals a public SEND without building a `ClientMsg` (no allocation).
    pub fn queue_send(&mut self, client_id: u64, text: &str) {
        self.payload.clear();
        put_u64(&mut self.payload, client_id);
        put_str(&mut self.payload, "");
        put_str(&mut self.payload, text);
        self.sealer.seal(kind::SEND, &self.payload, &mut self.out);
    }

    /// Queues one ACK for everything seen when the chat client would send
    /// it: [`ACK_DELAY`] after the oldest unacknowledged message, or at
    /// [`ACK_AFTER`] of them.
    pub fn queue_ack_if_due(&mut self) {
        if self.max_id == self.acked {
            return;
        }
        let since = *self.unacked_since.get_or_insert_with(Instant::now);
        if self.max_id - self.acked >= ACK_AFTER || since.elapsed() >= ACK_DELAY {
            (self.acked, self.unacked_since) = (self.max_id, None);
            self.queue(&ClientMsg::Ack { up_to: self.max_id });
        }
    }

    /// Writes everything queued with one call.
    pub fn flush(&mut self) -> Res<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.stream.write_all(&self.out).map_err(|err| format!("write: {err}"))?;
        self.out.clear();
        Ok(())
    }

    /// One read into the inbox. Returns the bytes read: 0 when the read
    /// timed out or would block; the server closing is an error.
    pub fn fill(&mut self) -> Res<usize> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        // Make room: slide what is left to the front, and grow for a frame
        // larger than the buffer (a long USERS list).
        let needed = match self.inbox[self.start..self.end].get(..LEN_PREFIX) {
            Some(prefix) => LEN_PREFIX + u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize,
            None => LEN_PREFIX,
        };
        if self.start > 0 && (self.inbox.len() - self.end < 4096 || self.start + needed > self.inbox.len()) {
            self.inbox.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if needed > self.inbox.len() && needed <= LEN_PREFIX + MAX_FRAME_LEN {
            self.inbox.resize(needed, 0);
        }
        if self.end == self.inbox.len() {
            // Full of whole frames nobody has taken yet: make room to read.
            self.inbox.resize(self.inbox.len() * 2, 0);
        }
        match self.stream.read(&mut self.inbox[self.end..]) {
            Ok(0) => Err("the server closed the connection".into()),
            Ok(n) => {
                self.end += n;
                Ok(n)
            }
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(0)
            }
            Err(err) => Err(format!("read: {err}")),
        }
    }

    /// Verifies the next whole frame in the inbox, if there is one, and
    /// returns its kind and where its payload is in `inbox`.
    pub fn next_frame(&mut self) -> Res<Option<(u8, Range<usize>)>> {
        let buffered = &self.inbox[self.start..self.end];
        let Some(len) = frame_len(buffered, MAX_FRAME_LEN).map_err(|err| err.to_string())? else { return Ok(None) };
        let kind_byte = if TRUST.load(Ordering::Relaxed) && len >= SEAL_OVERHEAD {
            buffered[LEN_PREFIX + 8]
        } else {
            self.opener.open(&buffered[..len]).map_err(|err| format!("server frame: {err}"))?.kind()
        };
        let payload = self.start + SEAL_OVERHEAD - TAG_LEN..self.start + len - TAG_LEN;
        self.start += len;
        Ok(Some((kind_byte, payload)))
    }
}

impl Client {
    /// Drops every whole frame in the inbox unverified: idle clients only
    /// keep their sockets drained, and n logins send them n²/2 JOINED
    /// frames, which would cost the load generator as much as the server.
    pub fn skip_frames(&mut self) -> Res<()> {
        while let Some(len) = frame_len(&self.inbox[self.start..self.end], MAX_FRAME_LEN).map_err(|e| e.to_string())? {
            self.start += len;
        }
        Ok(())
    }
}

/// Connects `count` clients named `prefix0`, `prefix1`, ... on
/// [`CONNECTORS`] threads and hands each to `each` with its index.
pub fn connect_many(
    server: &Server,
    prefix: &str,
    count: usize,
    inbox: usize,
    each: &(dyn Fn(usize, Client) + Sync),
) -> Res<()> {
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None);
    thread::scope(|scope| {
        for _ in 0..CONNECTORS.min(count) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        return;
                    }
                    match Client::connect(server, &format!("{prefix}{index}"), None, inbox) {
                        Ok(client) => each(index, client),
                        Err(err) => {
                            next.store(count, Ordering::Relaxed);
                            *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(err);
                            return;
                        }
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------- tallies

/// Reads once, counts every MSG, hands other frames to `other`, and
/// acknowledges them as the chat client does (one ACK per many reads).
pub fn receive(client: &mut Client, tally: &mut Tally, mut other: impl FnMut(u8, &[u8])) -> Res<()> {
    if client.fill()? == 0 {
        client.queue_ack_if_due();
        return client.flush();
    }
    let now = now_us();
    while let Some((kind_byte, range)) = client.next_frame()? {
        let payload = &client.inbox[range];
        match kind_byte {
            kind::MSG => {
                let id = tally.record(payload, now);
                client.max_id = client.max_id.max(id);
            }
            kind::ERROR => {
                tally.unexpected += 1;
                other(kind_byte, payload);
            }
            _ => other(kind_byte, payload),
        }
    }
    client.queue_ack_if_due();
    client.flush()
}

// ---------------------------------------------------------------- fanout
