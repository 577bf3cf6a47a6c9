//! Length-prefixed framing: TCP is a byte stream, so every frame is a
//! big-endian `u32` body length followed by that many bytes.
//!
//! [`frame_len`] is the sans-IO core (it never allocates); [`read_frame`]
//! is a thin blocking reader on top of it, and [`Deadline`] makes a
//! sequence of reads and writes share one absolute deadline.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::error::{Error, ProtocolError};

/// Bytes in the length prefix.
pub const LEN_PREFIX: usize = 4;

/// Looks for one whole frame at the start of `buf`.
///
/// Returns `Ok(Some(n))` when `buf[..n]` is a whole frame (prefix included),
/// `Ok(None)` when more bytes are needed, and an error when the announced
/// length exceeds `max` — decided from the prefix alone, before anything
/// else is read or allocated.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    let Some(prefix) = buf.get(..LEN_PREFIX) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    // SECURITY: the length is bounded before any allocation or read.
    if len > max {
        return Err(ProtocolError::FrameTooLong { len, max });
    }
    let total = LEN_PREFIX + len;
    Ok((buf.len() >= total).then_some(total))
}

/// Reads one frame (prefix included) into `frame`, replacing its contents.
///
/// Returns `Ok(false)` on a clean end of stream between frames; an end of
/// stream inside a frame is an `UnexpectedEof` error.
pub fn read_frame<R: Read>(reader: &mut R, max: usize, frame: &mut Vec<u8>) -> Result<bool, Error> {
    let mut prefix = [0u8; LEN_PREFIX];
    let mut filled = 0;
    while filled < LEN_PREFIX {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err.into()),
        }
    }
    let len = match frame_len(&prefix, max) {
        Ok(_) => u32::from_be_bytes(prefix) as usize,
        Err(err) => return Err(err.into()),
    };
    frame.clear();
    frame.extend_from_slice(&prefix);
    frame.resize(LEN_PREFIX + len, 0);
    reader.read_exact(&mut frame[LEN_PREFIX..])?;
    Ok(true)
}

/// Appends `body` to `out` as one frame.
///
/// The caller keeps bodies at or under the peer's maximum, which is far
/// below `u32::MAX`.
pub fn push_frame(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// A socket whose reads and writes all end by one absolute deadline.
///
/// `set_read_timeout` restarts on every read, so a peer trickling one byte
/// at a time would never time out; this recomputes the time left before
/// each call instead. The handshake runs on it.
pub struct Deadline<'a> {
    /// The socket; its timeouts are changed before each call.
    pub stream: &'a TcpStream,
    /// When every read and write must have finished.
    pub deadline: Instant,
}

impl Deadline<'_> {
    fn time_left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for Deadline<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.time_left()?))?;
        (&*self.stream).read(buf)
    }
}

impl Write for Deadline<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.time_left()?))?;
        (&*self.stream).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_more_bytes_until_the_whole_frame_is_there() {
        let mut frame = Vec::new();
        push_frame(&mut frame, b"hello");
        for cut in 0..frame.len() {
            assert_eq!(frame_len(&frame[..cut], 64), Ok(None), "cut at {cut}");
        }
        assert_eq!(frame_len(&frame, 64), Ok(Some(9)));
    }

    #[test]
    fn rejects_frame_longer_than_max_from_the_prefix_alone() {
        let prefix = (65u32).to_be_bytes();
        assert_eq!(frame_len(&prefix, 64), Err(ProtocolError::FrameTooLong { len: 65, max: 64 }));
        let huge = u32::MAX.to_be_bytes();
        let mut reader: &[u8] = &huge;
        let err = read_frame(&mut reader, 64, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::Protocol(ProtocolError::FrameTooLong { .. })));
    }

    #[test]
    fn clean_eof_between_frames_is_not_an_error_but_eof_inside_is() {
        let mut empty: &[u8] = &[];
        assert!(!read_frame(&mut empty, 64, &mut Vec::new()).unwrap());
        let mut partial: &[u8] = &[0, 0, 0, 5, b'a'];
        let err = read_frame(&mut partial, 64, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, Error::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof));
    }

    #[test]
    fn reads_consecutive_frames_including_an_empty_one() {
        let mut bytes = Vec::new();
        push_frame(&mut bytes, b"one");
        push_frame(&mut bytes, b"");
        let mut reader: &[u8] = &bytes;
        let mut frame = Vec::new();
        assert!(read_frame(&mut reader, 64, &mut frame).unwrap());
        assert_eq!(frame, [0, 0, 0, 3, b'o', b'n', b'e']);
        assert!(read_frame(&mut reader, 64, &mut frame).unwrap());
        assert_eq!(frame, [0, 0, 0, 0]);
        assert!(!read_frame(&mut reader, 64, &mut frame).unwrap());
    }
}
