//! What recipients count: latency histograms, lost and duplicate
//! messages, and the text format that carries the send time.

use super::*;

/// Latencies in microseconds: exact below 1,024, then 64 buckets per
/// power of two (about 1.5 % resolution), so merging is adding.
#[derive(Clone)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub max: u64,
}

impl Histogram {
    const LINEAR: u64 = 1024;
    const SUB_BITS: u32 = 6;

    pub fn new() -> Self {
        Histogram { counts: vec![0; 1024 + 54 * 64], max: 0 }
    }

    pub fn index(value: u64) -> usize {
        if value < Self::LINEAR {
            return value as usize;
        }
        let power = 63 - value.leading_zeros();
        let sub = (value >> (power - Self::SUB_BITS)) & 63;
        (Self::LINEAR + u64::from(power - 10) * 64 + sub) as usize
    }

    /// The middle of bucket `index`.
    pub fn value(index: usize) -> u64 {
        let index = index as u64;
        if index < Self::LINEAR {
            return index;
        }
        let (power, sub) = ((index - Self::LINEAR) / 64 + 10, (index - Self::LINEAR) % 64);
        let width = 1 << (power - u64::from(Self::SUB_BITS));
        (1 << power) + sub * width + width / 2
    }

    pub fn record(&mut self, value: u64) {
        let index = Self::index(value).min(self.counts.len() - 1);
        self.counts[index] += 1;
        self.max = self.max.max(value);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.max = self.max.max(other.max);
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The value below which `fraction` of the samples fall.
    pub fn percentile(&self, fraction: f64) -> u64 {
        let rank = ((self.total() as f64) * fraction).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(index).min(self.max);
            }
        }
        self.max
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// What one recipient saw of the benchmark messages.
pub struct Tally {
    /// One bit per (publisher, sequence number) received.
    pub seen: Vec<Vec<u64>>,
    pub distinct: u64,
    pub duplicates: u64,
    /// Message ids that did not increase (the server delivers in order).
    pub out_of_order: u64,
    /// MSG frames that were not benchmark messages, and ERROR frames.
    pub unexpected: u64,
    pub last_id: u64,
    pub latency: Histogram,
    /// When the last new message arrived.
    pub last_new: Option<Instant>,
}

impl Tally {
    pub fn new(publishers: usize, per_publisher: u64) -> Self {
        let words = per_publisher.div_ceil(64) as usize;
        Tally {
            seen: vec![vec![0; words]; publishers],
            distinct: 0,
            duplicates: 0,
            out_of_order: 0,
            unexpected: 0,
            last_id: 0,
            latency: Histogram::new(),
            last_new: None,
        }
    }

    /// Counts one MSG payload; returns its id.
    pub fn record(&mut self, payload: &[u8], now_us: u64) -> u64 {
        let Some((id, text)) = msg_text(payload) else {
            self.unexpected += 1;
            return 0;
        };
        if id <= self.last_id {
            self.out_of_order += 1;
        }
        self.last_id = self.last_id.max(id);
        let Some((sent_us, publisher, seq)) = parse_text(text) else {
            self.unexpected += 1;
            return id;
        };
        let Some(word) = self.seen.get_mut(publisher).and_then(|bits| bits.get_mut(seq as usize / 64)) else {
            self.unexpected += 1;
            return id;
        };
        let bit = 1u64 << (seq % 64);
        if *word & bit != 0 {
            self.duplicates += 1;
            return id;
        }
        *word |= bit;
        self.distinct += 1;
        self.latency.record(now_us.saturating_sub(sent_us));
        self.last_new = Some(Instant::now());
        id
    }
}

/// The id and text of a MSG payload, without allocating.
pub fn msg_text(payload: &[u8]) -> Option<(u64, &[u8])> {
    let mut fields = Fields::new(payload);
    let id = fields.u64("id").ok()?;
    fields.u64("time_ms").ok()?;
    for field in ["from", "to"] {
        let len = fields.u16(field).ok()?;
        fields.bytes(len as usize, field).ok()?;
    }
    let len = fields.u16("text").ok()?;
    let text = fields.bytes(len as usize, "text").ok()?;
    fields.finish().ok()?;
    Some((id, text))
}

/// `SSSSSSSSSSSS PPP NNNNNNNNN ....`: send time in µs, publisher, sequence.
pub fn bench_text(sent_us: u64, publisher: usize, seq: u64, size: usize) -> String {
    let mut text = format!("{sent_us:012} {publisher:03} {seq:09} ");
    while text.len() < size {
        text.push('.');
    }
    text
}

pub fn parse_text(text: &[u8]) -> Option<(u64, usize, u64)> {
    let digits = |range: Range<usize>| -> Option<u64> {
        let bytes = text.get(range)?;
        bytes.iter().try_fold(0u64, |n, b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
    };
    Some((digits(0..12)?, digits(13..16)? as usize, digits(17..26)?))
}
