//! Request body processors: URL-encoded, multipart, JSON and XML.
//!
//! Each parser takes the buffered body and fills the transaction's
//! collections. None of them panics or recurses without bound on hostile
//! input: nesting depth, argument counts and JSON argument names are capped.
//! A parser that leaves anything out because of a cap says so, and the
//! transaction refuses or flags the request: arguments are never dropped
//! silently, or an attacker could hide an injection behind a thousand
//! dummy arguments.

use crate::transform::url_decode;

/// The deepest JSON or XML nesting parsed; deeper bodies are a parse error.
/// 256 is far beyond what real APIs send and keeps recursion shallow.
pub(crate) const MAX_DEPTH: usize = 256;

/// The longest JSON argument name kept, in bytes. Every leaf carries its
/// whole path (`json.a.b.c`), so long keys repeated over deep nesting or
/// many array items would multiply memory; 1 KiB is far beyond what real
/// APIs send (a dozen levels of 40-byte keys is about 500 bytes) and bounds
/// the names of a maximal argument list to 1 MiB. A longer name is left
/// out, which counts as truncation.
pub(crate) const MAX_JSON_NAME: usize = 1024;

/// Parses `a=1&b=2` into decoded (name, value) pairs, at most `limit` of
/// them in `out`. Returns whether any pair was left out for the limit.
#[must_use]
pub(crate) fn parse_urlencoded(
    input: &[u8],
    limit: usize,
    out: &mut Vec<(String, Vec<u8>)>,
) -> bool {
    let mut buf = Vec::new();
    for pair in input.split(|&c| c == b'&') {
        if pair.is_empty() {
            continue;
        }
        if out.len() >= limit {
            return true;
        }
        let (n, v) = match pair.iter().position(|&c| c == b'=') {
            Some(p) => (&pair[..p], &pair[p + 1..]),
            None => (pair, &b""[..]),
        };
        buf.clear();
        url_decode(n, &mut buf, false);
        let name = String::from_utf8_lossy(&buf).into_owned();
        let mut value = Vec::with_capacity(v.len());
        url_decode(v, &mut value, false);
        out.push((name, value));
    }
    false
}

/// Parses a `Cookie` header into (name, value) pairs, as ModSecurity does
/// for version 0 cookies: split on `;`, trim, split at the first `=`.
pub(crate) fn parse_cookies(input: &[u8], out: &mut Vec<(String, Vec<u8>)>) {
    for part in input.split(|&c| c == b';') {
        let part = trim(part);
        if part.is_empty() {
            continue;
        }
        let (n, v) = match part.iter().position(|&c| c == b'=') {
            Some(p) => (&part[..p], &part[p + 1..]),
            None => (part, &b""[..]),
        };
        out.push((String::from_utf8_lossy(trim(n)).into_owned(), v.to_vec()));
    }
}

pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let a = s.iter().take_while(|c| c.is_ascii_whitespace()).count();
    if a == s.len() {
        return &[];
    }
    let b = s
        .iter()
        .rev()
        .take_while(|c| c.is_ascii_whitespace())
        .count();
    &s[a..s.len() - b]
}

/// What the multipart parser found.
#[derive(Debug, Default)]
pub(crate) struct Multipart {
    pub args: Vec<(String, Vec<u8>)>,
    /// (field name, file name)
    pub files: Vec<(String, Vec<u8>)>,
    /// (field name, size)
    pub file_sizes: Vec<(String, usize)>,
    /// (field name, header line)
    pub part_headers: Vec<(String, Vec<u8>)>,
    pub error: Option<String>,
    pub boundary_quoted: bool,
    pub boundary_whitespace: bool,
    pub data_before: bool,
    pub data_after: bool,
    pub header_folding: bool,
    pub lf_line: bool,
    pub crlf_line: bool,
    pub missing_semicolon: bool,
    pub invalid_quoting: bool,
    pub invalid_part: bool,
    pub invalid_header_folding: bool,
    pub unmatched_boundary: bool,
    pub last_name: Vec<u8>,
    pub last_filename: Vec<u8>,
    /// Whether fields were left out for the arguments limit.
    pub args_truncated: bool,
}

impl Multipart {
    pub(crate) fn strict_error(&self) -> bool {
        self.error.is_some()
            || self.boundary_quoted
            || self.boundary_whitespace
            || self.data_before
            || self.data_after
            || self.header_folding
            || (self.lf_line && self.crlf_line)
            || self.missing_semicolon
            || self.invalid_quoting
            || self.invalid_part
            || self.invalid_header_folding
    }
}

/// Extracts the boundary from a multipart Content-Type.
fn boundary(content_type: &[u8], mp: &mut Multipart) -> Option<Vec<u8>> {
    let lower = content_type.to_ascii_lowercase();
    let pos = crate::operator::memmem(&lower, b"boundary")?;
    let mut rest = &content_type[pos + 8..];
    if rest.first().is_some_and(|c| c.is_ascii_whitespace()) {
        mp.boundary_whitespace = true;
        rest = trim(rest);
    }
    let rest = rest.strip_prefix(b"=")?;
    let mut rest = rest;
    if rest.first().is_some_and(|c| c.is_ascii_whitespace()) {
        mp.boundary_whitespace = true;
        rest = trim(rest);
    }
    let b = if let Some(r) = rest.strip_prefix(b"\"") {
        mp.boundary_quoted = true;
        let end = r.iter().position(|&c| c == b'"')?;
        &r[..end]
    } else {
        let end = rest
            .iter()
            .position(|&c| c == b';' || c == b',' || c == b' ')
            .unwrap_or(rest.len());
        &rest[..end]
    };
    if b.is_empty() {
        return None;
    }
    Some(b.to_vec())
}

/// Parses `name="x"; filename="y"` parameters of Content-Disposition.
/// The `name` and `filename` parameters of a part.
type Disposition = (Option<Vec<u8>>, Option<Vec<u8>>);

fn disposition_params(value: &[u8], mp: &mut Multipart) -> Option<Disposition> {
    let v = trim(value);
    let lower = v.to_ascii_lowercase();
    if !lower.starts_with(b"form-data") {
        return None;
    }
    let mut rest = &v[9..];
    let mut name = None;
    let mut filename = None;
    loop {
        rest = trim(rest);
        if rest.is_empty() {
            break;
        }
        if rest[0] == b';' {
            rest = &rest[1..];
            continue;
        }
        let eq = rest.iter().position(|&c| c == b'=')?;
        let key = trim(&rest[..eq]).to_ascii_lowercase();
        rest = trim(&rest[eq + 1..]);
        let val;
        if rest.first() == Some(&b'"') {
            let mut i = 1;
            let mut out = Vec::new();
            let mut closed = false;
            while i < rest.len() {
                if rest[i] == b'\\'
                    && i + 1 < rest.len()
                    && (rest[i + 1] == b'"' || rest[i + 1] == b'\\')
                {
                    out.push(rest[i + 1]);
                    i += 2;
                } else if rest[i] == b'"' {
                    closed = true;
                    i += 1;
                    break;
                } else {
                    out.push(rest[i]);
                    i += 1;
                }
            }
            if !closed {
                mp.invalid_quoting = true;
            }
            val = out;
            rest = &rest[i..];
        } else {
            let end = rest.iter().position(|&c| c == b';').unwrap_or(rest.len());
            val = trim(&rest[..end]).to_vec();
            if val.contains(&b'\'') || val.contains(&b'"') {
                mp.invalid_quoting = true;
            }
            rest = &rest[end..];
        }
        let after = trim(rest);
        if !after.is_empty() && after[0] != b';' {
            mp.missing_semicolon = true;
        }
        match key.as_slice() {
            b"name" => name = Some(val),
            b"filename" | b"filename*" => filename = Some(val),
            _ => {}
        }
    }
    Some((name, filename))
}

/// Parses a multipart/form-data body.
pub(crate) fn parse_multipart(content_type: &[u8], body: &[u8], limit: usize) -> Multipart {
    let mut mp = Multipart::default();
    let Some(b) = boundary(content_type, &mut mp) else {
        mp.error = Some("Multipart: Boundary not found in C-T".into());
        return mp;
    };
    let mut delim = b"--".to_vec();
    delim.extend_from_slice(&b);
    // Find the first boundary; anything before it is a preamble.
    let Some(first) = find_delim(body, &delim, 0) else {
        mp.error = Some("Multipart: No boundaries found in payload".into());
        return mp;
    };
    if !trim(&body[..first]).is_empty() {
        mp.data_before = true;
    }
    let mut pos = first;
    let mut finished = false;
    loop {
        let after = pos + delim.len();
        if body[after..].starts_with(b"--") {
            finished = true;
            let tail = &body[(after + 2).min(body.len())..];
            if !trim(tail).is_empty() {
                mp.data_after = true;
            }
            break;
        }
        // The rest of the boundary line.
        let Some(eol) = body[after..].iter().position(|&c| c == b'\n') else {
            break;
        };
        let part_start = after + eol + 1;
        let next = find_delim(body, &delim, part_start);
        let part_end = match next {
            Some(n) => n,
            None => body.len(),
        };
        let mut part = &body[part_start..part_end];
        // The CRLF before the next boundary belongs to the boundary.
        if next.is_some() {
            if part.ends_with(b"\r\n") {
                part = &part[..part.len() - 2];
                mp.crlf_line = true;
            } else if part.ends_with(b"\n") {
                part = &part[..part.len() - 1];
                mp.lf_line = true;
            }
        }
        parse_part(part, &mut mp, limit);
        match next {
            Some(n) => pos = n,
            None => break,
        }
    }
    if !finished {
        mp.error
            .get_or_insert_with(|| "Multipart: Final boundary missing".into());
    }
    mp
}

fn find_delim(body: &[u8], delim: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at < body.len() {
        let p = crate::operator::memmem(&body[at..], delim)? + at;
        // A boundary starts a line.
        if p == 0 || body[p - 1] == b'\n' {
            return Some(p);
        }
        at = p + 1;
    }
    None
}

fn parse_part(part: &[u8], mp: &mut Multipart, limit: usize) {
    // Headers end at the first empty line.
    let mut i = 0;
    let mut headers: Vec<Vec<u8>> = Vec::new();
    let mut body_start = None;
    while i < part.len() {
        let eol = part[i..].iter().position(|&c| c == b'\n').map(|p| p + i);
        let (line, next) = match eol {
            Some(e) => {
                let l = &part[i..e];
                if l.ends_with(b"\r") {
                    mp.crlf_line = true;
                    (&l[..l.len() - 1], e + 1)
                } else {
                    mp.lf_line = true;
                    (l, e + 1)
                }
            }
            None => (&part[i..], part.len()),
        };
        if line.is_empty() {
            body_start = Some(next);
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            mp.header_folding = true;
            match headers.last_mut() {
                Some(h) => h.extend_from_slice(line),
                None => mp.invalid_header_folding = true,
            }
        } else {
            headers.push(line.to_vec());
        }
        i = next;
    }
    let Some(body_start) = body_start else {
        mp.invalid_part = true;
        mp.error.get_or_insert_with(|| {
            "Multipart: Invalid part header (missing end of headers)".into()
        });
        return;
    };
    let data = &part[body_start.min(part.len())..];
    let mut name = None;
    let mut filename = None;
    for h in &headers {
        let Some(colon) = h.iter().position(|&c| c == b':') else {
            mp.invalid_part = true;
            mp.error
                .get_or_insert_with(|| "Multipart: Invalid part header (colon missing)".into());
            continue;
        };
        if h[..colon]
            .iter()
            .any(|&c| !(c.is_ascii_graphic() && c != b':'))
        {
            mp.invalid_part = true;
            mp.error.get_or_insert_with(|| {
                "Multipart: Invalid part header (contains invalid character)".into()
            });
        }
        let key = trim(&h[..colon]).to_ascii_lowercase();
        if key == b"content-disposition" {
            match disposition_params(&h[colon + 1..], mp) {
                Some((n, f)) => {
                    name = n;
                    filename = f;
                }
                None => {
                    mp.invalid_part = true;
                    mp.error.get_or_insert_with(|| {
                        "Multipart: Invalid Content-Disposition header".into()
                    });
                }
            }
        }
    }
    let Some(name) = name else {
        mp.invalid_part = true;
        mp.error
            .get_or_insert_with(|| "Multipart: Part missing Content-Disposition name".into());
        return;
    };
    let name_s = String::from_utf8_lossy(&name).into_owned();
    for h in headers {
        mp.part_headers.push((name_s.clone(), h));
    }
    mp.last_name = name.clone();
    match filename {
        Some(f) => {
            mp.last_filename = f.clone();
            mp.files.push((name_s.clone(), f));
            mp.file_sizes.push((name_s, data.len()));
        }
        None => {
            if mp.args.len() < limit {
                mp.args.push((name_s, data.to_vec()));
            } else {
                mp.args_truncated = true;
            }
        }
    }
}

/// What the JSON parser left out; all false when it kept every value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JsonDropped {
    /// Values past the arguments limit.
    pub over_limit: bool,
    /// Values whose name would be longer than [`MAX_JSON_NAME`].
    pub long_name: bool,
}

/// Parses a JSON body into arguments named like `json.a.b`; elements of
/// array `json.a.c` are all named `json.a.c.c`, as in ModSecurity v2.
/// At most `limit` values are kept; `dropped` says what was left out, also
/// when parsing then fails.
pub(crate) fn parse_json(
    body: &[u8],
    limit: usize,
    out: &mut Vec<(String, Vec<u8>)>,
    dropped: &mut JsonDropped,
) -> Result<(), String> {
    let mut p = JsonParser {
        s: body,
        i: 0,
        out,
        limit,
        dropped: JsonDropped::default(),
    };
    p.ws();
    let r = p.value(&Name::Kept("json".into()), 0);
    *dropped = p.dropped;
    r?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!(
            "JSON parsing error: trailing data at offset {}",
            p.i
        ));
    }
    Ok(())
}

/// The argument name of a JSON value being parsed.
enum Name {
    Kept(String),
    /// Longer than [`MAX_JSON_NAME`], and so is every name below it.
    TooLong,
    /// Past the arguments limit: nothing below it is kept, so no name is
    /// built (the rest of the body is still parsed, for its syntax).
    OverLimit,
}

struct JsonParser<'a, 'o> {
    s: &'a [u8],
    i: usize,
    out: &'o mut Vec<(String, Vec<u8>)>,
    limit: usize,
    dropped: JsonDropped,
}

impl JsonParser<'_, '_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("JSON parsing error: {what} at offset {}", self.i))
    }

    fn emit(&mut self, name: &Name, value: Vec<u8>) {
        match name {
            Name::Kept(key) if self.out.len() < self.limit => {
                self.out.push((key.clone(), value));
            }
            Name::Kept(_) | Name::OverLimit => self.dropped.over_limit = true,
            Name::TooLong => self.dropped.long_name = true,
        }
    }

    /// The name of a child `part` of `parent`.
    fn child(&self, parent: &Name, part: &str) -> Name {
        match parent {
            Name::TooLong => Name::TooLong,
            // The list only grows: a name built now could never be kept.
            _ if self.out.len() >= self.limit => Name::OverLimit,
            Name::OverLimit => Name::OverLimit,
            Name::Kept(key) if key.len() + 1 + part.len() > MAX_JSON_NAME => Name::TooLong,
            Name::Kept(key) => Name::Kept(format!("{key}.{part}")),
        }
    }

    fn value(&mut self, key: &Name, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return self.err("nesting too deep");
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.ws();
                    if self.s.get(self.i) != Some(&b'"') {
                        return self.err("expected key");
                    }
                    let k = self.string()?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return self.err("expected colon");
                    }
                    self.i += 1;
                    let child = self.child(key, &String::from_utf8_lossy(&k));
                    self.value(&child, depth + 1)?;
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return self.err("expected , or }"),
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(());
                }
                // ModSecurity v2 names every element of array `a.b` as
                // `a.b.b` (the array's own key repeated), and CRS tests rely
                // on a name ending in the key (934210).
                let child = match key {
                    Name::Kept(k) => {
                        let last = k.rsplit('.').next().unwrap_or(k);
                        self.child(key, last)
                    }
                    other => self.child(other, ""),
                };
                loop {
                    self.value(&child, depth + 1)?;
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(());
                        }
                        _ => return self.err("expected , or ]"),
                    }
                }
            }
            Some(b'"') => {
                let v = self.string()?;
                self.emit(key, v);
                Ok(())
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len()
                    && !matches!(
                        self.s[self.i],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    self.i += 1;
                }
                let lit = &self.s[start..self.i];
                let ok = lit == b"true" || lit == b"false" || lit == b"null" || is_number(lit);
                if !ok {
                    return self.err("invalid literal");
                }
                let v = if lit == b"null" {
                    Vec::new()
                } else {
                    lit.to_vec()
                };
                self.emit(key, v);
                Ok(())
            }
            None => self.err("unexpected end"),
        }
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        self.i += 1;
        let mut out = Vec::new();
        while self.i < self.s.len() {
            let c = self.s[self.i];
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(out);
                }
                b'\\' => {
                    let Some(&e) = self.s.get(self.i + 1) else {
                        return self.err("bad escape");
                    };
                    self.i += 2;
                    match e {
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'/' => out.push(b'/'),
                        b'b' => out.push(8),
                        b'f' => out.push(0x0c),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'u' => {
                            let Some(h) = self.s.get(self.i..self.i + 4) else {
                                return self.err("bad \\u escape");
                            };
                            let Ok(hs) = std::str::from_utf8(h) else {
                                return self.err("bad \\u escape");
                            };
                            let Ok(mut cp) = u32::from_str_radix(hs, 16) else {
                                return self.err("bad \\u escape");
                            };
                            self.i += 4;
                            if (0xd800..0xdc00).contains(&cp)
                                && self.s.get(self.i..self.i + 2) == Some(b"\\u")
                            {
                                if let Some(lo) = self
                                    .s
                                    .get(self.i + 2..self.i + 6)
                                    .and_then(|h| std::str::from_utf8(h).ok())
                                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                                {
                                    if (0xdc00..0xe000).contains(&lo) {
                                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                        self.i += 6;
                                    }
                                }
                            }
                            let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return self.err("bad escape"),
                    }
                }
                _ => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        self.err("unterminated string")
    }
}

fn is_number(s: &[u8]) -> bool {
    !s.is_empty()
        && std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some()
        && !s.starts_with(b"+")
}

/// What the XML parser found.
#[derive(Debug, Default)]
pub(crate) struct Xml {
    /// All text content, concatenated (the value of `XML:/*`).
    pub text: Vec<u8>,
    /// Attribute values (the values of `XML://@*`).
    pub attrs: Vec<(String, Vec<u8>)>,
}

/// Parses an XML body. It checks well-formedness of tags, collects text
/// and attribute values, and decodes the predefined and numeric entities.
pub(crate) fn parse_xml(body: &[u8]) -> Result<Xml, String> {
    let mut x = Xml::default();
    let s = body;
    let mut i = 0;
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut seen_root = false;
    while i < s.len() {
        if s[i] != b'<' {
            let end = s[i..]
                .iter()
                .position(|&c| c == b'<')
                .map(|p| p + i)
                .unwrap_or(s.len());
            let text = &s[i..end];
            if stack.is_empty() {
                if !trim(text).is_empty() {
                    return Err(
                        "XML: Failed parsing document: content outside the root element".into(),
                    );
                }
            } else {
                decode_entities(text, &mut x.text);
            }
            i = end;
            continue;
        }
        let rest = &s[i..];
        if rest.starts_with(b"<?") {
            let end = find(rest, b"?>").ok_or("XML: unterminated processing instruction")?;
            i += end + 2;
        } else if rest.starts_with(b"<!--") {
            let end = find(rest, b"-->").ok_or("XML: unterminated comment")?;
            i += end + 3;
        } else if rest.starts_with(b"<![CDATA[") {
            let end = find(rest, b"]]>").ok_or("XML: unterminated CDATA")?;
            x.text.extend_from_slice(&rest[9..end]);
            i += end + 3;
        } else if rest.starts_with(b"<!") {
            // DOCTYPE, possibly with an internal subset in brackets.
            let mut depth = 0;
            let mut j = 2;
            while j < rest.len() {
                match rest[j] {
                    b'[' => depth += 1,
                    b']' => depth -= 1,
                    b'>' if depth <= 0 => break,
                    _ => {}
                }
                j += 1;
            }
            if j >= rest.len() {
                return Err("XML: unterminated declaration".into());
            }
            i += j + 1;
        } else if rest.starts_with(b"</") {
            let end = rest
                .iter()
                .position(|&c| c == b'>')
                .ok_or("XML: unterminated end tag")?;
            let name = trim(&rest[2..end]);
            match stack.pop() {
                Some(open) if open == name => {}
                _ => return Err("XML: Failed parsing document: mismatched end tag".into()),
            }
            i += end + 1;
        } else {
            // Start tag with attributes.
            let mut j = 1;
            while j < rest.len()
                && !rest[j].is_ascii_whitespace()
                && rest[j] != b'>'
                && rest[j] != b'/'
            {
                j += 1;
            }
            let name = rest[1..j].to_vec();
            if name.is_empty() {
                return Err("XML: Failed parsing document: invalid tag".into());
            }
            if stack.is_empty() && seen_root {
                return Err("XML: Failed parsing document: extra content at the end".into());
            }
            loop {
                while j < rest.len() && rest[j].is_ascii_whitespace() {
                    j += 1;
                }
                if j >= rest.len() {
                    return Err("XML: unterminated start tag".into());
                }
                if rest[j] == b'>' {
                    stack.push(name.clone());
                    seen_root = true;
                    j += 1;
                    break;
                }
                if rest[j] == b'/' && rest.get(j + 1) == Some(&b'>') {
                    seen_root = true;
                    j += 2;
                    break;
                }
                let a0 = j;
                while j < rest.len()
                    && rest[j] != b'='
                    && !rest[j].is_ascii_whitespace()
                    && rest[j] != b'>'
                {
                    j += 1;
                }
                let aname = String::from_utf8_lossy(&rest[a0..j]).into_owned();
                while j < rest.len() && rest[j].is_ascii_whitespace() {
                    j += 1;
                }
                if rest.get(j) != Some(&b'=') {
                    return Err("XML: Failed parsing document: attribute without value".into());
                }
                j += 1;
                while j < rest.len() && rest[j].is_ascii_whitespace() {
                    j += 1;
                }
                let q = *rest.get(j).ok_or("XML: unterminated attribute")?;
                if q != b'"' && q != b'\'' {
                    return Err("XML: Failed parsing document: unquoted attribute".into());
                }
                let vend = rest[j + 1..]
                    .iter()
                    .position(|&c| c == q)
                    .ok_or("XML: unterminated attribute")?
                    + j
                    + 1;
                let mut v = Vec::new();
                decode_entities(&rest[j + 1..vend], &mut v);
                x.attrs.push((aname, v));
                j = vend + 1;
            }
            i += j;
            if stack.len() > MAX_DEPTH {
                return Err("XML: nesting too deep".into());
            }
        }
    }
    if !stack.is_empty() || !seen_root {
        return Err("XML: Failed parsing document: premature end of data".into());
    }
    Ok(x)
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    crate::operator::memmem(h, n)
}

fn decode_entities(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'&' {
            if let Some(semi) = s[i..].iter().take(12).position(|&c| c == b';') {
                let ent = &s[i + 1..i + semi];
                let rep: Option<u32> = match ent {
                    b"lt" => Some(u32::from(b'<')),
                    b"gt" => Some(u32::from(b'>')),
                    b"amp" => Some(u32::from(b'&')),
                    b"quot" => Some(u32::from(b'"')),
                    b"apos" => Some(u32::from(b'\'')),
                    _ if ent.starts_with(b"#x") => std::str::from_utf8(&ent[2..])
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok()),
                    _ if ent.starts_with(b"#") => std::str::from_utf8(&ent[1..])
                        .ok()
                        .and_then(|h| h.parse().ok()),
                    _ => None,
                };
                if let Some(cp) = rep {
                    let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    i += semi + 1;
                    continue;
                }
            }
        }
        out.push(s[i]);
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys() {
        let mut out = Vec::new();
        let mut dropped = JsonDropped::default();
        parse_json(
            br#"{"a":{"b":"x","c":[1,"y"]},"d":null}"#,
            100,
            &mut out,
            &mut dropped,
        )
        .unwrap();
        assert_eq!(dropped, JsonDropped::default());
        let got: Vec<String> = out
            .iter()
            .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
            .collect();
        assert_eq!(
            got,
            ["json.a.b=x", "json.a.c.c=1", "json.a.c.c=y", "json.d="]
        );
        assert!(parse_json(b"{\"a\":", 100, &mut out, &mut dropped).is_err());
        let deep = "[".repeat(100_000);
        assert!(parse_json(deep.as_bytes(), 100, &mut out, &mut dropped).is_err());
    }

    #[test]
    fn json_reports_what_it_leaves_out() {
        let parse = |body: &str, limit: usize| {
            let mut out = Vec::new();
            let mut dropped = JsonDropped::default();
            let r = parse_json(body.as_bytes(), limit, &mut out, &mut dropped);
            (r.is_ok(), out.len(), dropped)
        };
        let (ok, n, d) = parse("[1,2,3]", 3);
        assert!(ok && n == 3 && d == JsonDropped::default());
        let (ok, n, d) = parse(r#"{"a":1,"b":{"c":[2,3]},"d":{}}"#, 2);
        assert!(ok && n == 2 && d.over_limit && !d.long_name);
        // Empty containers past the limit hold no value: nothing is lost.
        let (ok, n, d) = parse(r#"{"a":1,"b":{},"c":[]}"#, 1);
        assert!(ok && n == 1 && d == JsonDropped::default());
        // A name at the cap is kept, one byte more is not (nor below it).
        let key = "k".repeat(MAX_JSON_NAME - "json.".len());
        let (ok, n, d) = parse(&format!(r#"{{"{key}":1}}"#), 10);
        assert!(ok && n == 1 && d == JsonDropped::default());
        let (ok, n, d) = parse(&format!(r#"{{"{key}x":{{"a":1}},"b":2}}"#), 10);
        assert!(ok && n == 1 && d.long_name && !d.over_limit);
        // Deep nesting reaches the cap too, before the depth limit.
        let deep = format!("{}1{}", r#"{"abcdefgh":"#.repeat(200), "}".repeat(200));
        let (ok, n, d) = parse(&deep, 10);
        assert!(ok && n == 0 && d.long_name);
        // What was left out is reported even when the body is then invalid.
        let (ok, _, d) = parse("[1,2,3,", 2);
        assert!(!ok && d.over_limit);
    }

    #[test]
    fn urlencoded_and_multipart_report_the_limit() {
        let mut out = Vec::new();
        assert!(!parse_urlencoded(b"a=1&&b=2&", 2, &mut out));
        out.clear();
        assert!(parse_urlencoded(b"a=1&b=2&c=3", 2, &mut out));
        assert_eq!(out.len(), 2);
        let body = b"--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--X\r\nContent-Disposition: form-data; name=\"b\"\r\n\r\n2\r\n--X--\r\n";
        let mp = parse_multipart(b"multipart/form-data; boundary=X", body, 2);
        assert!(!mp.args_truncated && mp.args.len() == 2);
        let mp = parse_multipart(b"multipart/form-data; boundary=X", body, 1);
        assert!(mp.args_truncated && mp.args.len() == 1);
    }

    #[test]
    fn multipart_fields_and_files() {
        let body = b"--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--X\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.php\"\r\nContent-Type: text/plain\r\n\r\n<?php\r\n--X--\r\n";
        let mp = parse_multipart(b"multipart/form-data; boundary=X", body, 100);
        assert_eq!(mp.args, vec![("a".to_string(), b"1".to_vec())]);
        assert_eq!(mp.files, vec![("f".to_string(), b"x.php".to_vec())]);
        assert!(!mp.strict_error(), "{mp:?}");
    }

    #[test]
    fn xml_text_and_attributes() {
        let x = parse_xml(b"<?xml version=\"1.0\"?><a t=\"v&amp;\"><b>x</b>y</a>").unwrap();
        assert_eq!(x.text, b"xy");
        assert_eq!(x.attrs, vec![("t".to_string(), b"v&".to_vec())]);
        assert!(parse_xml(b"<a><b></a>").is_err());
    }
}
#[cfg(test)]
mod xml_more {
    #[test]
    fn attribute_element() {
        let x = super::parse_xml(b"<?xml version=\"1.0\"?><xml><element attribute_name=\"attribute_value\">com.opensymphony.xwork2</element></xml>").unwrap();
        assert_eq!(x.text, b"com.opensymphony.xwork2");
    }
}
