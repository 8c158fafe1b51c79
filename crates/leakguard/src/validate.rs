//! Checksums and format rules that turn a pattern match into a confident finding.

/// Luhn check over ASCII digits.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum % 10 == 0
}

/// Issuer prefix and length rules for the card schemes seen in the UK.
pub(crate) fn card_issuer_ok(d: &[u8]) -> bool {
    let len = d.len();
    let prefix = |n: usize| -> u32 {
        d[..n]
            .iter()
            .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0'))
    };
    if !(13..=19).contains(&len) {
        return false;
    }
    match d[0] {
        // Visa.
        b'4' => matches!(len, 13 | 16 | 19),
        // Mastercard 51-55 and 2221-2720.
        b'5' => {
            let p2 = prefix(2);
            ((51..=55).contains(&p2) && len == 16)
                || ((56..=59).contains(&p2) || p2 == 50) && (12..=19).contains(&len)
        }
        b'2' => len == 16 && (2221..=2720).contains(&prefix(4)),
        // Amex 34, 37; Diners 300-305, 36, 38; JCB 3528-3589.
        b'3' => {
            let p2 = prefix(2);
            (matches!(p2, 34 | 37) && len == 15)
                || ((300..=305).contains(&prefix(3)) || p2 == 36 || p2 == 38) && len == 14
                || (3528..=3589).contains(&prefix(4)) && (16..=19).contains(&len)
        }
        // Discover 6011, 644-649, 65; Maestro 6304, 6759, 6761-6763; UnionPay 62.
        b'6' => {
            let p2 = prefix(2);
            (prefix(4) == 6011
                || (644..=649).contains(&prefix(3))
                || p2 == 65
                || p2 == 62
                || matches!(prefix(4), 6304 | 6759 | 6761..=6763))
                && (16..=19).contains(&len)
        }
        _ => false,
    }
}

/// IBAN lengths for the countries a UK organisation deals with most. Others are rejected rather
/// than guessed: a wrong length table entry would cost precision.
fn iban_length(country: &[u8]) -> Option<usize> {
    Some(match country {
        b"GB" => 22,
        b"IE" => 22,
        b"DE" => 22,
        b"FR" => 27,
        b"ES" => 24,
        b"IT" => 27,
        b"NL" => 18,
        b"BE" => 16,
        b"PT" => 25,
        b"AT" => 20,
        b"CH" => 21,
        b"DK" => 18,
        b"SE" => 24,
        b"NO" => 15,
        b"FI" => 18,
        b"PL" => 28,
        b"LU" => 20,
        b"GI" => 23,
        b"GR" => 27,
        b"CY" => 28,
        b"MT" => 31,
        b"CZ" => 24,
        b"HU" => 28,
        b"RO" => 24,
        b"IS" => 26,
        _ => return None,
    })
}

/// `iban` is uppercase alphanumeric with spaces removed.
pub(crate) fn iban_ok(iban: &[u8]) -> bool {
    if iban.len() < 15 || iban_length(&iban[..2]) != Some(iban.len()) {
        return false;
    }
    if !iban[2].is_ascii_digit() || !iban[3].is_ascii_digit() {
        return false;
    }
    let mut rem: u32 = 0;
    for &b in iban[4..].iter().chain(&iban[..4]) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// NHS number: ten digits, the last a mod-11 check digit over the first nine.
pub(crate) fn nhs_ok(d: &[u8]) -> bool {
    if d.len() != 10 {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * (10 - i as u32))
        .sum();
    let check = 11 - (sum % 11);
    let check = if check == 11 { 0 } else { check };
    check != 10 && check == u32::from(d[9] - b'0')
}

/// National Insurance number prefix rules beyond what the pattern's letter classes enforce.
/// `ni` is the two prefix letters.
pub(crate) fn ni_prefix_ok(prefix: &[u8]) -> bool {
    !matches!(
        prefix,
        b"BG" | b"GB" | b"NK" | b"KN" | b"TN" | b"NT" | b"ZZ"
    )
}

/// Calendar check for a day, month and year.
pub(crate) fn date_ok(day: u32, month: u32, year: u32) -> bool {
    if !(1..=12).contains(&month) || day == 0 || !(1900..=2099).contains(&year) {
        return false;
    }
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    day <= days[month as usize - 1]
}

/// The month number of an English month name or its abbreviation.
pub(crate) fn month_number(name: &[u8]) -> Option<u32> {
    if name.len() < 3 {
        return None;
    }
    let mut key = [0u8; 3];
    for (k, b) in key.iter_mut().zip(name) {
        *k = b.to_ascii_lowercase();
    }
    let months: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    months.iter().position(|m| **m == key).map(|i| i as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_accept_known_good_values() {
        assert!(luhn(b"4242424242424242"));
        assert!(!luhn(b"4242424242424241"));
        assert!(card_issuer_ok(b"4242424242424242"));
        assert!(card_issuer_ok(b"378282246310005"));
        assert!(card_issuer_ok(b"5555555555554444"));
        assert!(card_issuer_ok(b"2223003122003222"));
        assert!(!card_issuer_ok(b"1234567890123456"));
        assert!(iban_ok(b"GB82WEST12345698765432"));
        assert!(!iban_ok(b"GB82WEST12345698765433"));
        assert!(iban_ok(b"DE89370400440532013000"));
        assert!(nhs_ok(b"9434765919"));
        assert!(!nhs_ok(b"9434765918"));
        assert!(ni_prefix_ok(b"AB"));
        assert!(!ni_prefix_ok(b"GB"));
        assert!(date_ok(29, 2, 2020));
        assert!(!date_ok(29, 2, 2019));
        assert_eq!(month_number(b"November"), Some(11));
    }
}
