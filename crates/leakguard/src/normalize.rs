//! Streaming normalisation of HTML character references and JSON string escapes.
//!
//! Leaks hide behind encodings that a browser or a JSON parser undoes: `jo&#64;example.org`,
//! `jo&commat;example.org` and `jo\u0040example.org` all read as an email address. The scanner
//! matches on the normalised text, and redacts in the original bytes through the [`Edit`] list
//! this module records, so that a redaction never rewrites markup it did not mean to touch.

/// The longest escape this module decodes: a JSON surrogate pair is 12 bytes, the longest named
/// reference here is shorter. Anything longer is not an escape and passes through.
const MAX_ESCAPE: usize = 32;

/// Bytes after an escape's first byte within which the normaliser has settled it (completed it
/// or given it up as literal), when no other escape starts in them.
pub(crate) const ESCAPE_SPAN: usize = MAX_ESCAPE + 1;

/// One decoded escape: `norm_len` normalised bytes at `norm_start` came from `orig_len` original
/// bytes at `orig_start`. Offsets count from the start of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edit {
    pub norm_start: u64,
    pub norm_len: u32,
    pub orig_start: u64,
    pub orig_len: u32,
}

enum Parse {
    /// Decoded to these bytes, consuming this many input bytes.
    Complete([u8; 4], usize, usize),
    /// Not an escape this module knows: the first byte is literal.
    Invalid,
    /// The input ended inside what may be an escape.
    NeedMore,
}

/// Named references worth decoding: those that spell the characters identifiers are made of.
/// Other names pass through unchanged, which is harmless for matching.
const NAMED: &[(&[u8], char)] = &[
    (b"commat", '@'),
    (b"amp", '&'),
    (b"AMP", '&'),
    (b"lt", '<'),
    (b"LT", '<'),
    (b"gt", '>'),
    (b"GT", '>'),
    (b"quot", '"'),
    (b"QUOT", '"'),
    (b"apos", '\''),
    (b"nbsp", ' '),
    (b"period", '.'),
    (b"comma", ','),
    (b"colon", ':'),
    (b"semi", ';'),
    (b"hyphen", '-'),
    (b"dash", '-'),
    (b"minus", '-'),
    (b"ndash", '-'),
    (b"plus", '+'),
    (b"lpar", '('),
    (b"rpar", ')'),
    (b"sol", '/'),
    (b"lowbar", '_'),
    (b"num", '#'),
    (b"percnt", '%'),
    (b"pound", '£'),
    (b"euro", '€'),
    (b"dollar", '$'),
    (b"NewLine", '\n'),
    (b"Tab", '\t'),
    (b"thinsp", ' '),
    (b"ensp", ' '),
    (b"emsp", ' '),
];

fn encode(c: char) -> ([u8; 4], usize) {
    let mut buf = [0u8; 4];
    let len = c.encode_utf8(&mut buf).len();
    (buf, len)
}

fn hex_value(b: u8) -> Option<u32> {
    (b as char).to_digit(16)
}

fn parse_reference(input: &[u8]) -> Parse {
    // input[0] == b'&'
    let Some(&next) = input.get(1) else {
        return Parse::NeedMore;
    };
    if next == b'#' {
        let (hex, digits_start) = match input.get(2) {
            None => return Parse::NeedMore,
            Some(b'x' | b'X') => (true, 3),
            Some(_) => (false, 2),
        };
        let mut value: u32 = 0;
        let mut i = digits_start;
        loop {
            let Some(&b) = input.get(i) else {
                return if i >= MAX_ESCAPE {
                    Parse::Invalid
                } else {
                    Parse::NeedMore
                };
            };
            let digit = if hex {
                hex_value(b)
            } else {
                (b as char).to_digit(10)
            };
            match digit {
                Some(d) if i - digits_start < 8 => {
                    value = value * if hex { 16 } else { 10 } + d;
                    i += 1;
                }
                Some(_) => return Parse::Invalid,
                None => break,
            }
        }
        if i == digits_start {
            return Parse::Invalid;
        }
        // Browsers accept a numeric reference without its semicolon; so does this.
        let consumed = if input[i] == b';' { i + 1 } else { i };
        return match char::from_u32(value) {
            Some(c) if value != 0 => {
                let (bytes, len) = encode(c);
                Parse::Complete(bytes, len, consumed)
            }
            _ => Parse::Invalid,
        };
    }
    let mut i = 1;
    loop {
        let Some(&b) = input.get(i) else {
            return if i >= MAX_ESCAPE {
                Parse::Invalid
            } else {
                Parse::NeedMore
            };
        };
        if b.is_ascii_alphanumeric() && i < MAX_ESCAPE {
            i += 1;
            continue;
        }
        if b != b';' || i == 1 {
            return Parse::Invalid;
        }
        let name = &input[1..i];
        return match NAMED.iter().find(|(n, _)| *n == name) {
            Some((_, c)) => {
                let (bytes, len) = encode(*c);
                Parse::Complete(bytes, len, i + 1)
            }
            None => Parse::Invalid,
        };
    }
}

fn parse_hex4(input: &[u8]) -> Option<Option<u32>> {
    if input.len() < 4 {
        return None;
    }
    let mut v = 0;
    for &b in &input[..4] {
        match hex_value(b) {
            Some(d) => v = v * 16 + d,
            None => return Some(None),
        }
    }
    Some(Some(v))
}

fn parse_backslash(input: &[u8]) -> Parse {
    // input[0] == b'\\'
    let Some(&next) = input.get(1) else {
        return Parse::NeedMore;
    };
    let simple = |c: char| {
        let (bytes, len) = encode(c);
        Parse::Complete(bytes, len, 2)
    };
    match next {
        b'u' => {
            let Some(high) = parse_hex4(&input[2..]) else {
                return Parse::NeedMore;
            };
            let Some(high) = high else {
                return Parse::Invalid;
            };
            if (0xD800..0xDC00).contains(&high) {
                // A high surrogate needs its low half: `\uD83D\uDE00`.
                let rest = &input[6..];
                if rest.len() < 2 {
                    return Parse::NeedMore;
                }
                if rest[0] != b'\\' || rest[1] != b'u' {
                    return Parse::Invalid;
                }
                let Some(low) = parse_hex4(&rest[2..]) else {
                    return Parse::NeedMore;
                };
                let Some(low) = low.filter(|l| (0xDC00..0xE000).contains(l)) else {
                    return Parse::Invalid;
                };
                let value = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                return match char::from_u32(value) {
                    Some(c) => {
                        let (bytes, len) = encode(c);
                        Parse::Complete(bytes, len, 12)
                    }
                    None => Parse::Invalid,
                };
            }
            match char::from_u32(high) {
                Some(c) if high != 0 => {
                    let (bytes, len) = encode(c);
                    Parse::Complete(bytes, len, 6)
                }
                _ => Parse::Invalid,
            }
        }
        // The escaped backslash must be consumed whole, or `\\u0040` would decode twice.
        b'\\' => simple('\\'),
        b'/' => simple('/'),
        b'"' => simple('"'),
        b'n' => simple('\n'),
        b't' => simple('\t'),
        b'r' => simple('\r'),
        _ => Parse::Invalid,
    }
}

fn parse_escape(input: &[u8]) -> Parse {
    match input[0] {
        b'&' => parse_reference(input),
        _ => parse_backslash(input),
    }
}

/// Streaming normaliser. Holds at most [`MAX_ESCAPE`] bytes of an escape split across chunks.
#[derive(Debug, Default)]
pub(crate) struct Normalizer {
    stash: [u8; MAX_ESCAPE],
    stash_len: usize,
    stash_orig: u64,
}

impl Normalizer {
    pub fn reset(&mut self) {
        self.stash_len = 0;
        self.stash_orig = 0;
    }

    /// Whether no escape is pending from earlier input, so that the next bytes, if they hold
    /// no `&` or `\\`, come out unchanged.
    pub fn is_idle(&self) -> bool {
        self.stash_len == 0
    }

    /// Normalises `input`, whose first byte is at original offset `orig_base`, appending to
    /// `out` (whose end is at normalised offset `norm_base + out.len() - out_start`…, given as
    /// `norm_at`). When `edits` is given, each decoded escape is recorded there.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        mut orig_base: u64,
        out: &mut Vec<u8>,
        norm_end: &mut u64,
        mut edits: Option<&mut Vec<Edit>>,
    ) {
        // First settle an escape left over from the previous chunk, one byte at a time, so that
        // it completes exactly when its terminator arrives.
        while self.stash_len > 0 {
            match parse_escape(&self.stash[..self.stash_len]) {
                Parse::NeedMore => {
                    let Some((&b, rest)) = input.split_first() else {
                        return;
                    };
                    if self.stash_len == MAX_ESCAPE {
                        self.flush_stash_literal(out, norm_end, edits.as_deref_mut());
                        continue;
                    }
                    self.stash[self.stash_len] = b;
                    self.stash_len += 1;
                    input = rest;
                    orig_base += 1;
                }
                Parse::Complete(bytes, len, consumed) => {
                    if let Some(edits) = edits.as_deref_mut() {
                        edits.push(Edit {
                            norm_start: *norm_end,
                            norm_len: len as u32,
                            orig_start: self.stash_orig,
                            orig_len: consumed as u32,
                        });
                    }
                    out.extend_from_slice(&bytes[..len]);
                    *norm_end += len as u64;
                    // A numeric reference without `;` completes on the byte after it, which is
                    // not part of the escape: replay what follows it.
                    let leftover_len = self.stash_len - consumed;
                    let mut leftover = [0u8; MAX_ESCAPE];
                    leftover[..leftover_len].copy_from_slice(&self.stash[consumed..self.stash_len]);
                    let leftover_orig = self.stash_orig + consumed as u64;
                    self.stash_len = 0;
                    self.feed_plain(
                        &leftover[..leftover_len],
                        leftover_orig,
                        out,
                        norm_end,
                        edits.as_deref_mut(),
                    );
                }
                Parse::Invalid => {
                    self.flush_stash_literal(out, norm_end, edits.as_deref_mut());
                }
            }
        }
        self.feed_plain(input, orig_base, out, norm_end, edits);
    }

    /// The stash is not an escape: its first byte is literal, the rest is replayed.
    fn flush_stash_literal(
        &mut self,
        out: &mut Vec<u8>,
        norm_end: &mut u64,
        edits: Option<&mut Vec<Edit>>,
    ) {
        out.push(self.stash[0]);
        *norm_end += 1;
        let mut rest = [0u8; MAX_ESCAPE];
        let rest_len = self.stash_len - 1;
        rest[..rest_len].copy_from_slice(&self.stash[1..self.stash_len]);
        let rest_orig = self.stash_orig + 1;
        self.stash_len = 0;
        self.feed_plain(&rest[..rest_len], rest_orig, out, norm_end, edits);
    }

    fn feed_plain(
        &mut self,
        input: &[u8],
        orig_base: u64,
        out: &mut Vec<u8>,
        norm_end: &mut u64,
        mut edits: Option<&mut Vec<Edit>>,
    ) {
        let mut i = 0;
        while i < input.len() {
            let Some(k) = memchr::memchr2(b'&', b'\\', &input[i..]) else {
                out.extend_from_slice(&input[i..]);
                *norm_end += (input.len() - i) as u64;
                return;
            };
            out.extend_from_slice(&input[i..i + k]);
            *norm_end += k as u64;
            i += k;
            match parse_escape(&input[i..]) {
                Parse::Complete(bytes, len, consumed) => {
                    if let Some(edits) = edits.as_deref_mut() {
                        edits.push(Edit {
                            norm_start: *norm_end,
                            norm_len: len as u32,
                            orig_start: orig_base + i as u64,
                            orig_len: consumed as u32,
                        });
                    }
                    out.extend_from_slice(&bytes[..len]);
                    *norm_end += len as u64;
                    i += consumed;
                }
                Parse::NeedMore => {
                    let rest = &input[i..];
                    // NeedMore is only returned for fewer than MAX_ESCAPE bytes.
                    let n = rest.len().min(MAX_ESCAPE);
                    self.stash[..n].copy_from_slice(&rest[..n]);
                    self.stash_len = n;
                    self.stash_orig = orig_base + i as u64;
                    return;
                }
                Parse::Invalid => {
                    out.push(input[i]);
                    *norm_end += 1;
                    i += 1;
                }
            }
        }
    }

    /// Ends the body: a pending partial escape is literal text.
    pub fn finish(
        &mut self,
        out: &mut Vec<u8>,
        norm_end: &mut u64,
        mut edits: Option<&mut Vec<Edit>>,
    ) {
        while self.stash_len > 0 {
            // Give the parser its final chance with what it has, then fall back to literal.
            match parse_escape(&self.stash[..self.stash_len]) {
                Parse::Complete(..) | Parse::NeedMore | Parse::Invalid => {
                    self.flush_stash_literal(out, norm_end, edits.as_deref_mut());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normalise_in_chunks(input: &[u8], chunk: usize) -> (Vec<u8>, Vec<Edit>) {
        let mut n = Normalizer::default();
        let mut out = Vec::new();
        let mut edits = Vec::new();
        let mut end = 0u64;
        let mut orig = 0u64;
        for piece in input.chunks(chunk) {
            n.feed(piece, orig, &mut out, &mut end, Some(&mut edits));
            orig += piece.len() as u64;
        }
        n.finish(&mut out, &mut end, Some(&mut edits));
        assert_eq!(end, out.len() as u64);
        (out, edits)
    }

    #[test]
    fn decodes_references_and_escapes_whatever_the_chunking() {
        let input = br#"a&#64;b &commat; &#x40; \u0040 \\u0040 &#64x &amp;lt; &bogus; & \ud83d\ude00 &pound;5 \"q\""#;
        let expected = "a@b @ @ @ \\u0040 @x &lt; &bogus; & \u{1F600} £5 \"q\"";
        for chunk in [1, 2, 3, 5, 7, 100] {
            let (out, _) = normalise_in_chunks(input, chunk);
            assert_eq!(String::from_utf8_lossy(&out), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn edits_map_back_to_the_original_bytes() {
        let input = b"x&#64;y\\u0040z";
        let (out, edits) = normalise_in_chunks(input, 1);
        assert_eq!(out, b"x@y@z");
        assert_eq!(
            edits,
            vec![
                Edit {
                    norm_start: 1,
                    norm_len: 1,
                    orig_start: 1,
                    orig_len: 5
                },
                Edit {
                    norm_start: 3,
                    norm_len: 1,
                    orig_start: 7,
                    orig_len: 6
                },
            ]
        );
    }

    #[test]
    fn an_unterminated_escape_at_the_end_is_literal() {
        let (out, _) = normalise_in_chunks(b"tail &#6", 3);
        assert_eq!(out, b"tail &#6");
        let (out, _) = normalise_in_chunks(b"tail \\u00", 2);
        assert_eq!(out, b"tail \\u00");
    }
}
