//! The one HTML escaper for rampart's pages and reports.
//!
//! It lives in a crate of its own because its users (the flood shield's
//! pages, the incident reports and the demo site) are layers that must not
//! depend on each other, and no ecosystem crate writes the same bytes: the
//! small ones spell an apostrophe `&#x27;` (or also escape `/`), while these
//! pages write `&#39;`, which the flood drill and the end-to-end tests read
//! back by that spelling. It has no dependencies and does no I/O.

/// Escapes text for HTML element content and for double- or single-quoted
/// attribute values.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_html(text, &mut out);
    out
}

/// Appends `text` escaped as [`html`] does, for pages built in one buffer.
pub fn push_html(text: &str, out: &mut String) {
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
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_and_both_quotes_are_escaped() {
        assert_eq!(
            super::html(r#"<b a="1">O'Neill & co</b>"#),
            "&lt;b a=&quot;1&quot;&gt;O&#39;Neill &amp; co&lt;/b&gt;"
        );
        let mut out = String::from("x");
        super::push_html("é<", &mut out);
        assert_eq!(out, "xé&lt;");
    }
}
