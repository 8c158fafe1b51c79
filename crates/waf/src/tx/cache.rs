//! The per-transaction caches, pooled by the engine between transactions:
//! transformed values per (variable, value, pipeline), each pipeline one step
//! from its cached parent, and the prefilter bits of raw and transformed
//! values.

use regex::bytes::Regex;

use crate::transform::Transform;
use crate::FastMap;

use super::eval::{Evaluator, Found};
use super::summary::GroupSummary;
use super::{push_range, MatchedList, MatchedRule};

/// Caches that make repeated work cheap within a transaction.
#[derive(Default)]
pub(crate) struct Caches {
    /// Transformed values keyed by (variable, value index, pipeline id):
    /// each pipeline runs once per value per transaction, whatever the
    /// number of rules sharing it.
    pub(super) transformed: TransformCache,
    /// Regexes compiled from macro-expanded patterns.
    pub(super) regex: FastMap<Vec<u8>, Option<Regex>>,
    /// Per (list, pipeline): the list's length when computed and the union
    /// of its values' prefilter bits.
    pub(super) summaries: FastMap<(u8, u32), (usize, std::ops::Range<usize>)>,
    /// Prefilter bits of raw values, shared by the pipelines that leave a
    /// value unchanged (see `value_bits`).
    raw_bits: FastMap<(u8, u32), std::ops::Range<usize>>,
    /// Prefilter bits of transformed values by a case-insensitive hash of
    /// their bytes: (the value's range in `arena`, its bits).
    bits_by_content: FastMap<u64, (std::ops::Range<usize>, std::ops::Range<usize>)>,
    /// Per list id: (its length when computed, the union of its values'
    /// `transform::features`).
    pub(super) list_features: FastMap<u8, (usize, u32)>,
    /// Scratch list of one list's value bit ranges (`list_union`).
    pub(super) bit_ranges: Vec<std::ops::Range<usize>>,
    /// The (id, phase) of `nolog` rules already in `Transaction::matched`.
    pub(super) recorded_nolog: crate::FastSet<(u32, u8)>,
    /// Per reject group (`Inner::reject_groups`), its summary in this phase.
    pub(super) group_bits: Vec<GroupSummary>,
    /// Scratch list of one group's part ranges (`group_union`).
    pub(super) group_parts: Vec<std::ops::Range<usize>>,
    pub(super) scratch: Vec<u8>,
    pub(super) scratch2: Vec<u8>,
    /// Transformed values and prefilter bits, referenced by `CacheEntry`.
    pub(super) arena: Vec<u8>,
    pub(super) bit_arena: Vec<u64>,
    /// Matches of the rule being evaluated, and their names and values.
    pub(super) found: Vec<Found>,
    pub(super) found_buf: Vec<u8>,
    /// The previous MATCHED_VARS, kept to reuse its buffers.
    pub(super) spare_matched: MatchedList,
    /// The matched-rule list of a finished transaction, for the next one:
    /// CRS's flow-control rules alone match forty to sixty times a request,
    /// and growing the list from empty copied it five times over.
    pub(super) spare_rules: Vec<MatchedRule>,
}

/// The pipeline cache: one row of slots per (variable, value index), one
/// slot per pipeline id. Rows are found by indexing (variable, then value
/// index), with a one-entry memo (a value's pipelines are asked for in
/// runs), so a pipeline and its parents cost array indexing, not a hash.
#[derive(Default)]
pub(crate) struct TransformCache {
    /// Per variable id, per value index, the row number (`NO_ROW` if none).
    rows: Vec<Vec<u32>>,
    /// Rows in use.
    n_rows: usize,
    /// Slots are never cleared between transactions: a slot holds an entry
    /// only when its generation is this transaction's, so a pooled cache
    /// starts a request without rewriting its rows (about 3 KB each).
    slots: Vec<Slot>,
    generation: u32,
    /// Slots per row: the engine's number of pipelines.
    pub(super) width: usize,
    last: Option<((u8, u32), usize)>,
}

/// Rows (values) past this are not cached; their pipelines run per rule.
/// Bounds the slots at about 2 048 × pipelines (≈ 7 MiB for CRS's ~60).
const MAX_CACHE_ROWS: usize = 2048;

/// A value without a row in [`TransformCache::rows`].
const NO_ROW: u32 = u32::MAX;

impl TransformCache {
    fn clear(&mut self) {
        for row in &mut self.rows {
            row.clear();
        }
        self.n_rows = 0;
        self.last = None;
        self.generation = self.generation.wrapping_add(1);
        if self.generation == STALE {
            // Once in four billion transactions: no stale slot may look current.
            self.slots.clear();
            self.generation = 0;
        }
    }

    /// The first slot of a value's row; with `create`, adds the row.
    #[inline]
    fn base(&mut self, v: u8, i: u32, create: bool) -> Option<usize> {
        if let Some((k, b)) = self.last {
            if k == (v, i) {
                return Some(b);
            }
        }
        let row = self
            .rows
            .get(v as usize)
            .and_then(|r| r.get(i as usize))
            .copied()
            .unwrap_or(NO_ROW);
        let b = if row != NO_ROW {
            row as usize * self.width
        } else if create && self.n_rows < MAX_CACHE_ROWS {
            let r = self.n_rows;
            self.n_rows += 1;
            if self.rows.len() <= v as usize {
                self.rows.resize_with(v as usize + 1, Vec::new);
            }
            let list = &mut self.rows[v as usize];
            if list.len() <= i as usize {
                list.resize(i as usize + 1, NO_ROW);
            }
            list[i as usize] = r as u32;
            if self.slots.len() < (r + 1) * self.width {
                self.slots.resize(
                    (r + 1) * self.width,
                    Slot {
                        generation: STALE,
                        entry: CacheEntry::default(),
                    },
                );
            }
            r * self.width
        } else {
            return None;
        };
        self.last = Some(((v, i), b));
        Some(b)
    }

    fn get(&mut self, key: &(u8, u32, u32)) -> Option<&CacheEntry> {
        let b = self.base(key.0, key.1, false)?;
        let slot = self.slots.get(b + key.2 as usize)?;
        (slot.generation == self.generation).then_some(&slot.entry)
    }

    fn get_mut(&mut self, key: &(u8, u32, u32)) -> Option<&mut CacheEntry> {
        let b = self.base(key.0, key.1, false)?;
        let generation = self.generation;
        let slot = self.slots.get_mut(b + key.2 as usize)?;
        (slot.generation == generation).then_some(&mut slot.entry)
    }

    /// Stores an entry; `false` when the cache is full.
    fn insert(&mut self, key: (u8, u32, u32), e: CacheEntry) -> bool {
        let Some(b) = self.base(key.0, key.1, true) else {
            return false;
        };
        let generation = self.generation;
        match self.slots.get_mut(b + key.2 as usize) {
            Some(slot) => {
                *slot = Slot {
                    generation,
                    entry: e,
                };
                true
            }
            None => false,
        }
    }
}

/// A slot's generation before anything is stored in it.
const STALE: u32 = u32::MAX;

/// One slot of [`TransformCache`]: an entry, current only in the
/// transaction whose generation it carries.
#[derive(Clone)]
struct Slot {
    generation: u32,
    entry: CacheEntry,
}

/// A value after one pipeline, and which prefiltered rules may match it.
#[derive(Default, Clone)]
struct CacheEntry {
    /// The transformed value in `Caches::arena`; `None` when the pipeline is
    /// empty and the value is used as it is.
    value: Option<std::ops::Range<usize>>,
    /// Prefilter bits in `Caches::bit_arena`, computed the first time a
    /// prefiltered rule asks.
    bits: Option<std::ops::Range<usize>>,
    /// `transform::features` of the value, so the next step of a pipeline
    /// knows in one AND whether it would change it.
    features: u32,
}

/// Transformed values cached per transaction stop growing past this; later
/// ones are recomputed per rule instead. 32 MiB covers a maximal body
/// through the handful of pipelines rules apply to it.
const MAX_CACHE_BYTES: usize = 32 << 20;

/// Pooled caches keep at most this many bytes of buffers; a transaction
/// that grew them beyond (a large body) gives them back to the allocator.
const MAX_POOLED_BYTES: usize = 1 << 20;
/// How many idle cache sets the engine keeps, about one per worker thread.
pub(crate) const MAX_POOLED: usize = 64;

impl Caches {
    pub(super) fn reset(&mut self) -> bool {
        let bytes = self.arena.capacity()
            + self.found_buf.capacity()
            + self.scratch.capacity()
            + self.scratch2.capacity()
            + self.bit_arena.capacity() * 8
            + self.spare_rules.capacity() * std::mem::size_of::<MatchedRule>();
        let slot_bytes = self.transformed.slots.capacity() * std::mem::size_of::<Slot>();
        let row_bytes: usize = self.transformed.rows.iter().map(|r| r.capacity() * 4).sum();
        if bytes + slot_bytes + row_bytes > MAX_POOLED_BYTES {
            return false;
        }
        self.transformed.clear();
        self.regex.clear();
        self.summaries.clear();
        self.raw_bits.clear();
        self.bits_by_content.clear();
        self.list_features.clear();
        self.group_bits.clear();
        self.recorded_nolog.clear();
        self.scratch.clear();
        self.scratch2.clear();
        self.arena.clear();
        self.bit_arena.clear();
        self.found.clear();
        self.found_buf.clear();
        self.spare_matched.clear();
        self.spare_rules.clear();
        true
    }
}

impl<'t> Evaluator<'t> {
    /// The prefilter bits of one cached value after a pipeline: its raw
    /// bits when the pipeline cannot change it beyond case, else those of
    /// its transformed form, computed and cached on first use. `None` when
    /// the cache is full.
    pub(super) fn value_bits(
        &mut self,
        key: (u8, u32, u32),
        chain: &[Transform],
        value: &[u8],
        pf: &crate::prefilter::ChainPrefilter,
    ) -> Option<std::ops::Range<usize>> {
        if crate::transform::chain_keeps_bits(chain, crate::transform::features(value)) {
            return Some(self.raw_bits(key.0, key.1, value, pf));
        }
        if let Some(Some(r)) = self.caches.transformed.get(&key).map(|e| e.bits.clone()) {
            return Some(r);
        }
        let v = self.cached_value(key, chain, value)?;
        // The scan is ASCII case-insensitive, so a pipeline whose output
        // equals the raw value ignoring case (the usual case for benign
        // values) reuses the raw value's bits: one scan per value.
        let same_as_raw = match &v {
            None => true,
            Some(r) => self.caches.arena[r.clone()].eq_ignore_ascii_case(value),
        };
        let r = if same_as_raw {
            self.raw_bits(key.0, key.1, value, pf)
        } else if has_own_automaton(self.inner, key.0) {
            // Not shared through `bits_by_content`: these bits cover only
            // the rules that read this variable.
            let Caches {
                arena, bit_arena, ..
            } = &mut *self.caches;
            let input = match &v {
                Some(vr) => &arena[vr.clone()],
                None => value,
            };
            automaton_for(self.inner, key.0, pf).scan_into(input, bit_arena)
        } else {
            let Caches {
                arena,
                bit_arena,
                bits_by_content,
                ..
            } = &mut *self.caches;
            match &v {
                Some(vr) => {
                    // Pipelines often produce the same bytes up to case (a
                    // decoded value and its lowercase form), and forms repeat
                    // values: transformed values equal ignoring case share
                    // one scan. The hash only finds the candidate; equality
                    // is checked on the bytes.
                    let input = &arena[vr.clone()];
                    let h = hash_ignore_case(input);
                    match bits_by_content.get(&h) {
                        Some((src, bits)) if arena[src.clone()].eq_ignore_ascii_case(input) => {
                            bits.clone()
                        }
                        _ => {
                            let bits = pf.scan_into(input, bit_arena);
                            bits_by_content.insert(h, (vr.clone(), bits.clone()));
                            bits
                        }
                    }
                }
                None => pf.scan_into(value, bit_arena),
            }
        };
        if let Some(e) = self.caches.transformed.get_mut(&key) {
            e.bits = Some(r.clone());
        }
        Some(r)
    }

    /// The prefilter bits of a raw list value, scanning it on first use.
    pub(super) fn raw_bits(
        &mut self,
        v: u8,
        i: u32,
        value: &[u8],
        pf: &crate::prefilter::ChainPrefilter,
    ) -> std::ops::Range<usize> {
        if let Some(r) = self.caches.raw_bits.get(&(v, i)) {
            return r.clone();
        }
        let r = automaton_for(self.inner, v, pf).scan_into(value, &mut self.caches.bit_arena);
        self.caches.raw_bits.insert((v, i), r.clone());
        r
    }

    /// The cached transformed value of a list value, computing it on first
    /// use; `Some(None)` means the value is used untransformed, `None` that
    /// the cache is full and the caller must transform it itself.
    pub(super) fn cached_value(
        &mut self,
        key: (u8, u32, u32),
        chain: &[Transform],
        value: &[u8],
    ) -> Option<Option<std::ops::Range<usize>>> {
        self.cached_value_features(key, chain, value)
            .map(|(r, _)| r)
    }

    /// `cached_value` with the value's `transform::features`.
    fn cached_value_features(
        &mut self,
        key: (u8, u32, u32),
        chain: &[Transform],
        value: &[u8],
    ) -> Option<(Option<std::ops::Range<usize>>, u32)> {
        if let Some(e) = self.caches.transformed.get(&key) {
            return Some((e.value.clone(), e.features));
        }
        let (r, features) = match chain.split_last() {
            None => (None, crate::transform::features(value)),
            Some((last, _)) => {
                // One step from the cached parent pipeline: pipelines sharing a
                // prefix (most CRS ones start `urlDecodeUni,htmlEntityDecode,...`)
                // share its work.
                let parent_id = self
                    .inner
                    .chain_parent
                    .get(key.2 as usize)
                    .copied()
                    .unwrap_or(u32::MAX);
                let (parent, parent_features) = if parent_id == u32::MAX {
                    (None, crate::transform::features(value))
                } else {
                    let parent_chain = &self.inner.transform_chains[parent_id as usize];
                    self.cached_value_features((key.0, key.1, parent_id), parent_chain, value)?
                };
                let Caches { scratch, arena, .. } = &mut *self.caches;
                let input: &[u8] = match &parent {
                    Some(r) => &arena[r.clone()],
                    None => value,
                };
                if last.is_noop_with(parent_features, input) {
                    // The step cannot change the value: share the parent's bytes
                    // without running it.
                    (parent, parent_features)
                } else {
                    last.apply(input, scratch);
                    if scratch.as_slice() == input {
                        (parent, parent_features)
                    } else {
                        if arena.len() + scratch.len() > MAX_CACHE_BYTES {
                            return None;
                        }
                        (
                            Some(push_range(arena, scratch)),
                            crate::transform::features(scratch),
                        )
                    }
                }
            }
        };
        if !self.caches.transformed.insert(
            key,
            CacheEntry {
                value: r.clone(),
                bits: None,
                features,
            },
        ) {
            return None;
        }
        Some((r, features))
    }
}

/// The automaton that scans a value of variable `v` (as a cache key's
/// variable id): the variable's own, which holds only the literals of the
/// rules that read it (see `Inner::own_prefilters`), or the shared one.
fn automaton_for<'i>(
    inner: &'i crate::engine::Inner,
    v: u8,
    shared: &'i crate::prefilter::ChainPrefilter,
) -> &'i crate::prefilter::ChainPrefilter {
    match inner.own_prefilter_slot[v as usize] {
        0 => shared,
        slot => inner.own_prefilters[slot as usize - 1]
            .get()
            .unwrap_or(shared),
    }
}

/// Whether values of variable `v` are scanned with an automaton of their own.
fn has_own_automaton(inner: &crate::engine::Inner, v: u8) -> bool {
    inner.own_prefilter_slot[v as usize] != 0
}

/// A hash of bytes ignoring ASCII case: foldhash over 8-byte words.
fn hash_ignore_case(b: &[u8]) -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = foldhash::fast::FixedState::default().build_hasher();
    h.write_usize(b.len());
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        // Clearing bit 0x20 folds ASCII case (and merges a few other pairs,
        // which only costs an equality check).
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
            & !0x2020_2020_2020_2020;
        h.write_u64(w);
    }
    for &c in chunks.remainder() {
        h.write_u8(c & !0x20);
    }
    h.finish()
}
