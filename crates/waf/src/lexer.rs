//! Splits SecLang text into directives and their arguments.
//!
//! The rules follow Apache's configuration reader, which is what ModSecurity
//! and the CRS are written for: a line ending in a backslash continues on the
//! next line, `#` starts a comment line, arguments are separated by
//! whitespace and may be quoted with `"` or `'`, and inside quotes only an
//! escaped quote loses its backslash.

use crate::error::ErrorKind;

/// One directive with its arguments, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    /// The 1-based line where the directive starts.
    pub line: usize,
    /// The directive name, as written.
    pub name: String,
    /// The arguments with their quotes removed.
    pub args: Vec<String>,
}

impl Directive {
    /// Argument `i`, or the error that the directive lacks it.
    pub(crate) fn arg(&self, i: usize) -> Result<&str, ErrorKind> {
        self.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| ErrorKind::Syntax(format!("{} needs {} argument(s)", self.name, i + 1)))
    }
}

/// Lexes a whole configuration text.
pub(crate) fn lex(text: &str) -> (Vec<Directive>, Vec<(usize, String)>) {
    let mut directives = Vec::new();
    let mut errors = Vec::new();
    let mut logical = String::new();
    let mut start_line = 0;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if logical.is_empty() {
            start_line = line_no;
            let t = line.trim_start();
            if t.starts_with('#') || t.is_empty() {
                continue;
            }
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            logical.push_str(stripped);
            continue;
        }
        logical.push_str(line);
        push_logical(&logical, start_line, &mut directives, &mut errors);
        logical.clear();
    }
    // What a last line ending in a backslash left.
    push_logical(&logical, start_line, &mut directives, &mut errors);
    (directives, errors)
}

/// Splits one complete logical line (blank or not) into a directive, or
/// notes why it cannot.
fn push_logical(
    text: &str,
    line: usize,
    directives: &mut Vec<Directive>,
    errors: &mut Vec<(usize, String)>,
) {
    match split_args(text.trim()) {
        Ok(mut words) if !words.is_empty() => {
            let name = words.remove(0);
            directives.push(Directive {
                line,
                name,
                args: words,
            });
        }
        Ok(_) => {}
        Err(e) => errors.push((line, e)),
    }
}

/// Splits one logical line into whitespace-separated, possibly quoted words.
fn split_args(line: &str) -> Result<Vec<String>, String> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let quote = b[i];
        if quote == b'"' || quote == b'\'' {
            i += 1;
            let mut word = Vec::new();
            let mut closed = false;
            while i < b.len() {
                // Apache's substring_conf: `\\\\` and an escaped quote lose
                // their backslash; every other backslash stays.
                if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == quote || b[i + 1] == b'\\') {
                    word.push(b[i + 1]);
                    i += 2;
                } else if b[i] == quote {
                    i += 1;
                    closed = true;
                    break;
                } else {
                    word.push(b[i]);
                    i += 1;
                }
            }
            if !closed {
                return Err("unterminated quoted argument".into());
            }
            out.push(String::from_utf8_lossy(&word).into_owned());
        } else {
            let mut word = Vec::new();
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'\\' && i + 1 < b.len() && b[i + 1] == b'\\' {
                    i += 1;
                }
                word.push(b[i]);
                i += 1;
            }
            out.push(String::from_utf8_lossy(&word).into_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expect: &str) {
        let (d, e) = lex(text);
        let got = format!(
            "{:?} {:?}",
            d.iter()
                .map(|d| (d.line, &d.name, &d.args))
                .collect::<Vec<_>>(),
            e
        );
        assert_eq!(got, expect);
    }

    #[test]
    fn continuation_and_quotes() {
        check(
            "# c\nSecRule ARGS \"@rx a\\\"b\" \\\n  \"id:1,\\\n  pass\"\n",
            r#"[(2, "SecRule", ["ARGS", "@rx a\"b", "id:1,  pass"])] []"#,
        );
        check("SecMarker 'END'\n", r#"[(1, "SecMarker", ["END"])] []"#);
        // Apache turns `\\\\` into one backslash, in and out of quotes (920460 relies on it).
        check(
            "A \"x\\\\y\" p\\\\q\n",
            r#"[(1, "A", ["x\\y", "p\\q"])] []"#,
        );
        check(
            "SecRule A \"x\n",
            r#"[] [(1, "unterminated quoted argument")]"#,
        );
    }
}
