//! The window scan: one pass over normalised bytes that finds structure events and the places
//! where identifiers can start, then asks the recognisers about those places only.

use crate::policy::EntityKind;
use crate::recognize::{Accept, Candidate, Feature, Recognizers, Searcher, SEARCHERS};
use crate::special::{Finder, EVERY, FEATURES};
use crate::structure::{Tag, TAG_BRACE, TAG_BRACKET};

/// How far forward of its trigger any searcher looks. Triggers this far before the window's
/// uncommitted part are re-run so that a match they reach is not lost at a window edge.
pub(crate) const TRIGGER_REACH: usize = 256;

/// How far back of its trigger any searcher looks (the name search is the widest).
pub(crate) const BACK_REACH: usize = 160;

/// A structure event or a record feature, in window coordinates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Event {
    pub pos: usize,
    pub end: usize,
    pub what: EventKind,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum EventKind {
    Open(Tag, bool),
    /// A self-closing element: `<gift donor="…" amount="…"/>`.
    OpenEmpty(Tag),
    Close(Tag),
    Newline,
    Feature(Feature),
}

const C_DIGIT: u8 = 1;
const C_AT: u8 = 2;
const C_LT: u8 = 3;
const C_BRACE: u8 = 4;
const C_NEWLINE: u8 = 5;
const C_CURRENCY: u8 = 6;

/// Byte classes for the main loop; zero means "nothing can start here", which is almost every
/// byte of ordinary text. [`Finder`] skips to the bytes whose class is not zero.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = C_DIGIT;
        d += 1;
    }
    t[b'@' as usize] = C_AT;
    t[b'<' as usize] = C_LT;
    t[b'{' as usize] = C_BRACE;
    t[b'}' as usize] = C_BRACE;
    t[b'[' as usize] = C_BRACE;
    t[b']' as usize] = C_BRACE;
    t[b'\n' as usize] = C_NEWLINE;
    t[b'$' as usize] = C_CURRENCY;
    t[0xC2] = C_CURRENCY;
    t[0xE2] = C_CURRENCY;
    t
};

/// (back, forward) reach of each searcher around its trigger.
const REACH: [(usize, usize); SEARCHERS] = [
    (4, 8),            // Card
    (4, 8),            // Nhs
    (10, 8),           // Phone: `+44 (0)` before the first long run
    (16, 12),          // Iban: `GB82 WEST ` before the first long run
    (4, 4),            // Ni
    (4, 4),            // Bank
    (66, 250),         // Email: local part before the `@`, domain after
    (8, 4),            // Postcode
    (24, 8),           // Date: `Tuesday 19 November ` before the year
    (48, 16),          // Amount: a JSON key before the number
    (BACK_REACH, 120), // Name: anywhere in a record around its amount
];

const ALL_SEARCHERS: [Searcher; SEARCHERS] = [
    Searcher::Card,
    Searcher::Nhs,
    Searcher::Phone,
    Searcher::Iban,
    Searcher::Ni,
    Searcher::Bank,
    Searcher::Email,
    Searcher::Postcode,
    Searcher::Date,
    Searcher::Amount,
    Searcher::Name,
];

/// Coalesces trigger ranges per searcher so each byte is searched at most once per searcher.
struct Pending {
    ranges: [(usize, usize); SEARCHERS],
}

pub(crate) struct WindowScan<'a> {
    pub rec: &'a Recognizers,
    pub win: &'a [u8],
    /// Matches and events must start in `from..to`.
    pub from: usize,
    pub to: usize,
    /// Whether structure events (tags, brackets, newlines) are wanted; without them the scan
    /// stops only where identifiers and record features can start.
    pub structure: bool,
    /// Whether `win[0]` is the first byte of the document.
    pub doc_start: bool,
}

impl WindowScan<'_> {
    pub fn run(
        &self,
        hits: &mut Vec<Candidate>,
        events: &mut Vec<Event>,
        features: &mut Vec<Event>,
    ) {
        let win = self.win;
        let len = win.len();
        let mut pending = Pending {
            ranges: [(0, 0); SEARCHERS],
        };
        let finder = Finder::new(if self.structure { &EVERY } else { &FEATURES });
        let mut i = self.from.saturating_sub(TRIGGER_REACH);
        loop {
            i = finder.next(win, i);
            if i >= len {
                break;
            }
            let structural = self.structure && i >= self.from && i < self.to;
            match CLASS[win[i] as usize] {
                C_DIGIT => {
                    i = self.digit_run(i, &mut pending, hits, features);
                    continue;
                }
                // An address has a local-part character before the `@` and a domain character
                // after it; `@media`, `@import` and `x @ y` have not.
                C_AT if i > 0
                    && (win[i - 1].is_ascii_alphanumeric()
                        || matches!(win[i - 1], b'.' | b'_' | b'%' | b'+' | b'-'))
                    && win.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) =>
                {
                    self.trigger(&mut pending, Searcher::Email, i, i + 1, hits, features)
                }
                C_LT if structural => {
                    if let Some(ev) = tag_event(win, i) {
                        events.push(ev);
                    }
                }
                C_BRACE if structural => {
                    let what = match win[i] {
                        b'{' => EventKind::Open(TAG_BRACE, false),
                        b'[' => EventKind::Open(TAG_BRACKET, false),
                        b'}' => EventKind::Close(TAG_BRACE),
                        _ => EventKind::Close(TAG_BRACKET),
                    };
                    events.push(Event {
                        pos: i,
                        end: i + 1,
                        what,
                    });
                }
                C_NEWLINE if structural => events.push(Event {
                    pos: i,
                    end: i + 1,
                    what: EventKind::Newline,
                }),
                C_CURRENCY => {
                    let sign = match win[i] {
                        b'$' => 1,
                        0xC2 if win.get(i + 1) == Some(&0xA3) => 2,
                        0xE2 if win.get(i + 1) == Some(&0x82) && win.get(i + 2) == Some(&0xAC) => 3,
                        _ => 0,
                    };
                    if sign > 0 && win.get(i + sign).is_some_and(u8::is_ascii_digit) {
                        self.trigger(&mut pending, Searcher::Amount, i, i + sign, hits, features);
                        self.trigger(&mut pending, Searcher::Name, i, i + sign, hits, features);
                    }
                }
                _ => {}
            }
            i += 1;
        }
        for s in ALL_SEARCHERS {
            let (lo, hi) = pending.ranges[s as usize];
            if hi > lo {
                self.search(s, lo, hi, hits, features);
            }
        }
    }

    /// Reads a run of digits joined by single separators and triggers the searchers its shape
    /// allows. Returns where the run ends.
    fn digit_run(
        &self,
        start: usize,
        pending: &mut Pending,
        hits: &mut Vec<Candidate>,
        events: &mut Vec<Event>,
    ) -> usize {
        let win = self.win;
        let len = win.len();
        let mut j = start;
        let mut digits = 0;
        let mut groups = 0;
        let mut all_pairs = true;
        let mut year = false;
        let mut first_is_year = false;
        let mut last_sep = 0u8;
        let mut decimal = false;
        loop {
            let group_start = j;
            while j < len && win[j].is_ascii_digit() {
                j += 1;
            }
            let group = j - group_start;
            digits += group;
            groups += 1;
            all_pairs &= group == 2;
            // `25.00` is money; `1.95.0` is a version and `1.25rem` a length.
            if last_sep == b'.'
                && group == 2
                && win
                    .get(j)
                    .is_none_or(|b| !b.is_ascii_alphanumeric() && *b != b'.')
            {
                decimal = true;
            }
            if group == 4 && matches!(&win[group_start..group_start + 2], b"19" | b"20") {
                year = true;
                first_is_year |= groups == 1;
            }
            let joins = j + 1 < len
                && win[j + 1].is_ascii_digit()
                && match win[j] {
                    b' ' | b'-' | b'.' | b'/' => true,
                    // A comma joins thousands (`1,250.00`), not the fields of a CSV row or the
                    // items of a JavaScript array.
                    b',' => {
                        win.get(j + 1..j + 4)
                            .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
                            && win.get(j + 4).is_none_or(|b| !b.is_ascii_digit())
                    }
                    _ => false,
                };
            if digits < 40 && joins {
                last_sep = win[j];
                j += 1;
                continue;
            }
            break;
        }
        let end = j;
        let before = |k: usize| start.checked_sub(k).map(|i| win[i]);
        // Each searcher runs only where the run has its identifier's shape: most digit runs in a
        // page (lengths, counts, line numbers, times) have none.
        if (12..=24).contains(&digits) {
            self.trigger(pending, Searcher::Card, start, end, hits, events);
        }
        if digits == 10 {
            self.trigger(pending, Searcher::Nhs, start, end, hits, events);
        }
        // An IBAN's long run of digits follows its country code and check digits (`GB82`) and
        // at most a four-letter bank code, or starts with the check digits (`DE89 3704…`).
        let country_code_before = before(1).is_some_and(|b| b.is_ascii_uppercase())
            && before(2).is_some_and(|b| b.is_ascii_uppercase());
        if digits >= 9
            && (country_code_before
                || win[start.saturating_sub(12)..start].windows(4).any(|w| {
                    w[0].is_ascii_uppercase()
                        && w[1].is_ascii_uppercase()
                        && w[2].is_ascii_digit()
                        && w[3].is_ascii_digit()
                }))
        {
            self.trigger(pending, Searcher::Iban, start, end, hits, events);
        }
        // `(020) 7946 0958`: the bracket splits the run, so the part after it is shorter, as
        // short as six digits after a five-digit area code (`(01680) 303360`).
        let bracket_or_plus = || {
            win[start.saturating_sub(8)..start]
                .iter()
                .any(|b| matches!(b, b'+' | b'('))
        };
        if ((7..=13).contains(&digits) && (win[start] == b'0' || bracket_or_plus()))
            || (digits == 6 && bracket_or_plus())
        {
            self.trigger(pending, Searcher::Phone, start, end, hits, events);
        }
        if digits == 6
            && (before(1).is_some_and(|b| b.is_ascii_uppercase())
                || before(1) == Some(b' ') && before(2).is_some_and(|b| b.is_ascii_uppercase()))
        {
            self.trigger(pending, Searcher::Ni, start, end, hits, events);
        }
        if digits == 6 && groups == 3 && all_pairs {
            self.trigger(pending, Searcher::Bank, start, end, hits, events);
        }
        if digits <= 3
            && end + 2 <= len
            && win[end].is_ascii_uppercase()
            && win.get(end + 1).is_some_and(u8::is_ascii_uppercase)
            && win.get(end + 2).is_none_or(|b| !b.is_ascii_alphanumeric())
        {
            self.trigger(pending, Searcher::Postcode, start, end, hits, events);
        }
        // A JSON value after its key, `"amount_pence": 2500` or `"amount":"25.00"`. CSS
        // (`top:0`) and code (`x: 42`) have no quote before the colon.
        let json_value = {
            let mut k = start;
            while k > 0 && matches!(win[k - 1], b' ' | b'"') && start - k < 3 {
                k -= 1;
            }
            if k > 0 && win[k - 1] == b':' {
                k -= 1;
                while k > 0 && win[k - 1] == b' ' && start - k < 6 {
                    k -= 1;
                }
                k > 0 && win[k - 1] == b'"'
            } else {
                false
            }
        };
        if decimal || json_value {
            self.trigger(pending, Searcher::Amount, start, end, hits, events);
            // Names are looked for around amounts only: a record needs one, and dates alone are
            // everywhere in ordinary pages.
            self.trigger(pending, Searcher::Name, start, end, hits, events);
        }
        // A numeric date (`19/11/2019`, `2019-11-19`), or a year after a word (`19 Nov 2019`,
        // `November 19, 2019`).
        let year_after_word = first_is_year
            && before(1) == Some(b' ')
            && before(2).is_some_and(|b| b.is_ascii_alphabetic() || matches!(b, b',' | b'.'));
        if year && (groups >= 3 || year_after_word) {
            self.trigger(pending, Searcher::Date, start, end, hits, events);
        }
        end
    }

    fn trigger(
        &self,
        pending: &mut Pending,
        s: Searcher,
        start: usize,
        end: usize,
        hits: &mut Vec<Candidate>,
        events: &mut Vec<Event>,
    ) {
        let (back, fwd) = REACH[s as usize];
        let lo = start.saturating_sub(back);
        let hi = (end + fwd).min(self.win.len());
        let slot = &mut pending.ranges[s as usize];
        if slot.1 > slot.0 && lo <= slot.1 {
            slot.1 = slot.1.max(hi);
            return;
        }
        let (plo, phi) = *slot;
        *slot = (lo, hi);
        if phi > plo {
            self.search(s, plo, phi, hits, events);
        }
    }

    fn search(
        &self,
        s: Searcher,
        lo: usize,
        hi: usize,
        hits: &mut Vec<Candidate>,
        events: &mut Vec<Event>,
    ) {
        self.rec.search(
            s,
            self.win,
            lo..hi,
            Accept {
                from: self.from,
                to: self.to,
                doc_start: self.doc_start,
            },
            &mut |c| hits.push(c),
            &mut |pos, feature, text| {
                events.push(Event {
                    pos,
                    end: pos + text.len(),
                    what: EventKind::Feature(feature),
                })
            },
        );
    }
}

/// How far past an element's name its `/>` is looked for.
const TAG_REACH: usize = 256;

/// Reads an element's start or end tag at `<`, packing the name as it goes: this runs for
/// every tag of every page, so it makes one pass and no allocation.
fn tag_event(win: &[u8], i: usize) -> Option<Event> {
    let mut j = i + 1;
    let closing = win.get(j) == Some(&b'/');
    if closing {
        j += 1;
    }
    if !win.get(j).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let name_start = j;
    let mut packed: u64 = 0;
    let mut len = 0;
    while j < win.len() && j - name_start < 24 {
        let b = win[j];
        if b.is_ascii_alphanumeric() || b == b'-' {
            if len < 8 {
                packed = (packed << 8) | u64::from(b.to_ascii_lowercase());
                len += 1;
            }
        } else if b == b':' {
            // Namespaced XML (`atom:entry`) is named by its local part.
            packed = 0;
            len = 0;
        } else {
            break;
        }
        j += 1;
    }
    let tag = packed | (1 << 63);
    if !crate::structure::is_frame(tag) {
        return None;
    }
    if closing {
        return Some(Event {
            pos: i,
            end: j,
            what: EventKind::Close(tag),
        });
    }
    // A self-closing XML tag (`<gift donor="…" amount="…"/>`) is a frame for its attributes,
    // closed by the next tag. The look for its `/>` stays within the carry that follows every
    // scanned span, so it sees the same bytes however the body was chunked.
    let rest = &win[j..win.len().min(j + TAG_REACH)];
    let what = match memchr::memchr(b'>', rest) {
        Some(p) if p > 0 && rest[p - 1] == b'/' => EventKind::OpenEmpty(tag),
        _ => EventKind::Open(tag, crate::structure::closes_sibling(tag)),
    };
    Some(Event {
        pos: i,
        end: j,
        what,
    })
}

/// Priority among overlapping matches: the more specific and more severe kind wins.
pub(crate) fn priority(kind: EntityKind) -> u8 {
    match kind {
        EntityKind::Canary => 0,
        EntityKind::Record => 1,
        EntityKind::Card => 2,
        EntityKind::Iban => 3,
        EntityKind::NhsNumber => 4,
        EntityKind::NiNumber => 5,
        EntityKind::BankAccount => 6,
        EntityKind::Email => 7,
        EntityKind::Phone => 8,
        EntityKind::DateOfBirth => 9,
        EntityKind::Postcode => 10,
        _ => 11,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_finder_stops_at_exactly_the_classified_bytes() {
        for b in 0..256 {
            let class = super::CLASS[b];
            assert_eq!(class != 0, crate::special::EVERY.member[b], "byte {b:#04x}");
            let feature = matches!(class, super::C_DIGIT | super::C_AT | super::C_CURRENCY);
            assert_eq!(feature, crate::special::FEATURES.member[b], "byte {b:#04x}");
        }
    }

    /// The finder skips digits glued inside words and the digits of quiet numbers on the promise
    /// that the scan would do nothing with them: a run that starts with such a digit triggers no
    /// searcher and no feature. (A skipped digit inside a run is reached only when a scan starts
    /// in the middle of the run.)
    #[test]
    fn a_skipped_digit_starts_a_run_that_triggers_nothing() {
        let rec = crate::recognize::Recognizers::new().unwrap();
        let (mut glued_seen, mut quiet_seen) = (0, 0);
        for seed in 1..300u64 {
            let text = crate::special::tests::sample_text(seed, 400);
            let scan = super::WindowScan {
                rec: &rec,
                win: &text,
                from: 0,
                to: text.len(),
                structure: true,
                doc_start: true,
            };
            for i in 0..text.len() {
                let run_start = i == 0 || !text[i - 1].is_ascii_digit();
                let glued = crate::special::glued(&text, i);
                let quiet = crate::special::quiet(&text, i);
                if !(text[i].is_ascii_digit() && run_start && (glued || quiet)) {
                    continue;
                }
                glued_seen += usize::from(glued);
                quiet_seen += usize::from(quiet);
                let mut pending = super::Pending {
                    ranges: [(0, 0); super::SEARCHERS],
                };
                let (mut hits, mut features) = (Vec::new(), Vec::new());
                let end = scan.digit_run(i, &mut pending, &mut hits, &mut features);
                let run_end = (i..text.len())
                    .find(|&k| !text[k].is_ascii_digit())
                    .unwrap_or(text.len());
                assert_eq!(end, run_end, "seed {seed} at {i}");
                assert!(
                    pending.ranges.iter().all(|(lo, hi)| hi <= lo),
                    "seed {seed} at {i}"
                );
                assert!(hits.is_empty() && features.is_empty(), "seed {seed} at {i}");
            }
        }
        assert!(
            glued_seen > 1000 && quiet_seen > 1000,
            "too few skipped digits in the sample text: {glued_seen} glued, {quiet_seen} quiet"
        );
    }
}
