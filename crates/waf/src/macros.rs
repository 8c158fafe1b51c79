//! Macro expansion text (`%{tx.anomaly_score}`, `%{MATCHED_VAR}`).

use crate::vars::Var;

/// One piece of a macro text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(Vec<u8>),
    /// A variable, with its key lowercased (`tx.foo` → `Tx`, `foo`).
    Var(Var, Option<String>),
    /// `%{rule.id}` and friends, resolved against the running rule.
    Rule(String),
}

/// A text that may contain `%{...}` references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Macro {
    pub parts: Vec<Part>,
}

impl Macro {
    /// Parses a text. Unknown variables stay literal text, as ModSecurity
    /// leaves them.
    pub(crate) fn parse(text: &str) -> Macro {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && b.get(i + 1) == Some(&b'{') {
                if let Some(end) = text[i + 2..].find('}') {
                    let inner = &text[i + 2..i + 2 + end];
                    let (name, key) = match inner.split_once(['.', ':']) {
                        Some((n, k)) => (n, Some(k.to_ascii_lowercase())),
                        None => (inner, None),
                    };
                    let part = if name.eq_ignore_ascii_case("rule") {
                        Some(Part::Rule(key.unwrap_or_default()))
                    } else {
                        Var::from_name(name).map(|v| Part::Var(v, key))
                    };
                    if let Some(part) = part {
                        if !lit.is_empty() {
                            parts.push(Part::Literal(std::mem::take(&mut lit)));
                        }
                        parts.push(part);
                        i += end + 3;
                        continue;
                    }
                }
            }
            lit.push(b[i]);
            i += 1;
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Macro { parts }
    }

    /// The text when it has no references.
    pub(crate) fn as_literal(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [Part::Literal(l)] => Some(l),
            _ => None,
        }
    }
}
