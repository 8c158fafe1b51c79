//! Decoding query strings and `application/x-www-form-urlencoded` bodies.

/// Splits `input` into decoded name/value pairs, in order. Malformed percent escapes are kept as
/// they are, as browsers do, and invalid UTF-8 becomes U+FFFD, so decoding never fails.
pub(crate) fn pairs(input: &str) -> Vec<(String, String)> {
    input
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// The first value of `name` in `input`, decoded.
pub(crate) fn field(input: &str, name: &str) -> Option<String> {
    pairs(input)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

/// Percent-decodes one name or value, turning `+` into a space.
pub(crate) fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) if hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit())) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent() {
        assert_eq!(decode("Alice+Smith%21"), "Alice Smith!");
        assert_eq!(decode("%C2%A325"), "£25");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%+1%zz"), "% 1%zz");
        assert_eq!(decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn pairs_keep_order_and_empty_values() {
        assert_eq!(
            pairs("a=1&b&&c=%3D"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "=".into())
            ]
        );
        assert_eq!(
            field("q=%27+OR+%271%27%3D%271", "q").as_deref(),
            Some("' OR '1'='1")
        );
    }
}
