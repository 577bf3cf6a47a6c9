//! Everything that touches HMAC-SHA256 or SHA-256: the shared key, HKDF,
//! the handshake transcript and proofs, owner-token verifiers, and the
//! per-direction [`Sealer`] and [`Opener`] that tag and check every frame
//! after the handshake. No other file of ours uses `hmac` or `sha2`.
//!
//! A sealed frame is `len u32 | seq u64 | kind u8 | payload | tag [32]`,
//! where `tag = HMAC(direction key, every byte before the tag)`.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::ProtocolError;
use crate::frame::LEN_PREFIX;

type HmacSha256 = Hmac<Sha256>;

/// Bytes in the shared key, a nonce, an owner token, and a tag.
pub const KEY_LEN: usize = 32;
/// Bytes in a handshake nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes in an owner token.
pub const TOKEN_LEN: usize = 32;
/// Bytes in an HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Bytes of a sealed frame around its payload: prefix, sequence, kind, tag.
pub const SEAL_OVERHEAD: usize = LEN_PREFIX + 8 + 1 + TAG_LEN;

/// HKDF labels; distinct so that no derived key can stand in for another.
pub const LABEL_CLIENT_TO_SERVER: &[u8] = b"hmac-chat v1 client to server";
/// See [`LABEL_CLIENT_TO_SERVER`].
pub const LABEL_SERVER_TO_CLIENT: &[u8] = b"hmac-chat v1 server to client";
/// See [`LABEL_CLIENT_TO_SERVER`].
pub const LABEL_CLIENT_PROOF: &[u8] = b"hmac-chat v1 client proof";
/// See [`LABEL_CLIENT_TO_SERVER`].
pub const LABEL_SERVER_PROOF: &[u8] = b"hmac-chat v1 server proof";
/// HKDF label of the key that tags the server's journal records.
pub const LABEL_JOURNAL: &[u8] = b"hmac-chat v1 journal";
/// Prefix hashed with an owner token to make the server's verifier.
pub const LABEL_OWNER_TOKEN: &[u8] = b"hmac-chat v1 owner token";
/// HKDF label of the shared key's fingerprint.
pub const LABEL_KEY_CHECK: &[u8] = b"hmac-chat v1 key check";

/// The shared secret. Its `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<secret>)")
    }
}

fn keyed(key: &[u8]) -> HmacSha256 {
    // RFC 2104: HMAC takes a key of any length, so this cannot fail.
    HmacSha256::new_from_slice(key).expect("HMAC takes any key length")
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = keyed(key);
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// HKDF-Extract (RFC 5869 §2.2): `PRK = HMAC(salt, IKM)`.
pub fn hkdf_extract(salt: &[u8], ikm: &[u8]) -> [u8; 32] {
    hmac(salt, &[ikm])
}

/// HKDF-Expand (RFC 5869 §2.3) into `out`, at most 255 × 32 bytes.
pub fn hkdf_expand(prk: &[u8; 32], info: &[u8], out: &mut [u8]) {
    assert!(out.len() <= 255 * 32, "HKDF output too long");
    let mut previous: Vec<u8> = Vec::new();
    for (index, chunk) in out.chunks_mut(32).enumerate() {
        let counter = [index as u8 + 1];
        let block = hmac(prk, &[&previous, info, &counter]);
        chunk.copy_from_slice(&block[..chunk.len()]);
        previous = block.to_vec();
    }
}

/// The server's stored stand-in for an owner token, and what key
/// derivation mixes in: `SHA-256(LABEL_OWNER_TOKEN || token)`.
pub fn token_verifier(token: &[u8; TOKEN_LEN]) -> [u8; 32] {
    sha256(&[LABEL_OWNER_TOKEN, token])
}

/// SHA-256 over the HELLO frame and then the CHALLENGE frame, each with its
/// length prefix: both sides' view of the handshake, bound into every key.
pub fn transcript_hash(hello_frame: &[u8], challenge_frame: &[u8]) -> [u8; 32] {
    sha256(&[hello_frame, challenge_frame])
}

/// The four keys of one session. `Debug` never shows them.
#[derive(Clone)]
pub struct SessionKeys {
    /// Tags frames the client sends.
    pub client_to_server: [u8; 32],
    /// Tags frames the server sends.
    pub server_to_client: [u8; 32],
    /// Makes the client's handshake proof.
    pub client_proof: [u8; 32],
    /// Makes the server's handshake proof.
    pub server_proof: [u8; 32],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKeys(<secret>)")
    }
}

impl SessionKeys {
    /// HKDF with the transcript hash as salt and `key || verifier` as input
    /// key material (just `key` while the nickname is unregistered).
    pub fn derive(key: &Key, verifier: Option<&[u8; 32]>, transcript: &[u8; 32]) -> Self {
        let mut ikm = key.0.to_vec();
        if let Some(verifier) = verifier {
            ikm.extend_from_slice(verifier);
        }
        let prk = hkdf_extract(transcript, &ikm);
        let expand = |label: &[u8]| {
            let mut out = [0u8; 32];
            hkdf_expand(&prk, label, &mut out);
            out
        };
        SessionKeys {
            client_to_server: expand(LABEL_CLIENT_TO_SERVER),
            server_to_client: expand(LABEL_SERVER_TO_CLIENT),
            client_proof: expand(LABEL_CLIENT_PROOF),
            server_proof: expand(LABEL_SERVER_PROOF),
        }
    }
}

/// HKDF of the shared key alone, with `label` as both salt and info: a
/// key for one use that reveals nothing about the shared key.
fn derive_from_key(key: &Key, label: &[u8]) -> [u8; 32] {
    let prk = hkdf_extract(label, &key.0);
    let mut out = [0u8; 32];
    hkdf_expand(&prk, label, &mut out);
    out
}

/// The key that tags journal records at rest: HKDF of the shared key with
/// its own label, so a journal record can never pass for a frame.
pub fn journal_key(key: &Key) -> [u8; 32] {
    derive_from_key(key, LABEL_JOURNAL)
}

impl Key {
    /// A name for this key that reveals nothing about it: the first 8 bytes
    /// of HKDF(key, "hmac-chat v1 key check"), as 16 hex digits. Two key
    /// files hold the same key exactly when their fingerprints match (to
    /// one chance in 2^64), so the server's journal and the client's state
    /// directory can say which key they belong to.
    pub fn fingerprint(&self) -> String {
        derive_from_key(self, LABEL_KEY_CHECK)[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A handshake proof: `HMAC(proof key, transcript hash)`.
pub fn proof(proof_key: &[u8; 32], transcript: &[u8; 32]) -> [u8; TAG_LEN] {
    hmac(proof_key, &[transcript])
}

/// Evidence that a peer's handshake proof was checked. Only
/// [`verify_proof`] makes one (the field is private), and the handshake's
/// results cannot be built without one, so the compiler checks that no
/// session starts on an unchecked proof.
#[derive(Debug)]
pub struct Proven(());

/// Checks a handshake proof in constant time.
pub fn verify_proof(proof_key: &[u8; 32], transcript: &[u8; 32], tag: &[u8]) -> Option<Proven> {
    let mut mac = keyed(proof_key);
    mac.update(transcript);
    // SECURITY: handshake proof compared in constant time, never with `==`.
    mac.verify_slice(tag).ok().map(|()| Proven(()))
}

/// Tags outgoing frames for one direction of one session.
#[derive(Clone)]
pub struct Sealer {
    /// Keyed once per session; cloned per frame instead of re-keying.
    mac: HmacSha256,
    /// Sequence number of the next frame, from 0.
    next_seq: u64,
}

impl Sealer {
    /// A sealer for the direction that `key` belongs to.
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer::starting_at(key, 0)
    }

    /// A sealer whose next frame gets `next_seq` (to continue a journal).
    pub fn starting_at(key: &[u8; 32], next_seq: u64) -> Self {
        Sealer { mac: keyed(key), next_seq }
    }

    /// Appends one sealed frame of `kind` with `payload` to `out`.
    pub fn seal(&mut self, kind: u8, payload: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        let body_len = SEAL_OVERHEAD - LEN_PREFIX + payload.len();
        out.extend_from_slice(&(body_len as u32).to_be_bytes());
        out.extend_from_slice(&self.next_seq.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(payload);
        let mut mac = self.mac.clone();
        mac.update(&out[start..]);
        out.extend_from_slice(&mac.finalize().into_bytes());
        self.next_seq += 1;
    }
}

/// Checks incoming frames for one direction of one session.
#[derive(Clone)]
pub struct Opener {
    /// Keyed once per session; cloned per frame instead of re-keying.
    mac: HmacSha256,
    /// The only sequence number the next frame may carry.
    next_seq: u64,
}

impl Opener {
    /// An opener for the direction that `key` belongs to.
    pub fn new(key: &[u8; 32]) -> Self {
        Opener { mac: keyed(key), next_seq: 0 }
    }

    /// Checks a sealed frame's length and tag, whatever its sequence
    /// number, and returns that number.
    pub fn verify(&self, frame: &[u8]) -> Result<u64, ProtocolError> {
        if frame.len() < SEAL_OVERHEAD {
            let len = frame.len().saturating_sub(LEN_PREFIX);
            return Err(ProtocolError::FrameTooShort { len, min: SEAL_OVERHEAD - LEN_PREFIX });
        }
        let (signed, tag) = frame.split_at(frame.len() - TAG_LEN);
        let mut mac = self.mac.clone();
        mac.update(signed);
        // SECURITY: tag verified, in constant time, before any field is used.
        mac.verify_slice(tag).map_err(|_| ProtocolError::BadTag)?;
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&signed[LEN_PREFIX..LEN_PREFIX + 8]);
        Ok(u64::from_be_bytes(seq))
    }

    /// Verifies a whole sealed frame (prefix included). The tag is checked
    /// before anything in the frame is trusted; then the sequence number
    /// must be exactly the next one.
    pub fn open<'a>(&mut self, frame: &'a [u8]) -> Result<Verified<'a>, ProtocolError> {
        let seq = self.verify(frame)?;
        // SECURITY: exactly the next number; replays, reorders and deletions fail here.
        if seq != self.next_seq {
            return Err(ProtocolError::UnexpectedSequence { got: seq, want: self.next_seq });
        }
        self.next_seq += 1;
        Ok(Verified { seq, kind: frame[LEN_PREFIX + 8], payload: &frame[LEN_PREFIX + 9..frame.len() - TAG_LEN] })
    }
}

/// A sealed frame whose tag and sequence number [`Opener::open`] checked.
/// Nothing else can make one (its fields are private), and the message
/// decoders take nothing else: the compiler checks that no field of a
/// frame is read before its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified<'a> {
    seq: u64,
    kind: u8,
    payload: &'a [u8],
}

impl<'a> Verified<'a> {
    /// The frame's sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The frame's kind byte.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The bytes between the kind and the tag.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc4231_test_case_2() {
        let tag = hmac(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(hex(&tag), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn hkdf_matches_rfc5869_test_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let prk = hkdf_extract(&salt, &ikm);
        assert_eq!(hex(&prk), "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5");
        let mut okm = [0u8; 42];
        hkdf_expand(&prk, &info, &mut okm);
        assert_eq!(hex(&okm), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
    }

    #[test]
    fn the_fingerprint_names_the_key_without_revealing_it() {
        let (a, b) = (Key([7; 32]), Key([8; 32]));
        assert_eq!(a.fingerprint(), Key([7; 32]).fingerprint());
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 16);
        assert!(!hex(&a.0).contains(&a.fingerprint()));
        assert_ne!(a.fingerprint(), hex(&journal_key(&a)[..8]));
    }

    #[test]
    fn the_four_session_keys_differ_and_depend_on_the_token() {
        let key = Key([7; 32]);
        let plain = SessionKeys::derive(&key, None, &[1; 32]);
        let owned = SessionKeys::derive(&key, Some(&[2; 32]), &[1; 32]);
        let all = [plain.client_to_server, plain.server_to_client, plain.client_proof, plain.server_proof];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_ne!(plain.client_to_server, owned.client_to_server);
    }

    #[test]
    fn sealed_frame_opens_once_in_order_and_only_with_its_key() {
        let mut sealer = Sealer::new(&[1; 32]);
        let mut frames = Vec::new();
        sealer.seal(0x13, b"", &mut frames);
        let first = frames.clone();
        sealer.seal(0x12, b"12345678", &mut frames);
        let second = frames[first.len()..].to_vec();

        assert_eq!(Opener::new(&[2; 32]).open(&first), Err(ProtocolError::BadTag));
        let mut opener = Opener::new(&[1; 32]);
        assert_eq!(opener.clone().open(&second), Err(ProtocolError::UnexpectedSequence { got: 1, want: 0 }));
        let opened = opener.open(&first).unwrap();
        assert_eq!((opened.seq(), opened.kind(), opened.payload()), (0, 0x13, &b""[..]));
        assert_eq!(opener.open(&first), Err(ProtocolError::UnexpectedSequence { got: 0, want: 1 }));
        let opened = opener.open(&second).unwrap();
        assert_eq!((opened.seq(), opened.kind(), opened.payload()), (1, 0x12, &b"12345678"[..]));
    }

    #[test]
    fn any_flipped_bit_is_a_bad_tag() {
        let mut frame = Vec::new();
        Sealer::new(&[1; 32]).seal(0x11, b"payload", &mut frame);
        for byte in 0..frame.len() {
            for bit in 0..8 {
                let mut bent = frame.clone();
                bent[byte] ^= 1 << bit;
                assert_eq!(Opener::new(&[1; 32]).open(&bent), Err(ProtocolError::BadTag));
            }
        }
    }

    #[test]
    fn short_frames_are_refused_not_sliced() {
        for len in 0..SEAL_OVERHEAD {
            let frame = vec![0u8; len];
            assert!(matches!(Opener::new(&[1; 32]).open(&frame), Err(ProtocolError::FrameTooShort { .. })));
        }
    }
}
