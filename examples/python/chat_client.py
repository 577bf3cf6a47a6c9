#!/usr/bin/env python3
"""A reference hmac-chat client in Python 3, standard library only.

Written from docs/PROTOCOL.md alone, to show that it is enough; `[P-n]`
comments name the rule a line follows. Unix only (select on standard input).
Each line of standard input is sent to everyone; each message received is
printed as "from: text". At end of input it waits until the server has
confirmed (SENT) each message, then exits 0. A message the server cannot
store yet (RETRY) is sent again, with every later one, after --retry-secs.
Errors: one line on standard error, exit 1. It does not reconnect.
--self-test checks the test vectors.

The owner token is kept in a file beside the key file, NAME.token (mode
0600; NAME in lower case, as nicknames are compared case-insensitively),
with whether the server has accepted it and the last client_id used [P-22].
Lose it and nobody, you included, can log in as NAME again.
"""
import argparse, hashlib, hmac, os, re, select, socket, struct, sys, time, unicodedata

MAX_FRAME = 65536      # [P-2] the default limit on a frame body, in bytes
HANDSHAKE_SECS = 10    # [P-10] from connect to ACCEPT
PING_SECS = 20         # [P-26] send PING after this long with nothing sent
SILENT_SECS = 60       # [P-26] give up on a server silent this long
MAX_UNCONFIRMED = 256  # [P-22] SENDs in flight
HELLO, CHALLENGE, PROOF, ACCEPT, FAIL = 0x01, 0x02, 0x03, 0x04, 0x05
LOGIN, SEND, ACK, PING = 0x10, 0x11, 0x12, 0x13
WELCOME, REJECT, USERS, JOINED, LEFT, MSG, SENT, PONG, ERROR, RETRY, DROPPED, UNLISTED = range(0x20, 0x2C)
# The fields of each server message: Q u64, ? flag, s string, S u16 count of strings.
LAYOUTS = {WELCOME: "sQ", REJECT: "s", USERS: "?S", JOINED: "S", LEFT: "S",
           MSG: "QQsss", SENT: "QQ", PONG: "", ERROR: "Qs", RETRY: "Qs", DROPPED: "QQ",
           UNLISTED: "Q"}


def fail(message):
    raise SystemExit(f"chat_client: {message}")


def hmac256(key, data):
    return hmac.new(key, data, hashlib.sha256).digest()


def token_verifier(token):
    return hashlib.sha256(b"hmac-chat v1 owner token" + token).digest()


def derive_keys(transcript, ikm):
    """HKDF-SHA256 (RFC 5869) with salt T; one 32-byte block per label."""
    prk = hmac256(transcript, ikm)
    names = ["client to server", "server to client", "client proof", "server proof"]
    return {n: hmac256(prk, b"hmac-chat v1 " + n.encode() + b"\x01") for n in names}


def frame(body):
    return struct.pack(">I", len(body)) + body  # [P-1]


def string(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def seal(key, seq, kind, payload):
    head = struct.pack(">IQB", 8 + 1 + len(payload) + 32, seq, kind)
    return head + payload + hmac256(key, head + payload)


def open_sealed(key, want_seq, body):
    """Returns (kind, payload) of a sealed frame's body, or stops the client."""
    if len(body) < 8 + 1 + 32:
        fail(f"malformed frame: {len(body)} bytes is too short to be sealed")
    signed, tag = body[:-32], body[-32:]
    # SECURITY: the tag first, in constant time, before any field is read [P-13].
    if not hmac.compare_digest(tag, hmac256(key, struct.pack(">I", len(body)) + signed)):
        fail("bad tag: a frame was forged, altered or comes from another session")
    seq, kind = struct.unpack_from(">QB", signed)
    if seq != want_seq:  # [P-14] a replayed, reordered or deleted frame
        fail(f"unexpected sequence number {seq}, wanted {want_seq}")
    return kind, signed[9:]


def take_frame(buf):
    """Removes one whole frame body from the front of buf; None if more bytes are needed."""
    if len(buf) < 4:
        return None
    (length,) = struct.unpack_from(">I", buf)
    if length > MAX_FRAME:  # SECURITY: checked before we wait for the body [P-2].
        fail(f"frame of {length} bytes is longer than {MAX_FRAME}")
    if len(buf) < 4 + length:
        return None
    body = bytes(buf[4:4 + length])
    del buf[:4 + length]
    return body


def parse(data, layout):
    """Returns the fields of a message; anything short, invalid or left over stops us [P-3]."""
    values, pos = [], 0

    def take(n):
        nonlocal pos
        if pos + n > len(data):
            fail("malformed frame: a field is cut short")
        pos += n
        return data[pos - n:pos]

    def text():
        raw = take(int.from_bytes(take(2), "big"))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            fail("malformed frame: a string is not UTF-8")

    for code in layout:
        if code == "Q":
            values.append(int.from_bytes(take(8), "big"))
        elif code == "?":
            values.append(take(1)[0])
            if values[-1] > 1:
                fail(f"malformed frame: a flag is {values[-1]}")
        elif code == "s":
            values.append(text())
        elif code == "S":
            values.append([text() for _ in range(int.from_bytes(take(2), "big"))])
    if pos != len(data):
        fail(f"malformed frame: {len(data) - pos} bytes left over")
    return values


def shown(text):
    """Escapes control and format characters, so a peer cannot drive our terminal."""
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c)[0] == "C" else c for c in text)


def load_state(path):
    try:
        with open(path) as f:
            fields = dict(line.split("=", 1) for line in f.read().split())
        token = bytes.fromhex(fields["token"])
        if len(token) != 32:
            raise ValueError("the token is not 32 bytes")
        return {"token": token, "accepted": fields["accepted"] == "1", "client_id": int(fields["client_id"])}
    except FileNotFoundError:
        return {"token": None, "accepted": False, "client_id": 0}
    except (ValueError, KeyError) as e:
        fail(f"{path}: not a token file ({e})")


def save_state(path, state):
    """Writes a new file, syncs it, then renames it over the old: never half a token."""
    try:
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"token={state['token'].hex()}\naccepted={int(state['accepted'])}\n"
                    f"client_id={state['client_id']}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
    except OSError as e:
        fail(f"{path}: {e.strerror.lower()}")


def read_plain(sock, buf, deadline, want):
    """Reads one handshake frame of kind want; FAIL or any other kind stops us [P-11]."""
    while (body := take_frame(buf)) is None:
        sock.settimeout(max(0.01, deadline - time.monotonic()))  # [P-10] one deadline for all reads
        data = sock.recv(65536)
        if not data:
            fail("the server closed the connection during the handshake")
        buf += data
    if body[:1] == bytes([FAIL]):  # FAIL is not authenticated: it only ends this attempt
        fail(f"the server refused us: {shown(parse(body[1:], 's')[0])}")
    if body[:1] != bytes([want]):
        fail(f"unexpected handshake frame of kind {body[:1].hex() or 'none'}")
    return body


def handshake(sock, key, nick, state, token_path):
    """HELLO, CHALLENGE, PROOF, ACCEPT. Returns the keys, whether to register, leftover bytes."""
    deadline, buf, nonce = time.monotonic() + HANDSHAKE_SECS, bytearray(), os.urandom(32)
    hello = frame(bytes([HELLO, 1]) + nonce + string(nick))
    sock.sendall(hello)
    challenge = read_plain(sock, buf, deadline, CHALLENGE)
    if len(challenge) != 34 or challenge[33] > 1:
        fail("malformed CHALLENGE")
    if challenge[1:33] == nonce:  # [P-5] a reflected HELLO
        fail("the server sent back our own nonce")
    registered = challenge[33] == 1
    if registered and state["token"] is None:  # [P-6]
        fail(f"nickname belongs to another user (we have no {token_path})")
    if not registered and state["accepted"]:  # [P-6] never hand our verifier to an impostor
        fail("the server says our nickname is unregistered although it accepted our token: "
             "it lost its data or is not the real server")
    if not registered and state["token"] is None:
        state["token"] = os.urandom(32)  # [P-19] made and saved before LOGIN
        save_state(token_path, state)
    transcript = hashlib.sha256(hello + frame(challenge)).digest()
    keys = derive_keys(transcript, key + token_verifier(state["token"]) if registered else key)
    sock.sendall(frame(bytes([PROOF]) + hmac256(keys["client proof"], transcript)))
    accept = read_plain(sock, buf, deadline, ACCEPT)
    # SECURITY: constant-time check that the server holds the key (and our verifier) [P-9].
    if not hmac.compare_digest(accept[1:], hmac256(keys["server proof"], transcript)):
        fail("the server's proof is wrong: it does not hold the key")
    return keys, not registered, buf


class Connection:
    """A socket after ACCEPT: seals what we send and opens what we receive [P-12]."""

    def __init__(self, sock, keys, buf):
        self.sock, self.keys, self.buf = sock, keys, buf
        self.seq_out = self.seq_in = 0
        self.last_sent = self.last_heard = time.monotonic()

    def send(self, kind, payload=b""):
        self.sock.sendall(seal(self.keys["client to server"], self.seq_out, kind, payload))
        self.seq_out, self.last_sent = self.seq_out + 1, time.monotonic()

    def receive(self):
        data = self.sock.recv(65536)
        if not data:
            fail("the server closed the connection")
        self.buf += data
        self.last_heard = time.monotonic()

    def frames(self):
        """Yields (kind, fields) for each whole frame received so far."""
        while (body := take_frame(self.buf)) is not None:
            kind, payload = open_sealed(self.keys["server to client"], self.seq_in, body)
            self.seq_in += 1
            if kind not in LAYOUTS:  # [P-15]
                fail(f"unknown frame kind 0x{kind:02x}")
            yield kind, parse(payload, LAYOUTS[kind])


def handle(kind, fields, chat, state, token_path):
    """Acts on one server message; USERS, JOINED, LEFT, UNLISTED and PONG need nothing here."""
    if kind == WELCOME:
        chat["welcomed"] = True
        if not state["accepted"]:  # [P-6] from now on this token is never registered again
            state["accepted"] = True
            save_state(token_path, state)
    elif kind == REJECT:
        fail(f"login rejected: {shown(fields[0])}")
    elif kind == MSG and fields[0] > chat["last_seen"]:  # [P-24] drop duplicates by id
        print(f"{shown(fields[2])}: {shown(fields[4])}", flush=True)
        chat["last_seen"] = fields[0]
    elif kind == SENT:
        chat["pending"].pop(fields[0], None)
    elif kind == ERROR:
        if chat["pending"].pop(fields[0], None) is not None:
            chat["refused"] += 1
        print(f"chat_client: server error: {shown(fields[1])}", file=sys.stderr)
    elif kind == RETRY and fields[0] in chat["pending"]:
        # [P-27] Not stored, nor anything sent after it: all of it goes again later, in order.
        if chat["held_from"] is None:
            chat["resend_at"] = time.monotonic() + chat["retry_secs"]
            print(f"chat_client: not stored yet: {shown(fields[1])}; trying again in {chat['retry_secs']} s",
                  file=sys.stderr)
        chat["held_from"] = min(fields[0], chat["held_from"] or fields[0])
    elif kind == DROPPED:  # [P-25]
        print(f"chat_client: {fields[0]} messages to you were dropped unread: "
              f"your mailbox on the server was full (it keeps {fields[1]})", file=sys.stderr)


def resend_held(conn, chat):
    """After a RETRY's wait: sends again, in order, the held message and every later one."""
    if chat["held_from"] is None or time.monotonic() < chat["resend_at"]:
        return
    for client_id, text in chat["pending"].items():  # dicts keep insertion order: oldest first
        if client_id >= chat["held_from"]:
            conn.send(SEND, struct.pack(">Q", client_id) + string("") + string(text))
    chat["held_from"] = chat["resend_at"] = None


def send_lines(conn, chat, state, token_path):
    """Sends each whole line typed so far to everyone, keeping at most 256 in flight."""
    while b"\n" in chat["lines"] and len(chat["pending"]) < MAX_UNCONFIRMED and chat["held_from"] is None:
        line, _, chat["lines"] = chat["lines"].partition(b"\n")
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if text:
            state["client_id"] += 1  # [P-22] saved before use, so it keeps growing across runs
            save_state(token_path, state)
            chat["pending"][state["client_id"]] = text
            conn.send(SEND, struct.pack(">Q", state["client_id"]) + string("") + string(text))


def chat_loop(conn, register, state, token_path, retry_secs):
    """Logs in, then relays standard input and the server's messages until done."""
    # [P-17] last_seen 0: we ACK as we go, so the mailbox holds only what we never acknowledged.
    conn.send(LOGIN, struct.pack(">Q?", 0, register) + (token_verifier(state["token"]) if register else b""))
    chat = {"welcomed": False, "lines": b"", "stdin_open": True, "pending": {}, "last_seen": 0, "refused": 0,
            "held_from": None, "resend_at": None, "retry_secs": retry_secs}
    acked = 0
    # Blocking sends (a full buffer waits instead of failing); we only recv once select says ready.
    conn.sock.settimeout(SILENT_SECS)
    while not (chat["welcomed"] and not chat["stdin_open"] and not chat["lines"] and not chat["pending"]):
        reading = chat["welcomed"] and chat["stdin_open"] and b"\n" not in chat["lines"]
        wait = 1.0 if chat["resend_at"] is None else max(0.0, min(1.0, chat["resend_at"] - time.monotonic()))
        ready, _, _ = select.select([conn.sock] + ([sys.stdin] if reading else []), [], [], wait)
        if sys.stdin in ready:
            chunk = os.read(sys.stdin.fileno(), 65536)
            chat["lines"] += chunk or b"\n"  # at the end, a last line may lack its newline
            chat["stdin_open"] = bool(chunk)
        if conn.sock in ready:
            conn.receive()
        for kind, fields in conn.frames():
            handle(kind, fields, chat, state, token_path)
        resend_held(conn, chat)
        if chat["welcomed"]:
            send_lines(conn, chat, state, token_path)
        if chat["last_seen"] > acked:
            conn.send(ACK, struct.pack(">Q", chat["last_seen"]))
            acked = chat["last_seen"]
        if time.monotonic() - conn.last_sent >= PING_SECS:
            conn.send(PING)
        if time.monotonic() - conn.last_heard >= SILENT_SECS:
            fail(f"the server has been silent for {SILENT_SECS} s")
    if chat["refused"]:
        fail(f"the server refused {chat['refused']} of our messages")


def self_test():
    """Recomputes the test vectors of docs/PROTOCOL.md and compares them."""
    doc = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "PROTOCOL.md")
    with open(doc) as f:
        want = dict(re.findall(r"^(\w+) = ([0-9a-f]+)$", f.read(), re.M))
    key, token = bytes(range(32)), bytes([0x33]) * 32
    hello = frame(bytes([HELLO, 1]) + bytes([0x11]) * 32 + string("alice"))
    challenge = frame(bytes([CHALLENGE]) + bytes([0x22]) * 32 + b"\x01")
    transcript = hashlib.sha256(hello + challenge).digest()
    keys = derive_keys(transcript, key + token_verifier(token))
    msg = struct.pack(">QQ", 42, 1795830283007) + string("bob") + string("") + string("hola")
    got = {"hello_frame": hello, "challenge_frame": challenge, "transcript_hash": transcript,
           "token_verifier": token_verifier(token),
           "client_proof": hmac256(keys["client proof"], transcript),
           "server_proof": hmac256(keys["server proof"], transcript),
           "login_frame_seq0": seal(keys["client to server"], 0, LOGIN, struct.pack(">Q?", 41, False)),
           "msg_frame_seq1": seal(keys["server to client"], 1, MSG, msg)}
    got.update({name.replace(" ", "_") + "_key": k for name, k in keys.items()})
    differ = sorted(n for n in want.keys() | got.keys() if n not in got or got[n].hex() != want.get(n))
    if differ:
        fail(f"self-test: {', '.join(differ)} differ from {doc}")
    kind, payload = open_sealed(keys["server to client"], 1, got["msg_frame_seq1"][4:])
    if kind != MSG or parse(payload, LAYOUTS[MSG]) != [42, 1795830283007, "bob", "", "hola"]:
        fail("self-test: the MSG frame does not open")
    print(f"self-test: {len(got)} test vectors match")


def main():
    parser = argparse.ArgumentParser(description="hmac-chat reference client (see docs/PROTOCOL.md)")
    parser.add_argument("--nick", metavar="NAME", help="nickname: 1-32 ASCII letters, digits, _ - .")
    parser.add_argument("--host", metavar="H", default="127.0.0.1", help="server host (default 127.0.0.1)")
    parser.add_argument("--port", metavar="P", type=int, default=5555, help="server port (default 5555)")
    parser.add_argument("--key-file", metavar="F", default="chat.key", help="the shared key (default chat.key)")
    parser.add_argument("--retry-secs", metavar="S", type=float, default=5.0,
                        help="wait after RETRY before sending again (default 5)")
    parser.add_argument("--self-test", action="store_true", help="check the test vectors, then exit")
    args = parser.parse_args()
    if args.self_test:
        return self_test()
    if not 0.01 <= args.retry_secs <= 86400:
        fail("--retry-secs must be between 0.01 and 86400")
    # [P-18]; this also keeps the nickname safe to put in a file name.
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", args.nick or ""):
        fail("--nick needs 1-32 ASCII letters, digits, _ - or .")
    try:
        with open(args.key_file) as f:
            key = bytes.fromhex(f.read().strip())
    except (OSError, ValueError) as e:
        fail(f"{args.key_file}: {getattr(e, 'strerror', 'not 64 hex digits').lower()}")
    if len(key) != 32:
        fail(f"{args.key_file}: not 64 hex digits")
    token_path = os.path.join(os.path.dirname(args.key_file), args.nick.lower() + ".token")
    state = load_state(token_path)
    try:
        with socket.create_connection((args.host, args.port), timeout=HANDSHAKE_SECS) as sock:
            keys, register, buf = handshake(sock, key, args.nick, state, token_path)
            chat_loop(Connection(sock, keys, buf), register, state, token_path, args.retry_secs)
    except OSError as e:
        fail(f"{args.host}:{args.port}: {(e.strerror or str(e)).lower()}")


if __name__ == "__main__":
    main()
