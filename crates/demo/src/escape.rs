//! Escaping text for the HTML pages and the RSS feed.
//!
//! Every piece of text that came from a client or the database goes through one of these before
//! it reaches a page. The site's deliberate flaw is SQL injection, not cross-site scripting.

/// HTML escaping is the workspace's one escaper, shared with the flood
/// shield's pages and the incident reports.
pub(crate) use rampart_escape::html;

/// Escapes text for XML element content and attribute values. XML 1.0 forbids most control
/// characters outright, so they are dropped rather than escaped.
pub(crate) fn xml(text: &str) -> String {
    let allowed: String = text
        .chars()
        .filter(|&c| matches!(c, '\t' | '\n' | '\r') || !c.is_control())
        .collect();
    // XML shares HTML's entities but for the apostrophe, written `&apos;` in the feed. Escaped
    // text holds no other `&#39;`: its own ampersands have become `&amp;`.
    html(&allowed).replace("&#39;", "&apos;")
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
