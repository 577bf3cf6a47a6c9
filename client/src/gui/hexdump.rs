//! A frame's bytes as the protocol pane shows them: rows of 16 bytes in
//! hex, then the same bytes as ASCII, each byte coloured by the part of
//! the frame it belongs to (docs/PROTOCOL.md): the length prefix, the
//! sequence number, the kind, the payload (a handshake frame's fields),
//! and the tag (or the proof in PROOF and ACCEPT). Pure, so unit tests
//! cover it without a display; `pane.rs` draws it.

use std::ops::Range;

use chat_common::auth::{SEAL_OVERHEAD, TAG_LEN};
use chat_common::frame::LEN_PREFIX;
use chat_common::message::kind;

/// Bytes per row.
pub const ROW_BYTES: usize = 16;

/// The parts of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Length,
    Seq,
    Kind,
    Payload,
    Tag,
}

/// Every region, in [`Region::style`] order.
pub const REGIONS: [Region; 5] = [Region::Length, Region::Seq, Region::Kind, Region::Payload, Region::Tag];

/// The style byte of text that belongs to no region (offsets, spaces).
pub const PLAIN: char = 'A';

impl Region {
    /// Its style byte: `'B'` onwards, in [`REGIONS`] order.
    pub fn style(self) -> char {
        let index = REGIONS.iter().position(|&region| region == self).unwrap_or(0);
        char::from(b'B' + index as u8)
    }

    /// Its name in the event log.
    pub fn name(self) -> &'static str {
        match self {
            Region::Length => "length",
            Region::Seq => "seq",
            Region::Kind => "kind",
            Region::Payload => "payload",
            Region::Tag => "tag",
        }
    }
}

/// Where each region of a frame lies; empty regions are left out. A
/// frame too short for its layout is length, then payload.
pub fn regions(bytes: &[u8], handshake: bool) -> Vec<(Region, Range<usize>)> {
    let end = bytes.len();
    let prefix = LEN_PREFIX.min(end);
    let mut parts = vec![(Region::Length, 0..prefix)];
    if handshake && end > LEN_PREFIX {
        parts.push((Region::Kind, LEN_PREFIX..LEN_PREFIX + 1));
        let proof = matches!(bytes[LEN_PREFIX], kind::PROOF | kind::ACCEPT);
        let fields = if proof { Region::Tag } else { Region::Payload };
        parts.push((fields, LEN_PREFIX + 1..end));
    } else if !handshake && end >= SEAL_OVERHEAD {
        let tag = end - TAG_LEN;
        parts.extend([
            (Region::Seq, LEN_PREFIX..LEN_PREFIX + 8),
            (Region::Kind, LEN_PREFIX + 8..LEN_PREFIX + 9),
            (Region::Payload, LEN_PREFIX + 9..tag),
            (Region::Tag, tag..end),
        ]);
    } else {
        parts.push((Region::Payload, prefix..end));
    }
    parts.retain(|(_, range)| !range.is_empty());
    parts
}

/// The regions in words, for the event log: `length 0..4 seq 4..12 ...`.
pub fn summary(bytes: &[u8], handshake: bool) -> String {
    let parts: Vec<String> =
        regions(bytes, handshake).iter().map(|(region, range)| format!("{} {range:?}", region.name())).collect();
    parts.join(" ")
}

/// Text and its style bytes, side by side (one style byte per text byte,
/// as FLTK's style buffers want).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Styled {
    pub text: String,
    pub styles: String,
}

impl Styled {
    fn push(&mut self, text: &str, style: char) {
        self.text.push_str(text);
        self.styles.extend(std::iter::repeat_n(style, text.len()));
    }
}

/// The legend (each region's name in its colour, names given in
/// [`REGIONS`] order, in the user's language), then the rows: offset, hex,
/// ASCII (`.` for anything not printable).
pub fn dump(bytes: &[u8], handshake: bool, names: [&str; 5]) -> Styled {
    let parts = regions(bytes, handshake);
    let mut out = Styled::default();
    for (region, name) in REGIONS.iter().zip(names) {
        if parts.iter().any(|(part, _)| part == region) {
            out.push(name, region.style());
            out.push("  ", PLAIN);
        }
    }
    out.push(&format!("({} bytes)\n", bytes.len()), PLAIN);
    let style_of = |at: usize| parts.iter().find(|(_, range)| range.contains(&at)).map_or(PLAIN, |(r, _)| r.style());
    for (row, chunk) in bytes.chunks(ROW_BYTES).enumerate() {
        let start = row * ROW_BYTES;
        out.push(&format!("{start:04x}  "), PLAIN);
        for column in 0..ROW_BYTES {
            match chunk.get(column) {
                Some(byte) => out.push(&format!("{byte:02x}"), style_of(start + column)),
                None => out.push("  ", PLAIN),
            }
            out.push(if column == 7 { "  " } else { " " }, PLAIN);
        }
        out.push(" ", PLAIN);
        for (column, &byte) in chunk.iter().enumerate() {
            let shown = if byte.is_ascii_graphic() || byte == b' ' { char::from(byte) } else { '.' };
            out.push(shown.encode_utf8(&mut [0; 4]), style_of(start + column));
        }
        out.push("\n", PLAIN);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_common::auth::Sealer;
    use chat_common::message::{ClientMsg, Handshake};

    const NAMES: [&str; 5] = ["length", "seq", "kind", "payload", "tag"];

    fn login() -> Vec<u8> {
        let mut payload = Vec::new();
        ClientMsg::Login { last_seen: 41, register: None }.encode_payload(&mut payload);
        let mut frame = Vec::new();
        Sealer::new(&[1; 32]).seal(kind::LOGIN, &payload, &mut frame);
        frame
    }

    #[test]
    fn a_sealed_frame_is_length_seq_kind_payload_and_tag() {
        let frame = login();
        assert_eq!(summary(&frame, false), "length 0..4 seq 4..12 kind 12..13 payload 13..22 tag 22..54");
        let shown = dump(&frame, false, NAMES);
        assert_eq!(shown.text.len(), shown.styles.len());
        let rows: Vec<&str> = shown.text.lines().collect();
        assert_eq!(rows[0], "length  seq  kind  payload  tag  (54 bytes)");
        assert_eq!(rows[1], "0000  00 00 00 32 00 00 00 00  00 00 00 00 10 00 00 00  ...2............");
        assert_eq!(rows.len(), 1 + 4);
        // The first row's hex: length, then seq, then the kind byte `10`.
        let row = shown.text.find("0000  ").unwrap();
        assert_eq!(&shown.styles[row + 6..row + 8], "BB", "the length prefix");
        assert_eq!(&shown.styles[row + 18..row + 20], "CC", "the sequence number");
        assert_eq!(&shown.styles[row + 43..row + 45], "DD", "the kind");
        assert_eq!(&shown.styles[row + 46..row + 48], "EE", "the payload");
    }

    #[test]
    fn a_handshake_frame_is_length_kind_and_fields_and_its_proof_is_a_tag() {
        let mut hello = Vec::new();
        Handshake::Hello { version: 1, nonce: [0x11; 32], nick: "alice".into() }.encode(&mut hello);
        assert_eq!(summary(&hello, true), "length 0..4 kind 4..5 payload 5..45");
        let mut proof = Vec::new();
        Handshake::Proof { tag: [7; 32] }.encode(&mut proof);
        assert_eq!(summary(&proof, true), "length 0..4 kind 4..5 tag 5..37");
        let shown = dump(&proof, true, NAMES);
        assert!(shown.text.starts_with("length  kind  tag  (37 bytes)\n"), "{}", shown.text);
    }

    #[test]
    fn short_or_empty_frames_are_shown_without_panicking() {
        assert_eq!(summary(&[0, 0, 0, 5, 1, 2], false), "length 0..4 payload 4..6");
        assert_eq!(summary(&[0, 0], true), "length 0..2");
        assert_eq!(summary(&[], false), "");
        let shown = dump(&[], false, NAMES);
        assert_eq!(shown.text, "(0 bytes)\n");
        let spanish = dump(&login(), false, ["longitud", "secuencia", "tipo", "carga útil", "etiqueta"]);
        assert_eq!(spanish.text.len(), spanish.styles.len(), "one style byte per text byte, accents too");
    }
}
