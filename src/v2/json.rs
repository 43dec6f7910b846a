//! Small JSON writers that produce exactly what Go's encoder produces.

/// Bytes that end a run of plain bytes in [`write_str`]: what Go escapes
/// (`"`, `\\`, control characters, `<`, `>`, `&`) and 0xE2, the first
/// byte of U+2028 and U+2029.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        t[b] = true;
        b += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t[0xe2] = true;
    t
};

/// Whether any of the eight bytes in `w` is [`SPECIAL`]. For each byte
/// `b`, `(b - n) & !b` has its high bit set only when `b < n` (for
/// `n <= 0x80`, and exactly when some byte of the word is below `n`), so
/// one subtraction finds control characters, and the same test of `w` XOR
/// a repeated character finds that character.
fn has_special(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * n as u64) & !v;
    let equal = |c: u8| below(w ^ (ONES * c as u64), 1);
    let found = below(w, 0x20)
        | equal(b'"')
        | equal(b'\\')
        | equal(b'<')
        | equal(b'>')
        | equal(b'&')
        | equal(0xe2);
    found & HIGH != 0
}

/// Writes `s` as a JSON string the way Go's `encoding/json` does (HTML
/// characters escaped as `\u003c` and friends).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    loop {
        // Plain bytes are copied as one run, found eight at a time.
        while let Some(word) = bytes.get(i..i + 8) {
            if has_special(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
                break;
            }
            i += 8;
        }
        while i < bytes.len() && !SPECIAL[bytes[i] as usize] {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let b = bytes[i];
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0xe2 => {
                // U+2028 / U+2029 are escaped; other characters starting
                // with 0xE2 are copied.
                if bytes.get(i + 1) == Some(&0x80)
                    && matches!(bytes.get(i + 2), Some(0xa8) | Some(0xa9))
                {
                    out.extend_from_slice(if bytes[i + 2] == 0xa8 {
                        b"\\u2028"
                    } else {
                        b"\\u2029"
                    });
                    i += 3;
                } else {
                    out.push(b);
                    i += 1;
                }
                start = i;
                continue;
            }
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xf) as usize]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Writes a number.
pub fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Writes a signed number.
pub fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

/// Formats Unix nanoseconds as Go's RFC 3339 with nanoseconds, in UTC
/// (trailing zeros of the fraction trimmed).
pub fn rfc3339_nanos(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000) as u32;
    let dt = match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => dt,
        Err(_) => time::OffsetDateTime::UNIX_EPOCH,
    };
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    if frac > 0 {
        let f = format!("{frac:09}");
        s.push('.');
        s.push_str(f.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Parses an RFC 3339 timestamp into Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(dt.unix_timestamp_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        let mut out = Vec::new();
        write_str(&mut out, "a<b>&\"\\\n\u{1}\u{2028}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\n\\u0001\\u2028é\""
        );
    }

    /// The run-copying writer against a byte-at-a-time model of Go's
    /// escaping, over every byte value and the characters near U+2028.
    #[test]
    fn escapes_every_byte_like_the_simple_model() {
        fn model(s: &str) -> String {
            let mut o = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' => o.push_str("\\\""),
                    '\\' => o.push_str("\\\\"),
                    '\n' => o.push_str("\\n"),
                    '\r' => o.push_str("\\r"),
                    '\t' => o.push_str("\\t"),
                    '\u{2028}' => o.push_str("\\u2028"),
                    '\u{2029}' => o.push_str("\\u2029"),
                    c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                        o.push_str(&format!("\\u{:04x}", c as u32))
                    }
                    c => o.push(c),
                }
            }
            o.push('"');
            o
        }
        let mut samples: Vec<String> = (0u32..0x80)
            .map(|b| format!("a{}b", char::from_u32(b).unwrap()))
            .collect();
        for c in [
            '\u{2027}', '\u{2028}', '\u{2029}', '\u{202a}', '\u{2000}', '✓', 'é',
        ] {
            samples.push(format!("{c}"));
            samples.push(format!("x{c}{c}y"));
        }
        samples.push(String::new());
        samples.push("plain text with no escapes at all".into());
        // Every character that is escaped, and bytes next to them, at each
        // offset of the words that are scanned eight bytes at a time.
        let plain = "0123456789abcdefghijklmnopqrstuv";
        for c in [
            '"', '\\', '<', '>', '&', '\u{0}', '\u{1f}', '\u{7f}', '\u{2028}', '\u{2029}',
            '\u{2027}', '!', '=', '?', '[', ']', '%', ' ', 'é', '✓',
        ] {
            for at in 0..=plain.len() {
                samples.push(format!("{}{c}{}", &plain[..at], &plain[at..]));
                samples.push(format!("{}{c}{c}{}", &plain[..at], &plain[at..]));
            }
        }
        for s in samples {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            assert_eq!(String::from_utf8(out).unwrap(), model(&s), "{s:?}");
        }
        let mut out = Vec::new();
        write_u64(&mut out, 0);
        out.push(b' ');
        write_u64(&mut out, u64::MAX);
        assert_eq!(out, b"0 18446744073709551615");
    }

    #[test]
    fn formats_time() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nanos(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
    }
}
