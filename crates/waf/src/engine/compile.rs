//! The last step of a load: every regex is checked and its prefilter
//! literals extracted, the shared and per-variable prefilter automata and
//! the rules' reject groups are set up, and the phase lists with their
//! `skipAfter` targets are built.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{ErrorKind, LoadError, LoadErrors};
use crate::operator::{Operator, Rx};
use crate::rule::{Disruptive, Rule};
use crate::vars::Var;

use super::load::Loader;
use super::{Engine, Inner, Item};

/// The values a prefiltered rule inspects, as a unit a transaction can
/// summarise once per phase: the union of the prefilter bits of every value
/// of `vars` after pipeline `chain_id`. Rules with the same targets and
/// pipeline share one group (CRS has a few dozen).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RejectGroup {
    /// Each variable, and for `XML` whether it is the attributes
    /// (`XML://@*`) rather than the text.
    pub vars: Vec<(Var, bool)>,
    pub chain_id: u32,
}

/// Whether a rule's first link can be judged by a group summary: a
/// prefiltered operator that is not negated, one value at a time (no
/// `multiMatch`), over variables that are fixed for the whole of a phase
/// and whose values the transformation cache keys (so their bits are
/// cached). Exclusions and keyed selectors only narrow the values, so the
/// union over the whole variable stays a superset and the test stays sound.
fn reject_vars(rule: &Rule) -> Option<Vec<(Var, bool)>> {
    if rule.pf_bit.is_none()
        || rule.negated
        || rule.unconditional
        || rule.actions.multi_match
        || rule.targets.is_empty()
    {
        return None;
    }
    let mut vars = Vec::new();
    for t in &rule.targets {
        let fixed = matches!(
            t.var,
            Var::Args
                | Var::ArgsGet
                | Var::ArgsPost
                | Var::ArgsNames
                | Var::ArgsGetNames
                | Var::ArgsPostNames
                | Var::RequestHeaders
                | Var::RequestHeadersNames
                | Var::RequestCookies
                | Var::RequestCookiesNames
                | Var::Files
                | Var::FilesNames
                | Var::ResponseHeaders
                | Var::ResponseHeadersNames
                | Var::RequestUri
                | Var::RequestUriRaw
                | Var::RequestLine
                | Var::RequestMethod
                | Var::RequestProtocol
                | Var::RequestFilename
                | Var::RequestBasename
                | Var::QueryString
                | Var::RequestBody
                | Var::ResponseBody
        ) || t.var == Var::Xml;
        if t.count || !fixed {
            return None;
        }
        let var = (t.var, t.var == Var::Xml && t.raw_key.contains('@'));
        if !vars.contains(&var) {
            vars.push(var);
        }
    }
    vars.sort_by_key(|&(v, attrs)| (v as u8, attrs));
    Some(vars)
}

impl Loader<'_> {
    pub(super) fn finish(mut self) -> Result<Engine, LoadErrors> {
        // Check every static regex and extract its prefilter literals on all
        // cores; compiling waits for first use (see `Rx::Lazy`).
        let patterns: Vec<String> = (self.rules.iter().flat_map(Rule::links))
            .filter_map(|l| match &l.op {
                Operator::Rx(Rx::Pending(p)) => Some(p.clone()),
                _ => None,
            })
            .collect();
        let mut results = compile_all(&patterns).into_iter();
        // One automaton for every prefiltered regex: a value is scanned once
        // and the result serves every pipeline that leaves it unchanged
        // (ignoring ASCII case, as the scan does).
        let mut group: LiteralSets = Vec::new();
        let mut own_groups: HashMap<Var, LiteralSets> = HashMap::new();
        // Gives a link the next bit, set by `lits`, in the shared automaton
        // and in the own automaton of each candidate variable it reads.
        let mut add_prefilter = |l: &mut Rule, lits: Vec<Vec<u8>>| {
            let bit = group.len() as u32;
            let mut seen: Vec<Var> = Vec::new();
            for t in &l.targets {
                if has_own_automaton_candidate(t.var) && !seen.contains(&t.var) {
                    seen.push(t.var);
                    own_groups
                        .entry(t.var)
                        .or_default()
                        .push((bit, lits.clone()));
                }
            }
            group.push((bit, lits));
            l.pf_bit = Some(bit);
        };
        for r in self.rules.iter_mut() {
            let (file, line) = (r.file.clone(), r.line);
            r.for_each_link_mut(|l| {
                if let Operator::Rx(Rx::Pending(_)) = &l.op {
                    match results.next() {
                        Some(Ok((pattern, lits))) => {
                            l.op = Operator::Rx(Rx::Lazy(Box::new(crate::operator::LazyRegex {
                                pattern,
                                cell: std::sync::OnceLock::new(),
                            })));
                            if let Some(lits) = lits {
                                add_prefilter(l, lits);
                            }
                        }
                        Some(Err(e)) => {
                            self.errors.push(LoadError {
                                file: file.clone(),
                                line,
                                kind: ErrorKind::Regex(e),
                            });
                            l.op = Operator::NoMatch;
                        }
                        None => l.op = Operator::NoMatch,
                    }
                }
                if let Operator::Pm(pm) = &l.op {
                    // A phrase set is its own exact prefilter.
                    let lits: Vec<Vec<u8>> =
                        pm.phrases.iter().map(|p| p.to_ascii_lowercase()).collect();
                    // Very large phrase sets cost more to build into the shared
                    // automaton (load time) than they save per request.
                    if lits.len() <= MAX_PM_PREFILTER && crate::prefilter::usable(&lits) {
                        add_prefilter(l, lits);
                    }
                }
            });
        }
        if !self.errors.is_empty() {
            return Err(LoadErrors {
                errors: self.errors,
            });
        }
        let prefilter = if group.is_empty() {
            None
        } else {
            crate::prefilter::ChainPrefilter::build(&group)
        };
        // Same bit numbering and width as the shared automaton, so ranges
        // from either fit the same summaries.
        let mut own_prefilters = Vec::new();
        if let Some(shared) = &prefilter {
            let mut own_groups: Vec<_> = own_groups.into_iter().collect();
            own_groups.sort_by_key(|(var, _)| *var as u8);
            for (var, readers) in own_groups {
                // Only a variable that a small part of the rules reads gains
                // from an automaton of its own.
                if readers.is_empty() {
                    continue;
                }
                own_prefilters.push(OwnAutomaton {
                    var,
                    readers,
                    bits: shared.bits,
                    cell: std::sync::OnceLock::new(),
                });
            }
        }
        let mut own_prefilter_slot = [0u8; 256];
        for (i, own) in own_prefilters.iter().enumerate() {
            own_prefilter_slot[own.var as u8 as usize] = u8::try_from(i + 1).unwrap_or(0);
        }
        if prefilter.is_none() {
            // Without an automaton every regex simply runs.
            for r in self.rules.iter_mut() {
                r.for_each_link_mut(|l| l.pf_bit = None);
            }
        }
        let mut reject_groups: Vec<RejectGroup> = Vec::new();
        if prefilter.is_some() {
            let mut ids: HashMap<RejectGroup, u32> = HashMap::new();
            for r in self.rules.iter_mut() {
                if let Some(vars) = reject_vars(r) {
                    let group = RejectGroup {
                        vars,
                        chain_id: r.chain_id,
                    };
                    let id = *ids.entry(group.clone()).or_insert_with(|| {
                        reject_groups.push(group);
                        reject_groups.len() as u32 - 1
                    });
                    r.reject_group = Some(id);
                }
            }
        }
        for r in self.rules.iter_mut() {
            r.for_each_link_mut(|l| l.tx_compare = crate::rule::TxCompare::of(l));
        }
        let mut phases: [Vec<Item>; 6] = Default::default();
        for item in &self.order {
            match item {
                Item::Rule(i) => {
                    let p = self.rules[*i].phase as usize;
                    phases[p.min(5)].push(item.clone());
                }
                Item::Marker(_) => {
                    for ph in phases.iter_mut().skip(1) {
                        ph.push(item.clone());
                    }
                }
            }
        }
        let mut skip_targets: [Vec<u32>; 6] = Default::default();
        for (items, targets) in phases.iter().zip(skip_targets.iter_mut()) {
            *targets = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let Item::Rule(ri) = item else {
                        return u32::MAX;
                    };
                    let Some(marker) = &self.rules[*ri].actions.skip_after else {
                        return u32::MAX;
                    };
                    let at = items[i + 1..]
                        .iter()
                        .position(|it| matches!(it, Item::Marker(m) if m == marker));
                    at.map_or(items.len(), |k| i + 1 + k + 1) as u32
                })
                .collect();
        }
        let mut default_disruptive = [Disruptive::Pass; 6];
        for (p, a) in &self.defaults {
            if let Some(d) = a.disruptive {
                default_disruptive[(*p as usize).min(5)] = d;
            }
        }
        let chain_parent: Vec<u32> = self
            .chains
            .iter()
            .map(|c| match c.split_last() {
                Some((_, prefix)) => self.chain_ids.get(prefix).copied().unwrap_or(u32::MAX),
                None => u32::MAX,
            })
            .collect();
        Ok(Engine {
            inner: Arc::new(Inner {
                config: self.config,
                rules: self.rules,
                phases,
                skip_targets,
                default_disruptive,
                chain_parent,
                transform_chains: self.chains,
                prefilter,
                own_prefilter_slot,
                own_prefilters,
                reject_groups,
                cache_pool: std::sync::Mutex::new(Vec::new()),
                dynamic_regex: std::sync::Mutex::new(Default::default()),
            }),
        })
    }
}

/// Prefilter bits and the literals that set them, as the automata are built from.
type LiteralSets = Vec<(u32, Vec<Vec<u8>>)>;

/// An automaton over only the literals of the rules that read one scalar
/// variable, with the shared automaton's bit numbering. Built the first time
/// a value of the variable is scanned (or by [`Engine::warm_up`]), as regexes
/// are.
#[derive(Debug)]
pub(crate) struct OwnAutomaton {
    pub var: Var,
    readers: LiteralSets,
    bits: u32,
    cell: std::sync::OnceLock<Option<crate::prefilter::ChainPrefilter>>,
}

impl OwnAutomaton {
    /// The automaton; `None` if it cannot be built (the shared one serves).
    pub(crate) fn get(&self) -> Option<&crate::prefilter::ChainPrefilter> {
        self.cell
            .get_or_init(|| {
                crate::prefilter::ChainPrefilter::build(&self.readers).map(|mut own| {
                    own.bits = self.bits;
                    own
                })
            })
            .as_ref()
    }
}

/// Whether values of `var` are scanned with an automaton of their own:
/// the bodies, large and read by a few rules each (CRS v4: 16 of 313
/// prefiltered rules read REQUEST_BODY, 56 RESPONSE_BODY). Scalars only,
/// since their cached values are keyed by the variable itself (a list's
/// are keyed by the list they come from: ARGS's by ARGS_GET and ARGS_POST),
/// so the key tells exactly which rules read the value. Giving every
/// scalar that few rules read its own (the URI, the request line, twelve
/// in all) saved instructions but no time in the gateway benchmark: each
/// small automaton is cold memory on every request.
fn has_own_automaton_candidate(var: Var) -> bool {
    matches!(var, Var::RequestBody | Var::ResponseBody)
}

/// The largest `@pm` phrase set folded into the shared prefilter.
const MAX_PM_PREFILTER: usize = 800;

type Compiled = Result<(String, Option<Vec<Vec<u8>>>), String>;

/// Checks the syntax of patterns and extracts their prefilter literals on
/// every available core, keeping their order.
fn compile_all(patterns: &[String]) -> Vec<Compiled> {
    let one = |p: &String| -> Compiled {
        let hir = crate::pcre::parse_hir(&crate::pcre::translate(p))?;
        let lits = crate::prefilter::required_literals_hir(&hir);
        Ok((p.clone(), lits))
    };
    let threads = worker_threads();
    if threads == 1 || patterns.len() < 16 {
        return patterns.iter().map(one).collect();
    }
    // Interleave so each thread gets a similar mix of large and small patterns.
    let mut slots: Vec<Option<Compiled>> = (0..patterns.len()).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let one = &one;
                scope.spawn(move || {
                    patterns
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, p)| (i, one(p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A panicking worker leaves its slots empty; they become errors below.
            if let Ok(done) = h.join() {
                for (i, c) in done {
                    slots[i] = Some(c);
                }
            }
        }
    });
    slots
        .into_iter()
        .map(|s| s.unwrap_or_else(|| Err("regex compilation failed".into())))
        .collect()
}

/// How many threads load-time work is spread over: the available cores, at
/// most eight.
pub(super) fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8)
}
