//! The donor-list detector: repeated records that pair a person's name with an amount and a date.
//!
//! Records are found from the document's own structure, whatever the format: every element
//! (`<tr>`, `<item>`, `<li>`, `<div>`…), every JSON object and array, and every line at the top
//! level (CSV, plain text) is a frame on a small stack. Features seen inside a frame belong to it;
//! when the frame closes it either holds all three (a record) or passes what it has to its parent.
//! The smallest element that holds a name, an amount and a date is therefore the record, whether
//! that is a table row, a feed item or a JSON object, without a parser for any of those formats.
//!
//! Only block-level and record-like elements are frames ([`is_frame`]): inline markup (`<a>`,
//! `<span>`, `<strong>`) and feed fields (`<title>`, `<pubDate>`) would only pass their features
//! straight up to the element around them, and skipping them halves the work on a typical page.

use crate::recognize::Feature;

/// How deep the frame stack goes. Documents nest deeper than this only in page chrome, never
/// around the records themselves; deeper frames are counted and ignored.
const MAX_DEPTH: usize = 32;

/// How many distinct records are remembered to tell repeats from new ones. The threshold that
/// matters is in the single digits; past this many the list is certain anyway.
const MAX_DISTINCT: usize = 1024;

const ALL: u8 = Feature::Name as u8 | Feature::Amount as u8 | Feature::Date as u8;
const WEAK: u8 = Feature::WeakName as u8 | Feature::Amount as u8 | Feature::Date as u8;
/// The parts of a record, as against the cue words around it.
const PARTS: u8 = ALL | WEAK;
const CUES: u8 = Feature::DonorCue as u8
    | Feature::PriceCue as u8
    | Feature::RoleCue as u8
    | Feature::PlaceCue as u8;

/// Records with a name the guard knows needed in a list before its records with only a
/// capitalised cell count: two known names among the rows of one table, feed or array make the
/// other rows people too. The count is per list, so a shop table next to two thank-yous stays a
/// shop table.
const STRONG_BEFORE_WEAK: u32 = 2;

/// A list is judged when it first holds this many records: three records that each tie a person
/// to an amount and a date are a list, whatever the container.
pub(crate) const LIST_RECORDS: u32 = 3;

/// The score a list needs to be a donor list (see [`ListScore`]).
pub(crate) const LIST_THRESHOLD: i32 = 3;

/// Why a list was judged a donor list, or not: the parts of its score, for the event.
///
/// `score = records (3 when judged) + 2 if donor words (a `donor`/`gift`/`donation` field or
/// column, `gave`, `supporters`) - 3 if price words (`price`, `ticket`, `sku`, `on the door`) in
/// half its records or its header - 3 if role words (`organiser`, `hosted by`) in half its records
/// or its header - 3 if place words (`branch`, `town`, `venue`) in its header or fields and no
/// donor words there - 3 if every record has the same name (one organiser repeated)`; the list is
/// a donor list when `score >= LIST_THRESHOLD` (3). A plain list of three names with amounts and
/// dates passes; a price list, a product feed, a What's-on listing with one organiser, or a table
/// of money raised per branch whose towns hold given names (`Castle Douglas`, `Kings Lynn`) does
/// not. A donor export with a town column says `amount` or `donor` in the same header, and stays
/// a donor list.
///
/// Which records count: those with a name the guard knows (a given name, a title, an initial, a
/// JSON name key, a giving verb), and those whose name is only a capitalised cell once the list
/// has two of the former or donor words, or, when the list closes unjudged, when every such cell
/// is written as a person's name (two or three words, an initial), none repeats and the amounts
/// are not all one price ([`List::close`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ListScore {
    pub records: u32,
    pub donor: bool,
    pub price: bool,
    pub role: bool,
    pub place: bool,
    pub one_name: bool,
}

impl ListScore {
    pub fn score(&self) -> i32 {
        self.records as i32 + 2 * i32::from(self.donor)
            - 3 * i32::from(self.price)
            - 3 * i32::from(self.role)
            - 3 * i32::from(self.place)
            - 3 * i32::from(self.one_name)
    }

    pub fn is_donor_list(&self) -> bool {
        self.score() >= LIST_THRESHOLD
    }

    pub fn explain(&self) -> String {
        let mut parts = format!("{} records +{}", self.records, self.records);
        if self.donor {
            parts.push_str(", donor words +2");
        }
        if self.price {
            parts.push_str(", price words -3");
        }
        if self.role {
            parts.push_str(", organiser words -3");
        }
        if self.place {
            parts.push_str(", place words -3");
        }
        if self.one_name {
            parts.push_str(", one name repeated -3");
        }
        format!(
            "list score {} ({parts}), threshold {LIST_THRESHOLD}",
            self.score()
        )
    }
}

const UNDECIDED: u8 = 0;
const DONORS: u8 = 1;
const NOT_DONORS: u8 = 2;

/// The records of one list (an element, a JSON array or object, or the document itself) and
/// what is known about them until the list is judged.
#[derive(Debug, Clone, Copy, Default)]
struct List {
    strong: u32,
    weak: u32,
    verdict: u8,
    /// Records with donor, price and role words, counted until the list is judged.
    donor: u32,
    price: u32,
    role: u32,
    first_name: u64,
    same_name: u32,
    /// Records whose only name is a capitalised cell written as a person's name is (two or
    /// three words, an initial and a surname), the first few of their names, and whether one of
    /// those names came back (a shop's products do; a list of people's gifts does not).
    person: u32,
    people: [u64; PEOPLE],
    repeated: bool,
    /// The first record's amount, and whether another record's differs from it.
    first_amount: u64,
    amounts_vary: bool,
    /// The list closed as a list of people's gifts (see [`List::close`]).
    vouched: bool,
}

/// How many capitalised-cell names a list remembers to tell repeats.
const PEOPLE: usize = 8;

impl List {
    /// How many records a list contributes: its records with known names, and its other records
    /// once it has enough known ones or says it is about gifts (a `donor` field or column).
    fn counted(&self) -> u32 {
        if self.strong >= STRONG_BEFORE_WEAK || self.donor > 0 || self.vouched {
            self.strong + self.weak
        } else {
            self.strong
        }
    }

    fn contribution(&self) -> u32 {
        if self.verdict == DONORS {
            self.counted()
        } else {
            0
        }
    }

    fn add(&mut self, strong: bool, name: u64, person: bool, amount: u64, cues: u8) {
        if strong {
            self.strong += 1;
        } else {
            self.weak += 1;
            self.person += u32::from(person);
            self.remember(self.weak - 1, name);
        }
        if self.strong + self.weak == 1 {
            self.first_amount = amount;
        } else if amount != self.first_amount {
            self.amounts_vary = true;
        }
        if self.verdict != UNDECIDED {
            return;
        }
        self.donor += u32::from(cues & Feature::DonorCue as u8 != 0);
        self.price += u32::from(cues & Feature::PriceCue as u8 != 0);
        self.role += u32::from(cues & Feature::RoleCue as u8 != 0);
        if self.strong + self.weak == 1 {
            self.first_name = name;
            self.same_name = 1;
        } else if name == self.first_name {
            self.same_name += 1;
        }
    }

    /// Notes a capitalised-cell name, and whether it was seen before in this list.
    fn remember(&mut self, before: u32, name: u64) {
        let known = (before as usize).min(PEOPLE);
        if self.people[..known].contains(&name) {
            self.repeated = true;
        } else if known < PEOPLE {
            self.people[known] = name;
        }
    }

    /// Judges a list that closes unjudged: its capitalised-cell records count as people's when
    /// every one of them is written as a person's name, no name comes back and the amounts are
    /// not all one price. A shop table's products repeat or are one word (`Rosette`), a ticket
    /// grid repeats its price; three different people giving different sums do neither.
    fn close(&mut self, own: u8, seen: u8) -> Option<ListScore> {
        if self.verdict != UNDECIDED || self.strong + self.weak < LIST_RECORDS {
            return None;
        }
        // Town and branch names are written as people's names are: a list about places or
        // things (`Branch`, `Venue` in its header or anywhere before) vouches for none.
        self.vouched = self.weak > 0
            && self.person == self.weak
            && !self.repeated
            && self.amounts_vary
            && (own | seen) & Feature::PlaceCue as u8 == 0;
        self.judge_last(own, seen, true)
    }

    fn merge(&mut self, other: &List) {
        if self.strong + self.weak == 0 {
            self.first_name = other.first_name;
            self.same_name = 0;
            self.first_amount = other.first_amount;
        } else if other.strong + other.weak > 0 && other.first_amount != self.first_amount {
            self.amounts_vary = true;
        }
        self.amounts_vary |= other.amounts_vary;
        if other.first_name == self.first_name {
            self.same_name += other.same_name;
        }
        // Capitalised cells count only in the list that vouched for them.
        self.strong += other.strong;
        if other.counted() > other.strong {
            for (i, &name) in other.people[..(other.weak as usize).min(PEOPLE)]
                .iter()
                .enumerate()
            {
                self.remember(self.weak + i as u32, name);
            }
            self.repeated |= other.repeated;
            self.person += other.person;
            self.weak += other.weak;
        }
        self.donor += other.donor;
        self.price += other.price;
        self.role += other.role;
    }

    /// Judges the list once it holds enough records; `own` are the cue words of the list itself
    /// (its header row, its title) and `seen` every cue word met so far.
    fn judge(&mut self, own: u8, seen: u8) -> Option<ListScore> {
        self.judge_last(own, seen, false)
    }

    /// [`List::judge`]; `last` when the list has closed and this is its final word. Until then
    /// a list refused only because every record so far has the same name stays open to
    /// judgement at its next record: the first three donors of a list sorted by name are often
    /// three Davids, and one organiser repeated stays one name to the end.
    fn judge_last(&mut self, own: u8, seen: u8, last: bool) -> Option<ListScore> {
        if self.verdict != UNDECIDED {
            return None;
        }
        if (own | seen) & Feature::DonorCue as u8 != 0 && self.donor == 0 {
            // Counts as one record with donor words: enough to vouch for the capitalised cells.
            self.donor = 1;
        }
        if self.counted() < LIST_RECORDS {
            return None;
        }
        let n = self.strong + self.weak;
        let score = ListScore {
            records: LIST_RECORDS,
            donor: self.donor > 0,
            price: 2 * self.price >= n || own & Feature::PriceCue as u8 != 0,
            role: 2 * self.role >= n || own & Feature::RoleCue as u8 != 0,
            place: own & Feature::PlaceCue as u8 != 0 && own & Feature::DonorCue as u8 == 0,
            one_name: self.same_name == n,
        };
        if !last && score.one_name && !score.is_donor_list() {
            let without = ListScore {
                one_name: false,
                ..score
            };
            if without.is_donor_list() {
                return None;
            }
        }
        self.verdict = if score.is_donor_list() {
            DONORS
        } else {
            NOT_DONORS
        };
        Some(score)
    }
}

/// A frame's tag: up to eight lowercase bytes of the element name packed in a `u64`, or one of
/// the JSON brackets.
pub(crate) type Tag = u64;
pub(crate) const TAG_BRACE: Tag = 1;
pub(crate) const TAG_BRACKET: Tag = 2;

/// What a frame has gathered of a record: the name, amount and date it holds, as hashes to tell
/// records apart, and the masked sample's pieces.
#[derive(Debug, Clone, Copy, Default)]
struct Parts {
    name: u64,
    amount: u64,
    date: u64,
    weak: u64,
    /// The capitalised cell is written as a person's name: two or three words, or an initial.
    person: bool,
    initial: u8,
    amount_text: [u8; 12],
    amount_len: u8,
}

#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    features: u8,
    parts: Parts,
    /// The records among this frame's children.
    list: List,
    /// Flat markup (see [`Structure::split_flat_record`]): the last whole record gathered (its
    /// feature bits and parts), held until the frame shows it holds more than one.
    held_features: u8,
    held: Parts,
    /// Records this frame has counted from flat markup.
    flat: u32,
}

impl Frame {
    /// A frame holding only the record `parts` with these features and cue words.
    fn record(features: u8, parts: Parts) -> Frame {
        Frame {
            features,
            parts,
            ..Frame::default()
        }
    }
}

impl Frame {
    fn absorb(&mut self, child: &Frame) {
        if self.features & Feature::Name as u8 == 0 && child.features & Feature::Name as u8 != 0 {
            self.parts.name = child.parts.name;
            self.parts.initial = child.parts.initial;
        }
        if self.features & Feature::Amount as u8 == 0 && child.features & Feature::Amount as u8 != 0
        {
            self.parts.amount = child.parts.amount;
            self.parts.amount_text = child.parts.amount_text;
            self.parts.amount_len = child.parts.amount_len;
        }
        if self.features & Feature::Date as u8 == 0 && child.features & Feature::Date as u8 != 0 {
            self.parts.date = child.parts.date;
        }
        if self.features & Feature::WeakName as u8 == 0
            && child.features & Feature::WeakName as u8 != 0
        {
            self.parts.weak = child.parts.weak;
            self.parts.person = child.parts.person;
            if self.features & (Feature::Name as u8 | Feature::WeakName as u8) == 0 {
                self.parts.initial = child.parts.initial;
            }
        }
        self.features |= child.features;
    }
}

/// The stack keeps the open elements' tags apart from what they have gathered: almost every frame
/// of a page opens and closes with nothing in it, and those only ever touch their tag. The
/// frames at `live` and above hold nothing yet and are written out on their first feature.
#[derive(Debug)]
pub(crate) struct Structure {
    tags: [Tag; MAX_DEPTH],
    stack: [Frame; MAX_DEPTH],
    depth: usize,
    /// `stack[..live]` is what the open frames below `live` hold; `live <= depth`.
    live: usize,
    overflow: u32,
    /// The innermost frame is a self-closing element (`<gift donor="…"/>`): the next tag closes it.
    empty_open: bool,
    root: Frame,
    distinct: Vec<u64>,
    /// Records counted from donor lists that have closed.
    closed: u32,
    /// Records whose list is the document itself (lines of CSV or text, top-level elements),
    /// and those of small lists that closed before they were judged.
    doc: List,
    /// Cue words of top-level lines that were not records (a CSV header).
    doc_cues: u8,
    /// Every cue word met so far.
    seen_cues: u8,
    sample: Option<(u8, [u8; 12], u8)>,
    /// The score of the first list judged a donor list, else of the first list judged.
    score: Option<ListScore>,
}

impl Default for Structure {
    fn default() -> Structure {
        Structure {
            tags: [0; MAX_DEPTH],
            stack: [Frame::default(); MAX_DEPTH],
            depth: 0,
            live: 0,
            overflow: 0,
            empty_open: false,
            root: Frame::default(),
            distinct: Vec::new(),
            closed: 0,
            doc: List::default(),
            doc_cues: 0,
            seen_cues: 0,
            sample: None,
            score: None,
        }
    }
}

/// FNV-1a: a small, fast hash for telling records apart. Not keyed: it never leaves the process.
pub(crate) fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Structure {
    pub fn reset(&mut self) {
        self.depth = 0;
        self.live = 0;
        self.overflow = 0;
        self.empty_open = false;
        self.root = Frame::default();
        self.distinct.clear();
        self.closed = 0;
        self.doc = List::default();
        self.doc_cues = 0;
        self.seen_cues = 0;
        self.sample = None;
        self.score = None;
    }

    /// Distinct records seen so far in lists judged to be donor lists.
    pub fn records(&self) -> u32 {
        let open: u32 = self.stack[..self.live]
            .iter()
            .map(|f| f.list.contribution())
            .sum();
        self.closed + self.doc.contribution() + open
    }

    /// A masked example record (the name's initial and the amount) and the list's score.
    pub fn sample(&self) -> Option<String> {
        let (initial, amount, len) = self.sample?;
        let score = self.score.filter(ListScore::is_donor_list)?;
        Some(format!(
            "{}*** {} (dated); {}",
            initial as char,
            String::from_utf8_lossy(&amount[..len as usize]),
            score.explain()
        ))
    }

    /// The innermost open frame, written out (with any empty frames below it) so it can gather.
    fn top(&mut self) -> &mut Frame {
        if self.depth == 0 {
            return &mut self.root;
        }
        for frame in &mut self.stack[self.live..self.depth] {
            *frame = Frame::default();
        }
        self.live = self.depth;
        &mut self.stack[self.depth - 1]
    }

    pub fn feature(&mut self, feature: Feature, text: &[u8]) {
        let bit = feature as u8;
        self.split_flat_record(bit);
        let top = self.top();
        if top.features & bit != 0 {
            return;
        }
        top.features |= bit;
        match feature {
            Feature::Name => {
                top.parts.name = fnv(text);
                top.parts.initial = text
                    .first()
                    .copied()
                    .filter(u8::is_ascii_alphabetic)
                    .unwrap_or(b'?');
            }
            Feature::Amount => {
                top.parts.amount = fnv(text);
                let n = text.len().min(12);
                top.parts.amount_text[..n].copy_from_slice(&text[..n]);
                top.parts.amount_len = n as u8;
            }
            Feature::Date => top.parts.date = fnv(text),
            Feature::WeakName => {
                top.parts.weak = fnv(text);
                top.parts.person = (text.contains(&b' ') || text.get(1) == Some(&b'.'))
                    && !names_an_organisation(text);
                if top.features & Feature::Name as u8 == 0 {
                    top.parts.initial = text[0];
                }
            }
            Feature::DonorCue | Feature::PriceCue | Feature::RoleCue | Feature::PlaceCue => {
                self.seen_cues |= bit
            }
        }
    }

    /// Closes a self-closing element before the next tag.
    fn close_empty(&mut self) {
        if self.empty_open {
            self.empty_open = false;
            self.pop();
        }
    }

    pub fn open(&mut self, tag: Tag, implicit_close: bool) {
        self.close_empty();
        // `<li>`, `<tr>`, `<p>` close an open sibling of the same name, as HTML parsers do.
        if implicit_close
            && self.overflow == 0
            && self.depth > 0
            && self.tags[self.depth - 1] == tag
        {
            self.pop();
        }
        if self.depth == MAX_DEPTH {
            self.overflow += 1;
            return;
        }
        self.tags[self.depth] = tag;
        self.depth += 1;
    }

    /// A self-closing element (`<gift donor="…" amount="…"/>`): a frame for its attributes,
    /// closed by the next tag.
    pub fn open_empty(&mut self, tag: Tag) {
        self.close_empty();
        if self.overflow > 0 || self.depth == MAX_DEPTH {
            return;
        }
        self.tags[self.depth] = tag;
        self.depth += 1;
        self.empty_open = true;
    }

    pub fn close(&mut self, tag: Tag) {
        self.close_empty();
        if self.overflow > 0 {
            self.overflow -= 1;
            return;
        }
        // Pop to the matching frame, closing unclosed children on the way; a stray end tag with
        // no matching frame is ignored.
        let Some(at) = self.tags[..self.depth].iter().rposition(|&t| t == tag) else {
            return;
        };
        while self.depth > at {
            self.pop();
        }
    }

    /// A newline ends a top-level record (a CSV row, a line of text).
    pub fn newline(&mut self) {
        if self.depth == 0 {
            let root = std::mem::take(&mut self.root);
            self.end_line(&root);
        }
    }

    /// Ends the document: every open frame closes.
    pub fn finish(&mut self) {
        self.empty_open = false;
        while self.depth > 0 {
            self.pop();
        }
        let root = std::mem::take(&mut self.root);
        self.end_line(&root);
        let (own, seen) = (self.doc_cues, self.seen_cues);
        if let Some(score) = self.doc.close(own, seen) {
            self.note_score(score, None);
        }
        // Small lists that closed unjudged were gathered into the document's list; a document
        // that ends with fewer records than a list needs has none.
    }

    fn end_line(&mut self, root: &Frame) {
        if !self.finalize(root) {
            self.doc_cues |= root.features & CUES;
        }
    }

    fn pop(&mut self) {
        if self.depth <= self.live {
            self.flush_flat();
        }
        self.depth -= 1;
        if self.depth >= self.live {
            // A frame that gathered nothing leaves nothing behind.
            return;
        }
        self.live = self.depth;
        let frame = self.stack[self.depth];
        match frame.list.verdict {
            DONORS => self.closed += frame.list.counted(),
            NOT_DONORS => {}
            // Unjudged: the list is judged as it closes, and if it is still too small it joins
            // the document's list, as a page's scattered thank-you cards do.
            _ if frame.list.strong + frame.list.weak > 0 => {
                let mut list = frame.list;
                if let Some(score) = list.close(frame.features & CUES, self.seen_cues) {
                    self.note_score(score, None);
                    if list.verdict == DONORS {
                        self.closed += list.counted();
                    }
                } else {
                    self.merge_into_doc(&list);
                }
            }
            _ => {}
        }
        if !self.finalize(&frame) && frame.features != 0 {
            self.split_flat_record(frame.features);
            self.top().absorb(&frame);
        }
    }

    /// Flat markup has no element per record: `<dt>name</dt><dd>£25</dd><dd>date</dd>` repeated
    /// inside one `<dl>`, or a heading and paragraphs repeated inside one `<section>`. When the
    /// innermost frame already holds a whole record and a part it has arrives again, that part
    /// starts the next record: the record gathered so far is held, and the frame gathers afresh
    /// (its cue words stay). Once a second whole record arrives the frame is a flat list, and its
    /// records count in its own list. A frame that only ever gathered one whole record and a
    /// stray part after it (a table row with a `Source` cell after its date) stays one record
    /// ([`Structure::flush_flat`]).
    fn split_flat_record(&mut self, incoming: u8) {
        if self.depth == 0 {
            return;
        }
        let top = self.top();
        let whole = top.features & ALL == ALL || top.features & WEAK == WEAK;
        if !whole || top.features & incoming & PARTS == 0 {
            return;
        }
        let previous = (top.held_features, top.held);
        top.held_features = top.features & PARTS;
        top.held = top.parts;
        top.features &= !PARTS;
        top.parts.person = false;
        if previous.0 != 0 {
            top.flat += 1;
            let cues = top.features & CUES;
            self.finalize(&Frame::record(previous.0 | cues, previous.1));
        }
    }

    /// Settles the innermost frame's held record as it closes: a record of its flat list when
    /// it had more than one, else the frame's own record again.
    fn flush_flat(&mut self) {
        let top = &mut self.stack[self.depth - 1];
        let held = std::mem::take(&mut top.held_features);
        if held == 0 {
            return;
        }
        let whole = top.features & ALL == ALL || top.features & WEAK == WEAK;
        if top.flat == 0 && !whole {
            top.features = (top.features & !PARTS) | held;
            top.parts = top.held;
            return;
        }
        let cues = top.features & CUES;
        let last = whole.then(|| Frame::record(top.features & PARTS | cues, top.parts));
        top.features &= !PARTS;
        let held = Frame::record(held | cues, top.held);
        self.finalize(&held);
        if let Some(last) = last {
            self.finalize(&last);
        }
    }

    /// A list too small to judge joins the document's list, as a page's scattered thank-you
    /// cards do.
    fn merge_into_doc(&mut self, list: &List) {
        self.doc.merge(list);
        let (own, seen) = (self.doc_cues, self.seen_cues);
        if let Some(score) = self.doc.judge(own, seen) {
            self.note_score(score, None);
        }
    }

    fn note_score(&mut self, score: ListScore, sample: Option<(u8, [u8; 12], u8)>) {
        let first_donor = score.is_donor_list() && !self.score.is_some_and(|s| s.is_donor_list());
        if first_donor || self.score.is_none() {
            self.score = Some(score);
        }
        if first_donor {
            if let Some(s) = sample {
                self.sample = Some(s);
            }
        }
    }

    /// Counts a frame that holds a record; returns whether it did.
    fn finalize(&mut self, frame: &Frame) -> bool {
        let strong = frame.features & ALL == ALL;
        if !strong && frame.features & WEAK != WEAK {
            return false;
        }
        let name = if strong {
            frame.parts.name
        } else {
            frame.parts.weak
        };
        let key = name ^ frame.parts.amount.rotate_left(21) ^ frame.parts.date.rotate_left(42);
        if self.distinct.contains(&key) {
            return true;
        }
        if self.distinct.len() < MAX_DISTINCT {
            self.distinct.push(key);
        }
        if self.sample.is_none() {
            self.sample = Some((
                frame.parts.initial,
                frame.parts.amount_text,
                frame.parts.amount_len,
            ));
        }
        let cues = frame.features & CUES;
        let seen = self.seen_cues;
        let record_sample = strong.then_some((
            frame.parts.initial,
            frame.parts.amount_text,
            frame.parts.amount_len,
        ));
        // The record belongs to the list around it: the open frame, or the document.
        let judged = if self.depth == 0 {
            let own = self.doc_cues;
            self.doc
                .add(strong, name, frame.parts.person, frame.parts.amount, cues);
            self.doc.judge(own, seen)
        } else {
            let parent = self.top();
            let own = parent.features & CUES;
            parent
                .list
                .add(strong, name, frame.parts.person, frame.parts.amount, cues);
            parent.list.judge(own, seen)
        };
        if let Some(score) = judged {
            self.note_score(score, record_sample);
        }
        true
    }
}

/// Words that make a capitalised cell an organisation's name rather than a person's:
/// `Riverside Food Bank`, `Carlisle Choir`, `Acme Ltd`. Grant and sponsor tables list groups
/// with sums and dates as donor lists list people, and group names are written as people's names
/// are (two or three capitalised words).
const ORGANISATION_WORDS: &[&[u8]] = &[
    b"Academy",
    b"Action",
    b"Aid",
    b"Alliance",
    b"Association",
    b"Bank",
    b"Band",
    b"Cafe",
    b"Campaign",
    b"Centre",
    b"Center",
    b"Charity",
    b"Choir",
    b"Church",
    b"CIC",
    b"Club",
    b"Collective",
    b"College",
    b"Committee",
    b"Company",
    b"Co",
    b"Council",
    b"Federation",
    b"Festival",
    b"Forum",
    b"Foundation",
    b"Friends",
    b"Fund",
    b"Group",
    b"Hall",
    b"Hospice",
    b"Inc",
    b"Institute",
    b"Library",
    b"Limited",
    b"LLP",
    b"Ltd",
    b"Museum",
    b"Network",
    b"Partnership",
    b"Party",
    b"Plc",
    b"PLC",
    b"Project",
    b"School",
    b"Services",
    b"Shed",
    b"Society",
    b"Team",
    b"Theatre",
    b"Trust",
    b"Union",
    b"University",
    b"Welcome",
];

fn names_an_organisation(text: &[u8]) -> bool {
    text.split(|b| matches!(b, b' ' | b',' | b'.'))
        .any(|word| ORGANISATION_WORDS.contains(&word))
}

/// Packs an element name (already known to be ASCII letters and digits) into a tag.
pub(crate) const fn pack_tag(name: &[u8]) -> Tag {
    let mut t: u64 = 0;
    let mut i = 0;
    while i < name.len() && i < 8 {
        t = (t << 8) | name[i].to_ascii_lowercase() as u64;
        i += 1;
    }
    // Keep clear of the bracket tags.
    t | (1 << 63)
}

/// Elements that can hold a record or a list of records.
const FRAMES: [Tag; 38] = [
    // XML records named for what they hold.
    pack_tag(b"donation"),
    pack_tag(b"gift"),
    pack_tag(b"donor"),
    pack_tag(b"supporter"),
    pack_tag(b"pledge"),
    pack_tag(b"payment"),
    pack_tag(b"member"),
    pack_tag(b"person"),
    pack_tag(b"tr"),
    pack_tag(b"td"),
    pack_tag(b"th"),
    pack_tag(b"li"),
    pack_tag(b"item"),
    pack_tag(b"entry"),
    pack_tag(b"article"),
    pack_tag(b"section"),
    pack_tag(b"div"),
    pack_tag(b"p"),
    pack_tag(b"dd"),
    pack_tag(b"dt"),
    pack_tag(b"dl"),
    pack_tag(b"row"),
    pack_tag(b"record"),
    pack_tag(b"table"),
    pack_tag(b"tbody"),
    pack_tag(b"thead"),
    pack_tag(b"ul"),
    pack_tag(b"ol"),
    pack_tag(b"channel"),
    pack_tag(b"feed"),
    pack_tag(b"main"),
    pack_tag(b"body"),
    pack_tag(b"aside"),
    pack_tag(b"blockquote"),
    pack_tag(b"figure"),
    pack_tag(b"details"),
    pack_tag(b"fieldset"),
    pack_tag(b"form"),
];

/// Whether an element is a frame for the record detector.
pub(crate) fn is_frame(tag: Tag) -> bool {
    FRAMES.contains(&tag)
}

/// Elements whose end tag HTML lets authors leave out before a sibling.
const SIBLINGS: [Tag; 7] = [
    pack_tag(b"li"),
    pack_tag(b"tr"),
    pack_tag(b"td"),
    pack_tag(b"th"),
    pack_tag(b"p"),
    pack_tag(b"dt"),
    pack_tag(b"dd"),
];

pub(crate) fn closes_sibling(tag: Tag) -> bool {
    SIBLINGS.contains(&tag)
}
