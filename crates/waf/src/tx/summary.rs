//! Prefilter summaries: the union of the prefilter bits of every value of a
//! list (or of a reject group's variables) after a pipeline, so that a rule
//! whose regex's required literals occur in none of them skips the whole
//! list, or is skipped altogether, with one bit test.

use crate::rule::Rule;
use crate::transform::Transform;
use crate::vars::Var;

use super::eval::{Evaluator, Source};

/// A reject group's prefilter summary within one phase.
#[derive(Clone)]
pub(super) enum GroupSummary {
    /// Not computed yet in this phase.
    Pending,
    /// The union of the bits of every value, in `Caches::bit_arena`.
    Union(std::ops::Range<usize>),
    /// Some value's bits could not be cached (the cache is full): the
    /// group's rules are evaluated the ordinary way.
    Unknown,
}

/// Whether a prefilter bit is set in a summary's words.
pub(super) fn has_bit(words: &[u64], bit: u32) -> bool {
    words
        .get((bit / 64) as usize)
        .is_some_and(|w| w & (1 << (bit % 64)) != 0)
}

impl<'t> Evaluator<'t> {
    /// Whether a prefiltered rule's regex can match no value of a list: the
    /// union of the prefilter bits of every (transformed) value, computed
    /// once per list and pipeline, lacks the rule's bit. Then the rule skips
    /// the whole list in one lookup, which is the common case for benign
    /// traffic.
    pub(super) fn list_cannot_match(
        &mut self,
        link: &Rule,
        list: &[(String, Vec<u8>)],
        id: Var,
        names: bool,
        chain: &[Transform],
    ) -> bool {
        // multiMatch tests every intermediate value; the bits only cover the last.
        if link.actions.multi_match {
            return false;
        }
        let Some(bit) = link.pf_bit else { return false };
        match self.list_union(list, id, names, link.chain_id, chain) {
            Some(union) => !has_bit(&self.caches.bit_arena[union], bit),
            None => false,
        }
    }

    /// The union of the prefilter bits of a list's values (or names) after
    /// pipeline `chain_id`, cached per list and pipeline and recomputed when
    /// the list grew (phase 2 adds ARGS_POST); `None` when some value's bits
    /// could not be cached.
    fn list_union(
        &mut self,
        list: &[(String, Vec<u8>)],
        id: Var,
        names: bool,
        chain_id: u32,
        chain: &[Transform],
    ) -> Option<std::ops::Range<usize>> {
        let pf = self.inner.prefilter.as_ref()?;
        // When no step of the pipeline can change any value of the list
        // beyond case, its summary is the raw values' one, shared by every
        // such pipeline (key `u32::MAX`) and built without transforming.
        let raw = crate::transform::chain_keeps_bits(chain, self.list_features(list, id, names));
        let key = (id as u8, if raw { u32::MAX } else { chain_id });
        if let Some((n, union)) = self.caches.summaries.get(&key) {
            if *n == list.len() {
                return Some(union.clone());
            }
        }
        let words = pf.bits.div_ceil(64) as usize;
        let mut ranges = std::mem::take(&mut self.caches.bit_ranges);
        ranges.clear();
        for (i, (k, v)) in list.iter().enumerate() {
            let value: &[u8] = if names { k.as_bytes() } else { v };
            // Per value, the same shortcut: a value the pipeline cannot
            // change beyond case has its raw bits.
            let bits = if raw {
                Some(self.raw_bits(id as u8, i as u32, value, pf))
            } else {
                self.value_bits((id as u8, i as u32, chain_id), chain, value, pf)
            };
            match bits {
                Some(r) => ranges.push(r),
                None => {
                    self.caches.bit_ranges = ranges;
                    return None;
                }
            }
        }
        let union = self.or_words(&ranges, words);
        self.caches.bit_ranges = ranges;
        self.caches
            .summaries
            .insert(key, (list.len(), union.clone()));
        Some(union)
    }

    /// ORs the bit ranges `parts` into a fresh slot of `words` words in the
    /// bit arena and returns the slot.
    fn or_words(
        &mut self,
        parts: &[std::ops::Range<usize>],
        words: usize,
    ) -> std::ops::Range<usize> {
        let arena = &mut self.caches.bit_arena;
        let start = arena.len();
        arena.resize(start + words, 0);
        for r in parts {
            for w in 0..words.min(r.len()) {
                let b = arena[r.start + w];
                arena[start + w] |= b;
            }
        }
        start..start + words
    }

    /// The summary of reject group `g` in this phase: the union of the
    /// prefilter bits of every value of its variables after its pipeline,
    /// computed on first use. `None` when it cannot be known.
    pub(super) fn group_union(&mut self, g: usize) -> Option<std::ops::Range<usize>> {
        match self.caches.group_bits.get(g)? {
            GroupSummary::Union(r) => return Some(r.clone()),
            GroupSummary::Unknown => return None,
            GroupSummary::Pending => {}
        }
        let inner = self.inner;
        let pf = inner.prefilter.as_ref()?;
        let group = &inner.reject_groups[g];
        let chain: &[Transform] = &inner.transform_chains[group.chain_id as usize];
        let mut parts = std::mem::take(&mut self.caches.group_parts);
        parts.clear();
        let mut known = true;
        'vars: for &(var, attrs) in &group.vars {
            for source in self.sources_of(var, if attrs { "@" } else { "" }) {
                let bits = match source {
                    Source::None => continue,
                    Source::List { list: [], .. } => continue,
                    Source::List { list, id, names } => {
                        self.list_union(list, id, names, group.chain_id, chain)
                    }
                    Source::Scalar(value, Some(id)) => {
                        self.value_bits((id as u8, 0, group.chain_id), chain, &value, pf)
                    }
                    Source::XmlAttrs(list) => {
                        // Attributes are keyed as `test_value` keys them: index + 1.
                        for (i, (_, value)) in list.iter().enumerate() {
                            match self.value_bits(
                                (Var::Xml as u8, i as u32 + 1, group.chain_id),
                                chain,
                                value,
                                pf,
                            ) {
                                Some(r) => parts.push(r),
                                None => {
                                    known = false;
                                    break 'vars;
                                }
                            }
                        }
                        continue;
                    }
                    _ => None,
                };
                match bits {
                    Some(r) => parts.push(r),
                    None => {
                        known = false;
                        break 'vars;
                    }
                }
            }
        }
        let summary = if known {
            GroupSummary::Union(self.or_words(&parts, pf.bits.div_ceil(64) as usize))
        } else {
            GroupSummary::Unknown
        };
        self.caches.group_parts = parts;
        self.caches.group_bits[g] = summary.clone();
        match summary {
            GroupSummary::Union(r) => Some(r),
            _ => None,
        }
    }

    /// The union of `transform::features` over a list's values (or names),
    /// cached per list and recomputed when the list grew.
    fn list_features(&mut self, list: &[(String, Vec<u8>)], id: Var, names: bool) -> u32 {
        if let Some(&(n, f)) = self.caches.list_features.get(&(id as u8)) {
            if n == list.len() {
                return f;
            }
        }
        let f = list.iter().fold(0, |a, (k, v)| {
            a | crate::transform::features(if names { k.as_bytes() } else { v })
        });
        self.caches.list_features.insert(id as u8, (list.len(), f));
        f
    }
}
