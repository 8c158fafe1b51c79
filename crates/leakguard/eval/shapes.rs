//! Labelled documents by SHAPE, for a broader evaluation of the leak guard than `corpus.rs`
//! (issue 18). Each shape is a named kind of response a site can serve: a donor list of a given
//! size in a given format, a member list, a page with one card number, or an ordinary page that
//! must pass (a "What's on" listing, election results, a product API…). Every document carries
//! its label (leaky or clean), its content type, optionally a content coding, and, for leaky
//! documents, what was put in it (one marker per record) so the generator itself can be tested.
//!
//! Names, amounts, dates, currencies, field names, field order and indentation vary per
//! document. Names are drawn from a pool in which about half are common UK given names (most of
//! which the guard's list knows) and half are international or rarer names (most of which it
//! does not), so a scanner that relies on its name list is measured honestly.
//!
//! # Splits
//!
//! Every document is generated from its own seed, derived from (split, shape, index):
//! `seed = mix(SPLIT_BASE[split] ^ (shape_index << 32) ^ index)`. The two bases are fixed below.
//!
//! - `tune`: for developing the scanner and choosing thresholds. Look at it as much as needed.
//! - `held-out`: for reporting only. It is NEVER used to choose thresholds, name lists, rules or
//!   any other setting: run it after a change is decided, record the figures, and do not change
//!   the scanner because of a held-out document. If the held-out figures are used to tune, the
//!   split has to be replaced by a new base seed (and the old figures marked as tuned-on).
//!
//! Shared by `examples/evaluate.rs` (`-- shapes`) and `tests/leakguard/evaluation.rs` through
//! `#[path]`.

#![allow(dead_code)]

/// SplitMix64, as in `corpus.rs`: a seed names one document on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
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
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    pub fn hex(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b"0123456789abcdef"[self.below(16) as usize]))
            .collect()
    }
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Which split a document belongs to. See the module header: `HeldOut` is never tuned on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Tune,
    HeldOut,
}

impl Split {
    pub fn parse(s: &str) -> Option<Split> {
        match s {
            "tune" => Some(Split::Tune),
            "held-out" | "heldout" | "held_out" => Some(Split::HeldOut),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Split::Tune => "tune",
            Split::HeldOut => "held-out",
        }
    }
    fn base(self) -> u64 {
        match self {
            Split::Tune => 0x7475_6e65_0000_0018,    // "tune", issue 18
            Split::HeldOut => 0x686f_6c64_0000_0018, // "hold", issue 18
        }
    }
}

/// The seed of one document.
pub fn doc_seed(split: Split, shape: usize, index: usize) -> u64 {
    mix(split.base() ^ ((shape as u64) << 32) ^ index as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    /// Must be caught: a donor list, a member list, a page with a card/NI/IBAN.
    Leaky,
    /// Must pass.
    Clean,
}

/// How the records of a leaky document can be counted in its body (for the generator's test).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unit {
    /// Each record opens with this exact text, which occurs nowhere else after `records_from`.
    Opens(String),
    /// One record per non-empty line after `records_from`, after this many header lines.
    Lines { header: usize },
    /// A single value (card, NI number, IBAN): the one marker is the value.
    Single,
}

/// One generated document.
#[derive(Debug, Clone)]
pub struct ShapeDoc {
    pub shape: &'static str,
    pub label: Label,
    pub content_type: &'static str,
    /// `Content-Encoding` the body is sent with (the harness compresses and the gateway's
    /// decoder undoes it); `None` for identity.
    pub encoding: Option<&'static str>,
    pub body: String,
    /// Records (people) in a leaky document; 0 for clean ones.
    pub records: usize,
    /// One text per record, as it appears in the body (a name, an address, a value); distinct,
    /// except for JSON records with split name fields, where it is the quoted last name.
    pub markers: Vec<String>,
    /// Byte offset where the records start (after a long preamble, for the "after 100 KB" shape).
    pub records_from: usize,
    pub unit: Option<Unit>,
}

/// A shape: a name, its label, and its generator.
pub struct Shape {
    pub name: &'static str,
    pub label: Label,
    pub generate: fn(&mut Rng) -> ShapeDoc,
}

// ---------------------------------------------------------------------------------------------
// Vocabulary.

/// Given names: the first half common in the UK, the second half international or rarer.
const FIRST: &[&str] = &[
    "Margaret",
    "David",
    "Priya",
    "Siobhan",
    "Gareth",
    "Aisha",
    "Callum",
    "Eleanor",
    "Fiona",
    "Hannah",
    "James",
    "Sarah",
    "John",
    "Emma",
    "Michael",
    "Olivia",
    "Bethan",
    "Declan",
    "Harriet",
    "Kwame",
    "Zainab",
    "Niamh",
    "Owen",
    "Megan",
    "Stuart",
    "Rachel",
    "Peter",
    "Susan",
    "Graham",
    "Lucy",
    "Ottoline",
    "Peregrine",
    "Ngozi",
    "Thandiwe",
    "Saoirse",
    "Aneurin",
    "Ffion",
    "Lettice",
    "Cosmo",
    "Oluwaseun",
    "Bartosz",
    "Agnieszka",
    "Xiaoling",
    "Hiroshi",
    "Yusuf",
    "Ingrid",
    "Mirela",
    "Dragan",
    "Lucía",
    "Joaquín",
    "Anouk",
    "Sven",
    "Rasmus",
    "Kofi",
    "Adaeze",
    "Tendai",
    "Farida",
    "Parveen",
    "Rajesh",
    "Sunita",
    "Dmitri",
    "Oksana",
    "Zoltan",
    "Aurélie",
    "Giuseppe",
    "Chiara",
    "Morwenna",
    "Lorcan",
    "Eluned",
    "Jolyon",
    "Keziah",
    "Blessing",
    "Chukwuemeka",
    "Mei",
    "Haruto",
    "Santiago",
    "Ifeoma",
    "Bronagh",
    "Torquil",
    "Wiremu",
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
    "Mensah",
    "Pemberton",
    "Byrne",
    "Patel",
    "Kowalski",
    "Nowak",
    "Zhang",
    "Tanaka",
    "García",
    "Fernández",
    "Novak",
    "Petrović",
    "Johansson",
    "van der Berg",
    "Ní Bhriain",
    "ap Gwilym",
    "Featherstonehaugh",
    "Chaudhry",
    "Banerjee",
    "Oyelaran",
    "Mwangi",
    "Abubakar",
    "Dlamini",
    "Schmidt",
    "Rossi",
    "Kaur",
    "Singh",
    "Dubois",
    "Haddad",
    "Nakamura",
    "Murphy",
    "Fitzgerald",
    "Sutherland",
    "Thorne",
    "Smith",
    "Jones",
    "Evans",
    "Hughes",
    "Wright",
    "Baxter-Lyle",
];

const TITLES: &[&str] = &["Mr", "Mrs", "Ms", "Dr", "Miss", "Prof", "Cllr", "Rev"];

const TOWNS: &[&str] = &[
    "Leeds",
    "Cardiff",
    "Stirling",
    "Truro",
    "Norwich",
    "Belfast",
    "Carlisle",
    "Hereford",
    "Swansea",
    "Dundee",
    "Exeter",
    "Lancaster",
    "Bangor",
    "Ipswich",
    "Durham",
    "Inverness",
];

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

const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

const PROSE: &[&str] = &[
    "The town council has agreed a new plan for the high street, with wider pavements and more benches.",
    "Volunteers spent the weekend clearing the canal towpath between the two locks.",
    "The library will open late on Thursdays from next month, until 8pm.",
    "Residents have until the end of the month to respond to the consultation on bus routes.",
    "A new cycle lane links the station with the college campus.",
    "The food bank says demand rose again this winter and asks for tinned goods and toiletries.",
    "Work on the flood defences is expected to finish before the autumn.",
    "The school's choir will perform at the cathedral as part of the spring festival.",
    "Our newsletter is also available in Welsh, in large print and as audio.",
    "Parking in the market square is free after 6pm on weekdays and all day on Sundays.",
    "The planning committee meets in public; agendas are published a week before.",
    "The swimming pool reopens after a refurbishment of its changing rooms and roof.",
];

const PRODUCTS: &[&str] = &[
    "Campaign mug",
    "Organic cotton tote bag",
    "Enamel pin badge",
    "Window poster (A3)",
    "Tea towel",
    "Hoodie, navy",
    "Reusable water bottle",
    "Notebook, recycled paper",
    "Car sticker",
    "Umbrella",
    "Beanie hat",
    "Postcard set of 6",
];

const EVENTS: &[&str] = &[
    "Jazz on the Terrace",
    "Family Craft Morning",
    "Quiz Night",
    "Ceilidh and Supper",
    "Open Mic Poetry",
    "Guided Heritage Walk",
    "Repair Café",
    "Film Club: Brief Encounter",
    "Beginners' Yoga",
    "Choir Concert",
    "Book Swap",
    "Comedy Night",
    "Farmers' Market",
    "Astronomy Evening",
];

const PARTIES: &[&str] = &[
    "Labour",
    "Conservative",
    "Liberal Democrats",
    "Green Party",
    "Reform UK",
    "Plaid Cymru",
    "Scottish National Party",
    "Independent",
];

const CLUBS: &[&str] = &[
    "Harriers",
    "Athletic",
    "Rovers",
    "Tri Club",
    "Road Runners",
    "Wanderers",
    "United",
    "City",
];

// ---------------------------------------------------------------------------------------------
// Small values.

#[derive(Clone, Copy)]
struct Date {
    d: u64,
    m: u64,
    y: u64,
}

fn date(rng: &mut Rng, lo: u64, hi: u64) -> Date {
    Date {
        d: rng.range(1, 28),
        m: rng.range(1, 12),
        y: rng.range(lo, hi),
    }
}

/// Date styles a document keeps for all its records.
#[derive(Clone, Copy)]
enum DateStyle {
    Iso,
    IsoTime,
    Long,
    Slash,
    Short,
    Us,
    Dotted,
}

fn date_style(rng: &mut Rng) -> DateStyle {
    rng.pick(&[
        DateStyle::Iso,
        DateStyle::IsoTime,
        DateStyle::Long,
        DateStyle::Slash,
        DateStyle::Short,
        DateStyle::Us,
        DateStyle::Dotted,
    ])
}

fn fmt_date(d: Date, style: DateStyle, rng: &mut Rng) -> String {
    let Date { d, m, y } = d;
    let month = MONTHS[m as usize - 1];
    match style {
        DateStyle::Iso => format!("{y}-{m:02}-{d:02}"),
        DateStyle::IsoTime => format!(
            "{y}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rng.below(24),
            rng.below(60),
            rng.below(60)
        ),
        DateStyle::Long => format!("{d} {month} {y}"),
        DateStyle::Slash => format!("{d:02}/{m:02}/{y}"),
        DateStyle::Short => format!("{d} {} {y}", &month[..3]),
        DateStyle::Us => format!("{month} {d}, {y}"),
        DateStyle::Dotted => format!("{d:02}.{m:02}.{y}"),
    }
}

fn rfc822(d: Date, rng: &mut Rng) -> String {
    let wd = WEEKDAYS[((d.d + d.m * 3 + d.y) % 7) as usize];
    format!(
        "{wd}, {:02} {} {} {:02}:{:02}:00 {}",
        d.d,
        &MONTHS[d.m as usize - 1][..3],
        d.y,
        rng.below(24),
        rng.below(60),
        if rng.chance(50) { "GMT" } else { "+0000" }
    )
}

/// An amount in pence, skewed towards small gifts.
fn pence(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=5 => rng.pick(&[500, 1000, 1500, 2000, 2500, 3000, 5000]),
        6 | 7 => rng.range(3, 250) * 100 + rng.pick(&[0, 0, 50, 99]),
        8 => rng.range(250, 2000) * 100,
        _ => rng.range(2000, 50_000) * 100,
    }
}

#[derive(Clone, Copy)]
enum AmountStyle {
    Pound,       // £25
    PoundPence,  // £25.00
    PoundCommas, // £1,250.00
    GbpPrefix,   // GBP 25.00
    GbpSuffix,   // 25.00 GBP
    PoundEntity, // &pound;25.00 (HTML) / £25.00 elsewhere
    Bare,        // 25.00
}

fn amount_style(rng: &mut Rng, bare_ok: bool) -> AmountStyle {
    let styles: &[AmountStyle] = if bare_ok {
        &[
            AmountStyle::Pound,
            AmountStyle::PoundPence,
            AmountStyle::PoundCommas,
            AmountStyle::GbpPrefix,
            AmountStyle::GbpSuffix,
            AmountStyle::Bare,
            AmountStyle::Bare,
        ]
    } else {
        &[
            AmountStyle::Pound,
            AmountStyle::PoundPence,
            AmountStyle::PoundCommas,
            AmountStyle::GbpPrefix,
            AmountStyle::GbpSuffix,
        ]
    };
    rng.pick(styles)
}

fn plain(p: u64) -> String {
    format!("{}.{:02}", p / 100, p % 100)
}

fn commas(p: u64) -> String {
    let pounds = (p / 100).to_string();
    let mut out = String::new();
    for (i, c) in pounds.chars().enumerate() {
        if i > 0 && (pounds.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out}.{:02}", p % 100)
}

fn fmt_amount(p: u64, style: AmountStyle, html: bool) -> String {
    match style {
        AmountStyle::Pound if p % 100 == 0 => format!("£{}", p / 100),
        AmountStyle::Pound | AmountStyle::PoundPence => format!("£{}", plain(p)),
        AmountStyle::PoundCommas => format!("£{}", commas(p)),
        AmountStyle::GbpPrefix => format!("GBP {}", plain(p)),
        AmountStyle::GbpSuffix => format!("{} GBP", plain(p)),
        AmountStyle::PoundEntity if html => format!("&pound;{}", plain(p)),
        AmountStyle::PoundEntity => format!("£{}", plain(p)),
        AmountStyle::Bare => plain(p),
    }
}

/// A person's name as a list shows it.
#[derive(Clone)]
struct Person {
    first: &'static str,
    last: &'static str,
}

#[derive(Clone, Copy)]
enum NameStyle {
    Full,
    LastFirst,
    Initial,
    Titled,
}

fn name_style(rng: &mut Rng) -> NameStyle {
    match rng.below(10) {
        0..=5 => NameStyle::Full,
        6 => NameStyle::LastFirst,
        7 => NameStyle::Initial,
        _ => NameStyle::Titled,
    }
}

fn fmt_name(p: &Person, style: NameStyle, title: &str) -> String {
    match style {
        NameStyle::Full => format!("{} {}", p.first, p.last),
        NameStyle::LastFirst => format!("{}, {}", p.last, p.first),
        NameStyle::Initial => format!(
            "{}. {}",
            &p.first[..p.first.chars().next().unwrap().len_utf8()],
            p.last
        ),
        NameStyle::Titled => format!("{title} {} {}", p.first, p.last),
    }
}

/// `n` people with distinct (initial, last name) pairs.
fn people(rng: &mut Rng, n: usize) -> Vec<Person> {
    let mut out: Vec<Person> = Vec::with_capacity(n);
    while out.len() < n {
        let p = Person {
            first: rng.pick(FIRST),
            last: rng.pick(LAST),
        };
        // Distinct even when shown as an initial and a surname.
        let initial = |q: &Person| q.first.chars().next();
        if !out
            .iter()
            .any(|q| initial(q) == initial(&p) && q.last == p.last)
        {
            out.push(p);
        }
    }
    out
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// HTML text: apostrophes are sometimes written as entities, as many templates do.
fn html_text(s: &str, apos_entity: bool) -> String {
    let s = xml_escape(s);
    if apos_entity {
        s.replace('\'', "&#39;")
    } else {
        s
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

fn csv_cell(s: &str) -> String {
    if s.contains(',') || s.contains('"') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn filler(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.pick(PROSE))
        .collect::<Vec<_>>()
        .join(" ")
}

fn uuid(rng: &mut Rng) -> String {
    format!(
        "{}-{}-4{}-{}{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(3),
        rng.pick(&["8", "9", "a", "b"]),
        rng.hex(3),
        rng.hex(12)
    )
}

fn luhn_ok(digits: &str) -> bool {
    let sum: u32 = digits
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
    sum % 10 == 0
}

/// A card number of a real scheme's shape; `valid` decides whether it passes Luhn.
fn card_digits(rng: &mut Rng, valid: bool) -> String {
    let prefix = match rng.below(4) {
        0 => "4".to_string(),
        1 => format!("5{}", rng.range(1, 5)),
        2 => format!("{}", rng.range(2221, 2720)),
        _ => "4".to_string(),
    };
    let partial = format!("{prefix}{}", rng.digits(15 - prefix.len()));
    for check in 0..10 {
        let candidate = format!("{partial}{check}");
        if luhn_ok(&candidate) == valid {
            return candidate;
        }
    }
    unreachable!()
}

pub fn card_is_valid(text: &str) -> bool {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    (13..=19).contains(&digits.len()) && luhn_ok(&digits)
}

fn group4(digits: &str, sep: &str) -> String {
    digits
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
}

fn iban_mod97(iban: &str) -> u32 {
    let compact: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let mut rem = 0u32;
    for c in rearranged.chars() {
        let v = c.to_digit(36).unwrap();
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem
}

pub fn iban_is_valid(text: &str) -> bool {
    iban_mod97(text) == 1
}

fn iban(rng: &mut Rng) -> String {
    // GB (22), IE (22), DE (22), FR (27), NL (18): country, check, BBAN.
    let (country, bban) = match rng.below(5) {
        0 | 1 => (
            "GB",
            format!(
                "{}{}",
                rng.pick(&["NWBK", "BARC", "LOYD", "HBUK", "MIDL", "WEST"]),
                rng.digits(14)
            ),
        ),
        2 => (
            "IE",
            format!("{}{}", rng.pick(&["AIBK", "BOFI"]), rng.digits(14)),
        ),
        3 => ("DE", rng.digits(18)),
        _ => (
            "NL",
            format!("{}{}", rng.pick(&["ABNA", "INGB", "RABO"]), rng.digits(10)),
        ),
    };
    let probe = format!("{country}00{bban}");
    let check = 98 - iban_mod97(&probe);
    let compact = format!("{country}{check:02}{bban}");
    if rng.chance(60) {
        group4(&compact, " ")
    } else {
        compact
    }
}

pub fn ni_is_valid(text: &str) -> bool {
    let c: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let b = c.as_bytes();
    b.len() == 9
        && b"ABCEGHJKLMNOPRSTWXYZ".contains(&b[0])
        && b"ABCEGHJKLMNPRSTWXYZ".contains(&b[1])
        && !["BG", "GB", "NK", "KN", "TN", "NT", "ZZ"].contains(&&c[..2])
        && b[2..8].iter().all(u8::is_ascii_digit)
        && b"ABCD".contains(&b[8])
}

fn ni(rng: &mut Rng) -> String {
    loop {
        let a = rng.pick(b"ABCEGHJKLMNOPRSTWXYZ") as char;
        let b = rng.pick(b"ABCEGHJKLMNPRSTWXYZ") as char;
        let d = rng.digits(6);
        let s = rng.pick(b"ABCD") as char;
        let v = if rng.chance(60) {
            format!("{a}{b} {} {} {} {s}", &d[..2], &d[2..4], &d[4..])
        } else {
            format!("{a}{b}{d}{s}")
        };
        if ni_is_valid(&v) {
            return v;
        }
    }
}

fn email_of(rng: &mut Rng, p: &Person) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphabetic)
            .collect::<String>()
            .to_lowercase()
    };
    let (f, l) = (clean(p.first), clean(p.last));
    let f = if f.is_empty() { "x".to_string() } else { f };
    let local = match rng.below(4) {
        0 => format!("{f}.{l}"),
        1 => format!("{}{l}{}", &f[..1], rng.below(100)),
        2 => format!("{f}_{l}"),
        _ => format!("{f}{}", rng.range(1950, 2005)),
    };
    let domain = rng.pick(&[
        "gmail.com",
        "outlook.com",
        "btinternet.com",
        "yahoo.co.uk",
        "hotmail.co.uk",
        "icloud.com",
        "proton.me",
        "sky.com",
    ]);
    format!("{local}@{domain}")
}

fn phone(rng: &mut Rng) -> String {
    match rng.below(7) {
        0 => format!("07{}{} {}", rng.range(4, 9), rng.digits(2), rng.digits(6)),
        1 => format!(
            "+44 7{}{} {}",
            rng.range(4, 9),
            rng.digits(2),
            rng.digits(6)
        ),
        2 => format!("020 {} {}", rng.range(7000, 8999), rng.digits(4)),
        3 => format!("0161 {} {}", rng.range(200, 999), rng.digits(4)),
        4 => format!(
            "01{}{} {}",
            rng.range(2, 9),
            rng.digits(2),
            rng.range(200_000, 999_999)
        ),
        5 => format!("07{}{}{}", rng.range(4, 9), rng.digits(2), rng.digits(6)),
        _ => format!(
            "(0{}{}) {}",
            rng.range(113, 199),
            rng.digits(1),
            rng.digits(6)
        ),
    }
}

fn postcode(rng: &mut Rng) -> String {
    const INWARD: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
    let area = rng.pick(&[
        "LS", "CF", "FK", "TR", "NR", "BT", "CA", "HR", "SA", "DD", "EX", "M", "B",
    ]);
    format!(
        "{area}{} {}{}{}",
        rng.range(1, 19),
        rng.below(10),
        rng.pick(INWARD) as char,
        rng.pick(INWARD) as char
    )
}

/// A newline and indentation for JSON and XML: compact, or pretty with 2, 4 spaces or tabs.
#[derive(Clone, Copy)]
struct Layout {
    pretty: bool,
    indent: &'static str,
}

impl Layout {
    fn pick(rng: &mut Rng) -> Layout {
        match rng.below(4) {
            0 => Layout {
                pretty: false,
                indent: "",
            },
            1 => Layout {
                pretty: true,
                indent: "  ",
            },
            2 => Layout {
                pretty: true,
                indent: "    ",
            },
            _ => Layout {
                pretty: true,
                indent: "\t",
            },
        }
    }
    fn compact() -> Layout {
        Layout {
            pretty: false,
            indent: "",
        }
    }
    fn nl(&self, depth: usize) -> String {
        if self.pretty {
            format!("\n{}", self.indent.repeat(depth))
        } else {
            String::new()
        }
    }
    fn sp(&self) -> &'static str {
        if self.pretty {
            " "
        } else {
            ""
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Donor lists.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Format {
    Rss,
    Atom,
    JsonArray,
    JsonObject,
    CsvHeader,
    CsvNoHeader,
    HtmlTable,
    HtmlCards,
    Ndjson,
    XmlElements,
    XmlAttributes,
    XmlMixed,
}

pub const FORMATS: [Format; 12] = [
    Format::Rss,
    Format::Atom,
    Format::JsonArray,
    Format::JsonObject,
    Format::CsvHeader,
    Format::CsvNoHeader,
    Format::HtmlTable,
    Format::HtmlCards,
    Format::Ndjson,
    Format::XmlElements,
    Format::XmlAttributes,
    Format::XmlMixed,
];

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Rss => "rss",
            Format::Atom => "atom",
            Format::JsonArray => "json_array",
            Format::JsonObject => "json_object",
            Format::CsvHeader => "csv_header",
            Format::CsvNoHeader => "csv_noheader",
            Format::HtmlTable => "html_table",
            Format::HtmlCards => "html_cards",
            Format::Ndjson => "ndjson",
            Format::XmlElements => "xml_elements",
            Format::XmlAttributes => "xml_attributes",
            Format::XmlMixed => "xml_mixed",
        }
    }
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Rss => "application/rss+xml",
            Format::Atom => "application/atom+xml",
            Format::JsonArray | Format::JsonObject => "application/json",
            Format::CsvHeader | Format::CsvNoHeader => "text/csv; charset=utf-8",
            Format::HtmlTable | Format::HtmlCards => "text/html; charset=utf-8",
            Format::Ndjson => "application/x-ndjson",
            Format::XmlElements | Format::XmlAttributes | Format::XmlMixed => "application/xml",
        }
    }
    pub fn is_json(self) -> bool {
        matches!(
            self,
            Format::JsonArray | Format::JsonObject | Format::Ndjson
        )
    }
}

/// One donation.
struct Gift {
    person: Person,
    name: String,
    pence: u64,
    date: Date,
}

/// How one document spells its records.
struct Style {
    name_key: &'static str,
    amount_key: &'static str,
    date_key: &'static str,
    date: DateStyle,
    amount: AmountStyle,
    /// Order of (name, amount, date) fields.
    order: [usize; 3],
    layout: Layout,
    /// JSON: amount as a number (pounds), in pence, or as text.
    json_amount: u8,
    /// JSON: the name split into first and last fields.
    split_name: bool,
    apos_entity: bool,
    extra: bool,
}

fn style(rng: &mut Rng) -> Style {
    let mut order = [0, 1, 2];
    rng.shuffle(&mut order);
    Style {
        name_key: rng.pick(&[
            "donor",
            "name",
            "supporter",
            "contributor",
            "donor_name",
            "full_name",
            "donorName",
            "from",
        ]),
        amount_key: rng.pick(&["amount", "gift", "value", "donation", "amount_gbp", "total"]),
        date_key: rng.pick(&[
            "date",
            "donated_at",
            "received",
            "gift_date",
            "created_at",
            "createdAt",
            "when",
        ]),
        date: date_style(rng),
        amount: amount_style(rng, false),
        order,
        layout: Layout::pick(rng),
        json_amount: rng.below(4) as u8,
        split_name: rng.chance(25),
        apos_entity: rng.chance(30),
        extra: rng.chance(40),
    }
}

fn gifts(rng: &mut Rng, n: usize) -> Vec<Gift> {
    let ns = name_style(rng);
    let (lo, hi) = rng.pick(&[(2024, 2026), (2025, 2026), (2021, 2025)]);
    people(rng, n)
        .into_iter()
        .map(|person| {
            let title = rng.pick(TITLES);
            let name = fmt_name(&person, ns, title);
            Gift {
                person,
                name,
                pence: pence(rng),
                date: date(rng, lo, hi),
            }
        })
        .collect()
}

/// The JSON fields of one gift, in the document's order, and the marker that names it.
fn json_fields(g: &Gift, st: &Style, rng: &mut Rng) -> (Vec<(String, String)>, String) {
    let mut fields: Vec<(String, String)> = Vec::new();
    let marker;
    let name_fields: Vec<(String, String)> = if st.split_name {
        marker = format!("\"{}\"", g.person.last);
        vec![
            ("first_name".into(), json_str(g.person.first)),
            ("last_name".into(), json_str(g.person.last)),
        ]
    } else {
        marker = g.name.clone();
        vec![(st.name_key.into(), json_str(&g.name))]
    };
    let amount = match st.json_amount {
        0 => plain(g.pence),
        1 => g.pence.to_string(),
        2 => json_str(&fmt_amount(g.pence, st.amount, false)),
        _ => format!(
            "{{\"value\":{},\"currency\":\"GBP\"}}",
            json_str(&plain(g.pence))
        ),
    };
    let amount_key = if st.json_amount == 1 {
        "amount_pence"
    } else {
        st.amount_key
    };
    let date = json_str(&fmt_date(g.date, st.date, rng));
    for &i in &st.order {
        match i {
            0 => fields.extend(name_fields.iter().cloned()),
            1 => fields.push((amount_key.into(), amount.clone())),
            _ => fields.push((st.date_key.into(), date.clone())),
        }
    }
    if st.extra {
        fields.insert(0, ("id".into(), rng.range(10_000, 99_999).to_string()));
        fields.push((
            "method".into(),
            json_str(rng.pick(&["card", "Direct Debit", "PayPal", "cheque", "bank transfer"])),
        ));
    }
    (fields, marker)
}

fn json_object(fields: &[(String, String)], layout: Layout, depth: usize) -> String {
    let inner: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}\"{k}\":{}{v}", layout.nl(depth + 1), layout.sp()))
        .collect();
    format!("{{{}{}}}", inner.join(","), layout.nl(depth))
}

/// The key a JSON record's name is under: it opens each record exactly once.
fn json_unit(st: &Style) -> String {
    if st.split_name {
        "\"first_name\":".into()
    } else {
        format!("\"{}\":", st.name_key)
    }
}

/// A rendered list: the body, one marker per record, where the records start and how to count.
struct Rendered {
    body: String,
    markers: Vec<String>,
    records_from: usize,
    unit: Unit,
}

fn render(rng: &mut Rng, format: Format, gs: &[Gift], st: &Style) -> Rendered {
    let l = st.layout;
    let mut markers = Vec::new();
    match format {
        Format::Rss => {
            let mut body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\">{}<channel>{}<title>{}</title>{}<link>https://www.example.org/</link>",
                l.nl(0),
                l.nl(1),
                rng.pick(&["Latest supporters", "Recent donations", "Our donors", "Thank you wall"]),
                l.nl(1)
            );
            let from = body.len();
            let verb = rng.pick(&["donated", "gave", "pledged", "contributed"]);
            for (i, g) in gs.iter().enumerate() {
                let name = xml_escape(&g.name);
                let amount = xml_escape(&fmt_amount(g.pence, st.amount, false));
                let title = if rng.chance(50) || !st.extra {
                    format!("{name} {verb} {amount}")
                } else {
                    format!("New donation from {name}")
                };
                let desc = if title.contains(&amount) {
                    "Thank you for your support!".to_string()
                } else {
                    format!("{name} {verb} {amount} to the appeal.")
                };
                body.push_str(&format!(
                    "{}<item>{}<title>{title}</title>{}<description>{desc}</description>{}<guid isPermaLink=\"false\">gift-{}</guid>{}<pubDate>{}</pubDate>{}</item>",
                    l.nl(1), l.nl(2), l.nl(2), l.nl(2), 7000 + i, l.nl(2), rfc822(g.date, rng), l.nl(1)
                ));
                markers.push(name);
            }
            body.push_str(&format!("{}</channel>{}</rss>\n", l.nl(1), l.nl(0)));
            Rendered {
                body,
                markers,
                records_from: from,
                unit: Unit::Opens("<item>".into()),
            }
        }
        Format::Atom => {
            let mut body = format!(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">{}<title>Supporters</title>{}<id>urn:uuid:{}</id>",
                l.nl(1),
                l.nl(1),
                uuid(rng)
            );
            let from = body.len();
            let author = rng.chance(50);
            for g in gs {
                let name = xml_escape(&g.name);
                let amount = xml_escape(&fmt_amount(g.pence, st.amount, false));
                let updated = format!(
                    "{}-{:02}-{:02}T{:02}:{:02}:00Z",
                    g.date.y,
                    g.date.m,
                    g.date.d,
                    rng.below(24),
                    rng.below(60)
                );
                let inner = if author {
                    format!(
                        "<title>Donation of {amount}</title>{}<author><name>{name}</name></author>",
                        l.nl(2)
                    )
                } else {
                    format!(
                        "<title type=\"text\">{name}</title>{}<content type=\"text\">{amount}</content>",
                        l.nl(2)
                    )
                };
                body.push_str(&format!(
                    "{}<entry>{}<id>urn:uuid:{}</id>{}{inner}{}<updated>{updated}</updated>{}</entry>",
                    l.nl(1),
                    l.nl(2),
                    uuid(rng),
                    l.nl(2),
                    l.nl(2),
                    l.nl(1)
                ));
                markers.push(name);
            }
            body.push_str(&format!("{}</feed>\n", l.nl(0)));
            Rendered {
                body,
                markers,
                records_from: from,
                unit: Unit::Opens("<entry>".into()),
            }
        }
        Format::JsonArray | Format::JsonObject | Format::Ndjson => {
            let wrapper = rng.pick(&["", "donations", "data", "items", "supporters", "results"]);
            let depth = usize::from(!wrapper.is_empty());
            let mut items = Vec::new();
            for g in gs {
                let (fields, marker) = json_fields(g, st, rng);
                markers.push(marker);
                items.push(fields);
            }
            let body = match format {
                Format::Ndjson => items
                    .iter()
                    .map(|f| json_object(f, Layout::compact(), 0) + "\n")
                    .collect(),
                Format::JsonArray => {
                    let inner: Vec<String> = items
                        .iter()
                        .map(|f| format!("{}{}", l.nl(depth + 1), json_object(f, l, depth + 1)))
                        .collect();
                    let array = format!("[{}{}]", inner.join(","), l.nl(depth));
                    if wrapper.is_empty() {
                        array
                    } else {
                        format!(
                            "{{{}\"count\":{}{},{}\"{wrapper}\":{}{array}{}}}",
                            l.nl(1),
                            l.sp(),
                            gs.len(),
                            l.nl(1),
                            l.sp(),
                            l.nl(0)
                        )
                    }
                }
                _ => {
                    let inner: Vec<String> = items
                        .iter()
                        .map(|f| {
                            format!(
                                "{}\"{}\":{}{}",
                                l.nl(depth + 1),
                                rng.pick(&["d_", "gift-", "", "don"]).to_string()
                                    + &rng.range(100_000, 999_999).to_string(),
                                l.sp(),
                                json_object(f, l, depth + 1)
                            )
                        })
                        .collect();
                    let object = format!("{{{}{}}}", inner.join(","), l.nl(depth));
                    if wrapper.is_empty() {
                        object
                    } else {
                        format!("{{{}\"{wrapper}\":{}{object}{}}}", l.nl(1), l.sp(), l.nl(0))
                    }
                }
            };
            Rendered {
                body,
                markers,
                records_from: 0,
                unit: Unit::Opens(json_unit(st)),
            }
        }
        Format::CsvHeader | Format::CsvNoHeader => {
            let mut body = String::new();
            let header = format == Format::CsvHeader;
            if header {
                let cols: Vec<&str> = st
                    .order
                    .iter()
                    .map(|&i| [st.name_key, st.amount_key, st.date_key][i])
                    .collect();
                body.push_str(&cols.join(","));
                if st.extra {
                    body.push_str(",method");
                }
                body.push_str(if st.apos_entity { "\r\n" } else { "\n" });
            }
            let amount_style = if rng.chance(50) {
                AmountStyle::Bare
            } else {
                st.amount
            };
            for g in gs {
                let cells: Vec<String> = st
                    .order
                    .iter()
                    .map(|&i| match i {
                        0 => csv_cell(&g.name),
                        1 => csv_cell(&fmt_amount(g.pence, amount_style, false)),
                        _ => csv_cell(&fmt_date(g.date, st.date, rng)),
                    })
                    .collect();
                body.push_str(&cells.join(","));
                if st.extra {
                    body.push(',');
                    body.push_str(rng.pick(&["card", "Direct Debit", "PayPal"]));
                }
                body.push_str(if st.apos_entity { "\r\n" } else { "\n" });
                markers.push(g.name.clone());
            }
            Rendered {
                body,
                markers,
                records_from: 0,
                unit: Unit::Lines {
                    header: usize::from(header),
                },
            }
        }
        Format::HtmlTable => {
            let (head, foot) = html_shell(rng, "Donations received");
            let mut body = head;
            let cols: Vec<&str> = st
                .order
                .iter()
                .map(|&i| ["Name", "Amount", "Date"][i])
                .collect();
            body.push_str(&format!(
                "<table class=\"{}\">\n<thead><tr><th>{}</th></tr></thead>\n<tbody>\n",
                rng.pick(&["table", "donations", "data-table striped", "wp-block-table"]),
                cols.join("</th><th>")
            ));
            let from = body.len();
            for g in gs {
                let name = html_text(&g.name, st.apos_entity);
                let cells: Vec<String> = st
                    .order
                    .iter()
                    .map(|&i| match i {
                        0 => name.clone(),
                        1 => fmt_amount(g.pence, st.amount, true),
                        _ => fmt_date(g.date, st.date, rng),
                    })
                    .collect();
                body.push_str(&format!(
                    "<tr>\n  <td>{}</td>\n</tr>\n",
                    cells.join("</td>\n  <td>")
                ));
                markers.push(name);
            }
            body.push_str("</tbody>\n</table>\n");
            body.push_str(&foot);
            Rendered {
                body,
                markers,
                records_from: from,
                unit: Unit::Opens("<tr>".into()),
            }
        }
        Format::HtmlCards => {
            let (head, foot) = html_shell(rng, "Thank you to our supporters");
            let mut body = head;
            let list = rng.chance(50);
            body.push_str(if list {
                "<ul class=\"supporters\">\n"
            } else {
                "<div class=\"grid\">\n"
            });
            let from = body.len();
            let open = if list {
                "<li class=\"supporter\">"
            } else {
                "<div class=\"card supporter-card\">"
            };
            for g in gs {
                let name = html_text(&g.name, st.apos_entity);
                let amount = fmt_amount(g.pence, st.amount, true);
                let dt = fmt_date(g.date, st.date, rng);
                let iso = format!("{}-{:02}-{:02}", g.date.y, g.date.m, g.date.d);
                if list {
                    body.push_str(&format!(
                        "  {open}<strong>{name}</strong> gave {amount} on <time datetime=\"{iso}\">{dt}</time></li>\n"
                    ));
                } else {
                    body.push_str(&format!(
                        "  {open}\n    <h3 class=\"card-title\">{name}</h3>\n    <p class=\"amount\">{amount}</p>\n    <p class=\"meta\"><time datetime=\"{iso}\">{dt}</time></p>\n  </div>\n"
                    ));
                }
                markers.push(name);
            }
            body.push_str(if list { "</ul>\n" } else { "</div>\n" });
            body.push_str(&foot);
            Rendered {
                body,
                markers,
                records_from: from,
                unit: Unit::Opens(open.into()),
            }
        }
        Format::XmlElements | Format::XmlAttributes | Format::XmlMixed => {
            let root = rng.pick(&["donations", "export", "gifts", "supporters"]);
            let rec = rng.pick(&["donation", "gift", "record", "row"]);
            let mut body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{root} generated=\"{}\" source=\"crm\">",
                fmt_date(date(rng, 2026, 2026), DateStyle::IsoTime, rng)
            );
            let from = body.len();
            let amount_style = if rng.chance(50) {
                AmountStyle::Bare
            } else {
                st.amount
            };
            for g in gs {
                let name = xml_escape(&g.name);
                let amount = xml_escape(&fmt_amount(g.pence, amount_style, false));
                let dt = fmt_date(g.date, st.date, rng);
                let kind = match format {
                    Format::XmlElements => 0,
                    Format::XmlAttributes => 1,
                    _ => rng.below(3),
                };
                let attrs = |names: &[usize]| -> String {
                    st.order
                        .iter()
                        .filter(|i| names.contains(i))
                        .map(|&i| match i {
                            0 => format!(" {}=\"{name}\"", st.name_key),
                            1 => format!(" {}=\"{amount}\"", st.amount_key),
                            _ => format!(" {}=\"{dt}\"", st.date_key),
                        })
                        .collect()
                };
                let elems = |names: &[usize]| -> String {
                    st.order
                        .iter()
                        .filter(|i| names.contains(i))
                        .map(|&i| match i {
                            0 => format!("{}<{k}>{name}</{k}>", l.nl(2), k = st.name_key),
                            1 => format!("{}<{k}>{amount}</{k}>", l.nl(2), k = st.amount_key),
                            _ => format!("{}<{k}>{dt}</{k}>", l.nl(2), k = st.date_key),
                        })
                        .collect()
                };
                let id = rng.range(1000, 99_999);
                let record = match kind {
                    0 => format!(
                        "<{rec} id=\"{id}\">{}{}</{rec}>",
                        elems(&[0, 1, 2]),
                        l.nl(1)
                    ),
                    1 => format!("<{rec} id=\"{id}\"{}/>", attrs(&[0, 1, 2])),
                    _ => {
                        // Some fields as attributes, the rest as child elements.
                        let mut at = vec![0usize, 1, 2];
                        rng.shuffle(&mut at);
                        let split = rng.range(1, 2) as usize;
                        let (a, e) = at.split_at(split);
                        format!(
                            "<{rec} id=\"{id}\"{}>{}{}</{rec}>",
                            attrs(a),
                            elems(e),
                            l.nl(1)
                        )
                    }
                };
                body.push_str(&format!("{}{record}", l.nl(1)));
                markers.push(name);
            }
            body.push_str(&format!("{}</{root}>\n", l.nl(0)));
            Rendered {
                body,
                markers,
                records_from: from,
                unit: Unit::Opens(format!("<{rec} id=")),
            }
        }
    }
}

fn html_shell(rng: &mut Rng, title: &str) -> (String, String) {
    let site = rng.pick(&[
        "Riverside Community Trust",
        "Northfield Independents",
        "Friends of Hartley Park",
        "Valley Green Party",
        "St Anne's Hospice Appeal",
    ]);
    let head = format!(
        "<!DOCTYPE html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title} | {site}</title>\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<link rel=\"stylesheet\" href=\"/assets/site.{}.css\">\n</head>\n<body class=\"page\">\n<header class=\"site-header\"><a class=\"logo\" href=\"/\">{}</a>\n<nav><ul><li><a href=\"/about\">About</a></li><li><a href=\"/news\">News</a></li><li><a href=\"/events\">What's on</a></li><li><a href=\"/donate\">Donate</a></li></ul></nav></header>\n<main id=\"content\">\n<h1>{title}</h1>\n<p>{}</p>\n",
        rng.hex(8),
        xml_escape(site),
        filler(rng, 2)
    );
    let foot = format!(
        "</main>\n<footer><p>&copy; {} {}. Registered charity no. {}.</p><p><a href=\"/privacy\">Privacy</a> · <a href=\"/accessibility\">Accessibility</a></p></footer>\n<script src=\"/assets/app.{}.js\" defer></script>\n</body>\n</html>\n",
        rng.range(2024, 2026),
        xml_escape(site),
        rng.range(1_000_000, 1_199_999),
        rng.hex(8)
    );
    (head, foot)
}

fn donor_doc(rng: &mut Rng, shape: &'static str, format: Format, lo: u64, hi: u64) -> ShapeDoc {
    let n = rng.range(lo, hi) as usize;
    let gs = gifts(rng, n);
    let st = style(rng);
    let r = render(rng, format, &gs, &st);
    ShapeDoc {
        shape,
        label: Label::Leaky,
        content_type: format.content_type(),
        encoding: None,
        body: r.body,
        records: n,
        markers: r.markers,
        records_from: r.records_from,
        unit: Some(r.unit),
    }
}

// ---------------------------------------------------------------------------------------------
// Other leaky shapes.

fn spreadsheet_html(rng: &mut Rng, rows: &[Vec<String>], header: &[&str]) -> (String, usize) {
    // Excel's "Save as Web Page" markup: classes per cell style, row heights, x:num attributes.
    let mut body = String::from(
        "<html xmlns:o=\"urn:schemas-microsoft-com:office:office\"\nxmlns:x=\"urn:schemas-microsoft-com:office:excel\"\nxmlns=\"http://www.w3.org/TR/REC-html40\">\n<head>\n<meta http-equiv=Content-Type content=\"text/html; charset=utf-8\">\n<meta name=ProgId content=Excel.Sheet>\n<meta name=Generator content=\"Microsoft Excel 15\">\n<style>\n<!--table\n\t{mso-displayed-decimal-separator:\"\\.\";\n\tmso-displayed-thousand-separator:\"\\,\";}\n.xl65\n\t{mso-number-format:\"\\0022£\\0022\\#\\,\\#\\#0\\.00\";}\n.xl66\n\t{mso-number-format:\"Short Date\";}\n-->\n</style>\n</head>\n<body link=\"#0563C1\" vlink=\"#954F72\">\n\n<table border=0 cellpadding=0 cellspacing=0 width=412 style='border-collapse:\n collapse;table-layout:fixed;width:309pt'>\n <col width=160 style='mso-width-source:userset;width:120pt'>\n <col width=84 span=3 style='width:63pt'>\n",
    );
    body.push_str(" <tr height=20 style='height:15.0pt'>\n");
    for h in header {
        body.push_str(&format!(
            "  <td class=xl67 width=84 style='width:63pt'>{h}</td>\n"
        ));
    }
    body.push_str(" </tr>\n");
    let from = body.len();
    for row in rows {
        body.push_str(" <tr height=20 style='height:15.0pt'>\n");
        for (i, cell) in row.iter().enumerate() {
            let class = ["xl68", "xl65", "xl66", "xl68"][i.min(3)];
            let num = if i == 1 {
                format!(
                    " align=right x:num=\"{}\"",
                    cell.trim_start_matches('£').replace(',', "")
                )
            } else if i == 2 {
                format!(" align=right x:num=\"{}\"", 45_000 + rng.below(1200))
            } else {
                String::new()
            };
            let height = if i == 0 {
                " height=20 style='height:15.0pt'"
            } else {
                ""
            };
            body.push_str(&format!("  <td{height} class={class}{num}>{cell}</td>\n"));
        }
        body.push_str(" </tr>\n");
    }
    body.push_str(" <![if supportMisalignedColumns]>\n <tr height=0 style='display:none'>\n  <td width=160 style='width:120pt'></td>\n </tr>\n <![endif]>\n</table>\n\n</body>\n\n</html>\n");
    (body, from)
}

fn donor_spreadsheet(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 60) as usize;
    let gs = gifts(rng, n);
    let ds = rng.pick(&[DateStyle::Slash, DateStyle::Iso, DateStyle::Short]);
    let rows: Vec<Vec<String>> = gs
        .iter()
        .map(|g| {
            vec![
                xml_escape(&g.name),
                format!("£{}", commas(g.pence)),
                fmt_date(g.date, ds, rng),
                rng.pick(&["Online", "Standing order", "Event", "Cheque"])
                    .to_string(),
            ]
        })
        .collect();
    let (body, from) = spreadsheet_html(rng, &rows, &["Donor", "Amount", "Received", "Source"]);
    ShapeDoc {
        shape: "donor_spreadsheet_html_5_60",
        label: Label::Leaky,
        content_type: "text/html; charset=utf-8",
        encoding: None,
        body,
        records: n,
        markers: rows.iter().map(|r| r[0].clone()).collect(),
        records_from: from,
        unit: Some(Unit::Opens(" <tr height=20".into())),
    }
}

fn donor_paginated(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 25) as usize;
    let gs = gifts(rng, n);
    let st = style(rng);
    let l = st.layout;
    let page = rng.range(1, 40);
    let mut items = Vec::new();
    let mut markers = Vec::new();
    for g in &gs {
        let (fields, marker) = json_fields(g, &st, rng);
        markers.push(marker);
        items.push(format!("{}{}", l.nl(2), json_object(&fields, l, 2)));
    }
    let base = rng.pick(&[
        "https://api.example.org/v1/donations",
        "/api/donations",
        "https://crm.example.org/api/gifts",
    ]);
    let links = if rng.chance(50) {
        format!(
            "\"next\":{}\"{base}?page={}&per_page={n}\",{}\"previous\":{}{}",
            l.sp(),
            page + 1,
            l.nl(1),
            l.sp(),
            if page > 1 {
                format!("\"{base}?page={}&per_page={n}\"", page - 1)
            } else {
                "null".into()
            }
        )
    } else {
        format!(
            "\"_links\":{}{{\"self\":{{\"href\":\"{base}?page={page}\"}},\"next\":{{\"href\":\"{base}?page={}\"}}}}",
            l.sp(),
            page + 1
        )
    };
    let body = format!(
        "{{{}\"page\":{}{page},{}\"per_page\":{}{n},{}\"total\":{}{},{}{links},{}\"results\":{}[{}{}]{}}}",
        l.nl(1),
        l.sp(),
        l.nl(1),
        l.sp(),
        l.nl(1),
        l.sp(),
        page as usize * n + rng.below(500) as usize,
        l.nl(1),
        l.nl(1),
        l.sp(),
        items.join(","),
        l.nl(1),
        l.nl(0)
    );
    ShapeDoc {
        shape: "donor_paginated_api_5_25",
        label: Label::Leaky,
        content_type: "application/json",
        encoding: None,
        body,
        records: n,
        markers,
        records_from: 0,
        unit: Some(Unit::Opens(json_unit(&st))),
    }
}

fn donor_graphql(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 40) as usize;
    let gs = gifts(rng, n);
    let l = Layout::pick(rng);
    let ds = rng.pick(&[DateStyle::IsoTime, DateStyle::Iso]);
    let mut edges = Vec::new();
    let mut markers = Vec::new();
    for (i, g) in gs.iter().enumerate() {
        let name = json_str(&g.name);
        let node = format!(
            "{{\"__typename\":\"Donation\",\"id\":\"RG9uYXRpb246{}\",\"donor\":{{\"__typename\":\"Supporter\",\"displayName\":{name}}},\"amount\":{{\"value\":\"{}\",\"currency\":\"GBP\"}},\"createdAt\":\"{}\"}}",
            rng.digits(6),
            plain(g.pence),
            fmt_date(g.date, ds, rng)
        );
        edges.push(format!(
            "{}{{\"cursor\":\"Y3Vyc29yOn{i}\",\"node\":{}{node}}}",
            l.nl(4),
            l.sp()
        ));
        markers.push(g.name.clone());
    }
    let body = format!(
        "{{{}\"data\":{}{{{}\"donations\":{}{{{}\"totalCount\":{},{}\"edges\":{}[{}{}],{}\"pageInfo\":{{\"hasNextPage\":true,\"endCursor\":\"Y3Vyc29yOn{}\"}}{}}}{}}}{}}}",
        l.nl(1),
        l.sp(),
        l.nl(2),
        l.sp(),
        l.nl(3),
        n + rng.below(300) as usize,
        l.nl(3),
        l.sp(),
        edges.join(","),
        l.nl(3),
        l.nl(3),
        n,
        l.nl(2),
        l.nl(1),
        l.nl(0)
    );
    ShapeDoc {
        shape: "donor_graphql_5_40",
        label: Label::Leaky,
        content_type: "application/json",
        encoding: None,
        body,
        records: n,
        markers,
        records_from: 0,
        unit: Some(Unit::Opens("\"node\":".into())),
    }
}

fn next_data_page(rng: &mut Rng, title: &str, page: &str, props: &str) -> (String, usize) {
    let (head, foot) = html_shell(rng, title);
    let mut body = head;
    body.push_str("<div id=\"__next\"><div class=\"loading\">Loading…</div></div>\n");
    body.push_str("<script id=\"__NEXT_DATA__\" type=\"application/json\">");
    let from = body.len();
    body.push_str(&format!(
        "{{\"props\":{{\"pageProps\":{props},\"__N_SSP\":true}},\"page\":\"{page}\",\"query\":{{}},\"buildId\":\"{}\",\"isFallback\":false,\"gssp\":true,\"scriptLoader\":[]}}",
        rng.hex(21)
    ));
    body.push_str("</script>\n");
    body.push_str(&foot);
    (body, from)
}

/// The JSON inside a `__NEXT_DATA__` island, for the generator's test.
pub fn next_data_json(body: &str) -> Option<&str> {
    let open = "<script id=\"__NEXT_DATA__\" type=\"application/json\">";
    let start = body.find(open)? + open.len();
    let end = start + body[start..].find("</script>")?;
    Some(&body[start..end])
}

fn donor_next_data(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 40) as usize;
    let gs = gifts(rng, n);
    let mut st = style(rng);
    st.layout = Layout::compact();
    let mut items = Vec::new();
    let mut markers = Vec::new();
    for g in &gs {
        let (fields, marker) = json_fields(g, &st, rng);
        markers.push(marker);
        items.push(json_object(&fields, st.layout, 0));
    }
    let props = format!(
        "{{\"campaign\":{{\"slug\":\"spring-appeal\",\"target\":25000}},\"recentDonations\":[{}]}}",
        items.join(",")
    );
    let (body, from) = next_data_page(rng, "Spring appeal", "/appeal/[slug]", &props);
    ShapeDoc {
        shape: "donor_next_data_5_40",
        label: Label::Leaky,
        content_type: "text/html; charset=utf-8",
        encoding: None,
        body,
        records: n,
        markers,
        records_from: from,
        unit: Some(Unit::Opens(json_unit(&st))),
    }
}

/// A donor list that starts after 100 KB or more of ordinary content of the same format.
fn donor_after_100kb(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 40) as usize;
    let gs = gifts(rng, n);
    let st = style(rng);
    let target = rng.range(100_000, 160_000) as usize;
    let kind = rng.below(5);
    let (body, from, unit, markers, content_type) = match kind {
        0 | 1 => {
            // An HTML page: long article, then the table or cards.
            let format = if kind == 0 {
                Format::HtmlTable
            } else {
                Format::HtmlCards
            };
            let r = render(rng, format, &gs, &st);
            let main =
                r.body.find("<main id=\"content\">").unwrap() + "<main id=\"content\">".len();
            let mut pre = String::from("\n<article>\n");
            while pre.len() < target {
                pre.push_str(&format!(
                    "<h2>{}</h2>\n<p>{}</p>\n",
                    rng.pick(EVENTS),
                    filler(rng, 6)
                ));
            }
            pre.push_str("</article>\n");
            let mut body = r.body.clone();
            body.insert_str(main, &pre);
            (
                body,
                r.records_from + pre.len(),
                r.unit,
                r.markers,
                format.content_type(),
            )
        }
        2 => {
            // A JSON document: a long array of articles, then the donations.
            let r = render(rng, Format::JsonArray, &gs, &st);
            let mut pre = String::from("{\"articles\":[");
            let mut first = true;
            while pre.len() < target {
                if !first {
                    pre.push(',');
                }
                first = false;
                pre.push_str(&format!(
                    "{{\"id\":{},\"headline\":{},\"body\":{},\"published\":\"{}\"}}",
                    rng.range(1, 99_999),
                    json_str(rng.pick(EVENTS)),
                    json_str(&filler(rng, 5)),
                    fmt_date(date(rng, 2020, 2026), DateStyle::Iso, rng)
                ));
            }
            pre.push_str("],\"donations\":");
            let body = format!("{pre}{}}}", r.body);
            (body, pre.len(), r.unit, r.markers, "application/json")
        }
        3 => {
            // An RSS feed: many news items, then donation items.
            let r = render(rng, Format::Rss, &gs, &st);
            let mut pre = String::new();
            while pre.len() < target {
                pre.push_str(&format!(
                    "<item><title>{}</title><description>{}</description><pubDate>{}</pubDate></item>\n",
                    rng.pick(EVENTS),
                    filler(rng, 5),
                    rfc822(date(rng, 2020, 2026), rng)
                ));
            }
            let mut body = r.body.clone();
            body.insert_str(r.records_from, &pre);
            (
                body,
                r.records_from + pre.len(),
                r.unit,
                r.markers,
                Format::Rss.content_type(),
            )
        }
        _ => {
            // NDJSON: an event log, then the donation lines.
            let r = render(rng, Format::Ndjson, &gs, &st);
            let mut pre = String::new();
            while pre.len() < target {
                pre.push_str(&format!(
                    "{{\"event\":\"page_view\",\"path\":\"/news/{}\",\"at\":\"{}\",\"ms\":{}}}\n",
                    rng.range(1, 9999),
                    fmt_date(date(rng, 2025, 2026), DateStyle::IsoTime, rng),
                    rng.range(3, 900)
                ));
            }
            let body = format!("{pre}{}", r.body);
            (
                body,
                pre.len(),
                r.unit,
                r.markers,
                Format::Ndjson.content_type(),
            )
        }
    };
    ShapeDoc {
        shape: "donor_after_100kb_5_40",
        label: Label::Leaky,
        content_type,
        encoding: None,
        body,
        records: n,
        markers,
        records_from: from,
        unit: Some(unit),
    }
}

/// A 20-60 record list in any format, sent gzip-compressed.
fn donor_gzip(rng: &mut Rng) -> ShapeDoc {
    let format = rng.pick(&FORMATS);
    let mut doc = donor_doc(rng, "donor_gzip_20_60", format, 20, 60);
    doc.encoding = Some("gzip");
    doc
}

/// A 20-60 record list with no whitespace between records (minified JSON, XML, HTML).
fn donor_minified(rng: &mut Rng) -> ShapeDoc {
    let format = rng.pick(&[
        Format::JsonArray,
        Format::JsonObject,
        Format::XmlElements,
        Format::XmlMixed,
        Format::Rss,
        Format::Atom,
    ]);
    let n = rng.range(20, 60) as usize;
    let gs = gifts(rng, n);
    let mut st = style(rng);
    st.layout = Layout::compact();
    let r = render(rng, format, &gs, &st);
    ShapeDoc {
        shape: "donor_minified_20_60",
        label: Label::Leaky,
        content_type: format.content_type(),
        encoding: None,
        body: r.body,
        records: n,
        markers: r.markers,
        records_from: r.records_from,
        unit: Some(r.unit),
    }
}

/// Member lists: name with email, phone, or both (and a postcode), as a table, CSV or JSON.
fn member_list(rng: &mut Rng, shape: &'static str, email: bool, phone_too: bool) -> ShapeDoc {
    let n = rng.range(6, 60) as usize;
    let ps = people(rng, n);
    let mut rows: Vec<(String, String, String, String)> = Vec::new();
    for p in &ps {
        let e = if email {
            email_of(rng, p)
        } else {
            String::new()
        };
        let ph = if phone_too || !email {
            phone(rng)
        } else {
            String::new()
        };
        let pc = if email && phone_too {
            postcode(rng)
        } else {
            String::new()
        };
        rows.push((format!("{} {}", p.first, p.last), e, ph, pc));
    }
    let marker = |r: &(String, String, String, String)| -> String {
        if !r.1.is_empty() {
            r.1.clone()
        } else {
            r.2.clone()
        }
    };
    let cols: Vec<&str> = ["Name", "Email", "Phone", "Postcode"]
        .into_iter()
        .zip([true, email, phone_too || !email, email && phone_too])
        .filter(|(_, on)| *on)
        .map(|(c, _)| c)
        .collect();
    let cells = |r: &(String, String, String, String)| -> Vec<String> {
        [&r.0, &r.1, &r.2, &r.3]
            .into_iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect()
    };
    let (body, content_type, from, unit) = match rng.below(3) {
        0 => {
            let (head, foot) = html_shell(rng, "Members");
            let mut body = head;
            body.push_str(&format!(
                "<table>\n<tr><th>{}</th></tr>\n",
                cols.join("</th><th>")
            ));
            let from = body.len();
            for r in &rows {
                body.push_str(&format!(
                    "<tr><td>{}</td></tr>\n",
                    cells(r)
                        .iter()
                        .map(|c| xml_escape(c))
                        .collect::<Vec<_>>()
                        .join("</td><td>")
                ));
            }
            body.push_str("</table>\n");
            body.push_str(&foot);
            (
                body,
                "text/html; charset=utf-8",
                from,
                Unit::Opens("<tr><td>".into()),
            )
        }
        1 => {
            let mut body = cols.join(",").to_lowercase() + "\n";
            for r in &rows {
                body.push_str(
                    &cells(r)
                        .iter()
                        .map(|c| csv_cell(c))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                body.push('\n');
            }
            (body, "text/csv", 0, Unit::Lines { header: 1 })
        }
        _ => {
            let items: Vec<String> = rows
                .iter()
                .map(|r| {
                    let fields: Vec<String> = cols
                        .iter()
                        .zip(cells(r))
                        .map(|(c, v)| format!("\"{}\":{}", c.to_lowercase(), json_str(&v)))
                        .collect();
                    format!("{{{}}}", fields.join(","))
                })
                .collect();
            (
                format!("{{\"members\":[\n{}\n]}}", items.join(",\n")),
                "application/json",
                0,
                Unit::Opens("\"name\":".into()),
            )
        }
    };
    ShapeDoc {
        shape,
        label: Label::Leaky,
        content_type,
        encoding: None,
        body,
        records: n,
        markers: rows.iter().map(marker).collect(),
        records_from: from,
        unit: Some(unit),
    }
}

/// A single page holding one sensitive value in a realistic context.
fn single_value(rng: &mut Rng, shape: &'static str, value: String, context: &str) -> ShapeDoc {
    let p = people(rng, 1).remove(0);
    let (head, foot) = html_shell(rng, context);
    let mut body = head;
    let from = body.len();
    body.push_str(&format!(
        "<section class=\"account\">\n<h2>{}</h2>\n<dl>\n<dt>Name</dt><dd>{} {}</dd>\n<dt>{}</dt><dd>{}</dd>\n<dt>Updated</dt><dd>{}</dd>\n</dl>\n</section>\n",
        context,
        p.first,
        p.last,
        match shape {
            "single_card" => rng.pick(&["Card number", "Card", "Paid with", "Payment card"]),
            "single_ni_number" => rng.pick(&["National Insurance number", "NI number", "NINO"]),
            _ => rng.pick(&["IBAN", "Bank account (IBAN)", "Refund to"]),
        },
        value,
        fmt_date(date(rng, 2025, 2026), DateStyle::Long, rng)
    ));
    body.push_str(&format!("<p>{}</p>\n", filler(rng, 2)));
    body.push_str(&foot);
    ShapeDoc {
        shape,
        label: Label::Leaky,
        content_type: "text/html; charset=utf-8",
        encoding: None,
        body,
        records: 1,
        markers: vec![value],
        records_from: from,
        unit: Some(Unit::Single),
    }
}

// ---------------------------------------------------------------------------------------------
// Clean shapes.

fn clean(shape: &'static str, content_type: &'static str, body: String) -> ShapeDoc {
    ShapeDoc {
        shape,
        label: Label::Clean,
        content_type,
        encoding: None,
        body,
        records: 0,
        markers: Vec::new(),
        records_from: 0,
        unit: None,
    }
}

fn ticket(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => "Free".into(),
        1 => format!("£{}", rng.range(3, 25)),
        2 => format!("£{}.50", rng.range(3, 25)),
        3 => format!("£{} (concessions £{})", rng.range(8, 20), rng.range(3, 7)),
        4 => format!("Tickets £{}.00", rng.range(5, 40)),
        _ => format!(
            "£{} on the door, £{} in advance",
            rng.range(8, 15),
            rng.range(5, 7)
        ),
    }
}

/// Organisers: one for the whole listing, or a different one per event.
fn organisers(rng: &mut Rng, n: usize) -> Vec<String> {
    let ns = name_style(rng);
    if rng.chance(50) {
        let p = people(rng, 1).remove(0);
        vec![fmt_name(&p, ns, rng.pick(TITLES)); n]
    } else {
        people(rng, n)
            .iter()
            .map(|p| fmt_name(p, ns, rng.pick(TITLES)))
            .collect()
    }
}

fn whats_on_html(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 30) as usize;
    let orgs = organisers(rng, n);
    let ds = date_style(rng);
    let (head, foot) = html_shell(rng, "What's on");
    let mut body = head;
    let cards = rng.chance(50);
    body.push_str(if cards {
        "<div class=\"events\">\n"
    } else {
        "<ul class=\"event-list\">\n"
    });
    for org in &orgs {
        let d = date(rng, 2026, 2026);
        let when = fmt_date(d, ds, rng);
        let time = format!("{}:{}", rng.range(10, 20), rng.pick(&["00", "30"]));
        let venue = format!(
            "{} {}",
            rng.pick(&[
                "St Mary's Hall,",
                "The Old School,",
                "Community Centre,",
                "Library,"
            ]),
            rng.pick(TOWNS)
        );
        let org = xml_escape(org);
        let t = ticket(rng);
        if cards {
            body.push_str(&format!(
                "<article class=\"event\">\n  <h3>{}</h3>\n  <p class=\"when\"><time datetime=\"{}-{:02}-{:02}\">{when}</time>, {time}</p>\n  <p class=\"where\">{venue}</p>\n  <p class=\"organiser\">Organised by {org}</p>\n  <p class=\"price\">{t}</p>\n</article>\n",
                rng.pick(EVENTS), d.y, d.m, d.d
            ));
        } else {
            body.push_str(&format!(
                "<li><strong>{}</strong> – {when}, {time}, {venue}. Organiser: {org}. {t}</li>\n",
                rng.pick(EVENTS)
            ));
        }
    }
    body.push_str(if cards { "</div>\n" } else { "</ul>\n" });
    body.push_str(&foot);
    clean("clean_whats_on_html", "text/html; charset=utf-8", body)
}

fn whats_on_json(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 30) as usize;
    let orgs = organisers(rng, n);
    let l = Layout::pick(rng);
    let items: Vec<String> = orgs
        .iter()
        .map(|org| {
            let d = date(rng, 2026, 2026);
            let price = pence(rng) % 4000;
            let fields = vec![
                ("id".to_string(), rng.range(100, 9999).to_string()),
                ("title".to_string(), json_str(rng.pick(EVENTS))),
                ("organiser".to_string(), json_str(org)),
                (
                    "start".to_string(),
                    json_str(&format!(
                        "{}-{:02}-{:02}T{}:00:00+01:00",
                        d.y,
                        d.m,
                        d.d,
                        rng.range(10, 20)
                    )),
                ),
                ("venue".to_string(), json_str(rng.pick(TOWNS))),
                ("price".to_string(), json_str(&format!("£{}", plain(price)))),
            ];
            format!("{}{}", l.nl(2), json_object(&fields, l, 2))
        })
        .collect();
    let body = format!(
        "{{{}\"events\":{}[{}{}]{}}}",
        l.nl(1),
        l.sp(),
        items.join(","),
        l.nl(1),
        l.nl(0)
    );
    clean("clean_whats_on_json", "application/json", body)
}

fn whats_on_rss(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 30) as usize;
    let orgs = organisers(rng, n);
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\"><channel><title>What's on this month</title>\n");
    for org in &orgs {
        let d = date(rng, 2026, 2026);
        body.push_str(&format!(
            "<item><title>{} ({})</title><description>Hosted by {}. {}</description><pubDate>{}</pubDate></item>\n",
            rng.pick(EVENTS),
            fmt_date(d, DateStyle::Long, rng),
            xml_escape(org),
            ticket(rng),
            rfc822(date(rng, 2026, 2026), rng)
        ));
    }
    body.push_str("</channel></rss>\n");
    clean("clean_whats_on_rss", "application/rss+xml", body)
}

fn price_list(rng: &mut Rng) -> ShapeDoc {
    let (head, foot) = html_shell(rng, "Shop");
    let mut body = head;
    body.push_str(
        "<table class=\"prices\">\n<tr><th>Item</th><th>Price</th><th>Updated</th></tr>\n",
    );
    let ds = date_style(rng);
    for _ in 0..rng.range(5, 40) {
        body.push_str(&format!(
            "<tr><td>{}</td><td>£{}.{:02}</td><td>{}</td></tr>\n",
            rng.pick(PRODUCTS),
            rng.range(1, 60),
            rng.pick(&[0, 50, 95, 99]),
            fmt_date(date(rng, 2025, 2026), ds, rng)
        ));
    }
    body.push_str("</table>\n");
    body.push_str(&foot);
    clean("clean_price_list", "text/html; charset=utf-8", body)
}

fn news_one_donor(rng: &mut Rng) -> ShapeDoc {
    let p = people(rng, 1).remove(0);
    let d = date(rng, 2025, 2026);
    let (head, foot) = html_shell(rng, "News");
    let mut body = head;
    body.push_str(&format!(
        "<article>\n<h2>Appeal passes its target</h2>\n<p class=\"byline\">Posted {}</p>\n<p>{}</p>\n<p>Local businesswoman {} {} gave £{} to the appeal on {}, the largest single gift it has received.</p>\n<p>{}</p>\n</article>\n",
        fmt_date(date(rng, 2025, 2026), DateStyle::Long, rng),
        filler(rng, 3),
        p.first,
        p.last,
        commas(rng.range(10, 500) * 10_000).trim_end_matches(".00"),
        fmt_date(d, date_style(rng), rng),
        filler(rng, 4)
    ));
    body.push_str(&foot);
    clean("clean_news_one_donor", "text/html; charset=utf-8", body)
}

fn contact_page(rng: &mut Rng) -> ShapeDoc {
    let (head, foot) = html_shell(rng, "Contact us");
    let mut body = head;
    for _ in 0..rng.range(1, 4) {
        let p = people(rng, 1).remove(0);
        body.push_str(&format!(
            "<div class=\"office\"><h3>{} office</h3><p>{} {}, Office manager</p><p>Tel: {}</p><p>Email: <a href=\"mailto:{o}@example.org\">{o}@example.org</a></p><p>{} High Street, {}, {}</p></div>\n",
            rng.pick(TOWNS),
            p.first,
            p.last,
            phone(rng),
            rng.range(1, 200),
            rng.pick(TOWNS),
            postcode(rng),
            o = rng.pick(&["info", "hello", "office", "press", "volunteer"]),
        ));
    }
    body.push_str(&foot);
    clean("clean_contact_page", "text/html; charset=utf-8", body)
}

fn sports_results(rng: &mut Rng) -> ShapeDoc {
    let (head, foot) = html_shell(rng, "Results");
    let mut body = head;
    let ds = date_style(rng);
    if rng.chance(50) {
        // Race results: position, name, club, time, date.
        let n = rng.range(5, 40) as usize;
        let when = fmt_date(date(rng, 2025, 2026), ds, rng);
        body.push_str(&format!("<h2>Park 10K, {when}</h2>\n<table>\n<tr><th>Pos</th><th>Name</th><th>Club</th><th>Time</th></tr>\n"));
        for (i, p) in people(rng, n).iter().enumerate() {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{} {}</td><td>{} {}</td><td>00:{}:{:02}</td></tr>\n",
                i + 1,
                p.first,
                xml_escape(p.last),
                rng.pick(TOWNS),
                rng.pick(CLUBS),
                rng.range(32, 70),
                rng.below(60)
            ));
        }
    } else {
        // Tennis or squash ladder: players, scores, dates.
        let n = rng.range(5, 30) as usize;
        let ps = people(rng, n * 2);
        body.push_str("<ul class=\"results\">\n");
        for pair in ps.chunks(2) {
            body.push_str(&format!(
                "<li>{}: {} {} beat {} {} {}-{}, {}-{}</li>\n",
                fmt_date(date(rng, 2025, 2026), ds, rng),
                pair[0].first,
                xml_escape(pair[0].last),
                pair[1].first,
                xml_escape(pair[1].last),
                6,
                rng.range(0, 4),
                rng.range(6, 7),
                rng.range(3, 5)
            ));
        }
        body.push_str("</ul>\n");
    }
    body.push_str(&foot);
    clean("clean_sports_results", "text/html; charset=utf-8", body)
}

fn election_results(rng: &mut Rng) -> ShapeDoc {
    let (head, foot) = html_shell(rng, "Election results");
    let mut body = head;
    let wards = rng.range(1, 6);
    body.push_str(&format!(
        "<p>Declared {}. Turnout {}.{}%.</p>\n",
        fmt_date(date(rng, 2024, 2026), date_style(rng), rng),
        rng.range(20, 70),
        rng.below(10)
    ));
    for _ in 0..wards {
        body.push_str(&format!("<h2>{} ward</h2>\n<table>\n<tr><th>Candidate</th><th>Party</th><th>Votes</th><th>Share</th></tr>\n", rng.pick(TOWNS)));
        let k = rng.range(3, 8) as usize;
        for p in people(rng, k) {
            body.push_str(&format!(
                "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}.{}%</td></tr>\n",
                p.first,
                xml_escape(p.last),
                rng.pick(PARTIES),
                commas(rng.range(80, 4000) * 100).trim_end_matches(".00"),
                rng.range(1, 60),
                rng.below(10)
            ));
        }
        body.push_str("</table>\n");
    }
    body.push_str(&foot);
    clean("clean_election_results", "text/html; charset=utf-8", body)
}

fn product_items(rng: &mut Rng, n: usize) -> Vec<Vec<(String, String)>> {
    (0..n)
        .map(|_| {
            vec![
                (
                    "sku".to_string(),
                    json_str(&format!("SKU-{}", rng.digits(6))),
                ),
                ("name".to_string(), json_str(rng.pick(PRODUCTS))),
                ("price".to_string(), plain(rng.range(100, 6000))),
                ("currency".to_string(), json_str("GBP")),
                (
                    "updated_at".to_string(),
                    json_str(&fmt_date(date(rng, 2025, 2026), DateStyle::IsoTime, rng)),
                ),
                ("in_stock".to_string(), rng.chance(80).to_string()),
            ]
        })
        .collect()
}

fn json_products(rng: &mut Rng) -> ShapeDoc {
    let l = Layout::pick(rng);
    let k = rng.range(5, 40) as usize;
    let items: Vec<String> = product_items(rng, k)
        .iter()
        .map(|f| format!("{}{}", l.nl(2), json_object(f, l, 2)))
        .collect();
    let body = format!(
        "{{{}\"products\":{}[{}{}]{}}}",
        l.nl(1),
        l.sp(),
        items.join(","),
        l.nl(1),
        l.nl(0)
    );
    clean("clean_json_products", "application/json", body)
}

fn json_weather(rng: &mut Rng) -> ShapeDoc {
    let l = Layout::pick(rng);
    let d = date(rng, 2026, 2026);
    let hours: Vec<String> = (0..rng.range(12, 48))
        .map(|h| {
            let fields = vec![
                (
                    "time".to_string(),
                    json_str(&format!(
                        "{}-{:02}-{:02}T{:02}:00",
                        d.y,
                        d.m,
                        d.d + h / 24,
                        h % 24
                    )),
                ),
                (
                    "temperature_2m".to_string(),
                    format!("{}.{}", rng.range(0, 25), rng.below(10)),
                ),
                ("precipitation".to_string(), format!("0.{}", rng.below(10))),
                (
                    "wind_speed_10m".to_string(),
                    format!("{}.{}", rng.range(2, 40), rng.below(10)),
                ),
            ];
            format!("{}{}", l.nl(2), json_object(&fields, l, 2))
        })
        .collect();
    let body = format!(
        "{{{}\"latitude\":{}51.{},{}\"longitude\":{}-3.{},{}\"timezone\":{}\"Europe/London\",{}\"hourly\":{}[{}{}]{}}}",
        l.nl(1), l.sp(), rng.digits(4), l.nl(1), l.sp(), rng.digits(4), l.nl(1), l.sp(), l.nl(1), l.sp(),
        hours.join(","), l.nl(1), l.nl(0)
    );
    clean("clean_json_weather", "application/json", body)
}

fn order_numbers(rng: &mut Rng) -> ShapeDoc {
    let (head, foot) = html_shell(rng, "Your orders");
    let mut body = head;
    body.push_str("<table class=\"orders\">\n<tr><th>Order</th><th>Placed</th><th>Total</th><th>Status</th></tr>\n");
    let ds = date_style(rng);
    for _ in 0..rng.range(3, 25) {
        let n = card_digits(rng, false);
        let shown = if rng.chance(50) { group4(&n, " ") } else { n };
        body.push_str(&format!(
            "<tr><td>Order {shown}</td><td>{}</td><td>£{}</td><td>{}</td></tr>\n",
            fmt_date(date(rng, 2025, 2026), ds, rng),
            plain(rng.range(300, 20_000)),
            rng.pick(&["Dispatched", "Delivered", "Processing"])
        ));
    }
    body.push_str("</table>\n");
    body.push_str(&foot);
    clean(
        "clean_order_numbers_failing_luhn",
        "text/html; charset=utf-8",
        body,
    )
}

fn uuids_hashes(rng: &mut Rng) -> ShapeDoc {
    let mut lines = Vec::new();
    for _ in 0..rng.range(5, 40) {
        lines.push(format!(
            "{{\"id\":\"{}\",\"sha256\":\"{}\",\"commit\":\"{}\",\"md5\":\"{}\",\"size\":{},\"uploaded\":\"{}\"}}",
            uuid(rng),
            rng.hex(64),
            rng.hex(40),
            rng.hex(32),
            rng.range(1000, 9_999_999),
            fmt_date(date(rng, 2024, 2026), DateStyle::IsoTime, rng)
        ));
    }
    let body = format!("{{\"artifacts\":[\n{}\n]}}", lines.join(",\n"));
    clean("clean_uuids_hashes", "application/json", body)
}

fn paginated_products(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 25) as usize;
    let page = rng.range(1, 20);
    let items: Vec<String> = product_items(rng, n)
        .iter()
        .map(|f| json_object(f, Layout::compact(), 0))
        .collect();
    let body = format!(
        "{{\"page\":{page},\"per_page\":{n},\"total\":{},\"next\":\"https://shop.example.org/api/products?page={}\",\"previous\":null,\"results\":[{}]}}",
        page as usize * n + 37,
        page + 1,
        items.join(",")
    );
    clean("clean_paginated_products", "application/json", body)
}

fn graphql_products(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(5, 30);
    let edges: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{\"cursor\":\"Y3Vyc29yOn{i}\",\"node\":{{\"__typename\":\"Product\",\"id\":\"UHJvZHVjdDo{}\",\"title\":{},\"price\":{{\"amount\":\"{}\",\"currencyCode\":\"GBP\"}},\"updatedAt\":\"{}\"}}}}",
                rng.digits(5),
                json_str(rng.pick(PRODUCTS)),
                plain(rng.range(100, 6000)),
                fmt_date(date(rng, 2025, 2026), DateStyle::IsoTime, rng)
            )
        })
        .collect();
    let body = format!(
        "{{\"data\":{{\"products\":{{\"edges\":[{}],\"pageInfo\":{{\"hasNextPage\":false}}}}}}}}",
        edges.join(",")
    );
    clean("clean_graphql_products", "application/json", body)
}

fn next_data_products(rng: &mut Rng) -> ShapeDoc {
    let k = rng.range(5, 30) as usize;
    let items: Vec<String> = product_items(rng, k)
        .iter()
        .map(|f| json_object(f, Layout::compact(), 0))
        .collect();
    let props = format!(
        "{{\"category\":\"merch\",\"products\":[{}]}}",
        items.join(",")
    );
    let (body, _) = next_data_page(rng, "Shop", "/shop/[category]", &props);
    clean("clean_next_data_products", "text/html; charset=utf-8", body)
}

fn spreadsheet_budget(rng: &mut Rng) -> ShapeDoc {
    let lines = [
        "Venue hire",
        "Printing",
        "Leaflet delivery",
        "Website hosting",
        "Insurance",
        "Stationery",
        "Travel",
        "Refreshments",
        "Advertising",
        "Training",
    ];
    let rows: Vec<Vec<String>> = (0..rng.range(5, 30))
        .map(|_| {
            vec![
                rng.pick(&lines).to_string(),
                format!("£{}", commas(rng.range(10, 5000) * 100)),
                fmt_date(date(rng, 2025, 2026), DateStyle::Slash, rng),
                rng.pick(&["Paid", "Invoiced", "Budgeted"]).to_string(),
            ]
        })
        .collect();
    let (body, _) = spreadsheet_html(rng, &rows, &["Line", "Cost", "Due", "Status"]);
    clean("clean_spreadsheet_budget", "text/html; charset=utf-8", body)
}

fn comments_thread(rng: &mut Rng) -> ShapeDoc {
    let (head, foot) = html_shell(rng, "Comments");
    let mut body = head;
    body.push_str("<ol class=\"comments\">\n");
    let k = rng.range(5, 30) as usize;
    for p in people(rng, k) {
        body.push_str(&format!(
            "<li class=\"comment\"><p class=\"author\">{} {}</p><p class=\"when\">{}</p><p>{}</p></li>\n",
            p.first,
            xml_escape(p.last),
            fmt_date(date(rng, 2025, 2026), DateStyle::Long, rng),
            rng.pick(PROSE)
        ));
    }
    body.push_str("</ol>\n");
    body.push_str(&foot);
    clean("clean_comments_thread", "text/html; charset=utf-8", body)
}

fn fundraising_totals(rng: &mut Rng) -> ShapeDoc {
    let (head, foot) = html_shell(rng, "Appeal progress");
    let mut body = head;
    body.push_str("<table>\n<tr><th>Month</th><th>Raised</th><th>Gifts</th></tr>\n");
    for m in 0..rng.range(3, 12) {
        body.push_str(&format!(
            "<tr><td>{} 2025</td><td>£{}</td><td>{}</td></tr>\n",
            MONTHS[m as usize],
            commas(rng.range(500, 30_000) * 100),
            rng.range(10, 400)
        ));
    }
    body.push_str(&format!(
        "</table>\n<p>Last updated {}.</p>\n",
        fmt_date(date(rng, 2026, 2026), DateStyle::Long, rng)
    ));
    body.push_str(&foot);
    clean("clean_fundraising_totals", "text/html; charset=utf-8", body)
}

/// Money raised by each local branch, named by its town: two-word places,
/// each with a different sum and a date, the shape a donor list has without
/// a person in it. Added after the short-list rule was built, to measure the
/// false positive that rule was known to risk (it was not tuned on).
fn branch_totals(rng: &mut Rng) -> ShapeDoc {
    const TOWNS: &[&str] = &[
        "Milton Keynes",
        "West Bromwich",
        "Hemel Hempstead",
        "Market Harborough",
        "Bishop Auckland",
        "Newton Abbot",
        "Burgess Hill",
        "Haywards Heath",
        "Bury St Edmunds",
        "Kings Lynn",
        "Castle Douglas",
        "Port Talbot",
    ];
    let (head, foot) = html_shell(rng, "Branch fundraising");
    let mut body = head;
    body.push_str("<table>\n<tr><th>Branch</th><th>Raised</th><th>Updated</th></tr>\n");
    let first = rng.below(TOWNS.len() as u64) as usize;
    let n = rng.range(3, 8) as usize;
    let sums = Sums {
        pence: (200, 9_000, 100),
        years: (2026, 2026),
        dates: DateStyle::Long,
    };
    body.push_str(&sums.rows(rng, TOWNS, first, n));
    body.push_str("</table>\n");
    body.push_str(&foot);
    clean("clean_branch_totals", "text/html; charset=utf-8", body)
}

/// Table rows of names (of places or groups, not people) with a sum and a date each.
struct Sums {
    /// The sum in pence: `range(lo, hi) * unit`.
    pence: (u64, u64, u64),
    years: (u64, u64),
    dates: DateStyle,
}

impl Sums {
    /// `n` rows naming `names` in turn from `first`.
    fn rows(&self, rng: &mut Rng, names: &[&str], first: usize, n: usize) -> String {
        let mut out = String::new();
        for i in 0..n {
            out.push_str(&format!(
                "<tr><td>{}</td><td>£{}</td><td>{}</td></tr>\n",
                xml_escape(names[(first + i) % names.len()]),
                commas(rng.range(self.pence.0, self.pence.1) * self.pence.2),
                fmt_date(date(rng, self.years.0, self.years.1), self.dates, rng)
            ));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Shapes added after the list score was tuned, measured first as they were written (see
// `docs/leak-guard.md`, "Evaluation"): records without a wrapper element, camelCase APIs, plain
// text, short member lists, and pages that pair people or organisations with sums or contacts
// without being a leak.

/// A leaky document whose records are what `markers` name, one per record.
fn leaky_doc(
    shape: &'static str,
    content_type: &'static str,
    body: String,
    markers: Vec<String>,
    records_from: usize,
    unit: Unit,
) -> ShapeDoc {
    ShapeDoc {
        shape,
        label: Label::Leaky,
        content_type,
        encoding: None,
        body,
        records: markers.len(),
        markers,
        records_from,
        unit: Some(unit),
    }
}

/// Donors in flat markup: each record is a heading or `<dt>` followed by its amount and date in
/// sibling elements, with no element wrapping one record.
fn donor_html_flat(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(3, 19) as usize;
    let gs = gifts(rng, n);
    let ds = date_style(rng);
    let am = amount_style(rng, false);
    let (head, foot) = html_shell(rng, "Our supporters");
    let mut body = head;
    let dl = rng.chance(50);
    body.push_str(if dl {
        "<dl class=\"gifts\">\n"
    } else {
        "<section class=\"gifts\">\n"
    });
    let from = body.len();
    let mut markers = Vec::new();
    for g in &gs {
        let name = html_text(&g.name, false);
        let when = fmt_date(g.date, ds, rng);
        let sum = fmt_amount(g.pence, am, true);
        if dl {
            body.push_str(&format!(
                "<dt>{name}</dt>\n<dd>{sum}</dd>\n<dd>{when}</dd>\n"
            ));
        } else {
            body.push_str(&format!("<h3>{name}</h3>\n<p>{sum}</p>\n<p>{when}</p>\n"));
        }
        markers.push(name);
    }
    body.push_str(if dl { "</dl>\n" } else { "</section>\n" });
    body.push_str(&foot);
    let unit = Unit::Opens(if dl { "<dt>" } else { "<h3>" }.into());
    leaky_doc(
        "donor_html_flat_3_19",
        "text/html; charset=utf-8",
        body,
        markers,
        from,
        unit,
    )
}

/// A JSON API in camelCase with the amount in pence under a long key and ISO timestamps.
fn donor_json_camel(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(3, 19) as usize;
    let gs = gifts(rng, n);
    let mut markers = Vec::new();
    let items: Vec<String> = gs
        .iter()
        .map(|g| {
            markers.push(json_str(&g.name));
            format!(
                "{{\"id\":\"{}\",\"fullName\":{},\"giftAmountPence\":{},\"currency\":\"GBP\",\"receivedAt\":\"{}-{:02}-{:02}T{:02}:{:02}:00Z\"}}",
                uuid(rng),
                json_str(&g.name),
                g.pence,
                g.date.y,
                g.date.m,
                g.date.d,
                rng.below(24),
                rng.below(60)
            )
        })
        .collect();
    let body = format!(
        "{{\"data\":[{}],\"meta\":{{\"count\":{n}}}}}",
        items.join(",")
    );
    leaky_doc(
        "donor_json_camel_3_19",
        "application/json",
        body,
        markers,
        0,
        Unit::Opens("\"fullName\":".into()),
    )
}

/// A plain-text export: one donor per line, fields separated by dashes or tabs.
fn donor_text_lines(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(3, 19) as usize;
    let gs = gifts(rng, n);
    let ds = date_style(rng);
    let am = amount_style(rng, false);
    let sep = rng.pick(&[" - ", "\t", " | "]);
    let mut body = String::new();
    let mut markers = Vec::new();
    for g in &gs {
        body.push_str(&format!(
            "{}{sep}{}{sep}{}\n",
            g.name,
            fmt_amount(g.pence, am, false),
            fmt_date(g.date, ds, rng)
        ));
        markers.push(g.name.clone());
    }
    leaky_doc(
        "donor_text_lines_3_19",
        "text/plain; charset=utf-8",
        body,
        markers,
        0,
        Unit::Lines { header: 0 },
    )
}

/// Three to five members with their own email addresses, as a table or CSV.
fn member_emails_short(rng: &mut Rng) -> ShapeDoc {
    let n = rng.range(3, 5) as usize;
    let ps = people(rng, n);
    let rows: Vec<(String, String)> = ps
        .iter()
        .map(|p| (format!("{} {}", p.first, p.last), email_of(rng, p)))
        .collect();
    let markers: Vec<String> = rows.iter().map(|r| r.1.clone()).collect();
    if rng.chance(50) {
        let mut body = String::from("name,email\n");
        for (name, email) in &rows {
            body.push_str(&format!("{},{email}\n", csv_cell(name)));
        }
        leaky_doc(
            "member_emails_3_5",
            "text/csv",
            body,
            markers,
            0,
            Unit::Lines { header: 1 },
        )
    } else {
        let (head, foot) = html_shell(rng, "New members");
        let mut body = head;
        body.push_str("<table>\n<tr><th>Name</th><th>Email</th></tr>\n");
        let from = body.len();
        for (name, email) in &rows {
            body.push_str(&format!(
                "<tr><td>{}</td><td>{email}</td></tr>\n",
                xml_escape(name)
            ));
        }
        body.push_str("</table>\n");
        body.push_str(&foot);
        leaky_doc(
            "member_emails_3_5",
            "text/html; charset=utf-8",
            body,
            markers,
            from,
            Unit::Opens("<tr><td>".into()),
        )
    }
}

/// A team page: staff with their roles, work addresses at the organisation's domain and office
/// numbers.
fn team_page(rng: &mut Rng) -> ShapeDoc {
    const ROLES: &[&str] = &[
        "Campaign manager",
        "Press officer",
        "Volunteer coordinator",
        "Treasurer",
        "Head of fundraising",
        "Office manager",
        "Digital officer",
        "Chair",
    ];
    let (head, foot) = html_shell(rng, "Our team");
    let mut body = head;
    let domain = rng.pick(&[
        "valleygreens.org.uk",
        "northfield-independents.org",
        "stanneshospice.org.uk",
    ]);
    let staff = rng.range(3, 8) as usize;
    for p in people(rng, staff) {
        let local = format!("{}.{}", p.first, p.last)
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphabetic() || *c == '.')
            .collect::<String>();
        body.push_str(&format!(
            "<div class=\"person\"><h3>{} {}</h3><p>{}</p><p><a href=\"mailto:{local}@{domain}\">{local}@{domain}</a></p><p>Tel: {}</p></div>\n",
            p.first,
            xml_escape(p.last),
            rng.pick(ROLES),
            phone(rng)
        ));
    }
    body.push_str(&foot);
    clean("clean_team_page", "text/html; charset=utf-8", body)
}

/// Grants a foundation awarded: organisations written as people's names are (two or three
/// capitalised words), each with a different sum and a date.
fn grants_awarded(rng: &mut Rng) -> ShapeDoc {
    const GROUPS: &[&str] = &[
        "Hartley Youth Club",
        "Riverside Food Bank",
        "Northfield Allotment Society",
        "Bangor Repair Cafe",
        "Carlisle Choir",
        "Exeter Men's Shed",
        "Truro Toddlers",
        "Dundee Dementia Friends",
        "Lancaster Canal Trust",
        "Ipswich Refugee Welcome",
        "Swansea Sea Swimmers",
        "Durham Debating Society",
    ];
    let (head, foot) = html_shell(rng, "Grants awarded");
    let mut body = head;
    let header = rng.pick(&[
        "<tr><th>Organisation</th><th>Grant</th><th>Awarded</th></tr>",
        "<tr><th>Group</th><th>Award</th><th>Date</th></tr>",
        "<tr><th>Recipient</th><th>Sum</th><th>Decision</th></tr>",
    ]);
    body.push_str(&format!("<table>\n{header}\n"));
    let first = rng.below(GROUPS.len() as u64) as usize;
    let sums = Sums {
        pence: (5, 200, 10_000),
        years: (2025, 2026),
        dates: date_style(rng),
    };
    let n = rng.range(3, 12) as usize;
    body.push_str(&sums.rows(rng, GROUPS, first, n));
    body.push_str("</table>\n");
    body.push_str(&foot);
    clean("clean_grants_awarded", "text/html; charset=utf-8", body)
}

/// A reading list or bookshop page: authors (people), titles, prices and publication dates.
fn book_list(rng: &mut Rng) -> ShapeDoc {
    const TITLES_: &[&str] = &[
        "The Long Road Home",
        "A History of the Commons",
        "Small Acts",
        "The Organiser's Handbook",
        "Rivers of Ink",
        "Counting the Votes",
        "Tea and Sympathy",
        "The Last Hustings",
    ];
    let n = rng.range(3, 12) as usize;
    let authors = people(rng, n);
    let ds = date_style(rng);
    if rng.chance(50) {
        let (head, foot) = html_shell(rng, "Reading list");
        let mut body = head;
        body.push_str(
            "<table>\n<tr><th>Author</th><th>Title</th><th>Price</th><th>Published</th></tr>\n",
        );
        for a in &authors {
            body.push_str(&format!(
                "<tr><td>{} {}</td><td>{}</td><td>£{}.99</td><td>{}</td></tr>\n",
                a.first,
                xml_escape(a.last),
                rng.pick(TITLES_),
                rng.range(6, 25),
                fmt_date(date(rng, 2019, 2026), ds, rng)
            ));
        }
        body.push_str("</table>\n");
        body.push_str(&foot);
        clean("clean_book_list", "text/html; charset=utf-8", body)
    } else {
        let items: Vec<String> = authors
            .iter()
            .map(|a| {
                format!(
                    "{{\"title\":{},\"author\":{},\"price\":\"{}.99\",\"published\":\"{}-{:02}-{:02}\"}}",
                    json_str(rng.pick(TITLES_)),
                    json_str(&format!("{} {}", a.first, a.last)),
                    rng.range(6, 25),
                    rng.range(2019, 2026),
                    rng.range(1, 12),
                    rng.range(1, 28)
                )
            })
            .collect();
        clean(
            "clean_book_list",
            "application/json",
            format!("{{\"books\":[{}]}}", items.join(",")),
        )
    }
}

/// An order confirmation: one customer's own name and address, the items they bought with
/// prices, and the date.
fn order_confirmation(rng: &mut Rng) -> ShapeDoc {
    let p = people(rng, 1).remove(0);
    let (head, foot) = html_shell(rng, "Thank you for your order");
    let mut body = head;
    body.push_str(&format!(
        "<p>Dear {} {}, your order {} was placed on {}.</p>\n<table>\n<tr><th>Item</th><th>Qty</th><th>Price</th></tr>\n",
        p.first,
        xml_escape(p.last),
        rng.range(100_000, 999_999),
        fmt_date(date(rng, 2026, 2026), DateStyle::Long, rng)
    ));
    for _ in 0..rng.range(1, 6) {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>£{}.{:02}</td></tr>\n",
            rng.pick(PRODUCTS),
            rng.range(1, 4),
            rng.range(2, 40),
            rng.pick(&[0, 50, 99])
        ));
    }
    body.push_str(&format!(
        "</table>\n<p>Delivering to {} {}, {}.</p>\n",
        rng.range(1, 200),
        rng.pick(&["High Street", "Station Road", "Mill Lane"]),
        postcode(rng)
    ));
    body.push_str(&foot);
    clean("clean_order_confirmation", "text/html; charset=utf-8", body)
}

// ---------------------------------------------------------------------------------------------
// The shape table.

macro_rules! donor_shape {
    ($name:expr, $format:expr, $lo:expr, $hi:expr) => {
        Shape {
            name: $name,
            label: Label::Leaky,
            generate: |rng| donor_doc(rng, $name, $format, $lo, $hi),
        }
    };
}

macro_rules! donor_sizes {
    ($fmt:literal, $format:expr) => {
        [
            donor_shape!(concat!("donor_", $fmt, "_3"), $format, 3, 3),
            donor_shape!(concat!("donor_", $fmt, "_4"), $format, 4, 4),
            donor_shape!(concat!("donor_", $fmt, "_5_19"), $format, 5, 19),
            donor_shape!(concat!("donor_", $fmt, "_20_60"), $format, 20, 60),
        ]
    };
}

fn leaky(name: &'static str, generate: fn(&mut Rng) -> ShapeDoc) -> Shape {
    Shape {
        name,
        label: Label::Leaky,
        generate,
    }
}

fn clean_shape(name: &'static str, generate: fn(&mut Rng) -> ShapeDoc) -> Shape {
    Shape {
        name,
        label: Label::Clean,
        generate,
    }
}

/// Every shape, leaky first. The index of a shape in this list is part of its documents' seeds,
/// so add new shapes at the end of their group only if old figures need not be comparable.
pub fn shapes() -> Vec<Shape> {
    let mut all: Vec<Shape> = Vec::new();
    all.extend(donor_sizes!("rss", Format::Rss));
    all.extend(donor_sizes!("atom", Format::Atom));
    all.extend(donor_sizes!("json_array", Format::JsonArray));
    all.extend(donor_sizes!("json_object", Format::JsonObject));
    all.extend(donor_sizes!("csv_header", Format::CsvHeader));
    all.extend(donor_sizes!("csv_noheader", Format::CsvNoHeader));
    all.extend(donor_sizes!("html_table", Format::HtmlTable));
    all.extend(donor_sizes!("html_cards", Format::HtmlCards));
    all.extend(donor_sizes!("ndjson", Format::Ndjson));
    all.extend(donor_sizes!("xml_elements", Format::XmlElements));
    all.extend(donor_sizes!("xml_attributes", Format::XmlAttributes));
    all.extend(donor_sizes!("xml_mixed", Format::XmlMixed));
    all.push(leaky("donor_spreadsheet_html_5_60", donor_spreadsheet));
    all.push(leaky("donor_paginated_api_5_25", donor_paginated));
    all.push(leaky("donor_graphql_5_40", donor_graphql));
    all.push(leaky("donor_next_data_5_40", donor_next_data));
    all.push(leaky("donor_after_100kb_5_40", donor_after_100kb));
    all.push(leaky("donor_gzip_20_60", donor_gzip));
    all.push(leaky("donor_minified_20_60", donor_minified));
    all.push(leaky("member_emails_6_60", |rng| {
        member_list(rng, "member_emails_6_60", true, false)
    }));
    all.push(leaky("member_phones_6_60", |rng| {
        member_list(rng, "member_phones_6_60", false, false)
    }));
    all.push(leaky("member_contacts_6_60", |rng| {
        member_list(rng, "member_contacts_6_60", true, true)
    }));
    all.push(leaky("single_card", |rng| {
        let n = card_digits(rng, true);
        let v = match rng.below(3) {
            0 => group4(&n, " "),
            1 => group4(&n, "-"),
            _ => n,
        };
        single_value(rng, "single_card", v, "Payment details")
    }));
    all.push(leaky("single_ni_number", |rng| {
        let v = ni(rng);
        single_value(rng, "single_ni_number", v, "Employee record")
    }));
    all.push(leaky("single_iban", |rng| {
        let v = iban(rng);
        single_value(rng, "single_iban", v, "Refund details")
    }));
    all.push(clean_shape("clean_whats_on_html", whats_on_html));
    all.push(clean_shape("clean_whats_on_json", whats_on_json));
    all.push(clean_shape("clean_whats_on_rss", whats_on_rss));
    all.push(clean_shape("clean_price_list", price_list));
    all.push(clean_shape("clean_news_one_donor", news_one_donor));
    all.push(clean_shape("clean_contact_page", contact_page));
    all.push(clean_shape("clean_sports_results", sports_results));
    all.push(clean_shape("clean_election_results", election_results));
    all.push(clean_shape("clean_json_products", json_products));
    all.push(clean_shape("clean_json_weather", json_weather));
    all.push(clean_shape(
        "clean_order_numbers_failing_luhn",
        order_numbers,
    ));
    all.push(clean_shape("clean_uuids_hashes", uuids_hashes));
    all.push(clean_shape("clean_paginated_products", paginated_products));
    all.push(clean_shape("clean_graphql_products", graphql_products));
    all.push(clean_shape("clean_next_data_products", next_data_products));
    all.push(clean_shape("clean_spreadsheet_budget", spreadsheet_budget));
    all.push(clean_shape("clean_comments_thread", comments_thread));
    all.push(clean_shape("clean_fundraising_totals", fundraising_totals));
    all.push(clean_shape("clean_branch_totals", branch_totals));
    all.push(leaky("donor_html_flat_3_19", donor_html_flat));
    all.push(leaky("donor_json_camel_3_19", donor_json_camel));
    all.push(leaky("donor_text_lines_3_19", donor_text_lines));
    all.push(leaky("member_emails_3_5", member_emails_short));
    all.push(clean_shape("clean_team_page", team_page));
    all.push(clean_shape("clean_grants_awarded", grants_awarded));
    all.push(clean_shape("clean_book_list", book_list));
    all.push(clean_shape("clean_order_confirmation", order_confirmation));
    all
}

/// `per_shape` documents of every shape for one split.
pub fn generate(split: Split, per_shape: usize) -> Vec<ShapeDoc> {
    let mut docs = Vec::new();
    for (s, shape) in shapes().iter().enumerate() {
        for i in 0..per_shape {
            let mut rng = Rng::new(doc_seed(split, s, i));
            docs.push((shape.generate)(&mut rng));
        }
    }
    docs
}
