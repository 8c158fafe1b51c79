//! The leak guard: a streaming scan of response bodies for personal data, donor lists and canary
//! records, with a per-route policy of allow, alert, redact or block.
//!
//! WAFs look at what comes in. In November 2019 a UK party's donation platform published donors'
//! first names, amounts and dates through a public RSS feed, and no request rule would have
//! noticed: the leak was in what went out. This crate looks at what goes out.
//!
//! ```
//! use rampart_leakguard::{Action, GuardConfig, LeakGuard, RoutePolicy};
//!
//! let guard = LeakGuard::new(GuardConfig::default()).unwrap();
//! let policy = RoutePolicy::default(); // block
//! let mut scanner = guard.scanner(&policy);
//! let mut out = Vec::new();
//! let body = b"<p>Card: 4242 4242 4242 4242</p>";
//! // A small body is decided at the end; a large one as soon as a kind trips.
//! let _ = scanner.push(body, &mut out);
//! let outcome = scanner.finish(&mut out);
//! assert_eq!(outcome.action, Action::Block);
//! assert!(out.is_empty());
//! ```
//!
//! The crate does no I/O: it takes bytes and policies and gives bytes and verdicts. Compressed
//! bodies are decoded first with `rampart-decode`.
//!
//! This file is a little over the project's usual thousand lines: after the interface comes
//! `ResponseScanner`, the streaming state machine every body goes through, kept next to the
//! types it returns so that the whole contract of a scan reads in one place.

mod exact;
mod names;
mod normalize;
mod policy;
mod recognize;
mod scan;
mod special;
mod structure;
mod validate;

use std::fmt;
use std::sync::Arc;

pub use exact::{ImportReport, MAX_CSV_BYTES, MIN_KEY_LEN};
pub use policy::{
    Action, EntityKind, Overflow, PolicySet, RoutePolicy, RouteRule, Severity, SitePolicy,
    Thresholds,
};

use exact::{Exact, Verdict};
use normalize::{Edit, Normalizer};
use policy::{PersonalEmails, Rules};
use recognize::{Candidate, Feature, Recognizers};
use scan::{Event, EventKind, WindowScan, BACK_REACH, TRIGGER_REACH};
use structure::Structure;

/// Normalised bytes held back at the end of each window, so an identifier split across chunks is
/// seen whole: longer than the longest match (an email address, at most 250 bytes here).
const CARRY: usize = 320;

/// Normalised bytes kept before the uncommitted part: re-run triggers and context words look
/// this far back.
const LOOKBEHIND: usize = TRIGGER_REACH + BACK_REACH + 64;

/// Normalised bytes kept before the uncommitted part while the structure is not followed yet
/// (no amount so far): when the first amount arrives, the structure starts this far back, so it
/// opens with the record around that amount and, on most pages, the list around the record.
const WAKE_LOOKBEHIND: usize = 4096;

/// A clean run of a pass-through body at least this long is scanned where it lies instead of
/// being copied into the window: only its first and last few kilobytes are copied (to join it to
/// the bytes before it and to carry over to the next chunk), so a 20 KiB page costs about half
/// the copying, and a 64 KiB chunk a seventh.
const MIN_IN_PLACE: usize = WAKE_LOOKBEHIND + CARRY + 4096;

/// A reset scanner keeps buffers up to this size for its next response; a larger one (a long
/// body held on a block route) goes back to the allocator, so pooled scanners stay small.
/// Callers that pool buffers beside a scanner can hold them to the same size.
pub const MAX_KEPT_BUFFER: usize = 64 * 1024;

/// New bytes gathered before a window is scanned, so that a body fed a byte at a time costs a
/// scan per kilobyte rather than a scan per byte.
const MIN_STEP: usize = 2048;

/// Input is processed in slices of this size, which bounds the window whatever size of chunk
/// the caller pushes.
const SLICE: usize = 16 * 1024;

/// Distinct values remembered per kind for thresholds. Thresholds are in the tens; past this
/// many, every further match is counted as new, which only over-counts a body that is a leak
/// many times over anyway.
const MAX_DISTINCT: usize = 4096;

/// Why a [`LeakGuard`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The fingerprint key is missing or too short while canaries or records were given.
    Key,
    /// A canary or record CSV could not be read.
    Csv,
    /// A public value is not an identifier the guard recognises.
    PublicValue,
    /// A built-in pattern failed to compile (a bug).
    Pattern,
}

/// An error building a [`LeakGuard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// What the guard knows besides its built-in recognisers.
#[derive(Clone, Default)]
pub struct GuardConfig {
    /// The HMAC key under which canaries and records are fingerprinted; at least
    /// [`MIN_KEY_LEN`] bytes when either CSV is given. Keep it out of the configuration file
    /// that holds the CSV paths.
    pub fingerprint_key: Vec<u8>,
    /// CSV text of canary records (honeytokens), with a header row. Every cell that is an
    /// identifier (email, phone, card, IBAN, NI, NHS, postcode) becomes a canary.
    pub canaries_csv: Option<String>,
    /// CSV text of the organisation's own sensitive records (a members or donors export), with a
    /// header row, fingerprinted the same way.
    pub records_csv: Option<String>,
    /// The organisation's own public identifiers (its press email, office phone, registered
    /// address postcode, the IBAN it publishes for donations). They are never counted.
    pub public_values: Vec<String>,
}

impl fmt::Debug for GuardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key and the records never appear in logs.
        f.debug_struct("GuardConfig")
            .field(
                "fingerprint_key",
                &format_args!("<{} bytes>", self.fingerprint_key.len()),
            )
            .field("canaries_csv", &self.canaries_csv.as_ref().map(String::len))
            .field("records_csv", &self.records_csv.as_ref().map(String::len))
            .field("public_values", &self.public_values.len())
            .finish()
    }
}

struct Compiled {
    rec: Recognizers,
    exact: Option<Exact>,
    canaries: ImportReport,
    records: ImportReport,
}

/// The compiled leak guard: recognisers, fingerprints and public values. Build it once; clones
/// share it, and it is `Send + Sync`, so one instance serves every worker thread.
#[derive(Clone)]
pub struct LeakGuard {
    inner: Arc<Compiled>,
}

impl fmt::Debug for LeakGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeakGuard")
            .field("canaries", &self.inner.canaries)
            .field("records", &self.inner.records)
            .finish()
    }
}

impl LeakGuard {
    /// Compiles the recognisers and fingerprints the canary and record exports.
    pub fn new(config: GuardConfig) -> Result<LeakGuard, Error> {
        let rec = Recognizers::new().map_err(|e| Error::new(ErrorKind::Pattern, e))?;
        let needs_exact = config.canaries_csv.is_some()
            || config.records_csv.is_some()
            || !config.public_values.is_empty();
        let mut canaries = ImportReport::default();
        let mut records = ImportReport::default();
        let exact = if needs_exact {
            // Public values alone do not need a secret key: they are public. A fixed key keeps
            // one code path.
            let key: &[u8] = if config.fingerprint_key.is_empty()
                && config.canaries_csv.is_none()
                && config.records_csv.is_none()
            {
                b"rampart public values"
            } else {
                &config.fingerprint_key
            };
            let mut exact = Exact::new(key).map_err(|e| Error::new(ErrorKind::Key, e))?;
            if let Some(csv) = &config.canaries_csv {
                canaries = exact
                    .import(&rec, csv, true)
                    .map_err(|e| Error::new(ErrorKind::Csv, e))?;
            }
            if let Some(csv) = &config.records_csv {
                records = exact
                    .import(&rec, csv, false)
                    .map_err(|e| Error::new(ErrorKind::Csv, e))?;
            }
            for value in &config.public_values {
                exact
                    .add_public(&rec, value)
                    .map_err(|e| Error::new(ErrorKind::PublicValue, e))?;
            }
            (!exact.is_empty()).then_some(exact)
        } else {
            None
        };
        Ok(LeakGuard {
            inner: Arc::new(Compiled {
                rec,
                exact,
                canaries,
                records,
            }),
        })
    }

    /// What importing the canary CSV did.
    pub fn canary_report(&self) -> &ImportReport {
        &self.inner.canaries
    }

    /// What importing the records CSV did.
    pub fn record_report(&self) -> &ImportReport {
        &self.inner.records
    }

    /// A scanner for one response under one route's policy. The policy is copied into a compact
    /// form; nothing borrowed outlives this call.
    pub fn scanner(&self, policy: &RoutePolicy) -> ResponseScanner {
        let rules = Rules::new(policy);
        ResponseScanner {
            guard: Arc::clone(&self.inner),
            rules,
            mode: Mode::for_action(rules.action),
            blocked: false,
            finished: false,
            window: Vec::new(),
            win_base: 0,
            norm_end: 0,
            committed: 0,
            normalizer: Normalizer::default(),
            orig_fed: 0,
            held: Vec::new(),
            held_base: 0,
            edits: Vec::new(),
            anchor: (0, 0),
            counts: [0; EntityKind::COUNT],
            distinct: [0; EntityKind::COUNT],
            seen: Default::default(),
            samples: Default::default(),
            redacted: [0; EntityKind::COUNT],
            personal: PersonalEmails::default(),
            structure: Structure::default(),
            structure_awake: false,
            hits: Vec::new(),
            events: Vec::new(),
            features: Vec::new(),
            redactions: Vec::new(),
            scratch: Vec::new(),
            sink: Vec::new(),
        }
    }
}

/// Whether a response of this `Content-Type` is text the guard can read: HTML, JSON, XML
/// (RSS, Atom), CSV, plain text and JavaScript. Images, archives and other binary types are not
/// scanned: personal data in them needs other tools.
pub fn is_scannable(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let media = media.as_bytes();
    let lower = |s: &str| media.eq_ignore_ascii_case(s.as_bytes());
    let ends = |s: &str| {
        media.len() >= s.len() && media[media.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
    };
    let starts =
        |s: &str| media.len() >= s.len() && media[..s.len()].eq_ignore_ascii_case(s.as_bytes());
    starts("text/")
        || ends("+json")
        || ends("+xml")
        || lower("application/json")
        || lower("application/xml")
        || lower("application/javascript")
        || lower("application/x-javascript")
        || lower("application/ecmascript")
        || lower("application/x-ndjson")
        || lower("application/csv")
        || lower("application/xhtml+xml")
}

/// What the caller should do after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Send what was appended to `out` and go on.
    Continue,
    /// Stop: the response must be replaced (nothing of it was sent on a `block` route) or, on
    /// other routes after a canary trip, the connection aborted. Further pushes do nothing.
    Block,
}

/// One kind of thing found in a response. Its serde form is the event
/// line's: kinds, actions and severities by their snake-case names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: EntityKind,
    /// How many matches.
    pub count: u32,
    /// How many different values among them (distinct records, for a donor list). Thresholds
    /// apply to this: a contact address repeated in a page's header, body and footer is one.
    pub distinct: u32,
    /// A masked example, never the full value.
    pub sample: String,
    /// What the guard did about this kind.
    pub action: Action,
    /// How bad it is; a canary trip is [`Severity::Critical`].
    pub severity: Severity,
}

/// The verdict on a whole response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The most severe action taken.
    pub action: Action,
    /// What was found, most severe first. Empty for a clean response.
    pub findings: Vec<Finding>,
    /// Body bytes scanned (before normalisation).
    pub scanned: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bytes go out as they come; findings are reported after the fact.
    Pass,
    /// Bytes go out rewritten, held back by the carry window only.
    Redact,
    /// Bytes are held until the end (up to a cap) so the response can be replaced.
    Hold,
}

impl Mode {
    fn for_action(action: Action) -> Mode {
        match action {
            Action::Allow | Action::Alert => Mode::Pass,
            Action::Redact => Mode::Redact,
            Action::Block => Mode::Hold,
        }
    }
}

/// A set of value hashes. The keys are already FNV hashes, so hashing them again with SipHash
/// would only cost time on pages full of findings.
type ValueSet = std::collections::HashSet<u64, std::hash::BuildHasherDefault<PassThrough>>;

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A pending replacement of original bytes `start..end` by a mask.
#[derive(Debug, Clone, Copy)]
struct Redaction {
    start: u64,
    end: u64,
    mask: [u8; 32],
    mask_len: u8,
}

/// The scan of one response body. Made by [`LeakGuard::scanner`]; fed with
/// [`push`](ResponseScanner::push) for each body chunk, from Pingora's synchronous
/// `response_body_filter`, and closed with [`finish`](ResponseScanner::finish) at end of stream.
///
/// Memory per response is a window of about 20 KiB of normalised text plus, in `redact` mode,
/// the original bytes of the carry window, and in `block` mode the body up to the route's
/// `max_buffered`.
pub struct ResponseScanner {
    guard: Arc<Compiled>,
    rules: Rules,
    mode: Mode,
    blocked: bool,
    finished: bool,
    /// Normalised text; `window[0]` is at normalised offset `win_base`.
    window: Vec<u8>,
    win_base: u64,
    norm_end: u64,
    /// Normalised offset up to which matches and events have been taken.
    committed: u64,
    normalizer: Normalizer,
    /// Original bytes received so far.
    orig_fed: u64,
    /// Original bytes not yet sent (redact and block modes); `held[0]` is at `held_base`.
    held: Vec<u8>,
    held_base: u64,
    /// Decoded escapes in the window, to map normalised offsets back to original ones.
    edits: Vec<Edit>,
    /// A (normalised, original) pair of offsets known to correspond, before every kept edit.
    anchor: (u64, u64),
    counts: [u32; EntityKind::COUNT],
    distinct: [u32; EntityKind::COUNT],
    /// Hashes of the values seen per kind, allocated on a kind's first match.
    seen: [Option<ValueSet>; EntityKind::COUNT],
    samples: [Option<String>; EntityKind::COUNT],
    redacted: [u32; EntityKind::COUNT],
    /// People's own addresses among the distinct emails (see `Thresholds::personal_email`).
    personal: PersonalEmails,
    structure: Structure,
    /// Whether the donor-list structure is followed: from the window of the first amount on.
    /// Pages without amounts (most of them) never pay for reading their tags.
    structure_awake: bool,
    hits: Vec<Candidate>,
    events: Vec<Event>,
    features: Vec<Event>,
    redactions: Vec<Redaction>,
    scratch: Vec<u8>,
    /// Where [`inspect`](ResponseScanner::inspect) lets output go.
    sink: Vec<u8>,
}

impl fmt::Debug for ResponseScanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseScanner")
            .field("mode", &self.mode)
            .field("blocked", &self.blocked)
            .field("scanned", &self.orig_fed)
            .field("counts", &self.counts)
            .finish()
    }
}

impl ResponseScanner {
    /// Makes this scanner ready for another response, keeping its buffers. Lets the gateway pool
    /// scanners instead of allocating per response.
    pub fn reset(&mut self, policy: &RoutePolicy) {
        self.rules = Rules::new(policy);
        self.mode = Mode::for_action(self.rules.action);
        self.blocked = false;
        self.finished = false;
        for buffer in [&mut self.window, &mut self.held, &mut self.sink] {
            if buffer.capacity() > MAX_KEPT_BUFFER {
                *buffer = Vec::new();
            }
            buffer.clear();
        }
        self.win_base = 0;
        self.norm_end = 0;
        self.committed = 0;
        self.normalizer.reset();
        self.orig_fed = 0;
        self.held_base = 0;
        self.edits.clear();
        self.anchor = (0, 0);
        self.counts = [0; EntityKind::COUNT];
        self.distinct = [0; EntityKind::COUNT];
        for set in self.seen.iter_mut().flatten() {
            set.clear();
        }
        self.samples = Default::default();
        self.redacted = [0; EntityKind::COUNT];
        self.personal = PersonalEmails::default();
        self.structure.reset();
        self.structure_awake = false;
        self.redactions.clear();
    }

    /// Scans one chunk of the (decoded) body and appends to `out` the bytes that are safe to send
    /// now: the chunk itself on `allow` and `alert` routes; on `redact` routes everything except
    /// the carry window, with matches masked; on `block` routes nothing until
    /// [`finish`](ResponseScanner::finish).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Progress {
        self.feed(chunk, out, true)
    }

    /// Scans one chunk of a body that the caller forwards itself, unchanged: what
    /// [`push`](ResponseScanner::push) would append to its output is dropped, and on `allow` and
    /// `alert` routes the chunk is not copied at all. Only for routes whose bytes go out as they
    /// came (never `redact`); a `block` route's held bytes are lost to the caller.
    pub fn inspect(&mut self, chunk: &[u8]) -> Progress {
        let mut sink = std::mem::take(&mut self.sink);
        let progress = self.feed(chunk, &mut sink, false);
        sink.clear();
        self.sink = sink;
        progress
    }

    /// [`inspect`](ResponseScanner::inspect) for the body's last chunk, then
    /// [`finish`](ResponseScanner::finish): the same outcome, but a clean run at the end of the
    /// body is scanned to its last byte where it lies, with nothing carried over to copy and
    /// scan again.
    pub fn inspect_last(&mut self, chunk: &[u8]) -> Outcome {
        let mut sink = std::mem::take(&mut self.sink);
        self.feed_chunk(chunk, &mut sink, false, true);
        let outcome = self.finish(&mut sink);
        sink.clear();
        self.sink = sink;
        outcome
    }

    /// [`push`](ResponseScanner::push), copying pass-through bytes to `out` only with
    /// `copy_passed`.
    fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>, copy_passed: bool) -> Progress {
        self.feed_chunk(chunk, out, copy_passed, false)
    }

    /// [`feed`](Self::feed), knowing with `last` that nothing follows `chunk`.
    fn feed_chunk(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
        copy_passed: bool,
        last: bool,
    ) -> Progress {
        if self.blocked || self.finished {
            return if self.blocked {
                Progress::Block
            } else {
                Progress::Continue
            };
        }
        if self.window.capacity() == 0 {
            // One allocation for the window's working size (or the first chunk's, if smaller)
            // instead of a dozen as it doubles.
            self.window
                .reserve(chunk.len().min(SLICE) + WAKE_LOOKBEHIND + CARRY + MIN_STEP);
        }
        let mut rest = chunk;
        while !rest.is_empty() {
            let (copied, in_place) = self.split_in_place(rest);
            if self.feed_copied(&rest[..copied], out, copy_passed) == Progress::Block {
                return Progress::Block;
            }
            let run = &rest[copied..copied + in_place];
            if !run.is_empty() && !self.normalizer.is_idle() {
                // Not expected (the copied part settles every escape), but a pending escape
                // must see these bytes: copy them.
                if self.feed_copied(run, out, copy_passed) == Progress::Block {
                    return Progress::Block;
                }
            } else if !run.is_empty() {
                if copy_passed {
                    out.extend_from_slice(run);
                }
                let to_end = last && copied + in_place == rest.len();
                self.scan_in_place(run, out, to_end);
                self.orig_fed += run.len() as u64;
                if self.blocked {
                    return Progress::Block;
                }
            }
            rest = &rest[copied + in_place..];
        }
        Progress::Continue
    }

    /// Splits off the front of `rest`: a part to copy into the window through the normaliser,
    /// then a clean run to scan in place (possibly empty). A run is clean when the normaliser
    /// would copy it unchanged: no `&` or `\\` in it and no escape pending before it. Only
    /// routes whose bytes go out as they came (`allow`, `alert`) scan in place, since the others
    /// map every match back to original offsets through the window.
    fn split_in_place(&self, rest: &[u8]) -> (usize, usize) {
        if self.mode != Mode::Pass || !self.edits.is_empty() || rest.len() < MIN_IN_PLACE {
            return (rest.len(), 0);
        }
        // Past an escape's first byte, the normaliser has settled it within `ESCAPE_SPAN`
        // bytes (so it is idle again) unless another escape starts there, which ends the run.
        let mut start = if self.normalizer.is_idle() {
            0
        } else {
            normalize::ESCAPE_SPAN
        };
        for escape in memchr::memchr2_iter(b'&', b'\\', rest) {
            if escape >= start + MIN_IN_PLACE {
                return (start, escape - start);
            }
            start = start.max(escape + normalize::ESCAPE_SPAN);
            if start + MIN_IN_PLACE > rest.len() {
                // No run long enough fits in what is left: the normaliser reads it anyway.
                return (rest.len(), 0);
            }
        }
        if rest.len() >= start + MIN_IN_PLACE {
            (start, rest.len() - start)
        } else {
            (rest.len(), 0)
        }
    }

    /// Feeds `chunk` through the normaliser into the window, scanning as the window fills.
    fn feed_copied(&mut self, chunk: &[u8], out: &mut Vec<u8>, copy_passed: bool) -> Progress {
        for piece in chunk.chunks(SLICE) {
            match self.mode {
                Mode::Pass if copy_passed => out.extend_from_slice(piece),
                Mode::Pass => {}
                Mode::Redact => self.held.extend_from_slice(piece),
                Mode::Hold => {
                    if self.held.len() + piece.len() > self.rules.max_buffered {
                        self.overflow(out);
                        if self.blocked {
                            return Progress::Block;
                        }
                    }
                    match self.mode {
                        Mode::Hold | Mode::Redact => self.held.extend_from_slice(piece),
                        Mode::Pass if copy_passed => out.extend_from_slice(piece),
                        Mode::Pass => {}
                    }
                }
            }
            let edits = (self.mode != Mode::Pass).then_some(&mut self.edits);
            self.normalizer.feed(
                piece,
                self.orig_fed,
                &mut self.window,
                &mut self.norm_end,
                edits,
            );
            self.orig_fed += piece.len() as u64;
            while self.norm_end - self.committed >= (CARRY + MIN_STEP) as u64 {
                self.process(false, out);
                if self.blocked {
                    return Progress::Block;
                }
            }
        }
        Progress::Continue
    }

    /// Ends the body: scans what is left, decides, and appends the rest of the response to `out`
    /// (everything held, on a `block` route that did not block). Called again, it returns the
    /// same counts and actions without the samples, which the first outcome took.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Outcome {
        if !self.finished && !self.blocked {
            let edits = (self.mode != Mode::Pass).then_some(&mut self.edits);
            self.normalizer
                .finish(&mut self.window, &mut self.norm_end, edits);
            self.process(true, out);
        }
        if !self.finished {
            self.structure.finish();
            self.note_records();
            self.check_trips();
        }
        self.finished = true;
        if !self.blocked {
            match self.mode {
                Mode::Pass => {}
                Mode::Hold => {
                    out.extend_from_slice(&self.held);
                    self.held_base += self.held.len() as u64;
                    self.held.clear();
                }
                Mode::Redact => {
                    let end = self.held_base + self.held.len() as u64;
                    self.emit_redacted(end, out);
                }
            }
        } else {
            self.held.clear();
        }
        self.outcome()
    }

    /// Whether the scanner has decided to block.
    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    /// Whether nothing this scanner can find would change or stop the response: the route's
    /// action is at most `alert`, and so are its canary action (unless no canaries are loaded)
    /// and what a donor list calls for.
    /// Then the scan only reports, and a caller may run it after the bytes have gone (the
    /// gateway scans an unencoded body's last chunk once it is sent, off the client's wait).
    pub fn only_reports(&self) -> bool {
        let canaries = self
            .guard
            .exact
            .as_ref()
            .is_some_and(|exact| exact.has_canaries());
        self.mode == Mode::Pass
            && self.rules.action <= Action::Alert
            && (!canaries || self.rules.canary_action <= Action::Alert)
            && self.rules.action_for(EntityKind::DonorList) <= Action::Alert
    }

    fn overflow(&mut self, out: &mut Vec<u8>) {
        match self.rules.on_overflow {
            Overflow::Block => {
                self.counts[EntityKind::Oversize as usize] = 1;
                self.distinct[EntityKind::Oversize as usize] = 1;
                self.samples[EntityKind::Oversize as usize] =
                    Some(format!("more than {} bytes", self.rules.max_buffered));
                self.blocked = true;
                self.held.clear();
            }
            Overflow::Release => {
                // Everything scanned so far had no tripped finding: send it, and mask from here on.
                let upto = self.to_orig(self.committed, false).max(self.held_base);
                self.mode = Mode::Redact;
                self.emit_redacted(upto, out);
            }
        }
    }

    /// Scans the window's uncommitted part, up to the carry (or to the end when `last`).
    fn process(&mut self, last: bool, out: &mut Vec<u8>) {
        let Some(to) = self.scan_window(last, out) else {
            return;
        };
        if self.blocked {
            return;
        }
        // Keep the look-behind and the carry; drop the rest.
        let keep_from = to.saturating_sub(self.lookbehind());
        if keep_from > 0 {
            self.window.drain(..keep_from);
            self.win_base += keep_from as u64;
        }
        let committed = self.committed;
        let drop = self
            .edits
            .partition_point(|e| e.norm_start + u64::from(e.norm_len) <= committed);
        if drop > 0 {
            let e = self.edits[drop - 1];
            self.anchor = (
                e.norm_start + u64::from(e.norm_len),
                e.orig_start + u64::from(e.orig_len),
            );
            self.edits.drain(..drop);
        }
    }

    /// How much already scanned text the window keeps before its uncommitted part. Until the
    /// structure is followed it keeps more, so that the structure can start a whole record
    /// before the first amount.
    fn lookbehind(&self) -> usize {
        if self.structure_awake {
            LOOKBEHIND
        } else {
            WAKE_LOOKBEHIND
        }
    }

    /// The scan of [`process`](Self::process), without trimming the window: returns where in
    /// the window it committed up to, or `None` when there was nothing to scan.
    fn scan_window(&mut self, last: bool, out: &mut Vec<u8>) -> Option<usize> {
        let len = self.window.len();
        let from = (self.committed - self.win_base) as usize;
        let to = if last { len } else { len.saturating_sub(CARRY) };
        if to <= from && !last {
            return None;
        }
        let window = std::mem::take(&mut self.window);
        self.scan_span(&window, self.win_base, from, to);
        self.window = window;
        if self.blocked {
            self.held.clear();
            return Some(to);
        }
        if self.mode == Mode::Redact {
            let mut upto = self.to_orig(self.committed, false);
            if let Some(r) = self.redactions.iter().map(|r| r.end).max() {
                upto = upto.max(r);
            }
            self.emit_redacted(upto, out);
        }
        Some(to)
    }

    /// Scans a clean run of a pass-through body where it lies ([`split_in_place`]
    /// (Self::split_in_place) chose it). The window's uncommitted bytes are scanned first,
    /// joined to the run's first look-behind and carry; the rest of the run is scanned in place
    /// with the run itself as its look-behind; and the run's tail becomes the window.
    ///
    /// With `to_end` nothing follows the run: it is scanned to its last byte and the window is
    /// left empty.
    fn scan_in_place(&mut self, run: &[u8], out: &mut Vec<u8>, to_end: bool) {
        let head = self.lookbehind() + CARRY;
        debug_assert!(run.len() >= head + CARRY && self.normalizer.is_idle());
        let base = self.norm_end;
        self.window.extend_from_slice(&run[..head]);
        self.norm_end += head as u64;
        self.scan_window(false, out);
        self.norm_end = base + run.len() as u64;
        if self.blocked {
            return;
        }
        let from = (self.committed - base) as usize;
        let to = if to_end { run.len() } else { run.len() - CARRY };
        self.scan_span(run, base, from, to);
        if self.blocked {
            self.held.clear();
            return;
        }
        if to_end {
            self.window.clear();
            self.win_base = self.norm_end;
            return;
        }
        let keep_from = to - self.lookbehind();
        self.window.clear();
        self.window.extend_from_slice(&run[keep_from..]);
        self.win_base = base + keep_from as u64;
    }

    /// Scans `win[from..to]`, where `win[0]` is at normalised offset `base` and `win[..from]`
    /// is already scanned look-behind, and takes its matches and events.
    fn scan_span(&mut self, win: &[u8], base: u64, from: usize, to: usize) {
        self.hits.clear();
        self.events.clear();
        self.features.clear();
        let scan = WindowScan {
            rec: &self.guard.rec,
            win,
            from,
            to,
            structure: self.structure_awake,
            doc_start: base == 0,
        };
        scan.run(&mut self.hits, &mut self.events, &mut self.features);
        if !self.structure_awake
            && self
                .features
                .iter()
                .any(|e| matches!(e.what, EventKind::Feature(Feature::Amount)))
        {
            // The first amount: every record has one, so until now no record could exist and
            // the structure was not followed. It starts here, from the oldest byte kept before
            // this span (the record around this amount, and the list around it, began there or
            // later on any realistic page); the matches found again are dropped.
            self.structure_awake = true;
            let matches = self.hits.len();
            self.features.clear();
            WindowScan {
                from: 0,
                structure: true,
                ..scan
            }
            .run(&mut self.hits, &mut self.events, &mut self.features);
            self.hits.truncate(matches);
        }
        self.take_hits(win, base);
        if self.structure_awake {
            self.take_events(win);
        }
        self.committed = base + to as u64;
        self.note_records();
        self.check_trips();
    }

    fn take_hits(&mut self, win: &[u8], base: u64) {
        if self.hits.is_empty() {
            return;
        }
        self.hits
            .sort_unstable_by_key(|h| (h.start, scan::priority(h.kind), usize::MAX - h.end));
        let mut last_end = 0;
        let hits = std::mem::take(&mut self.hits);
        for hit in &hits {
            if hit.start < last_end {
                continue;
            }
            last_end = hit.end;
            self.accept(win, base, *hit);
        }
        self.hits = hits;
    }

    fn accept(&mut self, win: &[u8], base: u64, hit: Candidate) {
        let text_kind = hit.kind;
        let mut kind = hit.kind;
        if let Some(exact) = &self.guard.exact {
            if kind != EntityKind::DateOfBirth {
                let text = &win[hit.start..hit.end];
                match exact.lookup(kind, text, &mut self.scratch) {
                    Some(Verdict::Canary) => kind = EntityKind::Canary,
                    Some(Verdict::Record) => kind = EntityKind::Record,
                    Some(Verdict::Public) => return,
                    None => {}
                }
            }
        }
        let k = kind as usize;
        self.counts[k] = self.counts[k].saturating_add(1);
        exact::canonical(text_kind, &win[hit.start..hit.end], &mut self.scratch);
        let value = structure::fnv(&self.scratch);
        let seen = self.seen[k].get_or_insert_with(Default::default);
        if seen.len() >= MAX_DISTINCT || seen.insert(value) {
            self.distinct[k] = self.distinct[k].saturating_add(1);
            if kind == EntityKind::Email {
                // The canonical form is lower case, so `A@X.org` and `a@x.org` are one domain.
                self.personal.note(&self.scratch, structure::fnv);
            }
        }
        if self.samples[k].is_none() {
            let text = &win[hit.start..hit.end];
            let mut s = recognize::sample(text_kind, text);
            if kind != text_kind {
                s = format!("{} {}", text_kind.name(), s);
            }
            self.samples[k] = Some(s);
        }
        if self.mode == Mode::Redact && !self.rules.allowed(kind) {
            let start = self.to_orig(base + hit.start as u64, false);
            let end = self.to_orig(base + hit.end as u64, true);
            let mut mask = Vec::with_capacity(32);
            recognize::write_mask(text_kind, &win[hit.start..hit.end], &mut mask);
            let mut r = Redaction {
                start,
                end,
                mask: [0; 32],
                mask_len: mask.len().min(32) as u8,
            };
            r.mask[..r.mask_len as usize].copy_from_slice(&mask[..r.mask_len as usize]);
            self.redactions.push(r);
            self.redacted[k] += 1;
        }
    }

    /// Replays structure events and record features in document order. Structure events come
    /// out of the byte loop already in order; features come from the searches and are few, so
    /// only they are sorted.
    fn take_events(&mut self, win: &[u8]) {
        if self.events.is_empty() && self.features.is_empty() {
            return;
        }
        self.features.sort_unstable_by_key(|e| e.pos);
        let mut f = 0;
        for e in &self.events {
            while f < self.features.len() && self.features[f].pos < e.pos {
                let feature = self.features[f];
                f += 1;
                if let EventKind::Feature(kind) = feature.what {
                    let text = &win[feature.pos..feature.end.min(win.len())];
                    self.structure.feature(kind, text);
                }
            }
            match e.what {
                EventKind::Open(tag, implicit) => self.structure.open(tag, implicit),
                EventKind::OpenEmpty(tag) => self.structure.open_empty(tag),
                EventKind::Close(tag) => self.structure.close(tag),
                EventKind::Newline => self.structure.newline(),
                EventKind::Feature(_) => {}
            }
        }
        for feature in &self.features[f..] {
            if let EventKind::Feature(kind) = feature.what {
                let text = &win[feature.pos..feature.end.min(win.len())];
                self.structure.feature(kind, text);
            }
        }
    }

    fn note_records(&mut self) {
        let k = EntityKind::DonorList as usize;
        self.counts[k] = self.structure.records();
        self.distinct[k] = self.counts[k];
        if self.counts[k] > 0 && self.samples[k].is_none() {
            self.samples[k] = self.structure.sample();
        }
    }

    fn check_trips(&mut self) {
        for kind in EntityKind::ALL {
            if self.distinct[kind as usize] > 0
                && self.kind_tripped(kind)
                && self.effective_action(kind, true) == Action::Block
            {
                self.blocked = true;
            }
        }
    }

    /// Whether a kind has reached its threshold in this response; for email, also whether
    /// people's own addresses at several domains make a member list.
    fn kind_tripped(&self, kind: EntityKind) -> bool {
        self.rules.tripped(kind, self.distinct[kind as usize])
            || (kind == EntityKind::Email && self.rules.personal_emails_tripped(&self.personal))
    }

    /// What this response's handling of a kind amounts to.
    fn effective_action(&self, kind: EntityKind, tripped: bool) -> Action {
        let k = kind as usize;
        if tripped {
            let action = self.rules.action_for(kind);
            // A donor list cannot be masked piece by piece; on a redact route it is reported.
            if action == Action::Redact && kind == EntityKind::DonorList {
                return Action::Alert;
            }
            if action == Action::Redact && self.redacted[k] == 0 {
                return Action::Alert;
            }
            return action;
        }
        if self.redacted[k] > 0 {
            Action::Redact
        } else {
            Action::Allow
        }
    }

    /// The outcome of the finished body. The samples move into it: they are the scanner's last
    /// use of them, and `reset` would only drop them.
    fn outcome(&mut self) -> Outcome {
        let mut samples = std::mem::take(&mut self.samples);
        let mut findings: Vec<Finding> = EntityKind::ALL
            .iter()
            .filter(|k| self.counts[**k as usize] > 0)
            .map(|&kind| {
                let count = self.counts[kind as usize];
                let distinct = self.distinct[kind as usize];
                let tripped = self.kind_tripped(kind);
                Finding {
                    kind,
                    count,
                    distinct,
                    sample: samples[kind as usize].take().unwrap_or_default(),
                    action: self.effective_action(kind, tripped),
                    severity: kind.severity(),
                }
            })
            .collect();
        findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(b.action.cmp(&a.action)));
        let mut action = findings
            .iter()
            .map(|f| f.action)
            .max()
            .unwrap_or(Action::Allow);
        if self.blocked {
            action = Action::Block;
        }
        Outcome {
            action,
            findings,
            scanned: self.orig_fed,
        }
    }

    /// Maps a normalised offset to an original one. A start inside a decoded escape maps to the
    /// escape's start, an end to its end, so a mask always covers whole escapes.
    fn to_orig(&self, p: u64, is_end: bool) -> u64 {
        let idx = self.edits.partition_point(|e| e.norm_start <= p);
        if idx == 0 {
            return self.anchor.1 + p.saturating_sub(self.anchor.0);
        }
        let e = self.edits[idx - 1];
        let norm_end = e.norm_start + u64::from(e.norm_len);
        let orig_end = e.orig_start + u64::from(e.orig_len);
        if p < norm_end {
            if p == e.norm_start || !is_end {
                e.orig_start
            } else {
                orig_end
            }
        } else {
            orig_end + (p - norm_end)
        }
    }

    /// Sends held original bytes up to `upto`, with pending redactions applied.
    fn emit_redacted(&mut self, upto: u64, out: &mut Vec<u8>) {
        let upto = upto.min(self.held_base + self.held.len() as u64);
        if upto <= self.held_base {
            return;
        }
        self.redactions.sort_unstable_by_key(|r| r.start);
        let mut pos = self.held_base;
        let mut kept = 0;
        for i in 0..self.redactions.len() {
            let r = self.redactions[i];
            if r.start >= upto {
                self.redactions[kept] = r;
                kept += 1;
                continue;
            }
            if r.end <= pos {
                continue;
            }
            let start = r.start.max(pos);
            out.extend_from_slice(
                &self.held[(pos - self.held_base) as usize..(start - self.held_base) as usize],
            );
            out.extend_from_slice(&r.mask[..r.mask_len as usize]);
            pos = r.end.min(self.held_base + self.held.len() as u64);
        }
        self.redactions.truncate(kept);
        let upto = upto.max(pos);
        out.extend_from_slice(
            &self.held[(pos - self.held_base) as usize..(upto - self.held_base) as usize],
        );
        self.held.drain(..(upto - self.held_base) as usize);
        self.held_base = upto;
    }
}
