//! A labelled corpus for the leak guard, generated from a fixed seed: HTML pages, JSON APIs, RSS
//! feeds and CSV exports, with and without personal data, with hard negatives (numbers that fail
//! their checksum, prices, timestamps, order references, image names that look like addresses).
//!
//! Shared by `examples/evaluate.rs` and `tests/leakguard/evaluation.rs` through `#[path]`.

#![allow(dead_code)]

use rampart_leakguard::{Action, EntityKind, LeakGuard, RoutePolicy};

/// SplitMix64: small, fast, and the same on every platform, so a seed names one corpus.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// Given names as donors type them. Most are common UK names; some are rarer ones the guard's
/// list does not hold, so record-level recall is measured honestly.
const FIRST: &[&str] = &[
    "Margaret",
    "David",
    "Priya",
    "Siobhan",
    "Tom",
    "Gareth",
    "Aisha",
    "Callum",
    "Eleanor",
    "Mohammed",
    "Fiona",
    "Rhys",
    "Hannah",
    "Oluwaseun",
    "Bethan",
    "James",
    "Zainab",
    "Ruth",
    "Kwame",
    "Harriet",
    "Declan",
    "Anjali",
    "Stuart",
    "Imogen",
    "Tariq",
    "Sarah",
    "John",
    "Emma",
    "Michael",
    "Olivia",
    "Daniel",
    "Sophie",
    "Liam",
    "Chloe",
    "Amir",
    "Niamh",
    "Piotr",
    "Wei",
    "Megan",
    "Owen",
    // Rarer names.
    "Ottoline",
    "Peregrine",
    "Ngozi",
    "Thandiwe",
    "Saoirse",
    "Aneurin",
    "Ffion",
    "Zebedee",
    "Lettice",
    "Cosmo",
];

const LAST: &[&str] = &[
    "Holloway",
    "Okafor",
    "Raman",
    "Gallagher",
    "Ashworth",
    "Llewellyn",
    "Rahman",
    "McLeod",
    "Whitfield",
    "Iqbal",
    "Campbell",
    "Pritchard",
    "Adeyemi",
    "Morgan",
    "O'Connor",
    "Hussain",
    "Abernethy",
    "Mensah",
    "Pemberton",
    "Byrne",
    "Patel",
    "Henderson",
    "Clarke",
    "Mahmood",
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
];

const DOMAINS: &[&str] = &[
    "example.org",
    "example.com",
    "example.co.uk",
    "example.net",
    "mail.example.org.uk",
];

const AREAS: &[&str] = &[
    "AB", "AL", "B", "BA", "BB", "BD", "BH", "BL", "BN", "BR", "BS", "CA", "CB", "CF", "CH", "CM",
    "CO", "CR", "CT", "CV", "CW", "DA", "DD", "DE", "DH", "DL", "DN", "DT", "DY", "E", "EH", "EN",
    "EX", "FK", "G", "GL", "GU", "HA", "HD", "HG", "HP", "HR", "HU", "HX", "IG", "IP", "KA", "KT",
    "KY", "L", "LA", "LD", "LE", "LL", "LN", "LS", "LU", "M", "ME", "MK", "ML", "N", "NE", "NG",
    "NN", "NP", "NR", "NW", "OL", "OX", "PA", "PE", "PH", "PL", "PO", "PR", "RG", "RH", "RM", "S",
    "SA", "SE", "SG", "SK", "SL", "SM", "SN", "SO", "SP", "SR", "SS", "ST", "SW", "SY", "TA", "TD",
    "TF", "TN", "TQ", "TR", "TS", "TW", "UB", "W", "WA", "WD", "WF", "WN", "WR", "WS", "WV", "YO",
];

const SENTENCES: &[&str] = &[
    "Our volunteers knocked on more than 4,000 doors across the ward last weekend.",
    "The council meeting on 14 March 2024 will discuss the new bus routes.",
    "We believe every family deserves a warm home and a fair wage.",
    "Join us at the community hall from 7pm for a question and answer session.",
    "The consultation closes at the end of the month, so have your say now.",
    "Local schools received £2.5m in additional funding this year.",
    "Read our manifesto in full, available in large print and Welsh.",
    "Turnout at the last election was 64.3 per cent, up from 2019.",
    "Our candidate has lived in the constituency for 23 years.",
    "Parking charges rose by 12.50 per cent in the city centre.",
    "The report, published on 02/05/2023, runs to 148 pages.",
    "Version 3.10 of the app adds accessibility improvements.",
    "Opening hours are 09:00 to 17:30, Monday to Friday.",
    "Reference 2023/0456/FUL was approved by the planning committee.",
];

const PRODUCTS: &[&str] = &[
    "Campaign mug",
    "Tote bag",
    "Rosette",
    "Window poster",
    "Enamel badge",
    "Tea towel",
    "Hoodie",
    "Water bottle",
];

pub const KINDS: [EntityKind; 10] = [
    EntityKind::Card,
    EntityKind::Iban,
    EntityKind::NiNumber,
    EntityKind::NhsNumber,
    EntityKind::BankAccount,
    EntityKind::Email,
    EntityKind::Phone,
    EntityKind::Postcode,
    EntityKind::DateOfBirth,
    EntityKind::DonorList,
];

/// One generated document and what it really contains.
pub struct Doc {
    pub format: &'static str,
    pub body: String,
    /// Planted values, exactly as they appear in the body.
    pub planted: Vec<(EntityKind, String)>,
    /// For donor-list documents, how many records it lists; `None` for documents without records.
    pub donor_records: Option<usize>,
}

fn luhn_complete(partial: &str) -> String {
    // Appends the check digit that makes `partial` pass Luhn.
    for check in 0..10 {
        let candidate = format!("{partial}{check}");
        let sum: u32 = candidate
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let mut v = u32::from(b - b'0');
                if i % 2 == 1 {
                    v *= 2;
                    if v > 9 {
                        v -= 9;
                    }
                }
                v
            })
            .sum();
        if sum % 10 == 0 {
            return candidate;
        }
    }
    unreachable!()
}

fn group(digits: &str, sizes: &[usize], sep: &str) -> String {
    let mut out = Vec::new();
    let mut at = 0;
    for &s in sizes {
        out.push(&digits[at..at + s]);
        at += s;
    }
    out.join(sep)
}

pub fn card(rng: &mut Rng, valid: bool) -> String {
    let (prefix, len, sizes): (String, usize, &[usize]) = match rng.below(4) {
        0 => ("4".into(), 16, &[4, 4, 4, 4]),
        1 => (format!("5{}", rng.range(1, 5)), 16, &[4, 4, 4, 4]),
        2 => (
            if rng.chance(50) {
                "34".into()
            } else {
                "37".into()
            },
            15,
            &[4, 6, 5],
        ),
        _ => (format!("{}", rng.range(2221, 2720)), 16, &[4, 4, 4, 4]),
    };
    let body = format!("{prefix}{}", rng.digits(len - prefix.len() - 1));
    let mut number = luhn_complete(&body);
    if !valid {
        let last = number.pop().unwrap();
        number.push(char::from(
            b'0' + ((last as u8 - b'0' + 1 + rng.below(8) as u8) % 10),
        ));
    }
    if rng.chance(75) {
        group(&number, sizes, if rng.chance(80) { " " } else { "-" })
    } else {
        number
    }
}

fn iban_check(country: &str, bban: &str) -> u32 {
    let rearranged = format!("{bban}{country}00");
    let mut rem = 0u32;
    for c in rearranged.chars() {
        let v = c.to_digit(36).unwrap();
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    98 - rem
}

pub fn iban(rng: &mut Rng, valid: bool) -> String {
    let banks = ["NWBK", "BARC", "LOYD", "HBUK", "MIDL", "WEST"];
    let bban = format!("{}{}", rng.pick(&banks), rng.digits(14));
    let mut check = iban_check("GB", &bban);
    if !valid {
        check = (check + 1 + rng.below(90) as u32) % 97 + 2;
        if check == iban_check("GB", &bban) {
            check = if check > 2 { check - 1 } else { 3 };
        }
    }
    let compact = format!("GB{check:02}{bban}");
    if rng.chance(70) {
        compact
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        compact
    }
}

pub fn ni(rng: &mut Rng, valid: bool) -> String {
    const FIRST_OK: &[u8] = b"ABCEGHJKLMNOPRSTWXYZ";
    const SECOND_OK: &[u8] = b"ABCEGHJKLMNPRSTWXYZ";
    let (a, b) = if valid {
        loop {
            let a = *rng.pick(FIRST_OK) as char;
            let b = *rng.pick(SECOND_OK) as char;
            let p = format!("{a}{b}");
            if !["BG", "GB", "NK", "KN", "TN", "NT", "ZZ"].contains(&p.as_str()) {
                break (a, b);
            }
        }
    } else {
        *rng.pick(&[
            ('G', 'B'),
            ('B', 'G'),
            ('Q', 'Q'),
            ('D', 'A'),
            ('A', 'O'),
            ('Z', 'Z'),
            ('N', 'K'),
        ])
    };
    let d = rng.digits(6);
    let suffix = *rng.pick(b"ABCD") as char;
    if rng.chance(60) {
        format!("{a}{b} {} {} {} {suffix}", &d[..2], &d[2..4], &d[4..])
    } else {
        format!("{a}{b}{d}{suffix}")
    }
}

pub fn nhs(rng: &mut Rng, valid: bool) -> String {
    loop {
        // Issued ranges: England and Wales 400-499 and 600-708 million, Northern Ireland
        // 320-399 million.
        let prefix = match rng.below(4) {
            0 | 1 => rng.range(400, 499),
            2 => rng.range(600, 708),
            _ => rng.range(320, 399),
        };
        let nine = format!("{prefix}{}", rng.digits(6));
        let sum: u32 = nine
            .bytes()
            .enumerate()
            .map(|(i, b)| u32::from(b - b'0') * (10 - i as u32))
            .sum();
        let check = 11 - sum % 11;
        let check = if check == 11 { 0 } else { check };
        if check == 10 {
            continue;
        }
        let last = if valid {
            check
        } else {
            (check + 1 + rng.below(8) as u32) % 10
        };
        let number = format!("{nine}{last}");
        return group(&number, &[3, 3, 4], " ");
    }
}

pub fn phone(rng: &mut Rng) -> String {
    match rng.below(11) {
        0 => format!("020 7946 0{}", rng.digits(3)),
        1 => format!("0161 496 0{}", rng.digits(3)),
        2 => format!("07700 900{}", rng.digits(3)),
        3 => format!("+44 7700 900{}", rng.digits(3)),
        4 => format!("+44 (0)20 7946 0{}", rng.digits(3)),
        5 => format!("(020) 7946 0{}", rng.digits(3)),
        6 => format!("020-7946-0{}", rng.digits(3)),
        7 => format!("+447700900{}", rng.digits(3)),
        8 => format!("07700 900 {}", rng.digits(3)),
        9 => format!("0113 496 0{}", rng.digits(3)),
        _ => format!("01632 960{}", rng.digits(3)),
    }
}

pub fn email(rng: &mut Rng) -> String {
    let first = rng.pick(FIRST).to_lowercase();
    let last = rng.pick(LAST).to_lowercase().replace('\'', "");
    let local = match rng.below(4) {
        0 => format!("{first}.{last}"),
        1 => format!("{}{last}{}", &first[..1], rng.below(100)),
        2 => format!("{first}_{last}{}", rng.below(1000)),
        _ => format!("{first}+news"),
    };
    let address = format!("{local}@{}", rng.pick(DOMAINS));
    if rng.chance(10) {
        // Some systems keep the case people typed.
        address
            .split('@')
            .map(|p| {
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("@")
    } else {
        address
    }
}

pub fn postcode(rng: &mut Rng) -> String {
    const INWARD: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
    if rng.chance(15) {
        // Central London districts with a letter: `W1D`, `EC2V`, `SW1A`.
        let outward = *rng.pick(&["W1D", "EC2V", "SW1A", "WC2N", "EC1A", "W1T", "N1C", "SE1P"]);
        return format!(
            "{outward} {}{}{}",
            rng.below(10),
            *rng.pick(INWARD) as char,
            *rng.pick(INWARD) as char
        );
    }
    let area = rng.pick(AREAS);
    let district = rng.range(1, if area.len() == 1 { 9 } else { 29 });
    format!(
        "{area}{district} {}{}{}",
        rng.below(10),
        *rng.pick(INWARD) as char,
        *rng.pick(INWARD) as char
    )
}

pub fn date(rng: &mut Rng, lo_year: u64, hi_year: u64) -> (u64, u64, u64) {
    (
        rng.range(1, 28),
        rng.range(1, 12),
        rng.range(lo_year, hi_year),
    )
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

pub fn date_text(rng: &mut Rng, (d, m, y): (u64, u64, u64)) -> String {
    let suffix = match d {
        1 | 21 | 31 => "st",
        2 | 22 => "nd",
        3 | 23 => "rd",
        _ => "th",
    };
    match rng.below(7) {
        0 => format!("{d:02}/{m:02}/{y}"),
        1 => format!("{y}-{m:02}-{d:02}"),
        2 => format!("{d} {} {y}", MONTHS[m as usize - 1]),
        3 => format!("{d:02}.{m:02}.{y}"),
        4 => format!("{d}{suffix} {} {y}", MONTHS[m as usize - 1]),
        5 => format!("{} {d}, {y}", MONTHS[m as usize - 1]),
        _ => format!("{d} {} {y}", &MONTHS[m as usize - 1][..3]),
    }
}

/// Hard negatives: text that looks like personal data and is not.
pub fn decoy(rng: &mut Rng) -> String {
    match rng.below(24) {
        22 => format!(
            "US office fax {}-{}-{}",
            rng.range(201, 989),
            rng.digits(3),
            rng.digits(4)
        ),
        23 => format!(
            "Call us toll free on 1-800-{}-{}",
            rng.digits(3),
            rng.digits(4)
        ),
        16 => format!("Our US office: +1 (415) 555-0{}", rng.digits(3)),
        17 => "Write to admin@localhost or root@server".to_string(),
        18 => format!(
            "Invoice {}-{}-{}",
            rng.digits(4),
            rng.digits(4),
            rng.digits(4)
        ),
        19 => {
            // Luhn-valid, but no card scheme starts with 9.
            let n = luhn_complete(&format!("9{}", rng.digits(14)));
            format!("Voucher {}", group(&n, &[4, 4, 4, 4], " "))
        }
        20 => format!("Room B{} and SE1 area", rng.range(1, 40)),
        21 => format!("Coordinates 51.{} -0.{}", rng.digits(6), rng.digits(6)),
        0 => format!("Card number on file: {}", card(rng, false)),
        1 => format!("Transfer to {}", iban(rng, false)),
        2 => format!("Ref {}", ni(rng, false)),
        3 => format!("Patient ref {}", nhs(rng, false)),
        4 => format!("Order {} dispatched", rng.digits(16)),
        5 => format!("Tracking {}{}", rng.range(1, 9), rng.digits(17)),
        6 => "<img src=\"/img/logo@2x.png\" alt=\"logo\">".to_string(),
        7 => format!("Published {}", {
            let d = date(rng, 2015, 2024);
            date_text(rng, d)
        }),
        8 => format!(
            "Total £{},{:03}.{:02}",
            rng.range(1, 99),
            rng.below(1000),
            rng.below(100)
        ),
        9 => format!("Booking ref {}", rng.digits(11)),
        10 => format!(
            "ISBN 978-0-{}-{}-{}",
            rng.digits(2),
            rng.digits(6),
            rng.digits(1)
        ),
        11 => format!(
            "Updated {}T{:02}:{:02}:00Z",
            {
                let (d, m, y) = date(rng, 2019, 2024);
                format!("{y}-{m:02}-{d:02}")
            },
            rng.below(24),
            rng.below(60)
        ),
        12 => format!("Timestamp {}", rng.range(1_500_000_000, 1_750_000_000)),
        13 => format!("Product code A{} 2BC", rng.range(1, 9)),
        14 => format!(
            "npm install @scope/widget@{}.{}.{}",
            rng.below(10),
            rng.below(20),
            rng.below(30)
        ),
        _ => format!("Score 20-{:02}-{:02}", rng.below(60), rng.below(60)),
    }
}

/// A labelled personal-data value with the text that introduces it, as pages, APIs and exports
/// present them.
fn labelled(rng: &mut Rng, kind: EntityKind) -> (String, String) {
    match kind {
        EntityKind::Card => {
            let v = card(rng, true);
            // Grouped numbers need no label; a bare run of digits is labelled, except sometimes,
            // as in "Paid by 4111…", where the guard has nothing but the number to go on.
            let label = if v.contains(' ') || v.contains('-') {
                *rng.pick(&["Card", "Paid with", "Visa", "Ref"])
            } else if rng.chance(10) {
                "Paid by"
            } else {
                "Card number:"
            };
            (label.to_string(), v)
        }
        EntityKind::Iban => ("IBAN".into(), iban(rng, true)),
        EntityKind::NiNumber => (
            (*rng.pick(&["NI number", "National Insurance No.", "NINO"])).to_string(),
            ni(rng, true),
        ),
        EntityKind::NhsNumber => {
            let v = nhs(rng, true);
            match rng.below(3) {
                0 => ("NHS No:".into(), v.replace(' ', "")),
                1 => ("NHS number".into(), v.replace(' ', "-")),
                _ => ("NHS number".into(), v),
            }
        }
        EntityKind::BankAccount => {
            let v = format!(
                "Sort code {}-{}-{}, account {}",
                rng.digits(2),
                rng.digits(2),
                rng.digits(2),
                rng.digits(8)
            );
            ("Bank details:".into(), v)
        }
        EntityKind::Email => (
            (*rng.pick(&["Email", "Contact", "email:", "Reply to"])).to_string(),
            email(rng),
        ),
        EntityKind::Phone => (
            (*rng.pick(&["Tel", "Phone", "Mobile", "Call"])).to_string(),
            phone(rng),
        ),
        EntityKind::Postcode => {
            let v = postcode(rng);
            if rng.chance(10) {
                ("Postcode:".to_string(), v.replace(' ', ""))
            } else {
                (
                    (*rng.pick(&[
                        "Postcode",
                        "Address: 12 High Street,",
                        "Office:",
                        "Flat 2, 7 Mill Lane, Leeds",
                    ]))
                    .to_string(),
                    v,
                )
            }
        }
        _ => {
            let d = date(rng, 1930, 2005);
            (
                (*rng.pick(&[
                    "Date of birth",
                    "DOB",
                    "Born",
                    "D.O.B.",
                    "born on",
                    "Birthday:",
                ]))
                .to_string(),
                date_text(rng, d),
            )
        }
    }
}

fn filler(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| *rng.pick(SENTENCES))
        .collect::<Vec<_>>()
        .join(" ")
}

fn html_escape_at(value: &str, rng: &mut Rng) -> String {
    // Some sites encode the `@` of addresses to deter harvesters.
    match rng.below(6) {
        0 => value.replace('@', "&#64;"),
        1 => value.replace('@', "&commat;"),
        _ => value.to_string(),
    }
}

const PERSONAL: [EntityKind; 9] = [
    EntityKind::Card,
    EntityKind::Iban,
    EntityKind::NiNumber,
    EntityKind::NhsNumber,
    EntityKind::BankAccount,
    EntityKind::Email,
    EntityKind::Phone,
    EntityKind::Postcode,
    EntityKind::DateOfBirth,
];

fn html_page(rng: &mut Rng, personal: bool) -> Doc {
    let mut body = String::from("<!doctype html>\n<html lang=\"en-gb\"><head><meta charset=\"utf-8\"><title>Northfield Independents</title>\n<link rel=\"stylesheet\" href=\"/static/style.css\"></head>\n<body><header><nav><a href=\"/\">Home</a> <a href=\"/news\">News</a> <a href=\"/donate\">Donate</a></nav></header>\n<main>\n");
    let mut planted = Vec::new();
    let sections = rng.range(2, 6);
    for _ in 0..sections {
        body.push_str(&format!(
            "<section><h2>Update</h2><p>{}</p>\n",
            filler(rng, 3)
        ));
        for _ in 0..rng.range(0, 2) {
            body.push_str(&format!("<p>{}</p>\n", decoy(rng)));
        }
        if personal {
            // A profile card or a member table.
            let rows = rng.range(1, 4);
            body.push_str("<table class=\"members\">\n");
            for _ in 0..rows {
                body.push_str("<tr>");
                for _ in 0..rng.range(1, 3) {
                    let kind = *rng.pick(&PERSONAL);
                    let (label, value) = labelled(rng, kind);
                    let shown = if kind == EntityKind::Email {
                        html_escape_at(&value, rng)
                    } else {
                        value
                    };
                    body.push_str(&format!("<td>{label} {shown}</td>"));
                    planted.push((kind, shown));
                }
                body.push_str("</tr>\n");
            }
            body.push_str("</table>\n");
        }
        body.push_str("</section>\n");
    }
    body.push_str("</main><footer>Promoted by the agent, 1 High St. <a href=\"/privacy\">Privacy</a></footer></body></html>\n");
    Doc {
        format: "html",
        body,
        planted,
        donor_records: None,
    }
}

fn json_escape_at(value: &str, rng: &mut Rng) -> String {
    if rng.chance(25) {
        value.replace('@', "\\u0040")
    } else {
        value.to_string()
    }
}

fn json_api(rng: &mut Rng, personal: bool) -> Doc {
    let mut planted = Vec::new();
    let mut items = Vec::new();
    for i in 0..rng.range(1, 8) {
        let mut fields = vec![
            format!("\"id\":{}", rng.range(1000, 999_999)),
            format!("\"ref\":\"{}\"", rng.digits(16)),
        ];
        fields.push(format!("\"note\":\"{}\"", decoy(rng).replace('"', "\\\"")));
        if personal && (i == 0 || rng.chance(60)) {
            for _ in 0..rng.range(1, 3) {
                let kind = *rng.pick(&PERSONAL);
                let (key, value) = match kind {
                    EntityKind::Card => ("card_number", card(rng, true)),
                    EntityKind::Iban => ("iban", iban(rng, true)),
                    EntityKind::NiNumber => ("ni_number", ni(rng, true)),
                    EntityKind::NhsNumber => ("nhs_number", nhs(rng, true)),
                    EntityKind::BankAccount => {
                        let v = format!(
                            "sort code {}-{}-{} account {}",
                            rng.digits(2),
                            rng.digits(2),
                            rng.digits(2),
                            rng.digits(8)
                        );
                        ("bank", v)
                    }
                    EntityKind::Email => ("email", json_escape_at(&email(rng), rng)),
                    EntityKind::Phone => ("phone", phone(rng)),
                    EntityKind::Postcode => ("postcode", postcode(rng)),
                    _ => {
                        let (d, m, y) = date(rng, 1930, 2005);
                        ("date_of_birth", format!("{y}-{m:02}-{d:02}"))
                    }
                };
                fields.push(format!("\"{key}\":\"{value}\""));
                planted.push((kind, value));
            }
        } else {
            fields.push(format!(
                "\"product\":\"{}\",\"price\":\"£{}.{:02}\"",
                rng.pick(PRODUCTS),
                rng.range(2, 40),
                rng.below(100)
            ));
        }
        items.push(format!("{{{}}}", fields.join(",")));
    }
    let body = format!("{{\"data\":[{}],\"next\":null}}", items.join(","));
    Doc {
        format: "json",
        body,
        planted,
        donor_records: None,
    }
}

fn rss_feed(rng: &mut Rng, personal: bool) -> Doc {
    let mut planted = Vec::new();
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>News</title>\n");
    for _ in 0..rng.range(3, 10) {
        let mut desc = filler(rng, 2);
        if rng.chance(30) {
            desc.push(' ');
            desc.push_str(&decoy(rng));
        }
        if personal && rng.chance(50) {
            let kind = *rng.pick(&[EntityKind::Email, EntityKind::Phone, EntityKind::Postcode]);
            let (label, value) = labelled(rng, kind);
            desc.push_str(&format!(" {label} {value}."));
            planted.push((kind, value));
        }
        let (d, m, y) = date(rng, 2019, 2024);
        body.push_str(&format!(
            "<item><title>Campaign update</title><description>{}</description><pubDate>{d:02} {} {y} 10:00:00 GMT</pubDate></item>\n",
            desc.replace('&', "&amp;").replace('<', "&lt;"),
            &MONTHS[m as usize - 1][..3]
        ));
    }
    body.push_str("</channel></rss>\n");
    if personal && planted.is_empty() {
        return rss_feed(rng, personal);
    }
    Doc {
        format: "rss",
        body,
        planted,
        donor_records: None,
    }
}

fn csv_export(rng: &mut Rng, personal: bool) -> Doc {
    let mut planted = Vec::new();
    let mut body = String::new();
    if personal {
        let kinds: Vec<EntityKind> = (0..rng.range(2, 4)).map(|_| *rng.pick(&PERSONAL)).collect();
        body.push_str("member_id,first_name,");
        body.push_str(&kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(","));
        body.push('\n');
        for _ in 0..rng.range(3, 15) {
            body.push_str(&format!(
                "{},{}",
                rng.range(10_000, 99_999),
                rng.pick(FIRST)
            ));
            for &kind in &kinds {
                let (_, value) = labelled(rng, kind);
                // A CSV cell carries no label: the header is the context, so the labelled
                // variants that need context in prose are written with their context here.
                let cell = match kind {
                    EntityKind::DateOfBirth => format!("dob {value}"),
                    _ => value.clone(),
                };
                body.push_str(&format!(",\"{cell}\""));
                planted.push((kind, value));
            }
            body.push('\n');
        }
    } else {
        body.push_str("order_id,product,price,ordered_at\n");
        for _ in 0..rng.range(3, 15) {
            let (d, m, y) = date(rng, 2019, 2024);
            body.push_str(&format!(
                "{},{},{}.{:02},{y}-{m:02}-{d:02}\n",
                rng.digits(12),
                rng.pick(PRODUCTS),
                rng.range(2, 40),
                rng.below(100)
            ));
        }
    }
    Doc {
        format: "csv",
        body,
        planted,
        donor_records: None,
    }
}

fn donor_name(rng: &mut Rng) -> String {
    let first = *rng.pick(FIRST);
    if rng.chance(20) {
        format!("{first} {}", rng.pick(LAST))
    } else {
        first.to_string()
    }
}

fn amount(rng: &mut Rng) -> String {
    let pounds = *rng.pick(&[5u64, 10, 15, 20, 25, 30, 50, 75, 100, 250, 500, 1000, 2500]);
    if pounds >= 1000 {
        format!("£{},{:03}.00", pounds / 1000, pounds % 1000)
    } else {
        format!("£{pounds}.00")
    }
}

/// A donor list (or, with `records` below the threshold, a page that shows a few donations).
pub fn donor_doc(rng: &mut Rng, records: usize) -> Doc {
    let format = *rng.pick(&["html", "rss", "atom", "json", "csv"]);
    let mut body = String::new();
    let rows: Vec<(String, String, (u64, u64, u64))> = (0..records)
        .map(|_| (donor_name(rng), amount(rng), date(rng, 2019, 2024)))
        .collect();
    match format {
        "html" => {
            body.push_str("<!doctype html><html><body><h1>Our supporters</h1><p>Thank you to everyone who gave.</p>\n<table><thead><tr><th>Name</th><th>Amount</th><th>Date</th></tr></thead><tbody>\n");
            for (n, a, d) in &rows {
                let dt = date_text(rng, *d);
                body.push_str(&format!("<tr><td>{n}</td><td>{a}</td><td>{dt}</td></tr>\n"));
            }
            body.push_str("</tbody></table></body></html>\n");
        }
        "rss" => {
            body.push_str("<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>Recent donations</title>\n");
            for (i, (n, a, (d, m, y))) in rows.iter().enumerate() {
                body.push_str(&format!(
                    "<item><title>{n} donated {a}</title><description>{n} gave {a} to the campaign.</description><guid>donation-{i}</guid><pubDate>{d:02} {} {y} 10:00:00 GMT</pubDate></item>\n",
                    &MONTHS[*m as usize - 1][..3]
                ));
            }
            body.push_str("</channel></rss>\n");
        }
        "atom" => {
            body.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Supporters</title>\n");
            for (i, (n, a, (d, m, y))) in rows.iter().enumerate() {
                body.push_str(&format!(
                    "<entry><id>urn:donation:{i}</id><title type=\"text\">{n} donated {}</title><link href=\"/donate\"/><updated>{y}-{m:02}-{d:02}T10:00:00Z</updated></entry>\n",
                    a.replace('£', "&#163;")
                ));
            }
            body.push_str("</feed>\n");
        }
        "json" => {
            let items: Vec<String> = rows
                .iter()
                .map(|(n, a, (d, m, y))| {
                    let pence: u64 = a.trim_start_matches('£').replace([',', '.'], "").parse().unwrap();
                    format!("{{\"first_name\":\"{n}\",\"amount_pence\":{pence},\"donated_at\":\"{y}-{m:02}-{d:02} 10:00:00\"}}")
                })
                .collect();
            body = format!("{{\"donations\":[{}]}}", items.join(","));
        }
        _ => {
            body.push_str("name,amount,date\n");
            for (n, a, (d, m, y)) in &rows {
                body.push_str(&format!(
                    "{n},{},{d:02}/{m:02}/{y}\n",
                    a.trim_start_matches('£').replace(',', "")
                ));
            }
        }
    }
    Doc {
        format,
        body,
        planted: Vec::new(),
        donor_records: Some(records),
    }
}

/// Pages with names, amounts or dates that are not donor lists: a shop, an events list, news.
pub fn non_donor_list(rng: &mut Rng) -> Doc {
    let mut body = String::from("<html><body><ul>\n");
    match rng.below(4) {
        3 => {
            // Two thank-yous and a shop table: the table's capitalised product names must not
            // borrow the thank-yous' known names.
            for _ in 0..2 {
                let d = date(rng, 2019, 2024);
                body.push_str(&format!(
                    "<li>Thank you {} for {} on {}</li>\n",
                    donor_name(rng),
                    amount(rng),
                    date_text(rng, d)
                ));
            }
            body.push_str("</ul><table>\n");
            for _ in 0..rng.range(5, 20) {
                let d = date(rng, 2019, 2024);
                let product = *rng.pick(&[
                    "Enamel Badge",
                    "Tote Bag",
                    "Window Poster",
                    "Campaign Mug",
                    "Rosette",
                ]);
                body.push_str(&format!(
                    "<tr><td>{product}</td><td>£{}.{:02}</td><td>{}</td></tr>\n",
                    rng.range(2, 40),
                    rng.below(100),
                    date_text(rng, d)
                ));
            }
            body.push_str("</table><ul>\n");
        }
        0 => {
            for _ in 0..rng.range(5, 20) {
                let (d, m, y) = date(rng, 2019, 2024);
                body.push_str(&format!(
                    "<li>{} £{}.{:02} (added {d:02}/{m:02}/{y})</li>\n",
                    rng.pick(PRODUCTS),
                    rng.range(2, 40),
                    rng.below(100)
                ));
            }
        }
        1 => {
            for _ in 0..rng.range(5, 20) {
                let d = date(rng, 2024, 2025);
                body.push_str(&format!(
                    "<li>Public meeting at the Town Hall, {}, tickets £{}.00</li>\n",
                    date_text(rng, d),
                    rng.range(0, 10)
                ));
            }
        }
        _ => {
            for _ in 0..rng.range(5, 20) {
                let d = date(rng, 2019, 2024);
                body.push_str(&format!(
                    "<li><a href=\"/news/{}\">Council budget: {}</a> <time>{}</time></li>\n",
                    rng.digits(5),
                    filler(rng, 1),
                    date_text(rng, d)
                ));
            }
        }
    }
    body.push_str("</ul></body></html>\n");
    Doc {
        format: "html",
        body,
        planted: Vec::new(),
        donor_records: Some(0),
    }
}

/// The whole corpus for one seed.
pub fn generate(seed: u64, docs_per_format: usize, donor_docs: usize) -> Vec<Doc> {
    let mut rng = Rng::new(seed);
    let mut docs = Vec::new();
    for i in 0..docs_per_format {
        let personal = i % 3 != 0;
        docs.push(html_page(&mut rng, personal));
        docs.push(json_api(&mut rng, personal));
        docs.push(rss_feed(&mut rng, personal));
        docs.push(csv_export(&mut rng, personal));
    }
    for i in 0..donor_docs {
        let records = if i % 3 == 0 {
            rng.range(1, 4) as usize
        } else {
            rng.range(8, 40) as usize
        };
        docs.push(donor_doc(&mut rng, records));
        if i % 2 == 0 {
            docs.push(non_donor_list(&mut rng));
        }
    }
    docs
}

/// Counts for one entity kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct Score {
    pub tp: u64,
    pub fp: u64,
    pub fn_: u64,
}

impl Score {
    pub fn precision(&self) -> f64 {
        if self.tp + self.fp == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fp) as f64
        }
    }
    pub fn recall(&self) -> f64 {
        if self.tp + self.fn_ == 0 {
            1.0
        } else {
            self.tp as f64 / (self.tp + self.fn_) as f64
        }
    }
}

fn mask_prefix(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Card => "[card ending ",
        EntityKind::Iban => "[IBAN ending ",
        EntityKind::BankAccount => "[account ending ",
        EntityKind::NiNumber => "[NI number]",
        EntityKind::NhsNumber => "[NHS number]",
        EntityKind::Email => "[email]",
        EntityKind::Phone => "[phone]",
        EntityKind::Postcode => "[postcode]",
        _ => "[date of birth]",
    }
}

/// Results of one evaluation run.
pub struct Report {
    pub scores: Vec<(EntityKind, Score)>,
    pub donor_lists: usize,
    pub donor_lists_flagged: usize,
    pub small_pages: usize,
    pub small_pages_flagged: usize,
    pub non_lists: usize,
    pub non_lists_flagged: usize,
    pub donor_by_format: Vec<(&'static str, usize, usize)>,
    pub records_total: usize,
    pub records_found: usize,
    pub bytes: usize,
}

/// Scans every document: personal-data documents under a `redact` policy, so each confirmed
/// match is visible as a mask and can be checked against the labels; donor-list documents under
/// `alert`, to read the record count.
pub fn evaluate(guard: &LeakGuard, docs: &[Doc], chunk: usize) -> Report {
    let mut scores = vec![Score::default(); KINDS.len()];
    let redact = RoutePolicy::with_action(Action::Redact);
    let alert = RoutePolicy::report_only();
    let threshold = RoutePolicy::default().thresholds.donor_list as usize;
    let mut report = Report {
        scores: Vec::new(),
        donor_lists: 0,
        donor_lists_flagged: 0,
        small_pages: 0,
        small_pages_flagged: 0,
        non_lists: 0,
        non_lists_flagged: 0,
        donor_by_format: Vec::new(),
        records_total: 0,
        records_found: 0,
        bytes: 0,
    };
    let mut by_format: Vec<(&'static str, usize, usize)> = Vec::new();
    let mut out = Vec::new();
    for doc in docs {
        report.bytes += doc.body.len();
        if let Some(records) = doc.donor_records {
            let mut scanner = guard.scanner(&alert);
            out.clear();
            for piece in doc.body.as_bytes().chunks(chunk) {
                scanner.push(piece, &mut out);
            }
            let outcome = scanner.finish(&mut out);
            let found = outcome
                .findings
                .iter()
                .find(|f| f.kind == EntityKind::DonorList)
                .map_or(0, |f| f.count as usize);
            let flagged = found >= threshold;
            if records >= threshold {
                report.donor_lists += 1;
                report.donor_lists_flagged += usize::from(flagged);
                report.records_total += records;
                report.records_found += found.min(records);
                match by_format.iter_mut().find(|(f, _, _)| *f == doc.format) {
                    Some(entry) => {
                        entry.1 += 1;
                        entry.2 += usize::from(flagged);
                    }
                    None => by_format.push((doc.format, 1, usize::from(flagged))),
                }
            } else if records > 0 {
                report.small_pages += 1;
                report.small_pages_flagged += usize::from(flagged);
            } else {
                report.non_lists += 1;
                report.non_lists_flagged += usize::from(flagged);
            }
            continue;
        }
        let mut scanner = guard.scanner(&redact);
        out.clear();
        for piece in doc.body.as_bytes().chunks(chunk) {
            scanner.push(piece, &mut out);
        }
        scanner.finish(&mut out);
        let output = String::from_utf8_lossy(&out);
        for (i, &kind) in KINDS.iter().enumerate() {
            if kind == EntityKind::DonorList {
                continue;
            }
            let masks = output.matches(mask_prefix(kind)).count() as u64;
            let mut vanished = 0u64;
            let mut planted = 0u64;
            let mut seen: Vec<&str> = Vec::new();
            for (k, value) in &doc.planted {
                if *k != kind || seen.contains(&value.as_str()) {
                    continue;
                }
                seen.push(value);
                let before = doc.body.matches(value.as_str()).count() as u64;
                let after = output.matches(value.as_str()).count() as u64;
                planted += before;
                vanished += before.saturating_sub(after);
            }
            let tp = vanished.min(masks);
            if std::env::var_os("LEAKGUARD_DEBUG").is_some() && (masks > tp || planted > tp) {
                eprintln!(
                    "--- {} {}: masks {masks} vanished {vanished} planted {planted}",
                    doc.format,
                    kind.name()
                );
                for line in output
                    .lines()
                    .filter(|l| l.contains(mask_prefix(kind)))
                    .take(3)
                {
                    let at = line.find(mask_prefix(kind)).unwrap_or(0);
                    let lo = (0..=at.saturating_sub(80))
                        .rev()
                        .find(|i| line.is_char_boundary(*i))
                        .unwrap_or(0);
                    let hi = ((at + 60).min(line.len())..=line.len())
                        .find(|i| line.is_char_boundary(*i))
                        .unwrap_or(line.len());
                    eprintln!("  out: …{}…", &line[lo..hi]);
                }
                for (k, v) in &doc.planted {
                    if *k == kind && output.contains(v.as_str()) {
                        eprintln!("  missed: {v}");
                    }
                }
            }
            scores[i].tp += tp;
            scores[i].fp += masks - tp;
            scores[i].fn_ += planted - tp;
        }
    }
    report.scores = KINDS
        .iter()
        .copied()
        .zip(scores)
        .filter(|(k, _)| *k != EntityKind::DonorList)
        .collect();
    report.donor_by_format = by_format;
    report
}

/// The targets from the issue; returns the failures.
pub fn check_targets(report: &Report) -> Vec<String> {
    let mut failures = Vec::new();
    for (kind, score) in &report.scores {
        let (p, r) = match kind {
            EntityKind::Card
            | EntityKind::Iban
            | EntityKind::NiNumber
            | EntityKind::NhsNumber
            | EntityKind::BankAccount => (0.99, 0.98),
            EntityKind::Email | EntityKind::Phone | EntityKind::Postcode => (0.95, 0.95),
            _ => (0.90, 0.90),
        };
        if score.precision() < p || score.recall() < r {
            failures.push(format!(
                "{}: precision {:.3} (target {p}), recall {:.3} (target {r})",
                kind.name(),
                score.precision(),
                score.recall()
            ));
        }
    }
    if report.donor_lists_flagged != report.donor_lists {
        failures.push(format!(
            "donor lists flagged {}/{}",
            report.donor_lists_flagged, report.donor_lists
        ));
    }
    if report.small_pages_flagged != 0 {
        failures.push(format!(
            "pages below the threshold flagged: {}",
            report.small_pages_flagged
        ));
    }
    if report.non_lists_flagged != 0 {
        failures.push(format!(
            "non-donor lists flagged: {}",
            report.non_lists_flagged
        ));
    }
    failures
}

pub fn print(report: &Report) {
    println!(
        "{:<16} {:>6} {:>6} {:>6} {:>10} {:>8}",
        "kind", "tp", "fp", "fn", "precision", "recall"
    );
    for (kind, s) in &report.scores {
        println!(
            "{:<16} {:>6} {:>6} {:>6} {:>10.4} {:>8.4}",
            kind.name(),
            s.tp,
            s.fp,
            s.fn_,
            s.precision(),
            s.recall()
        );
    }
    println!();
    println!(
        "donor lists flagged: {}/{} (by format: {})",
        report.donor_lists_flagged,
        report.donor_lists,
        report
            .donor_by_format
            .iter()
            .map(|(f, n, k)| format!("{f} {k}/{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "records recognised in donor lists: {}/{} ({:.1}%)",
        report.records_found,
        report.records_total,
        100.0 * report.records_found as f64 / report.records_total.max(1) as f64
    );
    println!(
        "pages with 1-4 donation records flagged: {}/{}",
        report.small_pages_flagged, report.small_pages
    );
    println!(
        "shop, events and news lists flagged: {}/{}",
        report.non_lists_flagged, report.non_lists
    );
}
