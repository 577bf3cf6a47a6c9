//! Reading tshark's PDML: one `Pdu` per hmac-chat frame it decoded.

use super::*;

/// One decoded hmac-chat frame: its packet's TCP facts and its fields.
#[derive(Debug)]
pub(crate) struct Pdu {
    pub(crate) packet: u32,
    pub(crate) stream: u32,
    pub(crate) dst_port: u16,
    /// Field name → every value tshark showed for it, in order.
    pub(crate) fields: BTreeMap<String, Vec<String>>,
}

impl Pdu {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(|values| values.first()).map(String::as_str)
    }

    /// The kind's name, from `Kind: SEND (0x11)`.
    pub(crate) fn kind(&self) -> &str {
        self.get("hmacchat.kind.name").unwrap_or("?")
    }

    pub(crate) fn status(&self) -> &str {
        self.get("hmacchat.tag.status").unwrap_or("")
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

pub(crate) fn xml_unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find(';') else { break };
        let entity = &rest[at + 1..at + end];
        let decoded = match entity {
            "quot" => Some('"'),
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "apos" => Some('\''),
            _ => entity.strip_prefix("#x").and_then(|h| u32::from_str_radix(h, 16).ok()).and_then(char::from_u32),
        };
        out.push(decoded.unwrap_or('\u{fffd}'));
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    out
}

/// The value of attribute `name` in one XML tag.
pub(crate) fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(xml_unescape(&tag[start..start + len]))
}

pub(crate) fn parse_pdml(pdml: &str) -> Vec<Pdu> {
    let mut pdus = Vec::new();
    for packet in pdml.split("<packet>").skip(1) {
        let field_of = |name: &str| {
            let at = packet.find(&format!("<field name=\"{name}\""))?;
            attribute(&packet[at..at + packet[at..].find('>')?], "show")
        };
        let number = field_of("num").and_then(|n| n.parse().ok()).unwrap_or(0);
        let stream = field_of("tcp.stream").and_then(|n| n.parse().ok()).unwrap_or(u32::MAX);
        let dst_port = field_of("tcp.dstport").and_then(|n| n.parse().ok()).unwrap_or(0);
        for proto in packet.split("<proto name=\"hmacchat\"").skip(1) {
            let body = &proto[..proto.find("</proto>").unwrap_or(proto.len())];
            let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for tag in body.split("<field ").skip(1) {
                let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
                let tag = format!(" {tag}");
                let Some(name) = attribute(&tag, "name") else { continue };
                let show = attribute(&tag, "show").unwrap_or_default();
                if name == "hmacchat.kind" {
                    let showname = attribute(&tag, "showname").unwrap_or_default();
                    let kind_name = showname.trim_start_matches("Kind: ").split(' ').next().unwrap_or("?");
                    fields.entry("hmacchat.kind.name".into()).or_default().push(kind_name.into());
                }
                // Expert infos come as a field named after the expert, showname holding the text.
                let value = if show.is_empty() { attribute(&tag, "showname").unwrap_or_default() } else { show };
                fields.entry(name).or_default().push(value);
            }
            pdus.push(Pdu { packet: number, stream, dst_port, fields });
        }
    }
    pdus
}

/// Runs the dissector over `capture` with `prefs` (tshark `-o` and `-d`
/// arguments) and returns every hmac-chat frame it decoded.
pub(crate) fn decode(capture: &Path, prefs: &[String]) -> Vec<Pdu> {
    let script = lua_script();
    let mut args = vec!["-r", capture.to_str().unwrap(), "-X", &script, "-T", "pdml"];
    args.extend(prefs.iter().map(String::as_str));
    let output = tshark(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "tshark failed on {}:\n{stderr}", capture.display());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stderr.contains("Lua") && !stdout.contains("Lua Error"), "the dissector failed:\n{stderr}\n{stdout}");
    let pdus = parse_pdml(&stdout);
    assert!(!pdus.is_empty(), "tshark decoded no hmac-chat frame in {}:\n{stderr}", capture.display());
    pdus
}

/// The sequence numbers of each TCP stream and direction, in order.
pub(crate) fn sequences(pdus: &[Pdu]) -> BTreeMap<(u32, String), Vec<u64>> {
    let mut seqs: BTreeMap<(u32, String), Vec<u64>> = BTreeMap::new();
    for pdu in pdus {
        if let Some(seq) = pdu.get("hmacchat.seq") {
            let direction = pdu.get("hmacchat.direction").unwrap_or("?").to_string();
            seqs.entry((pdu.stream, direction)).or_default().push(seq.parse().unwrap());
        }
    }
    seqs
}

pub(crate) fn describe(pdus: &[&Pdu]) -> String {
    pdus.iter()
        .map(|p| format!("#{} stream {} {} {}: {:?}", p.packet, p.stream, p.kind(), p.status(), p.get("hmacchat.text")))
        .collect::<Vec<_>>()
        .join("\n")
}
