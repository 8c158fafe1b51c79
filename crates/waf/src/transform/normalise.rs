//! The normalisers: whitespace, `cmdLine`, comments, paths and trimming
//! (case and NUL handling are one call each in `Transform::apply`).

use super::is_space;

/// What `removeWhitespace` and `compressWhitespace` count as whitespace:
/// C's `isspace` and the non-breaking space (0xa0), as ModSecurity does.
pub(super) fn is_space_or_nbsp(c: u8) -> bool {
    is_space(c) || c == 0xa0
}

/// `compressWhitespace`: each run of whitespace becomes one space.
pub(super) fn compress_whitespace(input: &[u8], out: &mut Vec<u8>) {
    let mut in_ws = false;
    for &c in input {
        if is_space_or_nbsp(c) {
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

pub(super) fn cmd_line(input: &[u8], out: &mut Vec<u8>) {
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

/// `replaceComments` (`replace`: each C comment `/* */` becomes one space)
/// and `removeComments` (C and HTML `<!-- -->` comments go, and so does all
/// after `--` or `#`). In both a comment still open at the end becomes one
/// space.
pub(super) fn strip_comments(input: &[u8], out: &mut Vec<u8>, replace: bool) {
    let n = input.len();
    let mut i = 0;
    let mut incomment = false;
    while i < n {
        let rest = &input[i..];
        if !incomment {
            if rest.starts_with(b"/*") {
                incomment = true;
                i += 2;
            } else if !replace && rest.starts_with(b"<!--") {
                incomment = true;
                i += 4;
            } else if !replace && (rest.starts_with(b"--") || rest[0] == b'#') {
                // `--` and `#` comment out the rest of the input.
                break;
            } else {
                out.push(rest[0]);
                i += 1;
            }
        } else if rest.starts_with(b"*/") {
            incomment = false;
            i += 2;
            if replace {
                out.push(b' ');
            }
        } else if !replace && rest.starts_with(b"-->") {
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

pub(super) fn remove_comments_char(input: &[u8], out: &mut Vec<u8>) {
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
pub(super) fn normalise_path(input: &[u8], out: &mut Vec<u8>, win: bool) {
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

pub(super) fn trim_left(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| is_space(c)).count();
    &s[n..]
}

pub(super) fn trim_right(s: &[u8]) -> &[u8] {
    let n = s.iter().rev().take_while(|&&c| is_space(c)).count();
    &s[..s.len() - n]
}
