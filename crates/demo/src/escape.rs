//! Escaping text for the HTML pages and the RSS feed.
//!
//! Every piece of text that came from a client or the database goes through one of these before
//! it reaches a page. The site's deliberate flaw is SQL injection, not cross-site scripting.

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub(crate) fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for XML element content and attribute values. XML 1.0 forbids most control
/// characters outright, so they are dropped rather than escaped.
pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn html_escapes_markup() {
        assert_eq!(
            super::html(r#"<b a="1">O'Neill & co</b>"#),
            "&lt;b a=&quot;1&quot;&gt;O&#39;Neill &amp; co&lt;/b&gt;"
        );
    }

    #[test]
    fn xml_drops_control_characters() {
        assert_eq!(super::xml("Zoë\u{1}<3"), "Zoë&lt;3");
    }
}
