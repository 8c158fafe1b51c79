//! Evaluating one rule link against the transaction: the values of its
//! targets (with exclusions applied), each transformed and tested by the
//! operator, collecting the matches.

use std::borrow::Cow;
use std::time::Instant;

use regex::bytes::Regex;

use crate::macros::Macro;
use crate::operator::OpContext;
use crate::rule::{Rule, Selector, Target};
use crate::transform::Transform;
use crate::vars::Var;
use crate::FastMap;

use super::cache::Caches;
use super::expand::{expand, scalar_value};
use super::{push_range, store_index, MatchedList, Request, State, TxMeta};

/// A match of one target value, its name and value kept in
/// `Caches::found_buf` so matching allocates nothing.
pub(super) struct Found {
    pub(super) name: std::ops::Range<usize>,
    pub(super) value: std::ops::Range<usize>,
    pub(super) captures: Option<Vec<Vec<u8>>>,
}

/// Writes a variable's display name (`ARGS:q`, `REQUEST_URI`) into a buffer.
fn push_name(buf: &mut Vec<u8>, var: Var, key: &str) -> std::ops::Range<usize> {
    let start = buf.len();
    buf.extend_from_slice(var.name().as_bytes());
    if var.is_collection() && var != Var::Xml {
        buf.push(b':');
        buf.extend_from_slice(key.as_bytes());
    }
    start..buf.len()
}

/// Writes the display name of a count target (`&TX:key`, `&ARGS`).
fn push_count_name(buf: &mut Vec<u8>, target: &Target) -> std::ops::Range<usize> {
    let start = buf.len();
    buf.push(b'&');
    buf.extend_from_slice(target.var.name().as_bytes());
    if !target.raw_key.is_empty() {
        buf.push(b':');
        buf.extend_from_slice(target.raw_key.as_bytes());
    }
    start..buf.len()
}

/// Runs a pipeline; the result is left in `a`.
fn apply_chain(chain: &[Transform], value: &[u8], a: &mut Vec<u8>, b: &mut Vec<u8>) {
    a.clear();
    a.extend_from_slice(value);
    for t in chain {
        t.apply(a, b);
        std::mem::swap(a, b);
    }
}

struct Ctx<'a> {
    req: &'a Request,
    st: &'a State,
    meta: &'a TxMeta,
    regex: &'a mut FastMap<Vec<u8>, Option<Regex>>,
    shared_regex: &'a std::sync::Mutex<FastMap<Vec<u8>, Option<Regex>>>,
    rule: &'a Rule,
    started: Instant,
}

/// Dynamic regexes are bounded per transaction so macro-built patterns
/// cannot fill memory.
const MAX_DYNAMIC_REGEX: usize = 64;
/// Macro-built patterns the engine keeps across transactions.
const MAX_SHARED_DYNAMIC_REGEX: usize = 256;

impl OpContext for Ctx<'_> {
    fn expand<'m>(&'m self, m: &'m Macro) -> Cow<'m, [u8]> {
        expand(self.req, self.st, self.meta, self.started, self.rule, m)
    }

    fn dynamic_regex(&mut self, pattern: &[u8]) -> Option<Regex> {
        if let Some(r) = self.regex.get(pattern) {
            return r.clone();
        }
        // Patterns built from configuration variables are the same on every
        // request, so the engine keeps them; the shared cache is bounded, so
        // patterns built from request data cannot grow it without limit.
        if let Ok(shared) = self.shared_regex.lock() {
            if let Some(r) = shared.get(pattern) {
                return r.clone();
            }
        }
        let re = crate::pcre::compile(&String::from_utf8_lossy(pattern), false).ok();
        let stored = match self.shared_regex.lock() {
            Ok(mut shared) if shared.len() < MAX_SHARED_DYNAMIC_REGEX => {
                shared.insert(pattern.to_vec(), re.clone());
                true
            }
            _ => false,
        };
        if !stored && self.regex.len() < MAX_DYNAMIC_REGEX {
            self.regex.insert(pattern.to_vec(), re.clone());
        }
        re
    }
}

/// Where the values of one target come from.
pub(super) enum Source<'a> {
    None,
    /// (key, value) pairs; `names` yields the keys as values.
    List {
        list: &'a [(String, Vec<u8>)],
        id: Var,
        names: bool,
    },
    Store(&'a FastMap<String, Vec<u8>>),
    Matched {
        list: &'a MatchedList,
        names: bool,
    },
    Scalar(Cow<'a, [u8]>, Option<Var>),
    XmlAttrs(&'a [(String, Vec<u8>)]),
}

/// Read-only view of the transaction used while a rule's targets are
/// evaluated; only the caches are written.
pub(super) struct Evaluator<'t> {
    pub(super) inner: &'t crate::engine::Inner,
    pub(super) req: &'t Request,
    pub(super) st: &'t State,
    pub(super) meta: &'t TxMeta,
    pub(super) started: Instant,
    pub(super) caches: &'t mut Caches,
}

impl<'t> Evaluator<'t> {
    fn sources(&self, target: &Target) -> [Source<'t>; 2] {
        self.sources_of(target.var, &target.raw_key)
    }

    /// Where the values of variable `var` come from; `raw_key` tells the
    /// XML text (`XML:/*`) from its attributes (`XML://@*`).
    pub(super) fn sources_of(&self, var: Var, raw_key: &str) -> [Source<'t>; 2] {
        let r = self.req;
        let list =
            |list: &'t [(String, Vec<u8>)], id: Var, names: bool| Source::List { list, id, names };
        // A variable with one list of its own, keyed by the variable itself.
        let one = |l: &'t [(String, Vec<u8>)], names: bool| [list(l, var, names), Source::None];
        match var {
            Var::Args => [
                list(&r.args_get, Var::ArgsGet, false),
                list(&r.args_post, Var::ArgsPost, false),
            ],
            Var::ArgsNames => [
                list(&r.args_get, Var::ArgsGetNames, true),
                list(&r.args_post, Var::ArgsPostNames, true),
            ],
            Var::ArgsGet => one(&r.args_get, false),
            Var::ArgsPost => one(&r.args_post, false),
            Var::ArgsGetNames => one(&r.args_get, true),
            Var::ArgsPostNames => one(&r.args_post, true),
            Var::RequestHeaders => one(&r.headers, false),
            Var::RequestHeadersNames => one(&r.headers, true),
            Var::RequestCookies => one(&r.cookies, false),
            Var::RequestCookiesNames => one(&r.cookies, true),
            Var::Files => one(&r.files, false),
            Var::FilesNames => one(&r.files, true),
            Var::FilesSizes => one(&r.files_sizes, false),
            Var::MultipartPartHeaders => one(&r.part_headers, false),
            Var::ResponseHeaders => one(&r.resp_headers, false),
            Var::ResponseHeadersNames => one(&r.resp_headers, true),
            v if v.is_store() => [Source::Store(&self.st.stores[store_index(v)]), Source::None],
            Var::Xml => match &r.xml {
                Some(x) if raw_key.contains('@') => [Source::XmlAttrs(&x.attrs), Source::None],
                Some(x) => [
                    Source::Scalar(Cow::Borrowed(x.text.as_slice()), Some(Var::Xml)),
                    Source::None,
                ],
                None => [Source::None, Source::None],
            },
            Var::MatchedVars | Var::MatchedVarsNames => [
                Source::Matched {
                    list: &self.st.matched_vars,
                    names: var == Var::MatchedVarsNames,
                },
                Source::None,
            ],
            Var::FilesTmpNames | Var::Rule => [Source::None, Source::None],
            v => match scalar_value(r, self.st, self.meta, self.started, v) {
                Some(val) => {
                    let id = match v {
                        Var::MatchedVar
                        | Var::MatchedVarName
                        | Var::Duration
                        | Var::ReqbodyProcessor
                        | Var::ReqbodyError
                        | Var::HighestSeverity => None,
                        v => Some(v),
                    };
                    [Source::Scalar(val, id), Source::None]
                }
                None => [Source::None, Source::None],
            },
        }
    }

    fn excluded(&self, starter: &Rule, link: &Rule, var: Var, key: &str) -> bool {
        if link
            .exclusions
            .iter()
            .any(|e| e.var == var && e.selector.matches(key))
        {
            return true;
        }
        for (ids, e) in &self.st.removed_targets {
            if e.var == var && starter.id_in(ids) && e.selector.matches(key) {
                return true;
            }
        }
        for (re, e, tagged) in &self.st.removed_targets_by_tag {
            if e.var != var || !e.selector.matches(key) {
                continue;
            }
            let rules = &self.inner.rules;
            let owner = rules.as_ptr() as usize;
            let (built_for, set) = tagged.get_or_init(|| {
                (
                    owner,
                    rules
                        .iter()
                        .filter(|r| r.has_tag(re))
                        .map(|r| r as *const Rule as usize)
                        .map(|a| (a, ()))
                        .collect(),
                )
            });
            // `starter` is always one of the engine's rules; the set was built
            // for this engine unless the ctl's rule is shared with another.
            let has = if *built_for == owner {
                set.contains_key(&(starter as *const Rule as usize))
            } else {
                starter.has_tag(re)
            };
            if has {
                return true;
            }
        }
        false
    }

    /// [`eval_target`](Self::eval_target) and the value test for a link of
    /// the [`TxCompare`](crate::rule::TxCompare) shape: the same exclusions,
    /// the same comparison and the same matched name and value.
    pub(super) fn eval_tx_compare(
        &mut self,
        starter: &Rule,
        link: &Rule,
        compare: &crate::rule::TxCompare,
        found: &mut Vec<Found>,
    ) {
        let entry = self.st.stores[store_index(Var::Tx)]
            .get_key_value(compare.key.as_str())
            .filter(|(k, _)| !self.excluded(starter, link, Var::Tx, k));
        let buf = &mut self.caches.found_buf;
        if compare.count {
            let count = usize::from(entry.is_some());
            if compare.compare.holds(count as i64, compare.operand) == link.negated {
                return;
            }
            let mut digits = [0u8; 20];
            let value = push_range(buf, format_count(count, &mut digits));
            let name = push_count_name(buf, &link.targets[0]);
            found.push(Found {
                name,
                value,
                captures: None,
            });
            return;
        }
        let Some((key, value)) = entry else { return };
        if compare
            .compare
            .holds(crate::operator::parse_int(value), compare.operand)
            == link.negated
        {
            return;
        }
        let value = push_range(buf, value);
        let name = push_name(buf, Var::Tx, key);
        found.push(Found {
            name,
            value,
            captures: None,
        });
    }

    pub(super) fn eval_target(
        &mut self,
        starter: &Rule,
        link: &Rule,
        target: &Target,
        chain: &[Transform],
        found: &mut Vec<Found>,
    ) {
        let sel = &target.selector;
        let var = target.var;
        let mut count = 0usize;
        // A value that passed the selector and the exclusions: counted for
        // `&VAR`, else tested.
        let mut take = |this: &mut Self, key: &str, value: &[u8], cache_key: Option<(u8, u32)>| {
            count += 1;
            if !target.count {
                this.test_value(link, var, key, value, cache_key, chain, found);
            }
        };
        for source in self.sources(target) {
            match source {
                Source::None => {}
                Source::List { list, id, names } => {
                    if !target.count
                        && !link.negated
                        && matches!(sel, Selector::All)
                        && !list.is_empty()
                        && self.list_cannot_match(link, list, id, names, chain)
                    {
                        continue;
                    }
                    for (i, (k, v)) in list.iter().enumerate() {
                        if sel.matches(k) && !self.excluded(starter, link, var, k) {
                            let value: &[u8] = if names { k.as_bytes() } else { v };
                            take(self, k, value, Some((id as u8, i as u32)));
                        }
                    }
                }
                Source::Store(map) => {
                    if let Selector::Key(key) = sel {
                        // Store keys are lowercase, like selector keys: look
                        // the one key up instead of scanning the collection.
                        if let Some((k, v)) = map.get_key_value(key.as_str()) {
                            if !self.excluded(starter, link, var, k) {
                                take(self, k, v, None);
                            }
                        }
                        continue;
                    }
                    for (k, v) in map.iter() {
                        if sel.matches(k) && !self.excluded(starter, link, var, k) {
                            take(self, k, v, None);
                        }
                    }
                }
                Source::Matched { list, names } => {
                    for (k, v) in list.iter() {
                        if sel.matches(k) && !self.excluded(starter, link, var, k) {
                            take(self, k, if names { k.as_bytes() } else { v }, None);
                        }
                    }
                }
                Source::XmlAttrs(list) => {
                    for (i, (_, v)) in list.iter().enumerate() {
                        take(self, "", v, Some((Var::Xml as u8, i as u32 + 1)));
                    }
                }
                Source::Scalar(v, id) => {
                    if !self.excluded(starter, link, var, "") {
                        take(self, "", &v, id.map(|id| (id as u8, 0)));
                    }
                }
            }
        }
        if target.count {
            let mut digits = [0u8; 20];
            let v = format_count(count, &mut digits);
            let before = found.len();
            self.test_value(link, var, "", v, None, &[], found);
            if found.len() > before {
                let name = push_count_name(&mut self.caches.found_buf, target);
                if let Some(f) = found.last_mut() {
                    f.name = name;
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn test_value(
        &mut self,
        link: &Rule,
        var: Var,
        key: &str,
        value: &[u8],
        cache_key: Option<(u8, u32)>,
        chain: &[Transform],
        found: &mut Vec<Found>,
    ) {
        let want_caps = link.actions.capture;
        if link.actions.multi_match {
            // The operator runs on the value before any transformation and
            // after each one that changed it, as ModSecurity's multiMatch does.
            let mut cur = std::mem::take(&mut self.caches.scratch);
            let mut next = std::mem::take(&mut self.caches.scratch2);
            cur.clear();
            cur.extend_from_slice(value);
            let mut first = true;
            let mut steps = chain.iter();
            loop {
                if !first {
                    match steps.next() {
                        Some(t) => {
                            if t.is_noop_on(&cur) {
                                continue;
                            }
                            t.apply(&cur, &mut next);
                            if next == cur {
                                continue;
                            }
                            std::mem::swap(&mut cur, &mut next);
                        }
                        None => break,
                    }
                }
                first = false;
                let mut caps = Vec::new();
                if self.run_op(link, &cur, if want_caps { Some(&mut caps) } else { None }) {
                    let v = push_range(&mut self.caches.found_buf, &cur);
                    let n = push_name(&mut self.caches.found_buf, var, key);
                    found.push(Found {
                        name: n,
                        value: v,
                        captures: want_caps.then_some(caps),
                    });
                }
            }
            self.caches.scratch = cur;
            self.caches.scratch2 = next;
            return;
        }
        let prefilter = link
            .pf_bit
            .and_then(|bit| Some((self.inner.prefilter.as_ref()?, bit)));
        let mut cached: Option<Option<std::ops::Range<usize>>> = None;
        if let Some((v, i)) = cache_key {
            let ck = (v, i, link.chain_id);
            if let Some((pf, bit)) = prefilter {
                let bits = self.value_bits(ck, chain, value, pf);
                if let Some(r) = bits {
                    let set = self.caches.bit_arena[r]
                        .get((bit / 64) as usize)
                        .is_some_and(|w| w & (1 << (bit % 64)) != 0);
                    if !set {
                        // None of the regex's required literals occurs: it
                        // cannot match, so its result is known without running it.
                        if link.negated {
                            let r = self.cached_value(ck, chain, value);
                            let Caches {
                                arena, found_buf, ..
                            } = &mut *self.caches;
                            let input: &[u8] = match &r {
                                Some(Some(r)) => &arena[r.clone()],
                                _ => value,
                            };
                            let v = push_range(found_buf, input);
                            let n = push_name(found_buf, var, key);
                            found.push(Found {
                                name: n,
                                value: v,
                                captures: None,
                            });
                        }
                        return;
                    }
                }
            }
            if !chain.is_empty() {
                cached = self.cached_value(ck, chain, value);
            }
        }
        let Caches {
            regex,
            scratch,
            scratch2,
            arena,
            found_buf,
            ..
        } = &mut *self.caches;
        let input: &[u8] = match cached {
            Some(Some(r)) => &arena[r],
            Some(None) => value,
            None if chain.is_empty() => value,
            None => {
                apply_chain(chain, value, scratch, scratch2);
                scratch
            }
        };
        let mut caps = Vec::new();
        let mut ctx = Ctx {
            req: self.req,
            st: self.st,
            meta: self.meta,
            regex,
            shared_regex: &self.inner.dynamic_regex,
            rule: link,
            started: self.started,
        };
        let m = link.op.eval(
            &mut ctx,
            input,
            if want_caps { Some(&mut caps) } else { None },
        ) != link.negated;
        if m {
            let v = push_range(found_buf, input);
            let n = push_name(found_buf, var, key);
            found.push(Found {
                name: n,
                value: v,
                captures: want_caps.then_some(caps),
            });
        }
    }

    fn run_op(&mut self, link: &Rule, input: &[u8], caps: Option<&mut Vec<Vec<u8>>>) -> bool {
        let mut ctx = Ctx {
            req: self.req,
            st: self.st,
            meta: self.meta,
            regex: &mut self.caches.regex,
            shared_regex: &self.inner.dynamic_regex,
            rule: link,
            started: self.started,
        };
        link.op.eval(&mut ctx, input, caps) != link.negated
    }
}

/// Formats a count in decimal into a stack buffer.
fn format_count(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}
