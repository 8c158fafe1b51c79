//! The recognisers: patterns compiled once, the checks that confirm them, and the masks that
//! replace them.
//!
//! This file is longer than the project's usual thousand lines on purpose: every recogniser is a
//! few lines of one `Recognizers` type's `search` and `confirm`, sharing its compiled patterns,
//! context words and digit helpers. A trial split by family widened many items to
//! `pub(super)` and added about 80 lines of imports, `impl` blocks and repeated set-up,
//! and a reader following one kind still had to read `mod.rs` for the machinery; it was not taken.
//!
//! Patterns never run over a whole body. The scanner's byte loop finds the few places where an
//! identifier can start (a digit run of the right shape, an `@`, a currency sign) and asks the
//! matching recogniser to search a small range around it. Clean text therefore costs one table
//! lookup per byte; the regexes (linear-time, from `regex-automata`) only see candidates.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex_automata::meta::Regex;
use regex_automata::Input;

/// A written-out matcher: the span of its next match in a window, from a start offset.
type SpanFinder = fn(&[u8], usize, usize) -> Option<(usize, usize)>;

use crate::policy::EntityKind;
use crate::validate;

/// The searchers a trigger can ask for. Each has its own reach around the trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Searcher {
    Card,
    Nhs,
    Phone,
    Iban,
    Ni,
    Bank,
    Email,
    Postcode,
    Date,
    Amount,
    Name,
}

pub(crate) const SEARCHERS: usize = 11;

/// Context words, each with the recognisers it supports. Matched without case, and only as
/// words: `pan` in `<span>` is no card context.
const CONTEXT_WORDS: &[(&str, u32)] = &[
    ("tel", CTX_PHONE),
    ("phone", CTX_PHONE),
    ("telephone", CTX_PHONE),
    ("mobile", CTX_PHONE),
    ("mob", CTX_PHONE),
    ("call", CTX_PHONE),
    ("fax", CTX_PHONE),
    ("whatsapp", CTX_PHONE),
    ("born", CTX_DOB),
    ("birth", CTX_DOB),
    ("ofbirth", CTX_DOB),
    ("dob", CTX_DOB),
    ("d.o.b", CTX_DOB),
    ("birthday", CTX_DOB),
    ("birthdate", CTX_DOB),
    ("card", CTX_CARD),
    ("cardnumber", CTX_CARD),
    ("visa", CTX_CARD),
    ("mastercard", CTX_CARD),
    ("amex", CTX_CARD),
    ("pan", CTX_CARD),
    ("credit", CTX_CARD),
    ("debit", CTX_CARD),
    ("payment", CTX_CARD),
    ("nhs", CTX_NHS),
    ("postcode", CTX_POSTCODE),
    ("post code", CTX_POSTCODE),
    ("postal", CTX_POSTCODE),
    ("address", CTX_POSTCODE),
    ("zip", CTX_POSTCODE),
    ("sort", CTX_SORT),
    ("sortcode", CTX_SORT),
    ("account", CTX_BANK),
    ("acct", CTX_BANK),
    ("a/c", CTX_BANK),
    ("bank", CTX_BANK),
];

pub(crate) const CTX_PHONE: u32 = 1;
pub(crate) const CTX_DOB: u32 = 2;
pub(crate) const CTX_CARD: u32 = 4;
pub(crate) const CTX_NHS: u32 = 8;
pub(crate) const CTX_POSTCODE: u32 = 16;
pub(crate) const CTX_BANK: u32 = 32;
pub(crate) const CTX_SORT: u32 = 64;

/// How far before a match context words count. A label and its value sit within one table cell,
/// one JSON key or one sentence fragment.
pub(crate) const CONTEXT_BACK: usize = 64;

/// File extensions that look like top-level domains in `logo@2x.png`.
const NOT_TLDS: &[&[u8]] = &[
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"css", b"js", b"ico", b"bmp", b"tif",
    b"tiff", b"woff", b"woff2", b"ttf", b"eot", b"map", b"json", b"xml", b"html", b"htm", b"php",
    b"avif", b"mp4", b"pdf",
];

/// A confirmed identifier in the normalised window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub start: usize,
    pub end: usize,
    pub kind: EntityKind,
}

/// Where a search's matches may start (`from..to`), and whether the window's first byte is the
/// document's first byte (a line starts there).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accept {
    pub from: usize,
    pub to: usize,
    pub doc_start: bool,
}

/// A structural feature of a record: a person's name, an amount or a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Feature {
    Name = 1,
    Amount = 2,
    Date = 4,
    /// A capitalised cell that may be a name the guard does not know.
    WeakName = 8,
    /// A word that says the record is a gift: `donor`, `donation`, `gave`, `supporter`.
    DonorCue = 16,
    /// A word that says the amount is a price: `price`, `ticket`, `sku`, `on the door`.
    PriceCue = 32,
    /// A word that gives the name a role other than giver: `organiser`, `hosted by`.
    RoleCue = 64,
    /// A word that says the records are places or things, not people: `branch`, `town`,
    /// `venue`, `product`. In a list's own header or fields without donor words it lowers the
    /// list's score; anywhere before, it stops capitalised cells the guard does not know from
    /// counting as people.
    PlaceCue = 128,
}

/// Words near a record's amount that tell a donor list from a price list or an event listing,
/// each with the feature it gives. Matched without case, as words (a camelCase key such as
/// `donorName` counts; `costume` is no `cost`).
const CUES: &[(&str, Feature)] = &[
    ("donor", Feature::DonorCue),
    ("amount", Feature::DonorCue),
    ("donors", Feature::DonorCue),
    ("donation", Feature::DonorCue),
    ("donations", Feature::DonorCue),
    ("donated", Feature::DonorCue),
    ("gift", Feature::DonorCue),
    ("gifts", Feature::DonorCue),
    ("gave", Feature::DonorCue),
    ("pledge", Feature::DonorCue),
    ("pledged", Feature::DonorCue),
    ("contribution", Feature::DonorCue),
    ("contributor", Feature::DonorCue),
    ("contributed", Feature::DonorCue),
    ("supporter", Feature::DonorCue),
    ("supporters", Feature::DonorCue),
    ("price", Feature::PriceCue),
    ("prices", Feature::PriceCue),
    ("cost", Feature::PriceCue),
    ("ticket", Feature::PriceCue),
    ("tickets", Feature::PriceCue),
    ("admission", Feature::PriceCue),
    ("fee", Feature::PriceCue),
    ("rrp", Feature::PriceCue),
    ("sku", Feature::PriceCue),
    ("in_stock", Feature::PriceCue),
    ("on the door", Feature::PriceCue),
    ("in advance", Feature::PriceCue),
    ("concessions", Feature::PriceCue),
    ("organiser", Feature::RoleCue),
    ("organizer", Feature::RoleCue),
    ("organised by", Feature::RoleCue),
    ("organized by", Feature::RoleCue),
    ("hosted by", Feature::RoleCue),
    ("host", Feature::RoleCue),
    ("speaker", Feature::RoleCue),
    ("led by", Feature::RoleCue),
    ("presented by", Feature::RoleCue),
    ("performer", Feature::RoleCue),
    ("branch", Feature::PlaceCue),
    ("branches", Feature::PlaceCue),
    ("town", Feature::PlaceCue),
    ("city", Feature::PlaceCue),
    ("region", Feature::PlaceCue),
    ("constituency", Feature::PlaceCue),
    ("ward", Feature::PlaceCue),
    ("county", Feature::PlaceCue),
    ("venue", Feature::PlaceCue),
    ("location", Feature::PlaceCue),
    ("store", Feature::PlaceCue),
    ("product", Feature::PlaceCue),
    ("organisation", Feature::PlaceCue),
    ("organization", Feature::PlaceCue),
    ("recipient", Feature::PlaceCue),
    ("grantee", Feature::PlaceCue),
];

/// Titles before a name.
const TITLE: &str = "(?:Mr|Mrs|Ms|Miss|Dr|Prof|Cllr|Rev)";

/// An initial: `A. ` (the cell `A. Jones`).
const INITIAL: &str = r"[A-Z]\. ?";

/// One to three capitalised words, as a person's name is written in a cell: `Wiremu Kaur`,
/// `Lucía McLeod`, `Stuart O'Connor`, `Haruto Baxter-Lyle`, `Hiroshi van der Berg`,
/// `Saoirse Ní Bhriain`, `A. ap Gwilym`, `Murphy, Lettice`.
fn person_pattern() -> String {
    let word = r"(?:Mc|Mac|O'|D')?[A-Z]\p{Ll}+(?:-[A-Z]\p{Ll}+)?";
    let particles = format!("(?:{PARTICLE} ){{0,2}}");
    format!(
        r"(?:{INITIAL}{particles}{word}(?: {word})?|{particles}{word}(?: {word})?, {word}|{word}(?: {particles}{word}){{0,2}})"
    )
}

/// The lower-case words that start or join a surname: `van der Berg`, `ap Gwilym`.
const PARTICLE: &str = "(?:van|von|de|der|den|du|da|di|ap|bin|al|le|la)";

/// Whether `text` starts with a surname particle and a space (`ap Gwilym, Keziah`).
fn starts_with_particle(text: &[u8]) -> bool {
    const WORDS: [&[u8]; 13] = [
        b"van", b"von", b"de", b"der", b"den", b"du", b"da", b"di", b"ap", b"bin", b"al", b"le",
        b"la",
    ];
    WORDS
        .iter()
        .any(|w| text.starts_with(w) && text.get(w.len()) == Some(&b' '))
}

pub(crate) struct Recognizers {
    card: Regex,
    nhs: Regex,
    iban: Regex,
    ni: Regex,
    sort_code: Regex,
    postcode: Regex,
    date: Regex,
    amount: Regex,
    /// Three name shapes in one automaton, so a record's surroundings are read once: a JSON name
    /// key, a name before a giving verb, a capitalised table cell or CSV field.
    name_shapes: Regex,
    names: AhoCorasick,
    cues: AhoCorasick,
    context: AhoCorasick,
    context_bits: Vec<u32>,
}

/// The UK telephone numbers [`find_phone`] finds, as a regular expression: the definition it is
/// checked against. Digits are ASCII: a number written with other digits would fail the
/// national-number check anyway.
#[cfg(test)]
const PHONE_PATTERN: &str =
    r"(?:(?:\+|00)44 ?(?:\(0\) ?)?|\(?0)[0-9]{2,4}\)?[ .-]?[0-9]{3,4}[ .-]?[0-9]{3,4}(?-u:\b)";

/// The email addresses [`find_email`] finds, as a regular expression: the definition it is
/// checked against (a property test compares the two on generated text).
#[cfg(test)]
const EMAIL_PATTERN: &str = r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?){0,4}\.[A-Za-z]{2,18}(?-u:\b)";

fn build(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("{pattern}: {e}"))
}

impl Recognizers {
    pub fn new() -> Result<Recognizers, String> {
        let names = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(crate::names::GIVEN_NAMES)
            .map_err(|e| e.to_string())?;
        let cues = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(CUES.iter().map(|(w, _)| w))
            .map_err(|e| e.to_string())?;
        let context = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(CONTEXT_WORDS.iter().map(|(w, _)| w))
            .map_err(|e| e.to_string())?;
        let person = person_pattern();
        Ok(Recognizers {
            card: build(r"(?-u:\b)(?:\d[ -]?){12,18}\d(?-u:\b)")?,
            nhs: build(r"(?-u:\b)\d{3}[ -]?\d{3}[ -]?\d{4}(?-u:\b)")?,
            iban: build(r"(?-u:\b)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?-u:\b)")?,
            ni: build(r"(?-u:\b)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?-u:\b)")?,
            sort_code: build(r"(?-u:\b)\d{2}[- ]\d{2}[- ]\d{2}(?-u:\b)")?,
            postcode: build(
                r"(?-u:\b)(?:[A-PR-UWYZ](?:\d{1,2}|[A-HK-Y]\d{1,2}|\d[A-HJKPSTUW]|[A-HK-Y]\d[ABEHMNPRVWXY]) ?\d[ABD-HJLNP-UW-Z]{2}|GIR ?0AA)(?-u:\b)",
            )?,
            date: build(
                r"(?-u:\b)(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}|(?:19|20)\d{2}-\d{2}-\d{2}|\d{1,2}(?:st|nd|rd|th)? [A-Z][a-z]{2,8}\.?,? (?:19|20)\d{2}|[A-Z][a-z]{2,8}\.? \d{1,2}(?:st|nd|rd|th)?,? (?:19|20)\d{2})(?:T\d{2}|(?-u:\b))",
            )?,
            amount: build(
                r#"(?:£|€|\$|(?:GBP|EUR|USD) ?)(?:\d{1,3}(?:,\d{3})+|\d{1,7})(?:\.\d{2})?(?-u:\b)|(?-u:\b)(?:\d{1,3}(?:,\d{3})+|\d{1,7})\.\d{2}(?-u:\b)|"[A-Za-z_]{0,20}(?i:amount|donation|total|gift|value|paid)[A-Za-z_]{0,20}" ?: ?"?\d{1,9}(?:\.\d{1,2})?"#,
            )?,
            // Pattern 0: `"first_name": "Alice"` or `"donor": "A. Smith"`. Pattern 1: "Ottoline
            // donated £25", a donor's name even when it is not in the list of common names.
            // Pattern 2: a table cell, CSV field, element or attribute holding one to three
            // capitalised words (`McLeod`, `O'Connor`, `Baxter-Lyle`, `van der Berg`, `A. Jones`,
            // `Murphy, Lettice`); on its own that is anything (a product, a town), so it counts
            // towards a donor list only with other evidence (see `structure.rs`). Pattern 3: the
            // value of a JSON key that names a person in some records and a place or a thing in
            // others (`from`, `author`): a weak name.
            name_shapes: Regex::new_many(&[
                &format!(r#""(?i:first_?name|given_?name|full_?name|donor_?name|donor|name|supporter|supporter_?name|contributor|forename|giver)" ?: ?"(?:[A-Z]\p{{Ll}}|{INITIAL}(?:[A-Z]|{PARTICLE} )|{PARTICLE} [A-Z])"#),
                &format!(r"(?-u:\b)(?:{TITLE}\.? )?{person} (?:donated|gave|pledged|contributed|has donated|has given)(?-u:\b)"),
                &format!(r#"(?:<t[dh][^<>]{{0,60}}>|(?mR:^)"?|,"?|>|="|\t|\| )(?:{TITLE}\.? )?{person}(?:</|"?,|"[ />]|\t| [-|–] | ?;|(?mR:$))"#),
                &format!(r#""(?i:from|by|author|customer|payer|sender|member|person|contact|display_?name)" ?: ?"(?:{TITLE}\.? )?{person}""#),
                &format!(r"(?i:donation|gift|pledge|contribution)s? (?:from|by) (?:{TITLE}\.? )?{person}"),
            ])
            .map_err(|e| e.to_string())?,
            names,
            cues,
            context,
            context_bits: CONTEXT_WORDS.iter().map(|(_, b)| *b).collect(),
        })
    }

    /// The context bits present in `win[start - CONTEXT_BACK .. start]`.
    pub fn context_before(&self, win: &[u8], start: usize) -> u32 {
        self.context_in(win, start.saturating_sub(CONTEXT_BACK), start)
    }

    /// The context bits of the value's own field: as [`context_before`](Self::context_before),
    /// but not reaching back past the end of the previous JSON field (`",`), table cell or
    /// element (`</`) or line. A `card_number` key must not vouch for the `ref` after it.
    pub fn field_context_before(&self, win: &[u8], start: usize) -> u32 {
        let mut lo = start.saturating_sub(CONTEXT_BACK);
        let region = &win[lo..start];
        let cut = region
            .windows(2)
            .rposition(|w| w == b"\",," || w == b",\"" || w == b"</" || w == b"},")
            .map(|p| p + 2)
            .into_iter()
            .chain(memchr::memrchr(b'\n', region).map(|p| p + 1))
            .max();
        if let Some(cut) = cut {
            lo += cut;
        }
        self.context_in(win, lo, start)
    }

    fn context_in(&self, win: &[u8], lo: usize, start: usize) -> u32 {
        let mut bits = 0;
        for m in self.context.find_iter(&win[lo..start]) {
            let (s, e) = (lo + m.start(), lo + m.end());
            let before_ok =
                s == 0 || !win[s - 1].is_ascii_lowercase() || win[s].is_ascii_uppercase();
            let after_ok = e >= win.len() || !win[e].is_ascii_lowercase();
            if before_ok && after_ok {
                bits |= self.context_bits[m.pattern().as_usize()];
            }
        }
        bits
    }

    /// Runs one searcher over `win[lo..hi]`, calling `found` for each confirmed identifier and
    /// `feature` for each record feature, both only for matches starting in `accept`.
    pub fn search(
        &self,
        searcher: Searcher,
        win: &[u8],
        range: std::ops::Range<usize>,
        accept: Accept,
        found: &mut dyn FnMut(Candidate),
        feature: &mut dyn FnMut(usize, Feature, &[u8]),
    ) {
        let (lo, hi) = (range.start, range.end);
        let input = Input::new(win).range(lo..hi);
        let ok = |s: usize| s >= accept.from && s < accept.to;
        let doc_start = accept.doc_start;
        match searcher {
            Searcher::Name => {
                for m in self.names.find_iter(&win[lo..hi]) {
                    let (s, e) = (lo + m.start(), lo + m.end());
                    // `10 Jan 2022`: a name between numbers is part of a date.
                    let dated = (s >= 2 && win[s - 1] == b' ' && win[s - 2].is_ascii_digit())
                        || (win.get(e) == Some(&b' ')
                            && win.get(e + 1).is_some_and(u8::is_ascii_digit));
                    if ok(s) && word_bounded(win, s, e) && !dated {
                        feature(s, Feature::Name, &win[s..e]);
                    }
                }
                for m in self.cues.find_iter(&win[lo..hi]) {
                    let (s, e) = (lo + m.start(), lo + m.end());
                    // A word of its own or a part of a key: `donor_name`, `donorName`, `gift-date`.
                    let before_ok = s == 0
                        || !win[s - 1].is_ascii_alphabetic()
                        || (win[s].is_ascii_uppercase() && win[s - 1].is_ascii_lowercase());
                    let after_ok = e >= win.len() || !win[e].is_ascii_lowercase();
                    if ok(s) && before_ok && after_ok {
                        feature(s, CUES[m.pattern().as_usize()].1, &win[s..e]);
                    }
                }
                for m in self.name_shapes.find_iter(input) {
                    let (ms, me) = (m.start(), m.end());
                    match m.pattern().as_usize() {
                        0 => {
                            // The value starts after the last quote of the match.
                            let s = win[ms..me]
                                .iter()
                                .rposition(|b| *b == b'"')
                                .map_or(me, |q| ms + q + 1);
                            if ok(s) {
                                let e = win[s..]
                                    .iter()
                                    .take(40)
                                    .position(|b| *b == b'"')
                                    .map_or(s + 2, |p| s + p);
                                feature(s, Feature::Name, &win[s..e]);
                            }
                        }
                        1 => {
                            if ok(ms) {
                                // The name is what comes before the verb.
                                let verb = [
                                    &b" has "[..],
                                    b" donated",
                                    b" gave",
                                    b" pledged",
                                    b" contributed",
                                ]
                                .iter()
                                .filter_map(|v| memchr::memmem::find(&win[ms..me], v))
                                .min()
                                .unwrap_or(me - ms);
                                feature(ms, Feature::Name, &win[ms..ms + verb]);
                            }
                        }
                        4 => {
                            // The name starts at the first capital after the cue word.
                            let s = win[ms + 1..me]
                                .iter()
                                .position(u8::is_ascii_uppercase)
                                .map_or(me, |p| ms + 1 + p);
                            if ok(s) && s < me {
                                feature(s, Feature::Name, &win[s..me]);
                            }
                        }
                        3 => {
                            let s = win[ms..me - 1]
                                .iter()
                                .rposition(|b| *b == b'"')
                                .map_or(me, |q| ms + q + 1);
                            if ok(s) && s < me - 1 {
                                // An initial before a surname is a person's name.
                                let shape = if win.get(s + 1) == Some(&b'.') {
                                    Feature::Name
                                } else {
                                    Feature::WeakName
                                };
                                feature(s, shape, &win[s..me - 1]);
                            }
                        }
                        _ => {
                            let text = &win[ms..me];
                            // A line's first field starts the match itself; the window's first
                            // byte is the start of a line only at the start of the document.
                            // A name starts with a capital, or with a surname particle when
                            // it is written surname first (`ap Gwilym, Keziah`).
                            let starts_name =
                                |t: &[u8]| t[0].is_ascii_uppercase() || starts_with_particle(t);
                            let line_start = starts_name(text)
                                && if ms == 0 {
                                    doc_start
                                } else {
                                    matches!(win[ms - 1], b'\n' | b'\r')
                                };
                            let Some(p) = (if line_start {
                                Some(0)
                            } else {
                                (1..text.len()).find(|&i| {
                                    starts_name(&text[i..])
                                        && (matches!(
                                            text[i - 1],
                                            b'>' | b'\n' | b',' | b'"' | b'\t'
                                        ) || (i > 1 && text[i - 2..i] == *b"| "))
                                })
                            }) else {
                                continue;
                            };
                            let s = ms + p;
                            if ok(s) {
                                // The cell ends at its delimiter; `Murphy, Lettice` is one
                                // name.
                                let e = (s..me)
                                    .find(|&i| match win[i] {
                                        b'<' | b'"' | b'\r' | b'\n' | b'\t' | b';' => true,
                                        b',' => win.get(i + 1) != Some(&b' '),
                                        // Plain-text fields: `Name - £25 - date`, `Name | £25`.
                                        b' ' => matches!(win.get(i + 1), Some(b'-' | b'|' | 0xE2)),
                                        _ => false,
                                    })
                                    .unwrap_or(me);
                                // A title before capitalised words alone in a cell, an
                                // element or an attribute (`Mrs Ngozi Okafor`) is a person's
                                // name; without one (`Tote Bag`, `Leeds`) only a weak name.
                                let titled = matches!(
                                    &win[s..e.min(s + 5)],
                                    [b'M', b'r', ..]
                                        | [b'M', b's', ..]
                                        | [b'D', b'r', ..]
                                        | [b'M', b'i', b's', b's', b' ']
                                        | [b'P', b'r', b'o', b'f', ..]
                                        | [b'C', b'l', b'l', b'r', ..]
                                        | [b'R', b'e', b'v', ..]
                                ) && win[s..e].contains(&b' ');
                                // So is an initial before a surname (`A. Jones`).
                                let initial = win.get(s + 1) == Some(&b'.');
                                let shape = if titled || initial {
                                    Feature::Name
                                } else {
                                    Feature::WeakName
                                };
                                feature(s, shape, &win[s..e]);
                            }
                        }
                    }
                }
            }
            Searcher::Amount => {
                for m in self.amount.find_iter(input) {
                    if ok(m.start()) {
                        feature(m.start(), Feature::Amount, &win[m.start()..m.end()]);
                    }
                }
            }
            Searcher::Date => {
                for m in self.date.find_iter(input) {
                    let (s, e) = (m.start(), m.end());
                    if !ok(s) {
                        continue;
                    }
                    let Some(year) = parse_date(&win[s..e]) else {
                        continue;
                    };
                    feature(s, Feature::Date, &win[s..e]);
                    if year <= 2025 && self.context_before(win, s) & CTX_DOB != 0 {
                        found(Candidate {
                            start: s,
                            end: e,
                            kind: EntityKind::DateOfBirth,
                        });
                    }
                }
            }
            Searcher::Email | Searcher::Phone => {
                let (find, kind): (SpanFinder, _) = if searcher == Searcher::Email {
                    (find_email, EntityKind::Email)
                } else {
                    (find_phone, EntityKind::Phone)
                };
                let mut at = lo;
                while let Some((s, e)) = find(win, at, hi) {
                    at = e;
                    if !ok(s) {
                        continue;
                    }
                    if let Some((s, e)) = self.confirm(kind, win, s, e) {
                        found(Candidate {
                            start: s,
                            end: e,
                            kind,
                        });
                    }
                }
            }
            _ => {
                let (regex, kind) = match searcher {
                    Searcher::Card => (&self.card, EntityKind::Card),
                    Searcher::Nhs => (&self.nhs, EntityKind::NhsNumber),
                    Searcher::Iban => (&self.iban, EntityKind::Iban),
                    Searcher::Ni => (&self.ni, EntityKind::NiNumber),
                    Searcher::Bank => (&self.sort_code, EntityKind::BankAccount),
                    _ => (&self.postcode, EntityKind::Postcode),
                };
                for m in regex.find_iter(input) {
                    if !ok(m.start()) {
                        continue;
                    }
                    if let Some((s, e)) = self.confirm(kind, win, m.start(), m.end()) {
                        found(Candidate {
                            start: s,
                            end: e,
                            kind,
                        });
                    }
                }
            }
        }
    }

    /// Applies a kind's checks to a pattern match; returns the span to report, which may be
    /// narrower (an IBAN followed by a short word) or wider (a sort code with its account).
    fn confirm(&self, kind: EntityKind, win: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
        let text = &win[s..e];
        let mut digits = [0u8; 24];
        match kind {
            EntityKind::Card => {
                let (n, seps) = compact_digits(text, &mut digits)?;
                let d = &digits[..n];
                if !standalone_number(win, s, e)
                    || !validate::card_issuer_ok(d)
                    || !validate::luhn(d)
                {
                    return None;
                }
                if seps == 0 {
                    // An unseparated 16-digit number passes prefix and Luhn about one time in
                    // sixty by chance; most IDs are not card numbers, so ask for context unless
                    // the number is grouped the way cards are printed.
                    if self.field_context_before(win, s) & CTX_CARD == 0
                        && !json_or_cell_value(win, s)
                    {
                        return None;
                    }
                } else if !card_grouping_ok(text) {
                    return None;
                }
                Some((s, e))
            }
            EntityKind::NhsNumber => {
                let (n, seps) = compact_digits(text, &mut digits)?;
                if n != 10 || !standalone_number(win, s, e) || !validate::nhs_ok(&digits[..10]) {
                    return None;
                }
                if !consistent_separators(text) {
                    return None;
                }
                let context = self.field_context_before(win, s);
                if context & CTX_NHS == 0 {
                    // Without the word "NHS" the number must look like nothing else: in a range
                    // NHS numbers are issued from (England and Wales 400-499 and 600-708 million,
                    // Northern Ireland 320-399 million; Unix timestamps and most IDs are not),
                    // and either alone in a cell, where the column header is the context, or
                    // grouped 3-3-4 with spaces the way the NHS prints it. A US phone number
                    // (`317-274-5902`, after "fax") passes mod 11 one time in eleven.
                    let prefix = u32::from(digits[0] - b'0') * 100
                        + u32::from(digits[1] - b'0') * 10
                        + u32::from(digits[2] - b'0');
                    let issued = (400..=499).contains(&prefix)
                        || (600..=708).contains(&prefix)
                        || (320..=399).contains(&prefix);
                    let shaped = cell_value(win, s, e) || (seps > 0 && text[3] == b' ');
                    if !issued || !shaped || context & CTX_PHONE != 0 {
                        return None;
                    }
                }
                Some((s, e))
            }
            EntityKind::Phone => {
                if s > 0
                    && (win[s - 1].is_ascii_alphanumeric()
                        || matches!(win[s - 1], b'/' | b'=' | b'#'))
                {
                    return None;
                }
                if !standalone_number(win, s, e) {
                    return None;
                }
                let mut national = [0u8; 24];
                let n = phone_national(text, &mut national)?;
                let nat = &national[..n];
                let ok = match nat[1] {
                    b'7' => n == 11 && nat[2] != b'0',
                    b'1' => n == 10 || n == 11,
                    b'2' | b'3' | b'8' | b'9' => n == 11,
                    _ => false,
                };
                if !ok {
                    return None;
                }
                let structured = text.starts_with(b"+")
                    || text.starts_with(b"00")
                    || text.iter().any(|b| matches!(b, b' ' | b'-' | b'.' | b'('));
                // An unformatted number needs a phone word before it, or, for a mobile, a cell
                // or field of its own: exports store mobiles as bare digits under a `phone`
                // column far above, and an 11-digit `07…` alone in a cell is rarely a reference.
                let mobile_in_cell = nat[1] == b'7' && cell_value(win, s, e);
                if !structured && !mobile_in_cell && self.context_before(win, s) & CTX_PHONE == 0 {
                    return None;
                }
                Some((s, e))
            }
            EntityKind::Iban => {
                let mut compact = [0u8; 40];
                let mut n = 0;
                let mut ends = [0usize; 40];
                for (i, &b) in text.iter().enumerate() {
                    if b != b' ' {
                        compact[n] = b;
                        ends[n] = s + i + 1;
                        n += 1;
                    }
                }
                let want = (15..=n).rev().find(|&len| {
                    validate::iban_ok(&compact[..len])
                        && (ends[len - 1] == e || win[ends[len - 1]] == b' ')
                })?;
                Some((s, ends[want - 1]))
            }
            EntityKind::NiNumber => {
                if !validate::ni_prefix_ok(&text[..2]) {
                    return None;
                }
                let spaces = text.iter().filter(|b| **b == b' ').count();
                (spaces == 0 || spaces == 4).then_some((s, e))
            }
            EntityKind::BankAccount => {
                // `AB 12 34 56 C` is a National Insurance number, not a sort code.
                let ni_shape = s >= 2 && win[s - 1] == b' ' && win[s - 2].is_ascii_uppercase()
                    || s >= 1 && win[s - 1].is_ascii_uppercase();
                if ni_shape
                    || !consistent_separators(text)
                    || self.field_context_before(win, s) & CTX_SORT == 0
                {
                    return None;
                }
                let (a, b) = find_account_number(win, s, e)?;
                Some((s.min(a), e.max(b)))
            }
            EntityKind::Email => {
                let at = text.iter().position(|b| *b == b'@')?;
                let local = &text[..at];
                if local.starts_with(b".")
                    || local.ends_with(b".")
                    || local.windows(2).any(|w| w == b"..")
                {
                    return None;
                }
                let tld_start = text.iter().rposition(|b| *b == b'.')? + 1;
                let tld = &text[tld_start..];
                if NOT_TLDS.iter().any(|t| tld.eq_ignore_ascii_case(t)) {
                    return None;
                }
                // A local part glued to the end of a word, as in `see:bob@x.org`, starts after the
                // last character an address cannot contain; the regex already guarantees that.
                Some((s, e))
            }
            EntityKind::Postcode => {
                if !text.contains(&b' ')
                    && self.context_before(win, s) & CTX_POSTCODE == 0
                    && !cell_value(win, s, e)
                {
                    return None;
                }
                Some((s, e))
            }
            _ => None,
        }
    }

    /// Classifies a whole value, as found in a CSV export of canaries or records, by the same
    /// rules as the stream. Returns the kind whose pattern covers the whole value.
    pub fn classify(&self, value: &[u8]) -> Option<EntityKind> {
        // Context-dependent kinds are judged as if their label were present: in an export the
        // label is the column header.
        let mut framed = Vec::with_capacity(value.len() + 32);
        framed.extend_from_slice(b"card nhs tel postcode: ");
        let s = framed.len();
        framed.extend_from_slice(value);
        let e = framed.len();
        framed.push(b' ');
        let order = [
            (Searcher::Email, EntityKind::Email),
            (Searcher::Iban, EntityKind::Iban),
            (Searcher::Card, EntityKind::Card),
            (Searcher::Nhs, EntityKind::NhsNumber),
            (Searcher::Ni, EntityKind::NiNumber),
            (Searcher::Phone, EntityKind::Phone),
            (Searcher::Postcode, EntityKind::Postcode),
        ];
        for (searcher, kind) in order {
            let mut hit = None;
            self.search(
                searcher,
                &framed,
                s..e,
                Accept {
                    from: s,
                    to: e,
                    doc_start: false,
                },
                &mut |c| {
                    if c.start == s && c.end == e {
                        hit = Some(c.kind);
                    }
                },
                &mut |_, _, _| {},
            );
            if hit.is_some() {
                return Some(kind);
            }
        }
        None
    }
}

/// The next email address in `win[from..hi]`, as the leftmost-first match of [`EMAIL_PATTERN`]
/// would find it: a local part of 1 to 64 of `A-Za-z0-9._%+-`, `@`, one to five labels of
/// letters, digits and inner hyphens (at most 32 long) joined by dots, a dot, a top-level domain
/// of 2 to 18 letters, and a word boundary (which may look at `win[hi]`).
///
/// Written out rather than run as a regular expression because it runs on nearly every page:
/// the contact address in a footer. The work per `@` is a few short runs of bytes, whatever the
/// text.
pub(crate) fn find_email(win: &[u8], from: usize, hi: usize) -> Option<(usize, usize)> {
    let hi = hi.min(win.len());
    let is_local =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let mut search = from;
    while search < hi {
        let at = search + memchr::memchr(b'@', &win[search..hi])?;
        search = at + 1;
        // The leftmost start: as far back as local-part bytes go, at most 64, not before `from`.
        let floor = from.max(at.saturating_sub(64));
        let mut start = at;
        while start > floor && is_local(win[start - 1]) {
            start -= 1;
        }
        if start == at {
            continue;
        }
        if let Some(end) = email_domain(win, at + 1, hi) {
            return Some((start, end));
        }
    }
    None
}

/// The end of the domain that starts at `p`, or `None`.
///
/// After a label comes either another label or the top-level domain, and both begin with a dot,
/// so a label can only end where a dot follows it: at the end of its run of letters, digits and
/// hyphens. Each label therefore has at most one way to match, the labels form one chain, and
/// the pattern's preference (as many labels as it can take, then the longest top-level domain)
/// is tried from the longest chain down.
fn email_domain(win: &[u8], p: usize, hi: usize) -> Option<usize> {
    // The dot after each label of the chain: the first label and up to four more.
    let mut dots = [0usize; 5];
    let mut labels = 0;
    let mut q = p;
    while labels < dots.len() {
        let Some(dot) = label_then_dot(win, q, hi) else {
            break;
        };
        dots[labels] = dot;
        labels += 1;
        q = dot + 1;
    }
    dots[..labels].iter().rev().find_map(|&dot| {
        // `[A-Za-z]{2,18}` then a word boundary: only the whole run of letters can end at one.
        let letters = win[dot + 1..hi]
            .iter()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        let end = dot + 1 + letters;
        let boundary = !win
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_');
        ((2..=18).contains(&letters) && boundary).then_some(end)
    })
}

/// The dot after a label starting at `p` (`[A-Za-z0-9](?:[A-Za-z0-9-]{0,30}[A-Za-z0-9])?`),
/// if the label can end where a dot follows it.
fn label_then_dot(win: &[u8], p: usize, hi: usize) -> Option<usize> {
    if p >= hi || !win[p].is_ascii_alphanumeric() {
        return None;
    }
    let run = win[p + 1..hi]
        .iter()
        .take(32)
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'-')
        .count();
    let dot = p + 1 + run;
    let fits = run <= 31 && (run == 0 || win[p + run].is_ascii_alphanumeric());
    (fits && dot < hi && win[dot] == b'.').then_some(dot)
}

/// The next UK telephone number in `win[from..hi]`, as the leftmost-first match of
/// [`PHONE_PATTERN`] would find it: `+44` or `0044` (then an optional space and `(0)`), or `0`
/// or `(0`; then groups of 2 to 4, 3 to 4 and 3 to 4 digits, with an optional `)` after the
/// first and an optional space, dot or hyphen between them; then a word boundary. Written out
/// for the same reason as [`find_email`]; each start tries at most a few hundred short paths.
pub(crate) fn find_phone(win: &[u8], from: usize, hi: usize) -> Option<(usize, usize)> {
    let hi = hi.min(win.len());
    let mut start = from;
    while start < hi {
        start += memchr::memchr3(b'+', b'0', b'(', &win[start..hi])?;
        if let Some(end) = phone_at(win, start, hi) {
            return Some((start, end));
        }
        start += 1;
    }
    None
}

/// The end of the telephone number that starts at `s`, in the pattern's order of preference.
fn phone_at(win: &[u8], s: usize, hi: usize) -> Option<usize> {
    let byte = |i: usize| (i < hi).then(|| win[i]);
    // `(?:\+|00)44 ?(?:\(0\) ?)?`: each optional part present first.
    let international = match byte(s) {
        Some(b'+') => Some(s + 1),
        Some(b'0') if byte(s + 1) == Some(b'0') => Some(s + 2),
        _ => None,
    }
    .filter(|&q| byte(q) == Some(b'4') && byte(q + 1) == Some(b'4'));
    if let Some(q) = international.map(|q| q + 2) {
        for q1 in optional(q, byte(q) == Some(b' ')) {
            let trunk =
                byte(q1) == Some(b'(') && byte(q1 + 1) == Some(b'0') && byte(q1 + 2) == Some(b')');
            if trunk {
                for q2 in optional(q1 + 3, byte(q1 + 3) == Some(b' ')) {
                    if let Some(end) = phone_groups(win, q2, hi) {
                        return Some(end);
                    }
                }
            }
            if let Some(end) = phone_groups(win, q1, hi) {
                return Some(end);
            }
        }
    }
    // `\(?0`.
    match (byte(s), byte(s + 1)) {
        (Some(b'('), Some(b'0')) => phone_groups(win, s + 2, hi),
        (Some(b'0'), _) => phone_groups(win, s + 1, hi),
        _ => None,
    }
}

/// `[0-9]{2,4}\)?[ .-]?[0-9]{3,4}[ .-]?[0-9]{3,4}` and a word boundary from `p`: the end of
/// the first way that matches, longest groups and present options first.
fn phone_groups(win: &[u8], p: usize, hi: usize) -> Option<usize> {
    let byte = |i: usize| (i < hi).then(|| win[i]);
    let digits = |i: usize| {
        win[i.min(hi)..hi]
            .iter()
            .take(4)
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let separator = |i: usize| matches!(byte(i), Some(b' ' | b'.' | b'-'));
    for n1 in (2..=digits(p)).rev() {
        let p1 = p + n1;
        for p2 in optional(p1, byte(p1) == Some(b')')) {
            for p3 in optional(p2, separator(p2)) {
                for n2 in (3..=digits(p3)).rev() {
                    let p4 = p3 + n2;
                    for p5 in optional(p4, separator(p4)) {
                        for n3 in (3..=digits(p5)).rev() {
                            let end = p5 + n3;
                            if !win
                                .get(end)
                                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                            {
                                return Some(end);
                            }
                        }
                    }
                }
            }
        }
    }
    None
}

/// The positions after an optional one-byte part at `at`: past it first when it is there.
fn optional(at: usize, present: bool) -> impl Iterator<Item = usize> {
    present
        .then_some(at + 1)
        .into_iter()
        .chain(std::iter::once(at))
}

fn word_bounded(win: &[u8], s: usize, e: usize) -> bool {
    (s == 0 || !win[s - 1].is_ascii_alphanumeric())
        && (e >= win.len() || !win[e].is_ascii_alphanumeric())
}

/// Copies the digits of `text` into `out`; returns how many, and how many separators there were.
fn compact_digits(text: &[u8], out: &mut [u8; 24]) -> Option<(usize, usize)> {
    let mut n = 0;
    let mut seps = 0;
    for &b in text {
        if b.is_ascii_digit() {
            if n == out.len() {
                return None;
            }
            out[n] = b;
            n += 1;
        } else {
            seps += 1;
        }
    }
    Some((n, seps))
}

/// A number is standalone when it is not a piece of a longer run of digits and separators: the
/// middle of an ISBN or a long reference must not be read as a card or phone number.
fn standalone_number(win: &[u8], s: usize, e: usize) -> bool {
    let before = s.checked_sub(1).map(|i| win[i]);
    let before2 = s.checked_sub(2).map(|i| win[i]);
    if before.is_some_and(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    if matches!(before, Some(b' ' | b'-' | b'.' | b'/'))
        && before2.is_some_and(|b| b.is_ascii_digit())
    {
        return false;
    }
    let after = win.get(e).copied();
    let after2 = win.get(e + 1).copied();
    if after.is_some_and(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    if matches!(after, Some(b' ' | b'-' | b'/')) && after2.is_some_and(|b| b.is_ascii_digit()) {
        return false;
    }
    if after == Some(b'.') && after2.is_some_and(|b| b.is_ascii_digit()) {
        return false;
    }
    true
}

/// Whether a value sits alone in a table cell or a CSV field: `>…<`, `,…,` or `,"…"`. An unseparated card number there is a stored value, not a reference in prose.
fn json_or_cell_value(win: &[u8], s: usize) -> bool {
    let before = s.checked_sub(1).map(|i| win[i]);
    let before2 = s.checked_sub(2).map(|i| win[i]);
    match before {
        Some(b'>' | b',' | b'\t') | None => true,
        // A quoted CSV field; a JSON string value (`"ref":"…"`) instead relies on its key for
        // context, which the context words see.
        Some(b'"') => matches!(before2, Some(b',' | b'\n') | None),
        _ => false,
    }
}

/// Whether `win[s..e]` is the whole content of a table cell, CSV field or JSON string.
fn cell_value(win: &[u8], s: usize, e: usize) -> bool {
    let before = s.checked_sub(1).map(|i| win[i]);
    let after = win.get(e).copied();
    matches!(before, Some(b'>' | b',' | b'"' | b'\t' | b'\n') | None)
        && matches!(
            after,
            Some(b'<' | b',' | b'"' | b'\t' | b'\r' | b'\n') | None
        )
}

/// All separators the same character.
fn consistent_separators(text: &[u8]) -> bool {
    let mut sep = None;
    for &b in text {
        if !b.is_ascii_digit() {
            match sep {
                None => sep = Some(b),
                Some(s) if s != b => return false,
                _ => {}
            }
        }
    }
    true
}

/// Cards are printed in groups of four (4-4-4-4, 4-4-4-4-3) or, for Amex and Diners, 4-6-5 and
/// 4-6-4.
fn card_grouping_ok(text: &[u8]) -> bool {
    if !consistent_separators(text) {
        return false;
    }
    let mut groups = [0usize; 6];
    let mut g = 0;
    for &b in text {
        if b.is_ascii_digit() {
            groups[g] += 1;
        } else {
            g += 1;
            if g == groups.len() {
                return false;
            }
        }
    }
    let groups = &groups[..=g];
    matches!(
        groups,
        [4, 4, 4, 4] | [4, 4, 4, 4, 3] | [4, 6, 5] | [4, 6, 4] | [4, 4, 4, 1] | [4, 4, 4, 4, 1..=3]
    )
}

/// The national form of a UK phone number (leading 0), from a match of the phone pattern.
fn phone_national(text: &[u8], out: &mut [u8; 24]) -> Option<usize> {
    let mut rest = text;
    let mut n = 0;
    if let Some(r) = rest
        .strip_prefix(b"+44")
        .or_else(|| rest.strip_prefix(b"0044"))
    {
        rest = r;
        out[0] = b'0';
        n = 1;
        // Skip a written trunk prefix: `+44 (0)20`.
        let trimmed: &[u8] = r.strip_prefix(b" ").unwrap_or(r);
        if let Some(r2) = trimmed.strip_prefix(b"(0)") {
            rest = r2;
        }
    }
    for &b in rest {
        if b.is_ascii_digit() {
            if n == out.len() {
                return None;
            }
            out[n] = b;
            n += 1;
        }
    }
    (n >= 10 && out[0] == b'0').then_some(n)
}

/// An eight-digit account number within reach of a sort code, before or after it.
fn find_account_number(win: &[u8], s: usize, e: usize) -> Option<(usize, usize)> {
    const REACH: usize = 48;
    let after = e..(e + REACH).min(win.len());
    let before = s.saturating_sub(REACH)..s;
    for range in [after, before] {
        let mut i = range.start;
        while i < range.end {
            if win[i].is_ascii_digit() && (i == 0 || !win[i - 1].is_ascii_alphanumeric()) {
                let run = win[i..].iter().take_while(|b| b.is_ascii_digit()).count();
                if run == 8 && win.get(i + 8).is_none_or(|b| !b.is_ascii_alphanumeric()) {
                    return Some((i, i + 8));
                }
                i += run;
            } else {
                i += 1;
            }
        }
    }
    None
}

/// Parses a match of the date pattern; returns its year when the date exists.
pub(crate) fn parse_date(text: &[u8]) -> Option<u32> {
    let text = text.strip_suffix(b"T").unwrap_or(text);
    let text = if text.len() > 3 && text[text.len() - 3] == b'T' {
        &text[..text.len() - 3]
    } else {
        text
    };
    let mut nums = [0u32; 3];
    let mut lens = [0usize; 3];
    let mut n = 0;
    let mut month_word: Option<u32> = None;
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b.is_ascii_digit() {
            let start = i;
            let mut v = 0u32;
            while i < text.len() && text[i].is_ascii_digit() {
                v = v * 10 + u32::from(text[i] - b'0');
                i += 1;
            }
            if n == 3 {
                return None;
            }
            nums[n] = v;
            lens[n] = i - start;
            n += 1;
            // Skip ordinal suffixes.
            while i < text.len() && text[i].is_ascii_lowercase() {
                i += 1;
            }
        } else if b.is_ascii_uppercase() {
            let start = i;
            while i < text.len() && text[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word = &text[start..i];
            let m = validate::month_number(word)?;
            if !is_month_word(word) {
                return None;
            }
            month_word = Some(m);
        } else {
            i += 1;
        }
    }
    let (day, month, year) = match (month_word, n) {
        (Some(m), 2) => {
            let (d, y) = if lens[0] == 4 {
                (nums[1], nums[0])
            } else {
                (nums[0], nums[1])
            };
            (d, m, y)
        }
        (None, 3) if lens[0] == 4 => (nums[2], nums[1], nums[0]),
        (None, 3) => (nums[0], nums[1], nums[2]),
        _ => return None,
    };
    validate::date_ok(day, month, year).then_some(year)
}

/// A month written as its three-letter abbreviation, `Sept`, or in full.
fn is_month_word(word: &[u8]) -> bool {
    const FULL: [&[u8]; 12] = [
        b"january",
        b"february",
        b"march",
        b"april",
        b"may",
        b"june",
        b"july",
        b"august",
        b"september",
        b"october",
        b"november",
        b"december",
    ];
    if word.len() == 3 || word.eq_ignore_ascii_case(b"sept") {
        return true;
    }
    FULL.iter().any(|m| m.eq_ignore_ascii_case(word))
}

/// Writes the mask that replaces a redacted match: its kind and, for cards and accounts, the
/// last four digits, as payment pages show them.
pub(crate) fn write_mask(kind: EntityKind, text: &[u8], out: &mut Vec<u8>) {
    let last4 = |out: &mut Vec<u8>| {
        let mut tail = [0u8; 4];
        let mut n = 0;
        for &b in text.iter().rev() {
            if b.is_ascii_digit() {
                tail[3 - n] = b;
                n += 1;
                if n == 4 {
                    break;
                }
            }
        }
        out.extend_from_slice(&tail[4 - n..]);
    };
    match kind {
        EntityKind::Card => {
            out.extend_from_slice(b"[card ending ");
            last4(out);
            out.push(b']');
        }
        EntityKind::Iban => {
            out.extend_from_slice(b"[IBAN ending ");
            last4(out);
            out.push(b']');
        }
        EntityKind::BankAccount => {
            out.extend_from_slice(b"[account ending ");
            last4(out);
            out.push(b']');
        }
        EntityKind::NiNumber => out.extend_from_slice(b"[NI number]"),
        EntityKind::NhsNumber => out.extend_from_slice(b"[NHS number]"),
        EntityKind::Email => out.extend_from_slice(b"[email]"),
        EntityKind::Phone => out.extend_from_slice(b"[phone]"),
        EntityKind::Postcode => out.extend_from_slice(b"[postcode]"),
        EntityKind::DateOfBirth => out.extend_from_slice(b"[date of birth]"),
        _ => out.extend_from_slice(b"****"),
    }
}

/// A sample for a finding: enough to recognise the kind and tell findings apart, never the value.
///
/// Written byte by byte into one small string: a page with a contact address in its footer asks
/// for a sample on every response, so this sits on the gateway's per-response path.
pub(crate) fn sample(kind: EntityKind, text: &[u8]) -> String {
    let mut out = String::with_capacity(24);
    let keep_last = |n: usize, out: &mut String| {
        // Multi-byte characters are never ASCII alphanumerics, so filtering bytes keeps exactly
        // the characters a filter over the decoded text would.
        let alphanumeric = || text.iter().copied().filter(u8::is_ascii_alphanumeric);
        let shown = alphanumeric().count().saturating_sub(n);
        for (i, b) in alphanumeric().enumerate() {
            out.push(if i < shown { '*' } else { char::from(b) });
        }
    };
    match kind {
        EntityKind::Email => {
            let at = memchr::memchr(b'@', text);
            let (local, domain) = match at {
                Some(at) => (&text[..at], &text[at + 1..]),
                None => (text, &text[text.len()..]),
            };
            let tld = match memchr::memrchr(b'.', domain) {
                Some(dot) => &domain[dot + 1..],
                None => domain,
            };
            out.push(first_char(local));
            out.push_str("***@");
            out.push(first_char(domain));
            out.push_str("***.");
            out.push_str(&String::from_utf8_lossy(tld));
        }
        EntityKind::Card | EntityKind::Iban | EntityKind::BankAccount => keep_last(4, &mut out),
        EntityKind::Phone | EntityKind::NhsNumber => keep_last(3, &mut out),
        EntityKind::Postcode => match memchr::memchr(b' ', text) {
            Some(space) => {
                out.push_str(&String::from_utf8_lossy(&text[..space]));
                out.push_str(" ***");
            }
            None => out.push_str("*******"),
        },
        EntityKind::DateOfBirth => {
            let digits = text.iter().filter(|b| b.is_ascii_digit()).count();
            out.push_str("**/**/");
            if digits >= 4 {
                text.iter()
                    .filter(|b| b.is_ascii_digit())
                    .skip(digits - 4)
                    .for_each(|b| out.push(char::from(*b)));
            }
        }
        EntityKind::NiNumber => {
            out.extend(String::from_utf8_lossy(text).chars().take(2));
            out.push_str("******?");
        }
        _ => {
            out.push(first_char(text));
            out.push_str("***");
        }
    }
    out
}

/// The first character of `text` read as UTF-8 (a replacement character if it is not), or `*`
/// when there is none.
fn first_char(text: &[u8]) -> char {
    match text.first() {
        None => '*',
        Some(b) if b.is_ascii() => char::from(*b),
        Some(_) => String::from_utf8_lossy(&text[..text.len().min(4)])
            .chars()
            .next()
            .unwrap_or('*'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(kind: Searcher, text: &str) -> Vec<(EntityKind, String)> {
        let r = Recognizers::new().unwrap();
        let win = text.as_bytes();
        let mut out = Vec::new();
        r.search(
            kind,
            win,
            0..win.len(),
            Accept {
                from: 0,
                to: win.len(),
                doc_start: true,
            },
            &mut |c| {
                out.push((c.kind, text[c.start..c.end].to_string()));
            },
            &mut |_, _, _| {},
        );
        out
    }

    #[test]
    fn cards_need_issuer_luhn_and_grouping() {
        assert_eq!(find(Searcher::Card, "pay 4242 4242 4242 4242 now").len(), 1);
        assert_eq!(find(Searcher::Card, "pay 4242 4242 4242 4241 now").len(), 0);
        assert_eq!(
            find(Searcher::Card, "id 4242424242424242 x").len(),
            0,
            "bare digits in prose need context"
        );
        assert_eq!(find(Searcher::Card, "card: 4242424242424242").len(), 1);
        assert_eq!(
            find(Searcher::Card, "isbn 978 4242 4242 4242 4242").len(),
            0
        );
        assert_eq!(find(Searcher::Card, "amex 3782 822463 10005").len(), 1);
    }

    #[test]
    fn phones_take_uk_shapes() {
        assert_eq!(find(Searcher::Phone, "call 020 7946 0958.").len(), 1);
        assert_eq!(find(Searcher::Phone, "ring +44 (0)20 7946 0958").len(), 1);
        assert_eq!(find(Searcher::Phone, "ring +44 7700 900123").len(), 1);
        assert_eq!(find(Searcher::Phone, "order 07700900123").len(), 0);
        assert_eq!(find(Searcher::Phone, "mobile: 07700900123").len(), 1);
        assert_eq!(find(Searcher::Phone, "ref 0400 123 4567").len(), 0);
    }

    #[test]
    fn dates_parse() {
        assert_eq!(parse_date(b"19 Nov 2019"), Some(2019));
        assert_eq!(parse_date(b"2019-11-19T10"), Some(2019));
        assert_eq!(parse_date(b"31/02/2019"), None);
        assert_eq!(parse_date(b"November 19th, 2019"), Some(2019));
        assert_eq!(parse_date(b"19 Widget 2019"), None);
    }

    /// Compares a written-out matcher with its pattern on 20,000 texts strung together from
    /// `pieces`, each searched in a random span: the same matches, in the same places, and more
    /// than a thousand of them in all.
    fn matcher_agrees_with_pattern(
        find: SpanFinder,
        regex: &Regex,
        pieces: &[&[u8]],
        seed: u64,
        max_pieces: usize,
        what: &str,
    ) {
        let mut state = seed;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut compared = 0;
        for _ in 0..20_000 {
            let mut text = Vec::new();
            for _ in 0..1 + next(max_pieces) {
                text.extend_from_slice(pieces[next(pieces.len())]);
            }
            let lo = next(text.len() / 2 + 1);
            let hi = text.len() - next(text.len() / 4 + 1);
            let want: Vec<(usize, usize)> = if lo <= hi {
                regex
                    .find_iter(Input::new(&text).range(lo..hi))
                    .map(|m| (m.start(), m.end()))
                    .collect()
            } else {
                Vec::new()
            };
            let mut got = Vec::new();
            let mut at = lo;
            if lo <= hi {
                while let Some((s, e)) = find(&text, at, hi) {
                    got.push((s, e));
                    at = e;
                }
            }
            compared += want.len();
            assert_eq!(
                got,
                want,
                "{:?} in {lo}..{hi}",
                String::from_utf8_lossy(&text)
            );
        }
        assert!(
            compared > 1000,
            "too few {what} in the generated text: {compared}"
        );
    }

    /// The written-out email matcher finds exactly what its pattern finds, on text made of the
    /// characters that matter to it, including long labels, runs of dots and hyphens, and spans
    /// that cut an address off.
    #[test]
    fn the_email_matcher_is_its_pattern() {
        let regex = Regex::new(EMAIL_PATTERN).unwrap();
        let pieces: &[&[u8]] = &[
            b"a",
            b"b",
            b"Z",
            b"9",
            b"-",
            b".",
            b"@",
            b"_",
            b"+",
            b" ",
            b"co",
            b"uk",
            b"ex",
            b"example",
            b"press",
            b"-x-",
            b"..",
            b"@@",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            b"x.y.z.w.v.u",
            b"<",
            b"\xc3\xa9",
            b"abcdefghijklmnopqrst",
            b".com",
            b".org",
            b"@example",
            b"@x",
            b"a@b.co",
            b".co.uk",
            b"-mail",
            b"@a-b.c-d",
        ];
        matcher_agrees_with_pattern(
            find_email,
            &regex,
            pieces,
            0x9E37_79B9_7F4A_7C15,
            40,
            "addresses",
        );
    }

    /// The written-out telephone matcher finds exactly what its pattern finds.
    #[test]
    fn the_phone_matcher_is_its_pattern() {
        let regex = Regex::new(PHONE_PATTERN).unwrap();
        let pieces: &[&[u8]] = &[
            b"0",
            b"1",
            b"7",
            b"44",
            b"+",
            b"00",
            b"(",
            b")",
            b"(0)",
            b" ",
            b".",
            b"-",
            b"a",
            b"_",
            b"020",
            b"7946",
            b"0000",
            b"+44",
            b"0044",
            b"07700",
            b"900",
            b"123456",
            b"\xd9\xa1",
        ];
        matcher_agrees_with_pattern(
            find_phone,
            &regex,
            pieces,
            0x2545_F491_4F6C_DD1D,
            30,
            "numbers",
        );
    }

    #[test]
    fn samples_show_the_kind_and_never_the_value() {
        let cases: &[(EntityKind, &[u8], &str)] = &[
            (
                EntityKind::Email,
                b"press.office@fairshare.example",
                "p***@f***.example",
            ),
            (EntityKind::Email, b"@", "****@****."),
            (EntityKind::Card, b"4111 1111 1111 1111", "************1111"),
            (EntityKind::Phone, b"020 7946 0000", "********000"),
            (EntityKind::NhsNumber, b"943 476 5919", "*******919"),
            (EntityKind::Postcode, b"SW1A 1AA", "SW1A ***"),
            (EntityKind::Postcode, b"SW1A1AA", "*******"),
            (EntityKind::DateOfBirth, b"19 November 1987", "**/**/1987"),
            (EntityKind::DateOfBirth, b"19/11/87", "**/**/1187"),
            (EntityKind::DateOfBirth, b"19 Nov", "**/**/"),
            (EntityKind::NiNumber, b"QQ 12 34 56 C", "QQ******?"),
            (EntityKind::Canary, "\u{c9}lodie".as_bytes(), "\u{c9}***"),
            (EntityKind::Canary, b"\xff\xfe", "\u{fffd}***"),
            (EntityKind::Canary, b"", "****"),
        ];
        for (kind, text, want) in cases {
            assert_eq!(
                sample(*kind, text),
                *want,
                "{kind:?} {:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn iban_trims_a_trailing_word() {
        assert_eq!(
            find(Searcher::Iban, "IBAN GB82 WEST 1234 5698 7654 32 GB please"),
            vec![(EntityKind::Iban, "GB82 WEST 1234 5698 7654 32".to_string())]
        );
    }
}
