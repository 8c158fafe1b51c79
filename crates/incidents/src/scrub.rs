//! Masking of personal data in free text, for everything the crate prints.

use crate::model::{source_prefix, Incident};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Masks what looks like personal data in free text: email addresses become
/// `[email]`, payment card numbers and other long digit runs (10 digits or
/// more, spaces or dashes between groups) become `[card number]` or
/// `[number]`, National Insurance numbers become `[NI number]`, and whole
/// IPv4 or IPv6 addresses become their source prefix (`203.0.113.0/24`,
/// `2001:db8:0:0::/64`). Prefixes already in prefix form are kept.
///
/// It errs towards masking: a long number that is not a card is masked too.
pub fn scrub(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0; // bytes[..copied] are in `out`
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_word(bytes[i - 1]);
        let found = if boundary { scrub_at(text, i) } else { None };
        match found {
            Some((len, replacement)) => {
                out.push_str(&text[copied..i]);
                match replacement {
                    Some(mask) => out.push_str(&mask),
                    None => out.push_str(&text[i..i + len]),
                }
                i += len;
                copied = i;
            }
            None => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// What starts at `i`: the length of a match and its mask (`None` to keep
/// it as it is, for a prefix).
fn scrub_at(text: &str, i: usize) -> Option<(usize, Option<String>)> {
    let bytes = text.as_bytes();
    let b = bytes[i];
    // An address or email part never follows a dot or colon it belongs to.
    if i > 0 && matches!(bytes[i - 1], b'.' | b':' | b'@' | b'-' | b'+' | b'%') {
        return None;
    }
    if let Some(len) = email_at(bytes, i) {
        return Some((len, Some("[email]".into())));
    }
    if b.is_ascii_hexdigit() || b == b':' {
        if let Some(found) = ip_at(text, i) {
            return Some(found);
        }
    }
    if b.is_ascii_alphabetic() {
        if let Some(len) = ni_number_at(bytes, i) {
            return Some((len, Some("[NI number]".into())));
        }
    }
    if b.is_ascii_digit() || b == b'+' {
        if let Some((len, digits)) = digit_run_at(bytes, i) {
            let mask = if (13..=19).contains(&digits) {
                "[card number]"
            } else {
                "[number]"
            };
            return Some((len, Some(mask.into())));
        }
    }
    None
}

fn email_at(bytes: &[u8], i: usize) -> Option<usize> {
    let local = |b: u8| b.is_ascii_alphanumeric() || b"._%+-".contains(&b);
    let mut j = i;
    while j < bytes.len() && local(bytes[j]) {
        j += 1;
    }
    if j == i || j >= bytes.len() || bytes[j] != b'@' {
        return None;
    }
    let domain_start = j + 1;
    let mut k = domain_start;
    while k < bytes.len()
        && (bytes[k].is_ascii_alphanumeric() || bytes[k] == b'.' || bytes[k] == b'-')
    {
        k += 1;
    }
    while k > domain_start && matches!(bytes[k - 1], b'.' | b'-') {
        k -= 1;
    }
    let domain = &bytes[domain_start..k];
    let last_dot = domain.iter().rposition(|&b| b == b'.')?;
    let tld = &domain[last_dot + 1..];
    (last_dot > 0 && tld.len() >= 2 && tld.iter().all(u8::is_ascii_alphabetic)).then_some(k - i)
}

/// A whole IPv4 or IPv6 address (masked to its prefix), or a prefix in CIDR
/// form whose host bits are zero and whose length is at most the grouping
/// prefix (kept).
fn ip_at(text: &str, i: usize) -> Option<(usize, Option<String>)> {
    let bytes = text.as_bytes();
    let mut j = i;
    while j < bytes.len() && (bytes[j].is_ascii_hexdigit() || bytes[j] == b':' || bytes[j] == b'.')
    {
        j += 1;
    }
    // Trailing punctuation belongs to the sentence ("... from 203.0.113.77.").
    let mut end = j;
    let mut addr = None;
    while end > i {
        let candidate = &text[i..end];
        let parsed = if candidate.contains(':') {
            let hex_digits = candidate.bytes().filter(u8::is_ascii_hexdigit).count();
            // Four hex digits at least: `a::b` in prose is not an address.
            (candidate.bytes().filter(|&b| b == b':').count() >= 2 && hex_digits >= 4)
                .then(|| candidate.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
                .flatten()
        } else {
            (candidate.bytes().filter(|&b| b == b'.').count() == 3)
                .then(|| candidate.parse::<Ipv4Addr>().ok().map(IpAddr::V4))
                .flatten()
        };
        if parsed.is_some() {
            addr = parsed;
            break;
        }
        if !matches!(bytes[end - 1], b'.' | b':') {
            break;
        }
        end -= 1;
    }
    let addr = addr?;
    // Glued to more word characters (`1.2.3.4abc`): not an address on its own.
    if end < bytes.len() && is_word(bytes[end]) && end == j {
        return None;
    }
    // A CIDR suffix.
    if end == j && end < bytes.len() && bytes[end] == b'/' {
        let digits = bytes[end + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if (1..=3).contains(&digits) {
            let len: u32 = text[end + 1..end + 1 + digits].parse().ok()?;
            let total = end + 1 + digits - i;
            let keep = match addr {
                IpAddr::V4(v4) => len <= 24 && u32::from(v4).checked_shl(len).unwrap_or(0) == 0,
                IpAddr::V6(v6) => len <= 64 && u128::from(v6).checked_shl(len).unwrap_or(0) == 0,
            };
            let mask = (!keep).then(|| source_prefix(addr));
            return Some((total, mask));
        }
    }
    Some((end - i, Some(source_prefix(addr))))
}

/// `QQ 12 34 56 C`, `QQ123456C`: two letters, three pairs of digits, a
/// letter A to D, spaces optional between the groups.
fn ni_number_at(bytes: &[u8], i: usize) -> Option<usize> {
    let mut j = i;
    let letter = |j: usize| bytes.get(j).is_some_and(u8::is_ascii_alphabetic);
    if !(letter(j) && letter(j + 1)) {
        return None;
    }
    j += 2;
    for _ in 0..3 {
        if bytes.get(j) == Some(&b' ') {
            j += 1;
        }
        if !(bytes.get(j).is_some_and(u8::is_ascii_digit)
            && bytes.get(j + 1).is_some_and(u8::is_ascii_digit))
        {
            return None;
        }
        j += 2;
    }
    if bytes.get(j) == Some(&b' ') {
        j += 1;
    }
    if !bytes
        .get(j)
        .is_some_and(|b| matches!(b.to_ascii_uppercase(), b'A'..=b'D'))
    {
        return None;
    }
    j += 1;
    (!bytes.get(j).copied().is_some_and(is_word)).then_some(j - i)
}

/// A run of digits with single spaces or dashes between groups (an optional
/// leading `+`), of 10 digits or more: a card, phone or account number.
/// Returns its length in bytes and its digit count.
fn digit_run_at(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i;
    if bytes[j] == b'+' {
        j += 1;
    }
    let mut digits = 0;
    let mut end = j;
    while j < bytes.len() {
        if bytes[j].is_ascii_digit() {
            digits += 1;
            j += 1;
            end = j;
        } else if matches!(bytes[j], b' ' | b'-')
            && bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
            && end == j
        {
            j += 1;
        } else {
            break;
        }
    }
    if bytes.get(end).copied().is_some_and(is_word) {
        return None;
    }
    (digits >= 10).then_some((end - i, digits))
}

/// A copy of the incident with every free-text field scrubbed.
pub(crate) fn scrubbed(incident: &Incident) -> Incident {
    let mut copy = incident.clone();
    copy.title = scrub(&copy.title);
    copy.site = scrub(&copy.site);
    for tallies in [&mut copy.top_prefixes, &mut copy.rules, &mut copy.attacks] {
        for tally in tallies.iter_mut() {
            tally.key = scrub(&tally.key);
        }
    }
    for action in &mut copy.actions {
        action.what = scrub(&action.what);
    }
    for decision in &mut copy.decisions {
        decision.by = scrub(&decision.by);
        decision.text = scrub(&decision.text);
        decision.told = decision.told.as_deref().map(scrub);
    }
    if let Some(data) = &mut copy.data {
        for tally in &mut data.entities {
            tally.key = scrub(&tally.key);
        }
        for category in &mut data.categories {
            *category = scrub(category);
        }
    }
    copy
}
