//! Running one phase's rules: in order, without the removed ones, skipping
//! a rule whose reject group cannot match, each chain link by link; then
//! the disruptive action and flow control (`skip`, `skipAfter`) of a chain
//! that matched.

use crate::engine::Item;
use crate::rule::{Disruptive, EngineMode, Rule};
use crate::transform::Transform;

use super::eval::{Evaluator, Found};
use super::summary::{has_bit, GroupSummary};
use super::{Transaction, Verdict};

impl Transaction {
    /// The rule evaluator over this transaction's request, state and caches.
    fn evaluator<'t>(&'t mut self, inner: &'t crate::engine::Inner) -> Evaluator<'t> {
        Evaluator {
            inner,
            req: &self.req,
            st: &self.st,
            meta: &self.meta,
            started: self.started,
            caches: &mut self.caches,
        }
    }

    pub(super) fn run_phase(&mut self, phase: u8) -> Verdict {
        self.phases_done = self.phases_done.max(phase);
        if self.st.mode == EngineMode::Off {
            return Verdict::Continue;
        }
        if self.st.allow_all && phase < 5 {
            return Verdict::Continue;
        }
        let engine = self.engine.clone();
        let inner = &engine.inner;
        let items = &inner.phases[phase as usize];
        // Lists and request values change between phases (the body adds
        // ARGS_POST), never within one: group summaries last a phase.
        self.caches.group_bits.clear();
        self.caches
            .group_bits
            .resize(inner.reject_groups.len(), GroupSummary::Pending);
        let mut i = 0;
        let mut skip = 0u32;
        while i < items.len() {
            let Item::Rule(ri) = &items[i] else {
                i += 1;
                continue;
            };
            let rule = &inner.rules[*ri];
            i += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if self.is_removed(rule) {
                continue;
            }
            if let (Some(group), Some(bit)) = (rule.reject_group, rule.pf_bit) {
                // No value the rule looks at has any of its regex's required
                // literals: it cannot match, whatever its targets' details.
                let mut ev = self.evaluator(inner);
                if let Some(union) = ev.group_union(group as usize) {
                    if !has_bit(&self.caches.bit_arena[union], bit) {
                        continue;
                    }
                }
            }
            if !self.eval_chain(inner, rule) {
                continue;
            }
            // The whole chain matched: disruptive action and flow control.
            let mut d = rule.actions.disruptive.unwrap_or(Disruptive::Pass);
            if d == Disruptive::Block {
                d = inner.default_disruptive[phase as usize];
            }
            match d {
                Disruptive::Allow => {
                    self.st.allow_all = true;
                    return Verdict::Continue;
                }
                Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect
                    if self.st.mode == EngineMode::On && phase < 5 =>
                {
                    let v = match d {
                        Disruptive::Deny => Verdict::Deny {
                            status: rule.actions.status.unwrap_or(403),
                            rule_id: rule.id,
                        },
                        Disruptive::Drop => Verdict::Drop { rule_id: rule.id },
                        _ => Verdict::Redirect {
                            status: rule
                                .actions
                                .status
                                .filter(|s| (300..400).contains(s))
                                .unwrap_or(302),
                            location: rule
                                .actions
                                .redirect
                                .as_ref()
                                .map(|m| {
                                    String::from_utf8_lossy(&self.expand_in(m, rule)).into_owned()
                                })
                                .unwrap_or_default(),
                            rule_id: rule.id,
                        },
                    };
                    self.interrupted = Some(v.clone());
                    return v;
                }
                _ => {}
            }
            if rule.actions.skip_after.is_some() {
                // Resolved at load: just past the marker, or the end.
                i = inner.skip_targets[phase as usize]
                    .get(i - 1)
                    .map_or(items.len(), |&t| t as usize);
                continue;
            }
            if rule.actions.skip > 0 {
                skip = rule.actions.skip;
            }
        }
        Verdict::Continue
    }

    fn is_removed(&self, rule: &Rule) -> bool {
        rule.id_in(&self.st.removed_ids) || self.st.removed_tags.iter().any(|re| rule.has_tag(re))
    }

    /// Evaluates a rule and its chain; runs actions of each matching link.
    fn eval_chain(&mut self, inner: &crate::engine::Inner, rule: &Rule) -> bool {
        let mut link = rule;
        loop {
            let last = link.chain.is_none();
            if !self.eval_link(inner, rule, link, last) {
                return false;
            }
            match &link.chain {
                Some(next) => link = next,
                None => return true,
            }
        }
    }

    fn eval_link(
        &mut self,
        inner: &crate::engine::Inner,
        starter: &Rule,
        link: &Rule,
        last: bool,
    ) -> bool {
        let mut found: Vec<Found> = std::mem::take(&mut self.caches.found);
        found.clear();
        self.caches.found_buf.clear();
        if link.unconditional {
            found.push(Found {
                name: 0..0,
                value: 0..0,
                captures: None,
            });
        } else if let Some(compare) = &link.tx_compare {
            self.evaluator(inner)
                .eval_tx_compare(starter, link, compare, &mut found);
        } else {
            let chain: &[Transform] = &inner.transform_chains[link.chain_id as usize];
            let mut ev = self.evaluator(inner);
            for target in &link.targets {
                ev.eval_target(starter, link, target, chain, &mut found);
            }
        }
        if found.is_empty() {
            self.caches.found = found;
            return false;
        }
        let buf = std::mem::take(&mut self.caches.found_buf);
        let mut next_matched = std::mem::take(&mut self.caches.spare_matched);
        next_matched.clear();
        for f in found.iter_mut() {
            let (name, value) = (&buf[f.name.clone()], &buf[f.value.clone()]);
            self.st.matched_var.clear();
            self.st.matched_var.extend_from_slice(value);
            self.st.matched_var_name.clear();
            self.st.matched_var_name.extend_from_slice(name);
            next_matched.push(name, value);
            if let Some(caps) = f.captures.take() {
                let tx = &mut self.st.stores[0];
                for k in DIGITS {
                    tx.remove(k);
                }
                for (k, c) in caps.into_iter().enumerate().take(10) {
                    tx.insert(DIGITS[k].to_string(), c);
                }
            }
            for a in &link.actions.actions {
                self.run_action(starter, a);
            }
        }
        self.caches.spare_matched = std::mem::replace(&mut self.st.matched_vars, next_matched);
        if last {
            // One finding and one log line per matched rule, describing its
            // last match; the per-match actions above (scores) already ran
            // once per matched value, as in ModSecurity.
            self.record_match(starter, link);
        }
        self.caches.found_buf = buf;
        self.caches.found = found;
        true
    }
}

const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
