-- hmac-chat.lua: a Wireshark dissector for the hmac-chat protocol
-- (docs/PROTOCOL.md), with tag checking. docs/WIRESHARK.md shows how to
-- install it and read a capture.
--
-- It decodes TCP port 5555 (other ports: Decode As... > hmacchat), puts
-- frames split across TCP segments back together, and names every field
-- (hmacchat.seq, hmacchat.kind, hmacchat.text, ...). Given the shared key
-- file in its preferences (and, for registered nicknames, their owner-token
-- verifiers), it derives each session's keys from the captured HELLO and
-- CHALLENGE exactly as PROTOCOL.md says, then reports every proof and
-- every tag as verified or bad, and every sequence number out of order.
--
-- It holds the key only to check tags, like a receiver: it never shows the
-- key, a verifier from the preferences, or a derived key.
--
-- Plain Lua 5.2 (Wireshark 4.0) with its bit32 library: no C module to
-- build. One file on purpose, sections in order (crypto, protocol, state,
-- decoding, TCP, self-test), so that installing it is copying it.
-- `tshark -G protocols -X lua_script:hmac-chat.lua -X lua_script1:selftest`
-- checks the SHA-256, HMAC and HKDF below against RFC vectors and
-- PROTOCOL.md's test vectors, then exits.

local script_args = { ... }

local band, bnot, bxor, rrotate, rshift = bit32.band, bit32.bnot, bit32.bxor, bit32.rrotate, bit32.rshift

---------------------------------------------------------------------------
-- SHA-256 (FIPS 180-4), HMAC (RFC 2104) and HKDF (RFC 5869) on Lua strings.
---------------------------------------------------------------------------

local K = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

-- Lua 5.2 numbers are doubles: sums of a few 32-bit words stay exact, and
-- `% WORD` brings them back to 32 bits.
local WORD = 4294967296

local function be32(value)
    return string.char(rshift(value, 24), band(rshift(value, 16), 0xff), band(rshift(value, 8), 0xff), band(value, 0xff))
end

local function sha256(message)
    local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
    local bits = #message * 8
    -- Padding: 0x80, zeros up to 56 mod 64, then the length in bits as a u64.
    local padded = message .. "\128" .. string.rep("\0", (55 - #message) % 64)
        .. be32(math.floor(bits / WORD)) .. be32(bits % WORD)
    local w = {}
    for block = 1, #padded, 64 do
        for i = 0, 15 do
            local a, b, c, d = padded:byte(block + 4 * i, block + 4 * i + 3)
            w[i] = ((a * 256 + b) * 256 + c) * 256 + d
        end
        for i = 16, 63 do
            local s0 = bxor(rrotate(w[i - 15], 7), rrotate(w[i - 15], 18), rshift(w[i - 15], 3))
            local s1 = bxor(rrotate(w[i - 2], 17), rrotate(w[i - 2], 19), rshift(w[i - 2], 10))
            w[i] = (w[i - 16] + s0 + w[i - 7] + s1) % WORD
        end
        local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
        for i = 0, 63 do
            local s1 = bxor(rrotate(e, 6), rrotate(e, 11), rrotate(e, 25))
            local choice = bxor(band(e, f), band(bnot(e), g))
            local t1 = (hh + s1 + choice + K[i + 1] + w[i]) % WORD
            local s0 = bxor(rrotate(a, 2), rrotate(a, 13), rrotate(a, 22))
            local majority = bxor(band(a, b), band(a, c), band(b, c))
            hh, g, f, e, d, c, b, a = g, f, e, (d + t1) % WORD, c, b, a, (t1 + s0 + majority) % WORD
        end
        h[1], h[2], h[3], h[4] = (h[1] + a) % WORD, (h[2] + b) % WORD, (h[3] + c) % WORD, (h[4] + d) % WORD
        h[5], h[6], h[7], h[8] = (h[5] + e) % WORD, (h[6] + f) % WORD, (h[7] + g) % WORD, (h[8] + hh) % WORD
    end
    local out = {}
    for i = 1, 8 do
        out[i] = be32(h[i])
    end
    return table.concat(out)
end

local function xor_bytes(text, byte)
    return (text:gsub(".", function(c) return string.char(bxor(c:byte(), byte)) end))
end

local function hmac_sha256(key, message)
    -- RFC 2104: keys longer than a block are hashed first, shorter ones padded.
    if #key > 64 then
        key = sha256(key)
    end
    key = key .. string.rep("\0", 64 - #key)
    return sha256(xor_bytes(key, 0x5c) .. sha256(xor_bytes(key, 0x36) .. message))
end

local function hkdf_extract(salt, ikm)
    return hmac_sha256(salt, ikm)
end

-- HKDF-Expand to one 32-byte block: all PROTOCOL.md needs.
local function hkdf_expand32(prk, info)
    return hmac_sha256(prk, info .. "\1")
end

local function to_hex(bytes)
    return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Returns the bytes, or nil when `hex` is not exactly `len` bytes of hex.
local function from_hex(hex, len)
    if #hex ~= 2 * len or hex:find("[^0-9a-fA-F]") then
        return nil
    end
    return (hex:gsub("..", function(pair) return string.char(tonumber(pair, 16)) end))
end

---------------------------------------------------------------------------
-- The protocol: kinds, fields, expert infos, preferences.
---------------------------------------------------------------------------

local KIND = {
    HELLO = 0x01, CHALLENGE = 0x02, PROOF = 0x03, ACCEPT = 0x04, FAIL = 0x05,
    LOGIN = 0x10, SEND = 0x11, ACK = 0x12, PING = 0x13,
    WELCOME = 0x20, REJECT = 0x21, USERS = 0x22, JOINED = 0x23, LEFT = 0x24,
    MSG = 0x25, SENT = 0x26, PONG = 0x27, ERROR = 0x28, RETRY = 0x29, DROPPED = 0x2a,
    UNLISTED = 0x2b,
}
local KIND_NAMES = {}
for name, value in pairs(KIND) do
    KIND_NAMES[value] = name
end

local LABELS = {
    c2s = "hmac-chat v1 client to server",
    s2c = "hmac-chat v1 server to client",
    client_proof = "hmac-chat v1 client proof",
    server_proof = "hmac-chat v1 server proof",
    owner_token = "hmac-chat v1 owner token",
}
local LEN_PREFIX, SEQ_LEN, TAG_LEN, NONCE_LEN = 4, 8, 32, 32
-- Smallest sealed frame: prefix, seq, kind, no payload, tag.
local MIN_SEALED = LEN_PREFIX + SEQ_LEN + 1 + TAG_LEN
local ARROWS = { c2s = "C→S", s2c = "S→C" }
local DIRECTIONS = { c2s = "client → server", s2c = "server → client" }
local FLAG_NAMES = { [0] = "no", [1] = "yes" }

local hmacchat = Proto("hmacchat", "hmac-chat")

local F = {
    len = ProtoField.uint32("hmacchat.len", "Length", base.DEC, nil, nil, "Body length: the bytes after this prefix"),
    seq = ProtoField.uint64("hmacchat.seq", "Sequence number", base.DEC),
    kind = ProtoField.uint8("hmacchat.kind", "Kind", base.HEX, KIND_NAMES),
    version = ProtoField.uint8("hmacchat.version", "Version", base.DEC),
    nonce = ProtoField.bytes("hmacchat.nonce", "Nonce"),
    nick = ProtoField.string("hmacchat.nick", "Nickname"),
    registered = ProtoField.uint8("hmacchat.registered", "Registered", base.DEC, FLAG_NAMES),
    reason = ProtoField.string("hmacchat.reason", "Reason"),
    last_seen = ProtoField.uint64("hmacchat.last_seen", "Last seen message id", base.DEC),
    register = ProtoField.uint8("hmacchat.register", "Registers the nickname", base.DEC, FLAG_NAMES),
    verifier = ProtoField.bytes("hmacchat.verifier", "Owner-token verifier"),
    client_id = ProtoField.uint64("hmacchat.client_id", "Client message id", base.DEC),
    to = ProtoField.string("hmacchat.to", "To"),
    text = ProtoField.string("hmacchat.text", "Text"),
    up_to = ProtoField.uint64("hmacchat.up_to", "Acknowledged up to id", base.DEC),
    server_time = ProtoField.uint64("hmacchat.server_time_ms", "Server time (Unix ms)", base.DEC),
    last = ProtoField.uint8("hmacchat.last", "Last chunk", base.DEC, FLAG_NAMES),
    count = ProtoField.uint16("hmacchat.count", "Count", base.DEC),
    id = ProtoField.uint64("hmacchat.id", "Message id", base.DEC),
    time = ProtoField.uint64("hmacchat.time_ms", "Stored at (Unix ms)", base.DEC),
    from = ProtoField.string("hmacchat.from", "From"),
    dropped = ProtoField.uint64("hmacchat.dropped", "Messages dropped", base.DEC),
    unlisted = ProtoField.uint64("hmacchat.unlisted", "Online, not listed", base.DEC),
    limit = ProtoField.uint64("hmacchat.limit", "Mailbox limit", base.DEC),
    payload = ProtoField.bytes("hmacchat.payload", "Payload"),
    tag = ProtoField.bytes("hmacchat.tag", "Tag"),
    -- Generated: what the dissector concluded, not bytes on the wire.
    direction = ProtoField.string("hmacchat.direction", "Direction"),
    keys = ProtoField.string("hmacchat.keys", "Session keys"),
    tag_status = ProtoField.string("hmacchat.tag.status", "Tag status"),
    tag_verified = ProtoField.bool("hmacchat.tag.verified", "Tag verified"),
    seq_expected = ProtoField.uint64("hmacchat.seq.expected", "Expected sequence number", base.DEC),
}
hmacchat.fields = F

local E = {
    bad_tag = ProtoExpert.new("hmacchat.bad_tag", "Bad tag", expert.group.CHECKSUM, expert.severity.ERROR),
    bad_proof = ProtoExpert.new("hmacchat.bad_proof", "Bad handshake proof", expert.group.CHECKSUM,
        expert.severity.ERROR),
    wrong_seq = ProtoExpert.new("hmacchat.wrong_seq", "Wrong sequence number", expert.group.SEQUENCE,
        expert.severity.ERROR),
    malformed = ProtoExpert.new("hmacchat.malformed", "Malformed frame", expert.group.MALFORMED,
        expert.severity.ERROR),
    reflected = ProtoExpert.new("hmacchat.reflected", "Equal nonces: a reflected HELLO", expert.group.SECURITY,
        expert.severity.ERROR),
    refused = ProtoExpert.new("hmacchat.refused", "Refused", expert.group.RESPONSE_CODE, expert.severity.WARN),
    unchecked = ProtoExpert.new("hmacchat.unchecked", "Tags not checked", expert.group.DECRYPTION,
        expert.severity.NOTE),
}
hmacchat.experts = { E.bad_tag, E.bad_proof, E.wrong_seq, E.malformed, E.reflected, E.refused, E.unchecked }

hmacchat.prefs.key_file = Pref.string("Key file", "",
    "The shared key file (64 hex digits), e.g. /home/me/chat.key. Without it frames are decoded but tags are not checked.")
hmacchat.prefs.verifiers = Pref.string("Owner-token verifiers", "",
    "For registered nicknames: nick=64 hex digits, several separated by commas or spaces. "
    .. "A verifier is SHA-256(\"hmac-chat v1 owner token\" || token); docs/WIRESHARK.md shows how to print one.")
hmacchat.prefs.max_frame = Pref.uint("Largest frame body (bytes)", 65536,
    "Longer frames are marked malformed, as the receiver closes the connection (server flag --max-frame).")

-- What the preferences say, read when they change and at each (re)load.
local settings = { key = nil, key_problem = "no key file in the preferences", verifiers = {}, max_frame = 65536 }

local function load_settings()
    settings.max_frame = hmacchat.prefs.max_frame
    settings.key, settings.key_problem = nil, nil
    local path = hmacchat.prefs.key_file
    if path == nil or path == "" then
        settings.key_problem = "no key file in the preferences"
    else
        local file, err = io.open(path, "rb")
        if not file then
            settings.key_problem = "key file: " .. tostring(err)
        else
            local text = file:read("*a") or ""
            file:close()
            settings.key = from_hex(text:gsub("%s+$", ""), 32)
            if not settings.key then
                settings.key_problem = "key file " .. path .. ": expected 64 hex digits"
            end
        end
    end
    settings.verifiers = {}
    for entry in (hmacchat.prefs.verifiers or ""):gmatch("[^,;%s]+") do
        local nick, hex = entry:match("^([^=]+)=(.*)$")
        if nick then
            -- Nicknames are compared case-insensitively [P-18].
            settings.verifiers[nick:lower()] = from_hex(hex, 32) or false
        end
    end
end

---------------------------------------------------------------------------
-- Per-connection state, built on the first pass in capture order.
---------------------------------------------------------------------------

-- tcp.stream number -> session; see new_session for the fields.
local sessions = {}
-- "frame:n" -> what observe() concluded about the n-th frame of hmac-chat
-- in that packet, so later passes (a click in the GUI) show the same.
local verdicts = {}
-- Numbers the frames within one packet; reset between packets.
local current_packet, frames_in_packet = nil, 0

local function new_session()
    return {
        client = nil,      -- "address:port" of the side that sent HELLO
        hello = nil,       -- the HELLO and CHALLENGE frames, length prefixes included
        challenge = nil,
        nick = nil,
        nonce = nil,       -- the client's nonce, to catch a reflected HELLO
        keys = nil,        -- the four derived keys, when they could be derived
        transcript = nil,
        unchecked = "the handshake is not in the capture",
        sealed = nil,      -- per direction: true after PROOF / ACCEPT; nil before HELLO is seen
        next_seq = {},     -- per direction: the number the next sealed frame must carry
        broken = {},       -- per direction: a framing error; the rest of the stream is not framed
    }
end

local function session_for(stream)
    local session = sessions[stream]
    if not session then
        session = new_session()
        sessions[stream] = session
    end
    return session
end

-- Big-endian u64 at `at` (1-based) in a Lua string, as a UInt64.
local function u64_at(bytes, at)
    local hi = ((bytes:byte(at) * 256 + bytes:byte(at + 1)) * 256 + bytes:byte(at + 2)) * 256 + bytes:byte(at + 3)
    local lo = ((bytes:byte(at + 4) * 256 + bytes:byte(at + 5)) * 256 + bytes:byte(at + 6)) * 256 + bytes:byte(at + 7)
    return UInt64(lo, hi)
end

local function derive_keys(session, registered)
    if not settings.key then
        return nil, settings.key_problem
    end
    local ikm, how = settings.key, "from the key file"
    if registered then
        local verifier = settings.verifiers[(session.nick or ""):lower()]
        if verifier == nil then
            return nil, "no verifier for the registered nickname " .. string.format("%q", session.nick or "")
                .. " in the preferences"
        elseif verifier == false then
            return nil, "the verifier for " .. string.format("%q", session.nick or "")
                .. " in the preferences is not 64 hex digits"
        end
        ikm, how = ikm .. verifier, "from the key file and the verifier for " .. string.format("%q", session.nick)
    end
    local prk = hkdf_extract(session.transcript, ikm)
    local keys = {}
    for _, name in ipairs({ "c2s", "s2c", "client_proof", "server_proof" }) do
        keys[name] = hkdf_expand32(prk, LABELS[name])
    end
    return keys, how
end

-- The handshake frames each direction sends, in order [P-11].
local HANDSHAKE_ORDER = { c2s = { KIND.HELLO, KIND.PROOF }, s2c = { KIND.CHALLENGE, KIND.ACCEPT } }

-- Updates `session` with one whole frame (a Lua string, prefix included)
-- sent in direction `dir`, and returns what a reader of the capture should
-- be told: { handshake, tag = "verified"|"bad"|nil, note, expected, ... }.
local function observe(session, dir, frame)
    local result = { dir = dir }
    local first = frame:byte(LEN_PREFIX + 1)
    if session.sealed then
        result.handshake = not session.sealed[dir]
    else
        -- No HELLO seen: a sealed frame starts with the high byte of its
        -- seq (0 for the first 2^56 frames), a handshake frame with 1 to 5.
        result.handshake = first ~= nil and first >= KIND.HELLO and first <= KIND.FAIL
    end
    if result.handshake then
        if first == KIND.HELLO and dir == "c2s" and #frame >= LEN_PREFIX + 2 + NONCE_LEN + 2 then
            -- A new handshake: forget everything but who the client is.
            local client = session.client
            for name in pairs(session) do
                session[name] = nil
            end
            for name, value in pairs(new_session()) do
                session[name] = value
            end
            session.client = client
            session.hello, session.sealed = frame, { c2s = false, s2c = false }
            session.nonce = frame:sub(LEN_PREFIX + 3, LEN_PREFIX + 2 + NONCE_LEN)
            session.nick = frame:sub(LEN_PREFIX + 3 + NONCE_LEN + 2)
            session.handshake_step = { c2s = 2, s2c = 1 }
            if frame:byte(LEN_PREFIX + 2) ~= 1 then
                result.refused = "unsupported version: the server answers FAIL [P-4]"
            end
            session.unchecked = "the handshake did not finish"
            return result
        end
        if first == KIND.FAIL then
            session.unchecked = "the handshake failed"
            return result
        end
        local steps = session.handshake_step
        local wanted = steps and HANDSHAKE_ORDER[dir][steps[dir]]
        if not wanted then
            result.note = session.hello and "not a handshake frame the receiver accepts here [P-11]"
                or "not checked: the start of the handshake is not in the capture"
            result.out_of_order = session.hello ~= nil
            return result
        end
        if first ~= wanted then
            result.note = "expected " .. KIND_NAMES[wanted] .. " here [P-11]"
            result.out_of_order = true
            return result
        end
        steps[dir] = steps[dir] + 1
        if first == KIND.CHALLENGE and #frame == LEN_PREFIX + 2 + NONCE_LEN then
            session.challenge = frame
            session.transcript = sha256(session.hello .. frame)
            if frame:sub(LEN_PREFIX + 2, LEN_PREFIX + 1 + NONCE_LEN) == session.nonce then
                result.reflected = true
            end
            session.keys, result.keys = derive_keys(session, frame:byte(-1) == 1)
            result.keys_missing = session.keys == nil
            session.unchecked = result.keys_missing and result.keys or nil
        elseif first == KIND.PROOF or first == KIND.ACCEPT then
            session.sealed[dir] = true
            session.next_seq[dir] = UInt64(0)
            if session.keys and #frame == LEN_PREFIX + 1 + TAG_LEN then
                local key = first == KIND.PROOF and session.keys.client_proof or session.keys.server_proof
                -- Plain `==` is fine here: a dissector reveals nothing by its timing.
                result.tag = hmac_sha256(key, session.transcript) == frame:sub(-TAG_LEN) and "verified" or "bad"
            else
                result.note = "not checked: " .. (session.unchecked or "malformed")
            end
        end
        return result
    end

    if #frame < MIN_SEALED then
        result.note = "not checked: too short for a sealed frame"
        return result
    end
    local seq = u64_at(frame, LEN_PREFIX + 1)
    if session.keys then
        local key = session.keys[dir]
        result.tag = hmac_sha256(key, frame:sub(1, -TAG_LEN - 1)) == frame:sub(-TAG_LEN) and "verified" or "bad"
    else
        result.note = "not checked: " .. session.unchecked
    end
    local want = session.next_seq[dir]
    if result.tag == "bad" then
        -- Its seq cannot be trusted; count the frame as taking one place.
        session.next_seq[dir] = want and want + 1
        return result
    end
    if want and seq ~= want then
        result.expected = want
    end
    -- Count on from this frame, so one deleted frame is reported once.
    session.next_seq[dir] = seq + 1
    return result
end

---------------------------------------------------------------------------
-- Decoding one frame into the tree.
---------------------------------------------------------------------------

-- Rust's str::from_utf8 rules: no overlong forms, no surrogates, at most U+10FFFF.
local function valid_utf8(bytes)
    local i, n = 1, #bytes
    while i <= n do
        local c = bytes:byte(i)
        local len, min
        if c < 0x80 then len, min = 1, 0
        elseif c >= 0xc2 and c <= 0xdf then len, min = 2, 0x80
        elseif c >= 0xe0 and c <= 0xef then len, min = 3, 0x800
        elseif c >= 0xf0 and c <= 0xf4 then len, min = 4, 0x10000
        else return false end
        if i + len - 1 > n then return false end
        local code = c % (2 ^ (8 - len - (len > 1 and 1 or 0)))
        for j = i + 1, i + len - 1 do
            local cc = bytes:byte(j)
            if cc < 0x80 or cc > 0xbf then return false end
            code = code * 64 + (cc - 0x80)
        end
        if code < min or code > 0x10ffff or (code >= 0xd800 and code <= 0xdfff) then return false end
        i = i + len
    end
    return true
end

-- A short quoted form of a text for the Info column: control characters
-- escaped, cut after 40 bytes at a character boundary.
local function quote(text)
    local cut = #text > 40
    if cut then
        local stop = 40
        while stop > 1 and band(text:byte(stop + 1) or 0, 0xc0) == 0x80 do
            stop = stop - 1
        end
        text = text:sub(1, stop)
    end
    text = text:gsub("[%c\"\\]", function(c)
        return (c == '"' or c == "\\") and "\\" .. c or string.format("\\x%02x", c:byte())
    end)
    return '"' .. text .. '"' .. (cut and "…" or "")
end

local function utc_ms(value)
    local ms = value and value:tonumber() or 0
    return os.date("!%Y-%m-%d %H:%M:%S", math.floor(ms / 1000)) .. string.format(".%03d UTC", ms % 1000)
end

-- Reads fields off a payload into the tree, remembering the first problem
-- (then reading no further) the way the receivers' decoders do [P-3].
local Reader = {}
Reader.__index = Reader

local function reader(tvb, tree, offset, limit)
    return setmetatable({ tvb = tvb, tree = tree, offset = offset, limit = limit }, Reader)
end

function Reader:take(len, name)
    if self.problem then return nil end
    if self.offset + len > self.limit then
        self.problem = "truncated in " .. name
        return nil
    end
    local range = len > 0 and self.tvb(self.offset, len) or nil
    self.offset = self.offset + len
    return range or true
end

function Reader:u64(field, name)
    local range = self:take(8, name)
    if not range then return nil end
    return range:uint64(), self.tree:add(field, range)
end

function Reader:u8(field, name)
    local range = self:take(1, name)
    if not range then return nil end
    self.tree:add(field, range)
    return range:uint()
end

function Reader:flag(field, name)
    local value = self:u8(field, name)
    if value and value > 1 then
        self.problem = name .. " flag is " .. value
    end
    return value == 1
end

function Reader:bytes(field, len, name)
    local range = self:take(len, name)
    if range then self.tree:add(field, range) end
    return range
end

function Reader:string(field, name)
    local start = self.offset
    local prefix = self:take(2, name)
    if not prefix then return nil end
    local body = self:take(prefix:uint(), name)
    if not body then return nil end
    local raw = body == true and "" or body:raw()
    -- Shown as Wireshark decodes it: invalid sequences become U+FFFD.
    local shown = body == true and "" or body:string(ENC_UTF_8)
    local item = self.tree:add(field, self.tvb(start, self.offset - start), shown)
    if not valid_utf8(raw) then
        self.problem = "invalid UTF-8 in " .. name
    end
    return shown, item
end

function Reader:nicks()
    local range = self:take(2, "count")
    if not range then return {} end
    self.tree:add(F.count, range)
    local names = {}
    for _ = 1, range:uint() do
        local nick = self:string(F.nick, "nicks")
        if not nick then break end
        names[#names + 1] = nick
    end
    return names
end

function Reader:finish()
    if not self.problem and self.offset < self.limit then
        self.problem = (self.limit - self.offset) .. " trailing bytes"
    end
    return self.problem
end

local function list(names)
    return "[" .. table.concat(names, ", ") .. "]"
end

-- Each kind's fields after the kind byte; each returns a summary for the
-- Info column. Handshake frames and sealed payloads alike.
local LAYOUTS = {
    [KIND.HELLO] = function(r)
        local version = r:u8(F.version, "version")
        r:bytes(F.nonce, NONCE_LEN, "nonce")
        local nick = r:string(F.nick, "nick")
        return quote(nick or "") .. " v" .. tostring(version)
    end,
    [KIND.CHALLENGE] = function(r)
        r:bytes(F.nonce, NONCE_LEN, "nonce")
        return r:flag(F.registered, "registered") and "registered" or "unregistered"
    end,
    [KIND.PROOF] = function(r) r:bytes(F.tag, TAG_LEN, "tag") return "" end,
    [KIND.ACCEPT] = function(r) r:bytes(F.tag, TAG_LEN, "tag") return "" end,
    [KIND.FAIL] = function(r) return quote(r:string(F.reason, "reason") or "") end,
    [KIND.LOGIN] = function(r)
        local last_seen = r:u64(F.last_seen, "last_seen")
        local register = r:flag(F.register, "register")
        if register then r:bytes(F.verifier, 32, "verifier") end
        return "last_seen=" .. tostring(last_seen) .. (register and ", registers" or "")
    end,
    [KIND.SEND] = function(r)
        local client_id = r:u64(F.client_id, "client_id")
        local to, to_item = r:string(F.to, "to")
        if to == "" then to_item:set_text("To: (everyone)") end
        local text = r:string(F.text, "text")
        return "client_id=" .. tostring(client_id) .. " to=" .. (to == "" and "*" or tostring(to)) .. " " .. quote(text or "")
    end,
    [KIND.ACK] = function(r) return "up_to=" .. tostring(r:u64(F.up_to, "up_to")) end,
    [KIND.PING] = function() return "" end,
    [KIND.WELCOME] = function(r)
        local nick = r:string(F.nick, "nick")
        local time, time_item = r:u64(F.server_time, "server_time_ms")
        if time_item then time_item:append_text(" (" .. utc_ms(time) .. ")") end
        return quote(nick or "") .. " at " .. utc_ms(time)
    end,
    [KIND.REJECT] = function(r) return quote(r:string(F.reason, "reason") or "") end,
    [KIND.USERS] = function(r)
        local last = r:flag(F.last, "last")
        return list(r:nicks()) .. (last and "" or " (more follow)")
    end,
    [KIND.JOINED] = function(r) return list(r:nicks()) end,
    [KIND.LEFT] = function(r) return list(r:nicks()) end,
    [KIND.MSG] = function(r)
        local id = r:u64(F.id, "id")
        local time, time_item = r:u64(F.time, "time_ms")
        if time_item then time_item:append_text(" (" .. utc_ms(time) .. ")") end
        local from = r:string(F.from, "from")
        local to, to_item = r:string(F.to, "to")
        if to == "" then to_item:set_text("To: (everyone)") end
        local text = r:string(F.text, "text")
        return "id=" .. tostring(id) .. " " .. tostring(from) .. "→" .. (to == "" and "*" or tostring(to))
            .. " " .. quote(text or "")
    end,
    [KIND.SENT] = function(r)
        local client_id = r:u64(F.client_id, "client_id")
        return "client_id=" .. tostring(client_id) .. " id=" .. tostring(r:u64(F.id, "id"))
    end,
    [KIND.PONG] = function() return "" end,
    [KIND.ERROR] = function(r)
        local client_id = r:u64(F.client_id, "client_id")
        return "client_id=" .. tostring(client_id) .. " " .. quote(r:string(F.reason, "reason") or "")
    end,
    [KIND.RETRY] = function(r)
        local client_id = r:u64(F.client_id, "client_id")
        return "client_id=" .. tostring(client_id) .. " " .. quote(r:string(F.reason, "reason") or "")
    end,
    [KIND.DROPPED] = function(r)
        local count = r:u64(F.dropped, "count")
        return tostring(count) .. " dropped, limit " .. tostring(r:u64(F.limit, "limit"))
    end,
    [KIND.UNLISTED] = function(r) return tostring(r:u64(F.unlisted, "count")) .. " more online" end,
}

-- Whether a kind may travel in a direction at all [P-15].
local function kind_fits(kind, dir, handshake)
    if handshake then
        return kind <= KIND.FAIL and ((dir == "c2s") == (kind == KIND.HELLO or kind == KIND.PROOF))
    end
    if dir == "c2s" then return kind >= KIND.LOGIN and kind <= KIND.PING end
    return kind >= KIND.WELCOME and kind <= KIND.UNLISTED
end

-- Adds one whole frame, tvb(offset, total), to the tree and the Info column.
local function add_frame(tvb, pinfo, tree, offset, total, result, first_in_packet)
    local dir = result.dir
    local item = tree:add(hmacchat, tvb(offset, total))
    item:add(F.direction, DIRECTIONS[dir]):set_generated()
    item:add(F.len, tvb(offset, LEN_PREFIX))
    local end_of_payload, kind_at, label = offset + total, offset + LEN_PREFIX, nil
    local sealed = not result.handshake
    if sealed and total >= MIN_SEALED then
        local seq_item = item:add(F.seq, tvb(offset + LEN_PREFIX, SEQ_LEN))
        if result.expected then
            seq_item:add(F.seq_expected, tvb(offset + LEN_PREFIX, SEQ_LEN), result.expected):set_generated()
            seq_item:add_proto_expert_info(E.wrong_seq, string.format(
                "Wrong sequence number (got %s, expected %s): a replayed, reordered or deleted frame; the receiver closes [P-14]",
                tostring(tvb(offset + LEN_PREFIX, SEQ_LEN):uint64()), tostring(result.expected)))
        end
        kind_at, end_of_payload = offset + LEN_PREFIX + SEQ_LEN, offset + total - TAG_LEN
        label = "#" .. tostring(tvb(offset + LEN_PREFIX, SEQ_LEN):uint64()) .. " "
    elseif sealed then
        item:add_proto_expert_info(E.malformed, string.format(
            "Frame too short (%d bytes, min %d) for a sealed frame", total - LEN_PREFIX, MIN_SEALED - LEN_PREFIX))
        pinfo.cols.info:append(" " .. ARROWS[dir] .. " [too short]")
        item:set_text("hmac-chat, " .. DIRECTIONS[dir] .. ", malformed")
        return
    else
        label = ""
    end

    local summary, problem = "", nil
    if kind_at >= end_of_payload then
        problem = "truncated in kind"
        label = label .. "?"
    else
        local kind = tvb(kind_at, 1):uint()
        item:add(F.kind, tvb(kind_at, 1))
        label = label .. (KIND_NAMES[kind] or string.format("0x%02x", kind))
        local layout = LAYOUTS[kind]
        if not layout or not kind_fits(kind, dir, result.handshake) then
            problem = "unknown kind for this direction; the receiver closes [P-15]"
            if end_of_payload > kind_at + 1 then
                item:add(F.payload, tvb(kind_at + 1, end_of_payload - kind_at - 1))
            end
        else
            local r = reader(tvb, item, kind_at + 1, end_of_payload)
            summary = layout(r)
            problem = r:finish()
        end
    end
    if problem then
        item:add_proto_expert_info(E.malformed, "Malformed: " .. problem)
        summary = (summary ~= "" and summary .. " " or "") .. "[malformed: " .. problem .. "]"
    end

    local verdict = ""
    if result.keys_missing then
        item:add(F.keys, "not derived: " .. result.keys):set_generated()
        item:add_proto_expert_info(E.unchecked, "Tags not checked: " .. result.keys)
    elseif result.keys then
        item:add(F.keys, "derived " .. result.keys):set_generated()
    end
    if result.reflected then
        item:add_proto_expert_info(E.reflected, "The server's nonce equals the client's: a reflected HELLO [P-5]")
    end
    if result.refused then
        item:add_proto_expert_info(E.refused, result.refused)
    end
    local tag_range = (sealed or label == "PROOF" or label == "ACCEPT") and total >= LEN_PREFIX + 1 + TAG_LEN
        and tvb(offset + total - TAG_LEN, TAG_LEN)
    if sealed then
        item:add(F.tag, tag_range)
    end
    if result.tag == "verified" then
        verdict = " ✓"
        item:add(F.tag_status, tag_range, "verified"):set_generated()
        item:add(F.tag_verified, tag_range, true):set_generated()
    elseif result.tag == "bad" then
        verdict = sealed and " ✗ bad tag" or " ✗ bad proof"
        item:add(F.tag_status, tag_range, sealed and "bad tag" or "bad proof"):set_generated()
        item:add(F.tag_verified, tag_range, false):set_generated()
        if sealed then
            item:add_proto_expert_info(E.bad_tag,
                "Bad tag: not made with this session's key for this direction, or altered; the receiver closes [P-13]")
        else
            item:add_proto_expert_info(E.bad_proof,
                "Bad proof: the sender lacks the key or the owner token (or the preferences hold the wrong ones) [P-8, P-9]")
        end
    elseif result.note then
        item:add(F.tag_status, tag_range or tvb(offset, total), result.note):set_generated()
        if result.out_of_order then
            item:add_proto_expert_info(E.malformed, "Out of order: " .. result.note)
        end
        if tag_range then verdict = " (not checked)" end
    end
    if result.expected then
        verdict = verdict .. " ✗ wrong seq"
    end
    if label == "FAIL" or label == "REJECT" then
        item:add_proto_expert_info(E.refused, label .. ": " .. summary)
    end

    local line = ARROWS[dir] .. " " .. label .. (summary ~= "" and " " .. summary or "") .. verdict
    item:set_text("hmac-chat " .. label .. ", " .. DIRECTIONS[dir] .. (summary ~= "" and ": " .. summary or "") .. verdict)
    if first_in_packet then
        pinfo.cols.info:set(line)
    else
        pinfo.cols.info:append(" | " .. line)
    end
end

---------------------------------------------------------------------------
-- TCP: frames out of segments, and the registration.
---------------------------------------------------------------------------

local tcp_stream = Field.new("tcp.stream")

local function endpoint(address, port)
    return tostring(address) .. ":" .. tostring(port)
end

-- Which way this packet goes: the side that sent HELLO is the client;
-- before a HELLO, the side on the registered (or Decode As) port is the server.
local function direction_of(session, pinfo, first_frame_byte)
    local source = endpoint(pinfo.src, pinfo.src_port)
    if session.client then
        return session.client == source and "c2s" or "s2c"
    end
    if not pinfo.visited and first_frame_byte == KIND.HELLO then
        session.client = source
        return "c2s"
    end
    return pinfo.src_port == pinfo.match_uint and "s2c" or "c2s"
end

-- The key under which the next frame's verdict is kept between passes:
-- the packet's number and the frame's place in it.
local function frame_key(pinfo)
    if current_packet ~= pinfo.number then
        current_packet, frames_in_packet = pinfo.number, 0
    end
    return pinfo.number .. ":" .. (frames_in_packet + 1), frames_in_packet == 0
end

-- Shows the rest of a direction after a framing error: the receiver has
-- closed, so these bytes are not frames.
local function add_unframed(tvb, pinfo, tree, offset, body, seen, first_in_packet)
    local item = tree:add(hmacchat, tvb(offset))
    item:set_text("hmac-chat, " .. DIRECTIONS[seen.dir] .. ": not framed (" .. seen.broken .. ")")
    if seen.broken == "frame too long" then
        item:add(F.len, tvb(offset, LEN_PREFIX))
        item:add_proto_expert_info(E.malformed, string.format(
            "Frame too long (%d bytes, max %d): the receiver closes the connection [P-2]", body, settings.max_frame))
    end
    local line = ARROWS[seen.dir] .. " [not framed: " .. seen.broken .. "]"
    if first_in_packet then pinfo.cols.info:set(line) else pinfo.cols.info:append(" | " .. line) end
end

function hmacchat.dissector(tvb, pinfo, tree)
    pinfo.cols.protocol = "hmac-chat"
    local stream_field = tcp_stream()
    local session = session_for(stream_field and stream_field.value or "outside TCP")
    local offset, available = 0, tvb:len()
    while offset < available do
        if available - offset < LEN_PREFIX then
            pinfo.desegment_offset, pinfo.desegment_len = offset, DESEGMENT_ONE_MORE_SEGMENT
            return available
        end
        local body = tvb(offset, LEN_PREFIX):uint()
        local first_byte = available - offset > LEN_PREFIX and tvb(offset + LEN_PREFIX, 1):uint() or nil
        local dir = direction_of(session, pinfo, first_byte)
        local key, first_in_packet = frame_key(pinfo)
        -- The receiver checks the length before it waits for the body
        -- [P-2], and closes on a framing error; so does this reader.
        local broken
        if pinfo.visited then
            broken = verdicts[key] and verdicts[key].broken
        else
            broken = session.broken[dir] or (body > settings.max_frame and "frame too long")
        end
        if broken then
            frames_in_packet = frames_in_packet + 1
            if not pinfo.visited then
                verdicts[key] = { broken = broken, dir = dir }
                session.broken[dir] = "after a framing error"
            end
            add_unframed(tvb, pinfo, tree, offset, body, verdicts[key], first_in_packet)
            return available
        end
        local total = LEN_PREFIX + body
        if available - offset < total then
            pinfo.desegment_offset, pinfo.desegment_len = offset, total - (available - offset)
            return available
        end
        frames_in_packet = frames_in_packet + 1
        if not pinfo.visited then
            verdicts[key] = observe(session, dir, tvb(offset, total):raw())
        end
        local result = verdicts[key] or { dir = dir, note = "unknown: reload the capture" }
        add_frame(tvb, pinfo, tree, offset, total, result, first_in_packet)
        offset = offset + total
    end
    return offset
end

-- Marks the end of each packet's dissection, so that frames are numbered
-- from 1 in every packet however often a packet is dissected again.
local packet_end = Proto("hmacchat_packet_end", "hmac-chat packet end (internal)")
function packet_end.dissector()
    current_packet, frames_in_packet = nil, 0
end
register_postdissector(packet_end)

function hmacchat.init()
    sessions, verdicts = {}, {}
    current_packet, frames_in_packet = nil, 0
    load_settings()
end

function hmacchat.prefs_changed()
    load_settings()
end

DissectorTable.get("tcp.port"):add(5555, hmacchat)

---------------------------------------------------------------------------
-- Self-test: tshark -G protocols -X lua_script:hmac-chat.lua -X lua_script1:selftest
---------------------------------------------------------------------------

local function self_test()
    local failures, checks = {}, 0
    local function check(name, got, want)
        checks = checks + 1
        if got ~= want then
            failures[#failures + 1] = name .. ": got " .. tostring(got) .. ", want " .. tostring(want)
        end
    end
    local function bytes(n)
        local out = {}
        for i = 0, n - 1 do out[#out + 1] = string.char(i % 256) end
        return table.concat(out)
    end
    local function unhex(hex) return from_hex(hex, #hex / 2) end

    -- FIPS 180-2 examples, then lengths around the padding boundaries (from Python's hashlib).
    check("sha256('')", to_hex(sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    check("sha256('abc')", to_hex(sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    check("sha256(2 blocks)", to_hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    for n, want in pairs({
        [55] = "463eb28e72f82e0a96c0a4cc53690c571281131f672aa229e0d45ae59b598b59",
        [56] = "da2ae4d6b36748f2a318f23e7ab1dfdf45acdc9d049bd80e59de82a60895f562",
        [63] = "29af2686fd53374a36b0846694cc342177e428d1647515f078784d69cdb9e488",
        [64] = "fdeab9acf3710362bd2658cdc9a29e8f9c757fcf9811603a8c447cd1d9151108",
        [65] = "4bfd2c8b6f1eec7a2afeb48b934ee4b2694182027e6d0fc075074f2fabb31781",
        [119] = "da18797ed7c3a777f0847f429724a2d8cd5138e6ed2895c3fa1a6d39d18f7ec6",
        [200] = "1901da1c9f699b48f6b2636e65cbf73abf99d0441ef67f5c540a42f7051dec6f",
    }) do
        check("sha256(" .. n .. " bytes)", to_hex(sha256(bytes(n))), want)
    end
    -- RFC 4231 test cases 2 and 6 (a key longer than a block).
    check("hmac rfc4231 #2", to_hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    check("hmac rfc4231 #6", to_hex(hmac_sha256(string.rep("\170", 131),
        "Test Using Larger Than Block-Size Key - Hash Key First")),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    -- RFC 5869 test case 1 (the first 32 bytes of its OKM).
    local prk = hkdf_extract(unhex("000102030405060708090a0b0c"), string.rep("\11", 22))
    check("hkdf rfc5869 #1 prk", to_hex(prk), "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    check("hkdf rfc5869 #1 okm", to_hex(hmac_sha256(prk, unhex("f0f1f2f3f4f5f6f7f8f9") .. "\1")),
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf")

    -- PROTOCOL.md's test vectors, through the same code as a capture.
    local token = string.rep("\51", 32)
    local verifier = sha256(LABELS.owner_token .. token)
    check("token_verifier", to_hex(verifier), "3166fc5821724b09dd7f22f7d5751cae0ff1d8ba7790632005bcefe055d52291")
    settings.key = bytes(32)
    settings.verifiers = { alice = verifier }
    local session = new_session()
    local hello = unhex("00000029010111111111111111111111111111111111111111111111111111111111111111110005616c696365")
    local challenge = unhex("0000002202222222222222222222222222222222222222222222222222222222222222222201")
    observe(session, "c2s", hello)
    local result = observe(session, "s2c", challenge)
    check("transcript_hash", to_hex(session.transcript), "255bed557350598d9507c887a68d74d00aca761aea711112eab5f1968ebafb00")
    check("keys derived", result.keys, 'from the key file and the verifier for "alice"')
    check("client_to_server_key", to_hex(session.keys.c2s), "79c8eee9cce875b1484ac7464fe203ca1ceb9fa133441827f3aec59b6fa60391")
    check("server_to_client_key", to_hex(session.keys.s2c), "4c4c39fdb3f41821b9529c9a0b00a00859cbdbd8a552a317cf0f12bcb3faad2d")
    check("client_proof_key", to_hex(session.keys.client_proof),
        "031df81aa81d837114b36920fee2cf550ea39292c12247501338776c05e807f8")
    check("server_proof_key", to_hex(session.keys.server_proof),
        "349c4e341b602a50234d410988666442eceb23d81191fe5f2d73854eb2affd1f")
    local proof = unhex("0000002103" .. "5504fd8504729b4684e6c9ddb5f0b159dea76575b9570dcf20e1acd279b651dc")
    local accept = unhex("0000002104" .. "09e9711b562208e327579892602ed8aba13a0bb326283e7672a1f932ce5ca836")
    check("client_proof verified", observe(session, "c2s", proof).tag, "verified")
    check("server_proof verified", observe(session, "s2c", accept).tag, "verified")
    local login = unhex("000000320000000000000000100000000000000029003c414e380c93b662055747c8c187f86525635983ebb61e4a9d3de669bccc75aa")
    local flipped = login:sub(1, 20) .. string.char(bxor(login:byte(21), 1)) .. login:sub(22)
    check("login_frame_seq0 verified", observe(session, "c2s", login).tag, "verified")
    check("login with a flipped bit", observe(session, "c2s", flipped).tag, "bad")
    result = observe(session, "c2s", login)
    check("login replayed: tag", result.tag, "verified")
    check("login replayed: expected seq", tostring(result.expected), "2")
    local msg = unhex("00000046000000000000000125000000000000002a000001a21fd37aff0003626f6200000004686f6c612a9ca80ab8e731663decd183262dacfd34c3097fe89ce6f35452f03d92be1ab6")
    result = observe(session, "s2c", msg)
    check("msg_frame_seq1 verified", result.tag, "verified")
    check("msg_frame_seq1 without WELCOME: expected seq", tostring(result.expected), "0")
    local again = new_session()
    observe(again, "c2s", hello)
    observe(again, "s2c", challenge)
    check("a PROOF cut short", observe(again, "c2s", proof:sub(1, 10)).note, "not checked: malformed")
    check("valid UTF-8", valid_utf8("hola ñ € 😀"), true)
    check("overlong UTF-8", valid_utf8("\192\175"), false)
    check("surrogate in UTF-8", valid_utf8("\237\160\128"), false)

    if #failures > 0 then
        io.stderr:write("hmac-chat self-test FAILED:\n  " .. table.concat(failures, "\n  ") .. "\n")
        os.exit(1)
    end
    print("hmac-chat self-test: all " .. checks .. " checks passed")
    os.exit(0)
end

if script_args[1] == "selftest" then
    self_test()
end
