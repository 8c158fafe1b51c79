//! Transformations, with ModSecurity v2's exact semantics.
//!
//! Each function reads `input` and writes the result into `out`, which the
//! caller owns and reuses, so a pipeline allocates nothing once its buffers
//! have grown. This module holds the dispatch and the feature bits that let
//! a pipeline skip a step; the transformations themselves live in `decode`
//! (the escape decoders), `normalise` (whitespace, comments, paths) and
//! `encoding` (URL, hex and base64 encodings).

mod decode;
mod encoding;
mod normalise;

use sha1::Digest as _;

pub(crate) use decode::url_decode;
use decode::{
    css_decode, escape_seq_decode, html_entity_decode, js_decode, sql_hex_decode, utf8_to_unicode,
};
use encoding::{base64_decode, base64_encode, hex_decode, hex_encode, url_encode};
use normalise::{
    cmd_line, compress_whitespace, is_space_or_nbsp, normalise_path, remove_comments_char,
    strip_comments, trim_left, trim_right,
};

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
            RemoveWhitespace => out.extend(input.iter().filter(|&&c| !is_space_or_nbsp(c))),
            CompressWhitespace => compress_whitespace(input, out),
            CmdLine => cmd_line(input, out),
            ReplaceComments => strip_comments(input, out, true),
            RemoveComments => strip_comments(input, out, false),
            RemoveCommentsChar => remove_comments_char(input, out),
            NormalisePath => normalise_path(input, out, false),
            NormalisePathWin => normalise_path(input, out, true),
            EscapeSeqDecode => escape_seq_decode(input, out),
            Base64Decode => base64_decode(input, out, false),
            Base64DecodeExt => base64_decode(input, out, true),
            Base64Encode => base64_encode(input, out),
            HexEncode => hex_encode(input, out),
            HexDecode => hex_decode(input, out),
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

/// C's `isspace` in the "C" locale.
pub(crate) fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
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

    /// A xorshift64 generator: random inputs that are the same on every run.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// `chain_keeps_bits` must only accept pipelines whose output equals the
    /// input up to ASCII case (the list prefilter then reuses raw bits):
    /// random pipelines of up to four steps over random short inputs.
    #[test]
    fn chain_keeps_bits_never_lies() {
        let names = ALL_TRANSFORMS;
        let alphabet: &[u8] = b"aZ09_.-/\\%+&#;<>!*'\"^,( \t\x00\xa0\xc3\xa9uxX=";
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
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
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut out = Vec::new();
        for name in names {
            let t = Transform::from_name(name).expect(name);
            for len in 0..7 {
                for _ in 0..4000 {
                    let input: Vec<u8> = (0..len)
                        .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
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

    /// A value that exercises each transformation, and what it becomes:
    /// name, input, output.
    const VECTORS: &[(&str, &[u8], &[u8])] = &[
        ("urlDecode", b"a%20b+c%zz%4", b"a b c%zz%4"),
        ("urlDecodeUni", b"%u0041%uff0e%41%u00", b"A.A%u00"),
        ("jsDecode", b"\\x41\\u0042\\101\\n\\'\\uff0e", b"ABA\n'."),
        (
            "htmlEntityDecode",
            b"&lt;&#x41;&#66&quot;&foo;&",
            b"<AB\"&foo;&",
        ),
        ("cssDecode", b"\\6a\\61 vascript\\\nx\\", b"javascriptx"),
        ("utf8toUnicode", b"\xc3\xa9", b"%u00e9"),
        ("escapeSeqDecode", b"\\x41\\101\\n\\z", b"AA\nz"),
        ("base64Decode", b"YWJj.ZGVm", b"abc"),
        ("base64DecodeExt", b"YWJj.ZGVm", b"abcdef"),
        ("sqlHexDecode", b"0x414243 x", b"ABC x"),
        ("hexDecode", b"414243", b"ABC"),
        (
            "cmdLine",
            b"C:\\\\Win\"dows ; /c  ,dir (x",
            b"c:windows/c dir(x",
        ),
        ("replaceComments", b"a/*x*/b/*", b"a b "),
        ("removeComments", b"a/*x*/b<!--c-->d--e", b"abd"),
        ("removeCommentsChar", b"a/*b*/c--d#e", b"abcde"),
        ("normalisePath", b"/a/./b/../../../c//d/", b"/c/d/"),
        ("normalisePath", b"../../etc/passwd", b"../../etc/passwd"),
        ("normalisePathWin", b"\\a\\..\\b", b"/b"),
        ("normalisePath", b"/a/b/../c/./", b"/a/c/"),
        ("normalisePath", b"a/../../b", b"../b"),
        ("normalisePath", b"/../../etc/passwd", b"/etc/passwd"),
        ("normalisePath", b"/a/b/..", b"/a/"),
        ("compressWhitespace", b"a  \t b", b"a b"),
        ("removeWhitespace", b"a  \t b", b"ab"),
        ("length", b"abcd", b"4"),
        ("trim", b"  a b  ", b"a b"),
    ];

    #[test]
    fn decoders_and_normalisers() {
        for &(t, input, expect) in VECTORS {
            check(t, input, expect);
        }
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
