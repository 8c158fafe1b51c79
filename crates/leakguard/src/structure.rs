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

/// Records with a name the guard knows needed in a list before its records with only a
/// capitalised cell count: two known names among the rows of one table, feed or array make the
/// other rows people too. The count is per list, so a shop table next to two thank-yous stays a
/// shop table.
const STRONG_BEFORE_WEAK: u32 = 2;

/// How many records a list contributes: its records with known names, and its other records
/// once it has enough known ones.
fn contribution(strong: u32, weak: u32) -> u32 {
    if strong >= STRONG_BEFORE_WEAK {
        strong + weak
    } else {
        strong
    }
}

/// A frame's tag: up to eight lowercase bytes of the element name packed in a `u64`, or one of
/// the JSON brackets.
pub(crate) type Tag = u64;
pub(crate) const TAG_BRACE: Tag = 1;
pub(crate) const TAG_BRACKET: Tag = 2;

#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    features: u8,
    name: u64,
    amount: u64,
    date: u64,
    weak: u64,
    initial: u8,
    amount_text: [u8; 12],
    amount_len: u8,
    /// Records among this frame's children, with and without a known name.
    strong_records: u32,
    weak_records: u32,
}

impl Frame {
    fn absorb(&mut self, child: &Frame) {
        if self.features & Feature::Name as u8 == 0 && child.features & Feature::Name as u8 != 0 {
            self.name = child.name;
            self.initial = child.initial;
        }
        if self.features & Feature::Amount as u8 == 0 && child.features & Feature::Amount as u8 != 0
        {
            self.amount = child.amount;
            self.amount_text = child.amount_text;
            self.amount_len = child.amount_len;
        }
        if self.features & Feature::Date as u8 == 0 && child.features & Feature::Date as u8 != 0 {
            self.date = child.date;
        }
        if self.features & Feature::WeakName as u8 == 0
            && child.features & Feature::WeakName as u8 != 0
        {
            self.weak = child.weak;
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
    root: Frame,
    distinct: Vec<u64>,
    /// Records counted from lists that have closed.
    closed: u32,
    /// Records whose list is the document itself (lines of CSV or text, top-level elements).
    doc_strong: u32,
    doc_weak: u32,
    sample: Option<(u8, [u8; 12], u8)>,
}

impl Default for Structure {
    fn default() -> Structure {
        Structure {
            tags: [0; MAX_DEPTH],
            stack: [Frame::default(); MAX_DEPTH],
            depth: 0,
            live: 0,
            overflow: 0,
            root: Frame::default(),
            distinct: Vec::new(),
            closed: 0,
            doc_strong: 0,
            doc_weak: 0,
            sample: None,
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
        self.root = Frame::default();
        self.distinct.clear();
        self.closed = 0;
        self.doc_strong = 0;
        self.doc_weak = 0;
        self.sample = None;
    }

    /// Distinct records seen so far.
    pub fn records(&self) -> u32 {
        let open: u32 = self.stack[..self.live]
            .iter()
            .map(|f| contribution(f.strong_records, f.weak_records))
            .sum();
        self.closed + contribution(self.doc_strong, self.doc_weak) + open
    }

    /// A masked example record: the name's initial and the amount.
    pub fn sample(&self) -> Option<String> {
        self.sample.map(|(initial, amount, len)| {
            format!(
                "{}*** {} (dated)",
                initial as char,
                String::from_utf8_lossy(&amount[..len as usize])
            )
        })
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
        let top = self.top();
        let bit = feature as u8;
        if top.features & bit != 0 {
            return;
        }
        top.features |= bit;
        let h = fnv(text);
        match feature {
            Feature::Name => {
                top.name = h;
                top.initial = text
                    .first()
                    .copied()
                    .filter(u8::is_ascii_alphabetic)
                    .unwrap_or(b'?');
            }
            Feature::Amount => {
                top.amount = h;
                let n = text.len().min(12);
                top.amount_text[..n].copy_from_slice(&text[..n]);
                top.amount_len = n as u8;
            }
            Feature::Date => top.date = h,
            Feature::WeakName => top.weak = h,
        }
    }

    pub fn open(&mut self, tag: Tag, implicit_close: bool) {
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

    pub fn close(&mut self, tag: Tag) {
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
            self.finalize(&root);
        }
    }

    /// Ends the document: every open frame closes.
    pub fn finish(&mut self) {
        while self.depth > 0 {
            self.pop();
        }
        let root = std::mem::take(&mut self.root);
        self.finalize(&root);
    }

    fn pop(&mut self) {
        self.depth -= 1;
        if self.depth >= self.live {
            // A frame that gathered nothing leaves nothing behind.
            return;
        }
        self.live = self.depth;
        let frame = self.stack[self.depth];
        self.closed += contribution(frame.strong_records, frame.weak_records);
        if frame.features & ALL == ALL || frame.features & WEAK == WEAK {
            self.finalize(&frame);
        } else if frame.features != 0 {
            self.top().absorb(&frame);
        }
    }

    fn finalize(&mut self, frame: &Frame) {
        let strong = frame.features & ALL == ALL;
        if !strong && frame.features & WEAK != WEAK {
            return;
        }
        let name = if strong { frame.name } else { frame.weak };
        let key = name ^ frame.amount.rotate_left(21) ^ frame.date.rotate_left(42);
        if self.distinct.contains(&key) {
            return;
        }
        if self.distinct.len() < MAX_DISTINCT {
            self.distinct.push(key);
        }
        // The record belongs to the list around it: the open frame, or the document.
        let (list_strong, list_weak) = if self.depth == 0 {
            (&mut self.doc_strong, &mut self.doc_weak)
        } else {
            let parent = self.top();
            (&mut parent.strong_records, &mut parent.weak_records)
        };
        if !strong {
            *list_weak += 1;
            return;
        }
        *list_strong += 1;
        if self.sample.is_none() {
            self.sample = Some((frame.initial, frame.amount_text, frame.amount_len));
        }
    }
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
const FRAMES: [Tag; 30] = [
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
