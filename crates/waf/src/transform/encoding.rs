//! The encodings: `urlEncode`, `hexEncode`/`hexDecode` and `base64Encode`/
//! `base64Decode`/`base64DecodeExt` (the hashes are one call each in
//! `Transform::apply`).

use super::decode::x2c;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `c` as two lowercase hex digits.
fn push_hex(out: &mut Vec<u8>, c: u8) {
    out.push(HEX[(c >> 4) as usize]);
    out.push(HEX[(c & 15) as usize]);
}

pub(super) fn url_encode(input: &[u8], out: &mut Vec<u8>) {
    for &c in input {
        if c == b' ' {
            out.push(b'+');
        } else if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'*') {
            out.push(c);
        } else {
            out.push(b'%');
            push_hex(out, c);
        }
    }
}

pub(super) fn hex_encode(input: &[u8], out: &mut Vec<u8>) {
    for &c in input {
        push_hex(out, c);
    }
}

/// `hexDecode`: every pair of bytes, digits or not (a byte that is not a
/// hex digit counts as 0); an odd last byte is dropped.
pub(super) fn hex_decode(input: &[u8], out: &mut Vec<u8>) {
    out.extend(input.chunks_exact(2).map(|p| x2c(p[0], p[1])));
}

fn b64val(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
}

/// `base64Decode` stops at the first byte that is not base64, as APR's decoder
/// does; `base64DecodeExt` skips such bytes instead.
pub(super) fn base64_decode(input: &[u8], out: &mut Vec<u8>, ext: bool) {
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in input {
        let v = match b64val(c) {
            Some(v) => v,
            None if ext => continue,
            None => break,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
}

pub(super) fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(v >> 18) as usize & 63]);
        out.push(T[(v >> 12) as usize & 63]);
        out.push(if chunk.len() > 1 {
            T[(v >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if chunk.len() > 2 {
            T[v as usize & 63]
        } else {
            b'='
        });
    }
}
