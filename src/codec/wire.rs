//! Wire primitives: variable byte integers, big-endian integers, MQTT UTF-8 strings and binary
//! data, for writing (into a `Vec<u8>`) and for reading (a bounds-checked [`Reader`]).

use super::error::DecodeError;
use super::MAX_REMAINING_LENGTH;

/// Largest value a variable byte integer can hold (4 bytes).
pub(crate) const MAX_VARINT: usize = MAX_REMAINING_LENGTH;

/// Number of bytes the variable byte integer encoding of `v` takes (1..=4; 5 for values that
/// cannot be encoded, which callers refuse beforehand).
pub(crate) fn varint_len(v: usize) -> usize {
    if v < 128 {
        1
    } else if v < 16_384 {
        2
    } else if v < 2_097_152 {
        3
    } else if v <= MAX_VARINT {
        4
    } else {
        5
    }
}

/// Appends `v` as a variable byte integer. `v` must be <= [`MAX_VARINT`].
pub(crate) fn write_varint(out: &mut Vec<u8>, mut v: usize) {
    debug_assert!(v <= MAX_VARINT);
    loop {
        let mut b = (v % 128) as u8;
        v /= 128;
        if v > 0 {
            b |= 0x80;
        }
        out.push(b);
        if v == 0 {
            break;
        }
    }
}

/// Appends a big-endian u16.
pub(crate) fn write_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a big-endian u32.
pub(crate) fn write_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Appends a length-prefixed string. The caller has validated it with [`check_str`].
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    write_binary(out, s.as_bytes());
}

/// Appends length-prefixed binary data. The caller has checked `b.len() <= 65535`.
pub(crate) fn write_binary(out: &mut Vec<u8>, b: &[u8]) {
    debug_assert!(b.len() <= 65_535);
    write_u16(out, b.len() as u16);
    out.extend_from_slice(b);
}

/// Checks that `s` can be sent as an MQTT UTF-8 string: no U+0000 and at most 65535 bytes.
/// (Rust strings are always valid UTF-8 without surrogates.) `what` names the field.
pub(crate) fn check_str(s: &str, what: &str) -> crate::Result<()> {
    if s.len() > 65_535 {
        return Err(crate::Error::InvalidArgument(format!(
            "{what} is {} bytes long; an MQTT string holds at most 65535 bytes",
            s.len()
        )));
    }
    if s.as_bytes().contains(&0) {
        return Err(crate::Error::InvalidArgument(format!(
            "{what} contains the null character U+0000, which MQTT strings must not contain"
        )));
    }
    Ok(())
}

/// Checks that `b` fits MQTT binary data (at most 65535 bytes). `what` names the field.
pub(crate) fn check_binary(b: &[u8], what: &str) -> crate::Result<()> {
    if b.len() > 65_535 {
        return Err(crate::Error::InvalidArgument(format!(
            "{what} is {} bytes long; MQTT binary data holds at most 65535 bytes",
            b.len()
        )));
    }
    Ok(())
}

/// Appends a fixed header for a packet with `remaining_len` bytes after it; `PayloadSize`
/// when the remaining length cannot be expressed.
pub(crate) fn write_fixed_header(
    out: &mut Vec<u8>,
    byte1: u8,
    remaining_len: usize,
) -> crate::Result<()> {
    check_remaining(remaining_len)?;
    out.push(byte1);
    write_varint(out, remaining_len);
    Ok(())
}

/// `PayloadSize` when `remaining_len` exceeds MQTT's 268,435,455 bytes.
pub(crate) fn check_remaining(remaining_len: usize) -> crate::Result<()> {
    if remaining_len > MAX_VARINT {
        return Err(crate::Error::PayloadSize(format!(
            "the packet's remaining length would be {remaining_len} bytes; MQTT allows at most \
             {MAX_VARINT}"
        )));
    }
    Ok(())
}

/// Appends a whole packet: fixed header and `body`.
pub(crate) fn write_packet(out: &mut Vec<u8>, byte1: u8, body: &[u8]) -> crate::Result<()> {
    write_fixed_header(out, byte1, body.len())?;
    out.extend_from_slice(body);
    Ok(())
}

/// Result of reading a variable byte integer from the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VarInt {
    /// The value and the number of bytes it used.
    Value(usize, usize),
    /// The buffer ends before the integer does.
    Incomplete,
}

/// Reads a variable byte integer at the start of `buf`. A fifth continuation byte and a
/// non-minimal encoding (a trailing zero byte after a continuation) are malformed.
pub(crate) fn read_varint(buf: &[u8]) -> Result<VarInt, DecodeError> {
    let mut value: usize = 0;
    for i in 0..4 {
        let Some(&b) = buf.get(i) else {
            return Ok(VarInt::Incomplete);
        };
        value |= usize::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(DecodeError::malformed(
                    "variable byte integer is not minimally encoded",
                ));
            }
            return Ok(VarInt::Value(value, i + 1));
        }
    }
    Err(DecodeError::malformed(
        "variable byte integer longer than 4 bytes",
    ))
}

/// Checks an MQTT UTF-8 string received on the wire: valid UTF-8 and no U+0000.
pub(crate) fn decode_str(bytes: &[u8], what: &str) -> Result<String, DecodeError> {
    let s = std::str::from_utf8(bytes)
        .map_err(|_| DecodeError::malformed(format!("{what} is not valid UTF-8")))?;
    if bytes.contains(&0) {
        return Err(DecodeError::malformed(format!(
            "{what} contains the null character U+0000"
        )));
    }
    Ok(s.to_owned())
}

/// True when `c` is a control character (U+0001..U+001F, U+007F..U+009F) or a Unicode
/// non-character (U+FDD0..U+FDEF, U+xFFFE, U+xFFFF): code points the spec says a receiver
/// MAY treat as malformed (section 1.5.4).
pub(crate) fn is_disallowed_char(c: char) -> bool {
    let v = c as u32;
    (1..=0x1F).contains(&v)
        || (0x7F..=0x9F).contains(&v)
        || (0xFDD0..=0xFDEF).contains(&v)
        || (v & 0xFFFE) == 0xFFFE
}

/// A bounds-checked cursor over received bytes. Every read fails with a malformed-packet
/// error instead of panicking when the data runs out.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// True when every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Takes the next `n` bytes.
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| DecodeError::malformed(format!("packet too short for {what}")))?;
        let s = self.buf.get(self.pos..end).unwrap_or(&[]);
        self.pos = end;
        Ok(s)
    }

    /// Takes every byte left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        s
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, DecodeError> {
        let b = self.take(1, what)?;
        Ok(b.first().copied().unwrap_or(0))
    }

    /// Reads a big-endian u16.
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, DecodeError> {
        let b = self.take(2, what)?;
        let mut a = [0u8; 2];
        a.copy_from_slice(b);
        Ok(u16::from_be_bytes(a))
    }

    /// Reads a big-endian u32.
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, DecodeError> {
        let b = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(u32::from_be_bytes(a))
    }

    /// Reads a variable byte integer.
    pub(crate) fn varint(&mut self, what: &str) -> Result<usize, DecodeError> {
        match read_varint(self.buf.get(self.pos..).unwrap_or(&[]))? {
            VarInt::Value(v, n) => {
                self.pos = self.pos.saturating_add(n);
                Ok(v)
            }
            VarInt::Incomplete => Err(DecodeError::malformed(format!(
                "packet too short for {what}"
            ))),
        }
    }

    /// Reads length-prefixed binary data.
    pub(crate) fn binary(&mut self, what: &str) -> Result<&'a [u8], DecodeError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }

    /// Reads an MQTT UTF-8 string.
    pub(crate) fn string(&mut self, what: &str) -> Result<String, DecodeError> {
        let b = self.binary(what)?;
        decode_str(b, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: usize) -> Vec<u8> {
        let mut out = Vec::new();
        write_varint(&mut out, v);
        out
    }

    #[test]
    fn varint_boundaries() {
        let cases: &[(usize, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xFF, 0x7F]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xFF, 0xFF, 0x7F]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
        ];
        for &(v, bytes) in cases {
            assert_eq!(enc(v), bytes, "encoding {v}");
            assert_eq!(varint_len(v), bytes.len());
            assert_eq!(read_varint(bytes).unwrap(), VarInt::Value(v, bytes.len()));
            for n in 0..bytes.len() {
                assert_eq!(read_varint(&bytes[..n]).unwrap(), VarInt::Incomplete);
            }
        }
    }

    #[test]
    fn varint_malformed() {
        assert!(read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x7F]).is_err());
        assert!(read_varint(&[0x80, 0x80, 0x80, 0x80]).is_err());
        assert!(read_varint(&[0x80, 0x00]).is_err());
        assert_eq!(varint_len(268_435_456), 5);
    }

    #[test]
    fn strings() {
        assert!(check_str("a\u{1}\u{7f}\u{9f}\u{ffff}", "x").is_ok());
        assert!(check_str("a\0b", "x").is_err());
        assert!(check_str(&"a".repeat(65_536), "x").is_err());
        assert!(check_str(&"a".repeat(65_535), "x").is_ok());
        assert!(decode_str(&[0xED, 0xA0, 0x80], "x").is_err());
        assert!(decode_str(&[0x61, 0x00], "x").is_err());
        assert_eq!(
            decode_str(&[0xF0, 0xAA, 0x9B, 0x94], "x").unwrap(),
            "\u{2A6D4}"
        );
        assert!(is_disallowed_char('\u{1}'));
        assert!(is_disallowed_char('\u{9f}'));
        assert!(is_disallowed_char('\u{ffff}'));
        assert!(is_disallowed_char('\u{1fffe}'));
        assert!(!is_disallowed_char('a'));
        assert!(!is_disallowed_char('\u{2A6D4}'));
    }

    #[test]
    fn reader_bounds() {
        let mut r = Reader::new(&[0x00, 0x03, b'a', b'b']);
        assert!(r.clone().string("s").is_err());
        assert_eq!(r.u16("n").unwrap(), 3);
        assert!(r.u16("n").is_ok());
        assert!(r.u8("b").is_err());
        assert!(r.is_empty());
        let mut r = Reader::new(&[1, 2, 3]);
        assert!(r.u32("x").is_err());
        assert!(r.take(usize::MAX, "x").is_err());
        assert_eq!(r.rest(), &[1, 2, 3]);
    }
}
