//! The byte mini-language of the mosquitto conformance corpus
//! (see `tests/data/mosquitto-msg-sequence/README.md`), plus hex helpers.
//!
//! Tokens, separated by whitespace:
//! - `3a`, `00`, `746F70` … hex bytes as written (an even number of hex digits);
//! - `iN` one unsigned byte;
//! - `HN`, `kN`, `mN`, `sN` big-endian u16;
//! - `LN` big-endian u32;
//! - `vN`, `rN` MQTT variable byte integer (values >= 2^28 are written anyway, as 5+ bytes);
//! - `'text'` the UTF-8 bytes of text; may contain spaces.

use std::fmt::Write as _;

/// Parses a payload of the corpus mini-language. Panics with a clear message on a bad token.
pub fn parse_payload(s: &str) -> Vec<u8> {
    match try_parse_payload(s) {
        Ok(v) => v,
        Err(e) => panic!("bad payload {s:?}: {e}"),
    }
}

/// Parses a payload of the corpus mini-language.
pub fn try_parse_payload(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '\'' {
            chars.next();
            let mut end = None;
            for (i, c) in chars.by_ref() {
                if c == '\'' {
                    end = Some(i);
                    break;
                }
            }
            let end = end.ok_or_else(|| format!("unterminated quoted string at offset {start}"))?;
            out.extend_from_slice(&s.as_bytes()[start + 1..end]);
            if let Some(&(_, next)) = chars.peek() {
                if !next.is_whitespace() {
                    return Err(format!(
                        "quoted string at offset {start} is followed by {next:?} without a space"
                    ));
                }
            }
            continue;
        }
        let mut end = s.len();
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() {
                end = i;
                break;
            }
            chars.next();
        }
        parse_token(&s[start..end], &mut out)?;
    }
    Ok(out)
}

fn parse_token(tok: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let first = tok.chars().next().expect("non-empty token");
    let number = |max: u64| -> Result<u64, String> {
        let digits = &tok[1..];
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("token {tok:?}: {digits:?} is not a decimal number"))?;
        if n > max {
            return Err(format!("token {tok:?}: {n} is larger than {max}"));
        }
        Ok(n)
    };
    match first {
        'i' => out.push(number(u8::MAX as u64)? as u8),
        'H' | 'k' | 'm' | 's' => {
            out.extend_from_slice(&(number(u16::MAX as u64)? as u16).to_be_bytes())
        }
        'L' => out.extend_from_slice(&(number(u32::MAX as u64)? as u32).to_be_bytes()),
        'v' | 'r' => encode_varint(number(u64::MAX)?, out),
        _ => {
            if !tok.len().is_multiple_of(2) || !tok.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "token {tok:?} is neither hex bytes nor a known prefix (i H k m s L v r)"
                ));
            }
            for i in (0..tok.len()).step_by(2) {
                out.push(u8::from_str_radix(&tok[i..i + 2], 16).expect("checked hex"));
            }
        }
    }
    Ok(())
}

/// Appends `n` as an MQTT variable byte integer. Unlike a conforming encoder it does not stop
/// at 4 bytes: values >= 2^28 come out as 5 or more bytes (the corpus uses that for
/// malformed packets).
pub fn encode_varint(mut n: u64, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// `n` as an MQTT variable byte integer (see [`encode_varint`]).
pub fn varint(n: u64) -> Vec<u8> {
    let mut v = Vec::new();
    encode_varint(n, &mut v);
    v
}

/// Decodes a variable byte integer at the start of `bytes` (at most 4 bytes, as MQTT allows).
/// Returns `(value, bytes used)`, `Ok(None)` if more bytes are needed, `Err` if malformed.
pub fn decode_varint(bytes: &[u8]) -> Result<Option<(u32, usize)>, String> {
    let mut value: u32 = 0;
    for i in 0..4 {
        let Some(&b) = bytes.get(i) else {
            return Ok(None);
        };
        value |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(format!(
        "variable byte integer longer than 4 bytes: {}",
        hex(&bytes[..4])
    ))
}

/// A u16-length-prefixed UTF-8 string, as MQTT encodes strings.
pub fn mqtt_str(s: &str) -> Vec<u8> {
    mqtt_bin(s.as_bytes())
}

/// u16-length-prefixed binary data.
pub fn mqtt_bin(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.len() + 2);
    v.extend_from_slice(&(b.len() as u16).to_be_bytes());
    v.extend_from_slice(b);
    v
}

/// Lower-case hex with a space between bytes: `"10 0c 00 04"`.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 3);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// A readable comparison of two byte strings for assertion messages: both in hex, the
/// offset of the first difference, and a caret line under it.
pub fn hex_diff(expected: &[u8], actual: &[u8]) -> String {
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let le = format!("expected ({:>6} bytes): ", expected.len());
    let la = format!("actual   ({:>6} bytes): ", actual.len());
    let mut s = String::new();
    let _ = writeln!(s, "{le}{}", hex(expected));
    let _ = writeln!(s, "{la}{}", hex(actual));
    let _ = writeln!(s, "{}^^", " ".repeat(le.len() + first * 3));
    let _ = write!(s, "first difference at byte {first}");
    if actual.is_ascii() || expected.is_ascii() {
        let _ = write!(
            s,
            "\nexpected (lossy text): {:?}\nactual   (lossy text): {:?}",
            String::from_utf8_lossy(expected),
            String::from_utf8_lossy(actual)
        );
    }
    s
}

/// Asserts two byte strings are equal, with a hex diff in the panic message.
#[track_caller]
pub fn assert_bytes_eq(expected: &[u8], actual: &[u8], context: &str) {
    if expected != actual {
        panic!("{context}: bytes differ\n{}", hex_diff(expected, actual));
    }
}
