//! The escape decoders: `urlDecode`/`urlDecodeUni`, `jsDecode`,
//! `htmlEntityDecode`, `cssDecode`, `escapeSeqDecode`, `sqlHexDecode` and
//! `utf8toUnicode`.
//!
//! Each one follows its ModSecurity v2 counterpart byte for byte, down to
//! what it does with an invalid or cut-off escape (most keep it as it is,
//! `cssDecode` drops a trailing backslash), which is why they are written
//! here rather than taken from a crate. They share one scanning loop,
//! [`decode_escapes`], and the readers of the escape forms they have in
//! common.

use super::is_space;

/// The loop every decoder here shares: copies `input` into `out`, and at
/// each byte where `is_lead` holds lets `escape` decode what starts there.
/// `escape` gets the rest of the input (from the lead byte on), writes what
/// the escape stands for into `out` and says how many bytes it took (at
/// least one). `None` means no escape starts there, and `escape` wrote
/// nothing: the lead byte is copied as it is.
fn decode_escapes(
    input: &[u8],
    out: &mut Vec<u8>,
    is_lead: impl Fn(u8) -> bool,
    mut escape: impl FnMut(&[u8], &mut Vec<u8>) -> Option<usize>,
) {
    let mut i = 0;
    while let Some(p) = input[i..].iter().position(|&c| is_lead(c)) {
        out.extend_from_slice(&input[i..i + p]);
        i += p;
        match escape(&input[i..], out) {
            Some(len) => i += len,
            None => {
                out.push(input[i]);
                i += 1;
            }
        }
    }
    out.extend_from_slice(&input[i..]);
}

/// A hex digit's value; 0 for any other byte (callers check digits first
/// where ModSecurity does).
pub(super) fn hexval(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Two hex digits as one byte (ModSecurity's `x2c`).
pub(super) fn x2c(a: u8, b: u8) -> u8 {
    (hexval(a) << 4) | hexval(b)
}

/// The byte written by the two hex digits at `k`, if both are there.
fn hex_pair(s: &[u8], k: usize) -> Option<u8> {
    match *s.get(k..k + 2)? {
        [a, b] if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => Some(x2c(a, b)),
        _ => None,
    }
}

/// Full-width ASCII (U+FF01..U+FF5E) is mapped to ASCII by taking the low
/// byte and adding 0x20, as ModSecurity does when it has no Unicode map.
fn fullwidth_fix(d: u8, hi1: u8, hi2: u8) -> u8 {
    if d > 0 && d < 0x5f && (hi1 == b'f' || hi1 == b'F') && (hi2 == b'f' || hi2 == b'F') {
        d + 0x20
    } else {
        d
    }
}

/// The byte of a `%uHHHH` or `\uHHHH` escape whose four hex digits start at
/// `k`: the low byte, full-width ASCII mapped back.
fn unicode_escape(s: &[u8], k: usize) -> Option<u8> {
    let digits = s.get(k..k + 4)?;
    if !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    Some(fullwidth_fix(
        x2c(digits[2], digits[3]),
        digits[0],
        digits[1],
    ))
}

/// The value of the up to three octal digits `s` starts with, and how many
/// there are.
fn octal(s: &[u8]) -> (u32, usize) {
    let len = s
        .iter()
        .take(3)
        .take_while(|c| (b'0'..=b'7').contains(c))
        .count();
    let v = s[..len].iter().fold(0, |v, &c| v * 8 + u32::from(c - b'0'));
    (v, len)
}

/// What a backslash and `c` stand for in C (and JavaScript): a control
/// byte for the escape letters, `c` itself for anything else (`\\`, `\?`,
/// `\'`, `\"` and the escapes neither knows).
fn c_escape(c: u8) -> u8 {
    match c {
        b'a' => 7,
        b'b' => 8,
        b'f' => 0x0c,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'v' => 0x0b,
        c => c,
    }
}

/// `urlDecode` and `urlDecodeUni`: invalid escapes are left as they are.
pub(crate) fn url_decode(input: &[u8], out: &mut Vec<u8>, uni: bool) {
    decode_escapes(
        input,
        out,
        |c| c == b'%' || c == b'+',
        |rest, out| {
            let (c, len) = match rest {
                [b'+', ..] => (b' ', 1),
                // An invalid `%u` escape is not tried as `%HH`: its bytes
                // stay as they are.
                [_, b'u' | b'U', ..] if uni => (unicode_escape(rest, 2)?, 6),
                _ => (hex_pair(rest, 1)?, 3),
            };
            out.push(c);
            Some(len)
        },
    );
}

/// The loop of the backslash decoders, `jsDecode` and `escapeSeqDecode`: at
/// a backslash and the byte after it, `special` decodes the forms only one
/// of them knows; any other escape is an escape letter or stands for the
/// escaped byte (the backslash goes). A trailing backslash stays.
fn decode_backslashes(
    input: &[u8],
    out: &mut Vec<u8>,
    special: impl Fn(&[u8], u8) -> Option<(u8, usize)>,
) {
    decode_escapes(
        input,
        out,
        |c| c == b'\\',
        |rest, out| {
            let next = *rest.get(1)?;
            let (c, len) = special(rest, next).unwrap_or((c_escape(next), 2));
            out.push(c);
            Some(len)
        },
    );
}

/// `jsDecode`: `\uHHHH` (full-width ASCII mapped back), `\xHH`, octal and
/// the escape letters.
pub(super) fn js_decode(input: &[u8], out: &mut Vec<u8>) {
    decode_backslashes(input, out, |rest, next| match next {
        b'u' => unicode_escape(rest, 2).map(|c| (c, 6)),
        b'x' => hex_pair(rest, 2).map(|c| (c, 4)),
        b'0'..=b'7' => {
            let (mut v, mut len) = octal(&rest[1..]);
            // Three octal digits only make a byte when the first is 0..3.
            if len == 3 && next > b'3' {
                len = 2;
                v /= 8;
            }
            Some((v as u8, 1 + len))
        }
        _ => None,
    });
}

/// `escapeSeqDecode` (ANSI C escapes): `\xHH` or `\XHH`, up to three octal
/// digits (the value's low byte) and the escape letters; a `\x` without
/// digits is an unknown escape.
pub(super) fn escape_seq_decode(input: &[u8], out: &mut Vec<u8>) {
    decode_backslashes(input, out, |rest, next| match next {
        b'x' | b'X' => hex_pair(rest, 2).map(|c| (c, 4)),
        b'0'..=b'7' => {
            let (v, len) = octal(&rest[1..]);
            Some((v as u8, 1 + len))
        }
        _ => None,
    });
}

/// The entities `htmlEntityDecode` knows by name, matched ignoring case.
const NAMED_ENTITIES: [(&[u8], u8); 5] = [
    (b"quot", b'"'),
    (b"amp", b'&'),
    (b"lt", b'<'),
    (b"gt", b'>'),
    (b"nbsp", 0xa0),
];

/// `htmlEntityDecode`: `&#xHH…;`, `&#DD…;` (the value's low byte) and the
/// named entities above; the `;` is optional, and anything else stays.
pub(super) fn html_entity_decode(input: &[u8], out: &mut Vec<u8>) {
    decode_escapes(
        input,
        out,
        |c| c == b'&',
        |rest, out| {
            let (c, end) = match rest {
                [_, b'#', b'x' | b'X', ..] => entity_number(rest, 3, 16)?,
                [_, b'#', ..] => entity_number(rest, 2, 10)?,
                [_, _, ..] => {
                    let end = 1 + rest[1..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric())
                        .count();
                    let name = &rest[1..end];
                    let &(_, c) = NAMED_ENTITIES
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))?;
                    (c, end)
                }
                _ => return None,
            };
            out.push(c);
            Some(if rest.get(end) == Some(&b';') {
                end + 1
            } else {
                end
            })
        },
    );
}

/// A numeric entity's digits from `k`, in `radix`: the value's low byte and
/// where the digits end; `None` without a digit.
fn entity_number(s: &[u8], k: usize, radix: u32) -> Option<(u8, usize)> {
    let digit = |c: u8| char::from(c).to_digit(radix);
    let len = s[k..].iter().take_while(|&&c| digit(c).is_some()).count();
    if len == 0 {
        return None;
    }
    let v = s[k..k + len].iter().fold(0u32, |v, &c| {
        v.wrapping_mul(radix)
            .wrapping_add(digit(c).unwrap_or_default())
    });
    Some((v as u8, k + len))
}

/// `cssDecode`: a backslash and one to six hex digits (the last two make the
/// byte; full-width ASCII is mapped back when the digits before the last
/// four are zeros), eating one whitespace byte after them; an escaped
/// newline is a line continuation; any other escaped byte stands for itself.
pub(super) fn css_decode(input: &[u8], out: &mut Vec<u8>) {
    decode_escapes(
        input,
        out,
        |c| c == b'\\',
        |rest, out| {
            let Some(&next) = rest.get(1) else {
                // A trailing backslash is dropped.
                return Some(1);
            };
            let h = &rest[1..];
            let j = h
                .iter()
                .take(6)
                .take_while(|c| c.is_ascii_hexdigit())
                .count();
            if j == 0 {
                if next != b'\n' {
                    out.push(next);
                }
                return Some(2);
            }
            let d = if j == 1 {
                hexval(h[0])
            } else {
                x2c(h[j - 2], h[j - 1])
            };
            let fullcheck = j >= 4 && h[..j - 4].iter().all(|&c| c == b'0');
            out.push(if fullcheck {
                fullwidth_fix(d, h[j - 4], h[j - 3])
            } else {
                d
            });
            let len = 1 + j;
            Some(if rest.get(len).is_some_and(|&c| is_space(c)) {
                len + 1
            } else {
                len
            })
        },
    );
}

/// `sqlHexDecode`: `0x` and pairs of hex digits become those bytes; a `0x`
/// without a pair stays.
pub(super) fn sql_hex_decode(input: &[u8], out: &mut Vec<u8>) {
    decode_escapes(
        input,
        out,
        |c| c == b'0',
        |rest, out| {
            if !matches!(rest.get(1), Some(b'x' | b'X')) {
                return None;
            }
            let mut len = 2;
            while let Some(c) = hex_pair(rest, len) {
                out.push(c);
                len += 2;
            }
            (len > 2).then_some(len)
        },
    );
}

/// `utf8toUnicode`: each well-formed UTF-8 sequence of two to four bytes
/// becomes `%uXXXX` (lowercase hex, at least four digits); any other byte
/// stays.
pub(super) fn utf8_to_unicode(input: &[u8], out: &mut Vec<u8>) {
    decode_escapes(
        input,
        out,
        |c| c >= 0x80,
        |rest, out| {
            let c = rest[0];
            let (len, init) = if c & 0xe0 == 0xc0 {
                (2, c & 0x1f)
            } else if c & 0xf0 == 0xe0 {
                (3, c & 0x0f)
            } else if c & 0xf8 == 0xf0 {
                (4, c & 0x07)
            } else {
                return None;
            };
            let tail = rest.get(1..len)?;
            if !tail.iter().all(|&b| b & 0xc0 == 0x80) {
                return None;
            }
            let cp = tail
                .iter()
                .fold(u32::from(init), |cp, &b| (cp << 6) | u32::from(b & 0x3f));
            out.extend_from_slice(format!("%u{cp:04x}").as_bytes());
            Some(len)
        },
    );
}
