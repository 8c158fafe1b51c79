//! Transformations, with ModSecurity v2's exact semantics.
//!
//! Each function reads `input` and writes the result into `out`, which the
//! caller owns and reuses, so a pipeline allocates nothing once its buffers
//! have grown.

use sha1::Digest as _;

/// A transformation (`t:` action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    Lowercase,
    Uppercase,
    UrlDecode,
    UrlDecodeUni,
    UrlEncode,
    JsDecode,
    HtmlEntityDecode,
    CssDecode,
    Utf8ToUnicode,
    RemoveNulls,
    ReplaceNulls,
    RemoveWhitespace,
    CompressWhitespace,
    CmdLine,
    ReplaceComments,
    RemoveComments,
    RemoveCommentsChar,
    NormalisePath,
    NormalisePathWin,
    EscapeSeqDecode,
    Base64Decode,
    Base64DecodeExt,
    Base64Encode,
    HexEncode,
    HexDecode,
    Sha1,
    Md5,
    Length,
    Trim,
    TrimLeft,
    TrimRight,
    SqlHexDecode,
    ParityEven7bit,
}

impl Transform {
    /// Looks a transformation up by its SecLang name; `None` (the reset) is
    /// handled by the caller.
    pub fn from_name(name: &str) -> Option<Transform> {
        use Transform::*;
        Some(match name.to_ascii_lowercase().as_str() {
            "lowercase" => Lowercase,
            "uppercase" => Uppercase,
            "urldecode" => UrlDecode,
            "urldecodeuni" => UrlDecodeUni,
            "urlencode" => UrlEncode,
            "jsdecode" => JsDecode,
            "htmlentitydecode" => HtmlEntityDecode,
            "cssdecode" => CssDecode,
            "utf8tounicode" => Utf8ToUnicode,
            "removenulls" => RemoveNulls,
            "replacenulls" => ReplaceNulls,
            "removewhitespace" => RemoveWhitespace,
            "compresswhitespace" => CompressWhitespace,
            "cmdline" => CmdLine,
            "replacecomments" => ReplaceComments,
            "removecomments" => RemoveComments,
            "removecommentschar" => RemoveCommentsChar,
            "normalisepath" | "normalizepath" => NormalisePath,
            "normalisepathwin" | "normalizepathwin" => NormalisePathWin,
            "escapeseqdecode" => EscapeSeqDecode,
            "base64decode" => Base64Decode,
            "base64decodeext" => Base64DecodeExt,
            "base64encode" => Base64Encode,
            "hexencode" => HexEncode,
            "hexdecode" => HexDecode,
            "sha1" => Sha1,
            "md5" => Md5,
            "length" => Length,
            "trim" => Trim,
            "trimleft" => TrimLeft,
            "trimright" => TrimRight,
            "sqlhexdecode" => SqlHexDecode,
            "parityeven7bit" => ParityEven7bit,
            _ => return None,
        })
    }

    /// Whether `apply` would certainly return `input` unchanged: a cheap
    /// scan for the bytes the transformation acts on. Conservative — `false`
    /// only means "run it". Benign values (plain words, numbers) leave most
    /// of CRS's pipelines unchanged, so this spares the copy and the compare.
    pub fn is_noop_on(self, input: &[u8]) -> bool {
        self.is_noop_with(features(input), input)
    }

    /// `is_noop_on` given the value's [`features`], which the pipeline cache
    /// keeps per value so most steps' test is one AND.
    pub(crate) fn is_noop_with(self, features: u32, input: &[u8]) -> bool {
        use Transform::*;
        match self {
            // Only whitespace at the ends matters.
            Trim | TrimLeft | TrimRight => {
                input.first().is_none_or(|&c| !is_space(c))
                    && input.last().is_none_or(|&c| !is_space(c))
            }
            // A value without a separator is one segment, kept unless `.`/`..`.
            NormalisePath => features & F_SLASH == 0 && input != b"." && input != b"..",
            NormalisePathWin => {
                features & (F_SLASH | F_BACKSLASH) == 0 && input != b"." && input != b".."
            }
            _ => self.trigger().is_some_and(|t| features & t == 0),
        }
    }

    /// The feature bits of the bytes this transformation acts on; `None`
    /// when it changes (nearly) every value (encoders, hashes, `length`).
    fn trigger(self) -> Option<u32> {
        use Transform::*;
        Some(match self {
            Lowercase => F_UPPER,
            Uppercase => F_LOWER,
            UrlDecode | UrlDecodeUni => F_PCT_PLUS,
            JsDecode | CssDecode | EscapeSeqDecode => F_BACKSLASH,
            HtmlEntityDecode => F_AMP,
            Utf8ToUnicode => F_NONASCII,
            RemoveNulls | ReplaceNulls => F_NUL,
            RemoveWhitespace | CompressWhitespace => F_SPACE | F_NBSP,
            CmdLine => F_UPPER | F_SPACE | F_BACKSLASH | F_SLASH | F_CMD,
            ReplaceComments => F_SLASH,
            RemoveComments | RemoveCommentsChar => F_SLASH | F_COMMENT,
            NormalisePath => F_SLASH | F_DOT,
            NormalisePathWin => F_SLASH | F_BACKSLASH | F_DOT,
            // Conservative: any whitespace at all, not only at the ends.
            Trim | TrimLeft | TrimRight => F_SPACE,
            _ => return None,
        })
    }

    /// Applies the transformation.
    pub fn apply(self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        use Transform::*;
        match self {
            Lowercase => out.extend(input.iter().map(|c| c.to_ascii_lowercase())),
            Uppercase => out.extend(input.iter().map(|c| c.to_ascii_uppercase())),
            UrlDecode => url_decode(input, out, false),
            UrlDecodeUni => url_decode(input, out, true),
            UrlEncode => url_encode(input, out),
            JsDecode => js_decode(input, out),
            HtmlEntityDecode => html_entity_decode(input, out),
            CssDecode => css_decode(input, out),
            Utf8ToUnicode => utf8_to_unicode(input, out),
            RemoveNulls => out.extend(input.iter().filter(|&&c| c != 0)),
            ReplaceNulls => out.extend(input.iter().map(|&c| if c == 0 { b' ' } else { c })),
            RemoveWhitespace => out.extend(input.iter().filter(|&&c| !is_space(c) && c != 0xa0)),
            CompressWhitespace => {
                let mut in_ws = false;
                for &c in input {
                    if is_space(c) || c == 0xa0 {
                        if !in_ws {
                            out.push(b' ');
                            in_ws = true;
                        }
                    } else {
                        out.push(c);
                        in_ws = false;
                    }
                }
            }
            CmdLine => cmd_line(input, out),
            ReplaceComments => replace_comments(input, out),
            RemoveComments => remove_comments(input, out),
            RemoveCommentsChar => remove_comments_char(input, out),
            NormalisePath => normalise_path(input, out, false),
            NormalisePathWin => normalise_path(input, out, true),
            EscapeSeqDecode => escape_seq_decode(input, out),
            Base64Decode => base64_decode(input, out, false),
            Base64DecodeExt => base64_decode(input, out, true),
            Base64Encode => base64_encode(input, out),
            HexEncode => {
                for &c in input {
                    out.push(HEX[(c >> 4) as usize]);
                    out.push(HEX[(c & 15) as usize]);
                }
            }
            HexDecode => {
                let mut i = 0;
                while i + 1 < input.len() {
                    out.push((hexval(input[i]) << 4) | hexval(input[i + 1]));
                    i += 2;
                }
            }
            Sha1 => out.extend_from_slice(&sha1::Sha1::digest(input)),
            Md5 => out.extend_from_slice(&md5::Md5::digest(input)),
            Length => out.extend_from_slice(input.len().to_string().as_bytes()),
            Trim => out.extend_from_slice(trim_right(trim_left(input))),
            TrimLeft => out.extend_from_slice(trim_left(input)),
            TrimRight => out.extend_from_slice(trim_right(input)),
            SqlHexDecode => sql_hex_decode(input, out),
            ParityEven7bit => out.extend(input.iter().map(|&c| {
                let c = c & 0x7f;
                if c.count_ones() % 2 == 1 {
                    c | 0x80
                } else {
                    c
                }
            })),
        }
    }
}

const F_UPPER: u32 = 1;
const F_LOWER: u32 = 1 << 1;
const F_PCT_PLUS: u32 = 1 << 2;
const F_BACKSLASH: u32 = 1 << 3;
const F_AMP: u32 = 1 << 4;
const F_NONASCII: u32 = 1 << 5;
const F_NUL: u32 = 1 << 6;
const F_SPACE: u32 = 1 << 7;
const F_NBSP: u32 = 1 << 8;
/// `"` `'` `^` `,` `;` `(`: what `cmdLine` drops or rewrites besides
/// whitespace, `\\`, `/` and capitals.
const F_CMD: u32 = 1 << 9;
const F_SLASH: u32 = 1 << 10;
/// `<` `-` `#` `*`: what opens or closes a comment besides `/`.
const F_COMMENT: u32 = 1 << 11;
const F_DOT: u32 = 1 << 12;

/// Whether a pipeline leaves any value with these features equal to itself
/// up to ASCII case: every step either cannot change it (its trigger bits
/// are absent) or only changes case. The prefilter scan ignores case, so
/// such a pipeline's values have the raw values' prefilter bits.
pub(crate) fn chain_keeps_bits(chain: &[Transform], mut features: u32) -> bool {
    for t in chain {
        match t {
            Transform::Lowercase => {
                if features & F_UPPER != 0 {
                    features = (features & !F_UPPER) | F_LOWER;
                }
            }
            Transform::Uppercase => {
                if features & F_LOWER != 0 {
                    features = (features & !F_LOWER) | F_UPPER;
                }
            }
            _ => match t.trigger() {
                Some(tr) if features & tr == 0 => {}
                _ => return false,
            },
        }
    }
    true
}

/// Feature bits of every byte value, see [`features`].
static FEATURES: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut c = 0usize;
    while c < 256 {
        let b = c as u8;
        let mut f = 0;
        if b.is_ascii_uppercase() {
            f |= F_UPPER;
        }
        if b.is_ascii_lowercase() {
            f |= F_LOWER;
        }
        if b >= 0x80 {
            f |= F_NONASCII;
        }
        f |= match b {
            b'%' | b'+' => F_PCT_PLUS,
            b'\\' => F_BACKSLASH,
            b'&' => F_AMP,
            0 => F_NUL,
            b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' => F_SPACE,
            0xa0 => F_NBSP,
            b'"' | b'\'' | b'^' | b',' | b';' | b'(' => F_CMD,
            b'/' => F_SLASH,
            b'<' | b'-' | b'#' | b'*' => F_COMMENT,
            b'.' => F_DOT,
            _ => 0,
        };
        t[c] = f;
        c += 1;
    }
    t
};

/// Which kinds of bytes a value holds (capitals, `%`/`+`, `\\`, `&`,
/// non-ASCII, NUL, whitespace, comment and path characters): the union of
/// [`FEATURES`] over its bytes.
pub(crate) fn features(input: &[u8]) -> u32 {
    input.iter().fold(0, |a, &c| a | FEATURES[c as usize])
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// C's `isspace` in the "C" locale.
pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hexval(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

fn x2c(a: u8, b: u8) -> u8 {
    (hexval(a) << 4) | hexval(b)
}

fn trim_left(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| is_space(c)).count();
    &s[n..]
}

fn trim_right(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&c| is_space(c)).count();
    &s[..s.len() - n]
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

/// `urlDecode` and `urlDecodeUni`: invalid escapes are left as they are.
pub(crate) fn url_decode(input: &[u8], out: &mut Vec<u8>, uni: bool) {
    let mut i = 0;
    let n = input.len();
    while i < n {
        let c = input[i];
        if c == b'%' {
            if uni && i + 1 < n && (input[i + 1] == b'u' || input[i + 1] == b'U') {
                if i + 5 < n && input[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit) {
                    let d = x2c(input[i + 4], input[i + 5]);
                    out.push(fullwidth_fix(d, input[i + 2], input[i + 3]));
                    i += 6;
                } else {
                    // Not a valid %u escape: keep the bytes as they are.
                    out.push(b'%');
                    i += 1;
                }
            } else if i + 2 < n
                && input[i + 1].is_ascii_hexdigit()
                && input[i + 2].is_ascii_hexdigit()
            {
                out.push(x2c(input[i + 1], input[i + 2]));
                i += 3;
            } else {
                out.push(b'%');
                i += 1;
            }
        } else if c == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
}

fn url_encode(input: &[u8], out: &mut Vec<u8>) {
    for &c in input {
        if c == b' ' {
            out.push(b'+');
        } else if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'*') {
            out.push(c);
        } else {
            out.push(b'%');
            out.push(HEX[(c >> 4) as usize]);
            out.push(HEX[(c & 15) as usize]);
        }
    }
}

fn js_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        if i + 5 < n
            && input[i + 1] == b'u'
            && input[i + 2..i + 6].iter().all(u8::is_ascii_hexdigit)
        {
            let d = x2c(input[i + 4], input[i + 5]);
            out.push(fullwidth_fix(d, input[i + 2], input[i + 3]));
            i += 6;
        } else if i + 3 < n
            && input[i + 1] == b'x'
            && input[i + 2].is_ascii_hexdigit()
            && input[i + 3].is_ascii_hexdigit()
        {
            out.push(x2c(input[i + 2], input[i + 3]));
            i += 4;
        } else if i + 1 < n && (b'0'..=b'7').contains(&input[i + 1]) {
            let mut j = 0;
            let mut v: u32 = 0;
            while j < 3 && i + 1 + j < n && (b'0'..=b'7').contains(&input[i + 1 + j]) {
                v = v * 8 + u32::from(input[i + 1 + j] - b'0');
                j += 1;
            }
            // Three octal digits only make a byte when the first is 0..3.
            if j == 3 && input[i + 1] > b'3' {
                j = 2;
                v /= 8;
            }
            out.push(v as u8);
            i += 1 + j;
        } else if i + 1 < n {
            let c = match input[i + 1] {
                b'a' => 7,
                b'b' => 8,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                c => c,
            };
            out.push(c);
            i += 2;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
}

fn html_entity_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if input[i] == b'&' && i + 1 < n {
            if input[i + 1] == b'#' {
                if i + 2 < n && (input[i + 2] == b'x' || input[i + 2] == b'X') {
                    let k = i + 3;
                    let mut j = k;
                    while j < n && input[j].is_ascii_hexdigit() {
                        j += 1;
                    }
                    if j > k {
                        let mut v: u32 = 0;
                        for &c in &input[k..j] {
                            v = v.wrapping_mul(16).wrapping_add(u32::from(hexval(c)));
                        }
                        out.push(v as u8);
                        i = if j < n && input[j] == b';' { j + 1 } else { j };
                        continue;
                    }
                } else {
                    let k = i + 2;
                    let mut j = k;
                    while j < n && input[j].is_ascii_digit() {
                        j += 1;
                    }
                    if j > k {
                        let mut v: u32 = 0;
                        for &c in &input[k..j] {
                            v = v.wrapping_mul(10).wrapping_add(u32::from(c - b'0'));
                        }
                        out.push(v as u8);
                        i = if j < n && input[j] == b';' { j + 1 } else { j };
                        continue;
                    }
                }
            } else {
                let k = i + 1;
                let mut j = k;
                while j < n && input[j].is_ascii_alphanumeric() {
                    j += 1;
                }
                if j > k {
                    let name = input[k..j].to_ascii_lowercase();
                    let rep: Option<u8> = match name.as_slice() {
                        b"quot" => Some(b'"'),
                        b"amp" => Some(b'&'),
                        b"lt" => Some(b'<'),
                        b"gt" => Some(b'>'),
                        b"nbsp" => Some(0xa0),
                        _ => None,
                    };
                    if let Some(r) = rep {
                        out.push(r);
                        i = if j < n && input[j] == b';' { j + 1 } else { j };
                        continue;
                    }
                }
            }
        }
        out.push(input[i]);
        i += 1;
    }
}

fn css_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if input[i] != b'\\' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        if i + 1 >= n {
            // A trailing backslash is dropped.
            i += 1;
            continue;
        }
        i += 1;
        let mut j = 0;
        while j < 6 && i + j < n && input[i + j].is_ascii_hexdigit() {
            j += 1;
        }
        if j > 0 {
            let mut fullcheck = false;
            let d = match j {
                1 => hexval(input[i]),
                2 | 3 => x2c(input[i + j - 2], input[i + j - 1]),
                4 => {
                    fullcheck = true;
                    x2c(input[i + 2], input[i + 3])
                }
                5 => {
                    fullcheck = input[i] == b'0';
                    x2c(input[i + 3], input[i + 4])
                }
                _ => {
                    fullcheck = input[i] == b'0' && input[i + 1] == b'0';
                    x2c(input[i + 4], input[i + 5])
                }
            };
            let d = if fullcheck {
                fullwidth_fix(d, input[i + j - 4], input[i + j - 3])
            } else {
                d
            };
            out.push(d);
            i += j;
            if i < n && is_space(input[i]) {
                i += 1;
            }
        } else if input[i] == b'\n' {
            i += 1;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
}

fn utf8_to_unicode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        let c = input[i];
        let (len, init) = if c < 0x80 {
            out.push(c);
            i += 1;
            continue;
        } else if c & 0xe0 == 0xc0 {
            (2, u32::from(c & 0x1f))
        } else if c & 0xf0 == 0xe0 {
            (3, u32::from(c & 0x0f))
        } else if c & 0xf8 == 0xf0 {
            (4, u32::from(c & 0x07))
        } else {
            out.push(c);
            i += 1;
            continue;
        };
        if i + len > n || !input[i + 1..i + len].iter().all(|&b| b & 0xc0 == 0x80) {
            out.push(c);
            i += 1;
            continue;
        }
        let mut cp = init;
        for &b in &input[i + 1..i + len] {
            cp = (cp << 6) | u32::from(b & 0x3f);
        }
        out.extend_from_slice(format!("%u{cp:04x}").as_bytes());
        i += len;
    }
}

fn cmd_line(input: &[u8], out: &mut Vec<u8>) {
    let mut space = false;
    for &c in input {
        match c {
            b'"' | b'\'' | b'\\' | b'^' => {}
            b' ' | b',' | b';' | b'\t' | b'\r' | b'\n' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(c);
            }
            _ => {
                out.push(c.to_ascii_lowercase());
                space = false;
            }
        }
    }
}

fn replace_comments(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    let mut incomment = false;
    while i < n {
        if !incomment {
            if input[i] == b'/' && i + 1 < n && input[i + 1] == b'*' {
                incomment = true;
                i += 2;
            } else {
                out.push(input[i]);
                i += 1;
            }
        } else if input[i] == b'*' && i + 1 < n && input[i + 1] == b'/' {
            incomment = false;
            i += 2;
            out.push(b' ');
        } else {
            i += 1;
        }
    }
    if incomment {
        out.push(b' ');
    }
}

fn remove_comments(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    let mut incomment = false;
    while i < n {
        if !incomment {
            if input[i] == b'/' && i + 1 < n && input[i + 1] == b'*' {
                incomment = true;
                i += 2;
            } else if input[i] == b'<' && input[i..].starts_with(b"<!--") {
                incomment = true;
                i += 4;
            } else if (input[i] == b'-' && i + 1 < n && input[i + 1] == b'-') || input[i] == b'#' {
                // `--` and `#` comment out the rest of the input.
                break;
            } else {
                out.push(input[i]);
                i += 1;
            }
        } else if input[i] == b'*' && i + 1 < n && input[i + 1] == b'/' {
            incomment = false;
            i += 2;
        } else if input[i] == b'-' && input[i..].starts_with(b"-->") {
            incomment = false;
            i += 3;
        } else {
            i += 1;
        }
    }
    if incomment {
        out.push(b' ');
    }
}

fn remove_comments_char(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        let rest = &input[i..];
        if rest.starts_with(b"/*") || rest.starts_with(b"*/") {
            i += 2;
        } else if rest.starts_with(b"<!--") {
            i += 4;
        } else if rest.starts_with(b"-->") {
            i += 3;
        } else if rest.starts_with(b"--") {
            i += 2;
        } else if rest[0] == b'#' {
            i += 1;
        } else {
            out.push(rest[0]);
            i += 1;
        }
    }
}

/// `normalisePath`: collapses `//`, drops `.` segments and resolves `..`
/// (kept at the start of a relative path), keeping a trailing slash. It
/// writes straight into `out`, using it as the segment stack.
fn normalise_path(input: &[u8], out: &mut Vec<u8>, win: bool) {
    if input.is_empty() {
        return;
    }
    let is_sep = |c: u8| c == b'/' || (win && c == b'\\');
    let absolute = is_sep(input[0]);
    if absolute {
        out.push(b'/');
    }
    let base = out.len();
    // Number of leading `..` segments kept in a relative path.
    let mut kept_up = 0usize;
    let mut segments = 0usize;
    let mut trailing = false;
    let mut i = 0;
    while i <= input.len() {
        let start = i;
        while i < input.len() && !is_sep(input[i]) {
            i += 1;
        }
        let seg = &input[start..i];
        let last = i >= input.len();
        i += 1;
        match seg {
            b"" => {
                if last && start > 0 {
                    trailing = true;
                }
            }
            b"." => trailing = last,
            b".." => {
                trailing = last;
                if segments > kept_up {
                    // Drop the last real segment (and its separator).
                    let cut = out[base..]
                        .iter()
                        .rposition(|&c| c == b'/')
                        .map(|p| base + p)
                        .unwrap_or(base);
                    out.truncate(cut);
                    segments -= 1;
                } else if !absolute {
                    if out.len() > base {
                        out.push(b'/');
                    }
                    out.extend_from_slice(b"..");
                    segments += 1;
                    kept_up += 1;
                }
            }
            _ => {
                trailing = false;
                if out.len() > base {
                    out.push(b'/');
                }
                out.extend_from_slice(seg);
                segments += 1;
            }
        }
    }
    if trailing && segments > 0 {
        out.push(b'/');
    }
}

fn escape_seq_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if input[i] != b'\\' || i + 1 >= n {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let simple = match input[i + 1] {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(0x0b),
            b'\\' => Some(b'\\'),
            b'?' => Some(b'?'),
            b'\'' => Some(b'\''),
            b'"' => Some(b'"'),
            _ => None,
        };
        if let Some(c) = simple {
            out.push(c);
            i += 2;
            continue;
        }
        if input[i + 1] == b'x' || input[i + 1] == b'X' {
            if i + 3 < n && input[i + 2].is_ascii_hexdigit() && input[i + 3].is_ascii_hexdigit() {
                out.push(x2c(input[i + 2], input[i + 3]));
                i += 4;
                continue;
            }
        } else if (b'0'..=b'7').contains(&input[i + 1]) {
            let mut j = 0;
            let mut v: u32 = 0;
            while j < 3 && i + 1 + j < n && (b'0'..=b'7').contains(&input[i + 1 + j]) {
                v = v * 8 + u32::from(input[i + 1 + j] - b'0');
                j += 1;
            }
            out.push(v as u8);
            i += 1 + j;
            continue;
        }
        // An escape it does not know: the backslash goes, the byte stays.
        out.push(input[i + 1]);
        i += 2;
    }
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
fn base64_decode(input: &[u8], out: &mut Vec<u8>, ext: bool) {
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

fn base64_encode(input: &[u8], out: &mut Vec<u8>) {
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

fn sql_hex_decode(input: &[u8], out: &mut Vec<u8>) {
    let n = input.len();
    let mut i = 0;
    while i < n {
        if input[i] == b'0'
            && i + 3 < n
            && (input[i + 1] == b'x' || input[i + 1] == b'X')
            && input[i + 2].is_ascii_hexdigit()
            && input[i + 3].is_ascii_hexdigit()
        {
            i += 2;
            while i + 1 < n && input[i].is_ascii_hexdigit() && input[i + 1].is_ascii_hexdigit() {
                out.push(x2c(input[i], input[i + 1]));
                i += 2;
            }
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every transformation name the property tests draw from.
    const ALL_TRANSFORMS: [&str; 33] = [
        "lowercase",
        "uppercase",
        "urlDecode",
        "urlDecodeUni",
        "urlEncode",
        "jsDecode",
        "htmlEntityDecode",
        "cssDecode",
        "utf8toUnicode",
        "removeNulls",
        "replaceNulls",
        "removeWhitespace",
        "compressWhitespace",
        "cmdLine",
        "replaceComments",
        "removeComments",
        "removeCommentsChar",
        "normalisePath",
        "normalisePathWin",
        "escapeSeqDecode",
        "base64Decode",
        "base64DecodeExt",
        "base64Encode",
        "hexEncode",
        "hexDecode",
        "sha1",
        "md5",
        "length",
        "trim",
        "trimLeft",
        "trimRight",
        "sqlHexDecode",
        "parityEven7bit",
    ];

    /// `chain_keeps_bits` must only accept pipelines whose output equals the
    /// input up to ASCII case (the list prefilter then reuses raw bits):
    /// random pipelines of up to four steps over random short inputs.
    #[test]
    fn chain_keeps_bits_never_lies() {
        let names = ALL_TRANSFORMS;
        let alphabet: &[u8] = b"aZ09_.-/\\%+&#;<>!*'\"^,( \t\x00\xa0\xc3\xa9uxX=";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..200_000 {
            let chain: Vec<Transform> = (0..next() % 5)
                .map(|_| {
                    Transform::from_name(names[(next() % names.len() as u64) as usize]).unwrap()
                })
                .collect();
            let input: Vec<u8> = (0..next() % 7)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            if chain_keeps_bits(&chain, features(&input)) {
                a.clear();
                a.extend_from_slice(&input);
                for t in &chain {
                    t.apply(&a, &mut b);
                    std::mem::swap(&mut a, &mut b);
                }
                assert!(
                    a.eq_ignore_ascii_case(&input),
                    "{chain:?} on {input:?} gave {a:?}"
                );
            }
        }
    }

    /// `is_noop_on` must never claim a no-op where `apply` changes the
    /// value (it lets the pipeline cache skip the step): every
    /// transformation over many short inputs drawn from the bytes they act on.
    #[test]
    fn is_noop_on_never_lies() {
        let names = ALL_TRANSFORMS;
        let alphabet: &[u8] = b"aZ09_.-/\\%+&#;<>!*'\"^,( \t\n\x00\xa0\xc3\xa9uxX=";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Vec::new();
        for name in names {
            let t = Transform::from_name(name).expect(name);
            for len in 0..7 {
                for _ in 0..4000 {
                    let input: Vec<u8> = (0..len)
                        .map(|_| {
                            seed ^= seed << 13;
                            seed ^= seed >> 7;
                            seed ^= seed << 17;
                            alphabet[(seed % alphabet.len() as u64) as usize]
                        })
                        .collect();
                    if t.is_noop_on(&input) {
                        t.apply(&input, &mut out);
                        assert_eq!(out, input, "{name} on {input:?}");
                    }
                }
            }
        }
    }

    fn check(t: &str, input: &[u8], expect: &[u8]) {
        let mut out = Vec::new();
        Transform::from_name(t).unwrap().apply(input, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(expect),
            "t:{t} on {:?}",
            String::from_utf8_lossy(input)
        );
    }

    #[test]
    fn decoders() {
        check("urlDecode", b"a%20b+c%zz%4", b"a b c%zz%4");
        check("urlDecodeUni", b"%u0041%uff0e%41%u00", b"A.A%u00");
        check(
            "jsDecode",
            b"\\x41\\u0042\\101\\n\\'\\uff0e",
            b"AB A\n'."
                .iter()
                .copied()
                .filter(|&c| c != b' ')
                .collect::<Vec<_>>()
                .as_slice(),
        );
        check(
            "htmlEntityDecode",
            b"&lt;&#x41;&#66&quot;&foo;&",
            b"<AB\"&foo;&",
        );
        check("cssDecode", b"\\6a\\61 vascript\\\nx\\", b"javascriptx");
        check("utf8toUnicode", "é".as_bytes(), b"%u00e9");
        check("escapeSeqDecode", b"\\x41\\101\\n\\z", b"AA\nz");
        check("base64Decode", b"YWJj.ZGVm", b"abc");
        check("base64DecodeExt", b"YWJj.ZGVm", b"abcdef");
        check("sqlHexDecode", b"0x414243 x", b"ABC x");
        check("hexDecode", b"414243", b"ABC");
    }

    #[test]
    fn normalisers() {
        check(
            "cmdLine",
            b"C:\\\\Win\"dows ; /c  ,dir (x",
            b"c:windows/c dir(x",
        );
        check("replaceComments", b"a/*x*/b/*", b"a b ");
        check("removeComments", b"a/*x*/b<!--c-->d--e", b"abd");
        check("removeCommentsChar", b"a/*b*/c--d#e", b"abcde");
        check("normalisePath", b"/a/./b/../../../c//d/", b"/c/d/");
        check("normalisePath", b"../../etc/passwd", b"../../etc/passwd");
        check("normalisePathWin", b"\\a\\..\\b", b"/b");
        check("normalisePath", b"/a/b/../c/./", b"/a/c/");
        check("normalisePath", b"a/../../b", b"../b");
        check("normalisePath", b"/../../etc/passwd", b"/etc/passwd");
        check("normalisePath", b"/a/b/..", b"/a/");
        check("compressWhitespace", b"a  \t b", b"a b");
        check("removeWhitespace", b"a  \t b", b"ab");
        check("length", b"abcd", b"4");
        check("trim", b"  a b  ", b"a b");
    }

    #[test]
    fn hashes() {
        check(
            "sha1",
            b"abc",
            &[
                0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
                0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d,
            ],
        );
        let mut out = Vec::new();
        Transform::Md5.apply(b"abc", &mut out);
        let mut hex = Vec::new();
        Transform::HexEncode.apply(&out, &mut hex);
        assert_eq!(hex, b"900150983cd24fb0d6963f7d28e17f72");
    }
}
