//! Reading configuration: directives into rules, `Include` globs, defaults,
//! rule removal and update directives.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{ErrorKind, LoadError, LoadErrors};
use crate::lexer;
use crate::rule::{self, Actions, DataFiles, Disruptive, Rule};
use crate::source::FileSource;
use crate::transform::Transform;

use super::{Config, ConfigInput, Engine, Item, RuleLoadOptions};

/// A load in progress: the settings and rules so far.
pub(super) struct Loader<'a> {
    source: &'a dyn FileSource,
    pub(super) config: Config,
    pub(super) rules: Vec<Rule>,
    /// Markers by position: (index in `rules` before which it sits, name).
    pub(super) order: Vec<Item>,
    pub(super) defaults: HashMap<u8, Actions>,
    pub(super) chain_ids: HashMap<Vec<Transform>, u32>,
    pub(super) chains: Vec<Vec<Transform>>,
    pub(super) errors: Vec<LoadError>,
    /// True while the last rule loaded ends with `chain`.
    open_chain: bool,
    /// True while skipping the rest of a chain whose first rule had errors.
    discard_chain: bool,
    include_depth: usize,
}

struct DataDir<'a> {
    source: &'a dyn FileSource,
    dir: PathBuf,
}

impl DataFiles for DataDir<'_> {
    fn read_data(&mut self, name: &str) -> Result<Vec<u8>, String> {
        // An absolute name replaces the directory.
        self.source.read(&self.dir.join(name))
    }
}

/// Loads configuration inputs in order through a file source (see
/// [`Engine::load`]).
pub(super) fn load(
    source: &dyn FileSource,
    inputs: &[ConfigInput],
    opts: &RuleLoadOptions,
) -> Result<Engine, LoadErrors> {
    let mut l = Loader {
        source,
        config: Config::default(),
        rules: Vec::new(),
        order: Vec::new(),
        defaults: HashMap::new(),
        chain_ids: HashMap::new(),
        chains: Vec::new(),
        errors: Vec::new(),
        open_chain: false,
        discard_chain: false,
        include_depth: 0,
    };
    if let Some(p) = &opts.prelude {
        l.load_text("<prelude>", p, Path::new("."));
    }
    for input in inputs {
        match input {
            ConfigInput::File(p) => l.include(p, "<input>", 0),
            ConfigInput::Text {
                name,
                text,
                base_dir,
            } => l.load_text(name, text, base_dir),
        }
    }
    if let Some(p) = &opts.epilogue {
        l.load_text("<epilogue>", p, Path::new("."));
    }
    if l.open_chain {
        let (file, line) = l
            .rules
            .last()
            .map(|r| (r.file.clone(), r.line))
            .unwrap_or_default();
        l.errors.push(LoadError {
            file,
            line,
            kind: ErrorKind::Syntax("chain without a following rule".into()),
        });
    }
    // Regexes are checked in `finish`, after every directive, so their
    // errors come last; run it even after other errors so that every
    // problem is reported at once.
    l.finish()
}

impl Loader<'_> {
    fn err(&mut self, file: &str, line: usize, kind: ErrorKind) {
        self.errors.push(LoadError {
            file: file.to_string(),
            line,
            kind,
        });
    }

    fn include(&mut self, pattern: &Path, from: &str, line: usize) {
        if self.include_depth > 16 {
            self.err(
                from,
                line,
                ErrorKind::Syntax("Include nested too deeply".into()),
            );
            return;
        }
        let files = match self.source.glob(pattern) {
            Ok(f) => f,
            Err(e) => {
                self.err(from, line, ErrorKind::Io(e));
                return;
            }
        };
        for f in files {
            match self.source.read(&f) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
                    self.include_depth += 1;
                    self.load_text(&f.display().to_string(), &text, &dir);
                    self.include_depth -= 1;
                }
                Err(e) => self.err(from, line, ErrorKind::Io(e)),
            }
        }
    }

    fn load_text(&mut self, name: &str, text: &str, base_dir: &Path) {
        let (directives, lex_errors) = lexer::lex(text);
        for (line, e) in lex_errors {
            self.err(name, line, ErrorKind::Syntax(e));
        }
        for d in directives {
            if let Err(kind) = self.directive(name, base_dir, &d) {
                self.err(name, d.line, kind);
            }
        }
    }

    fn directive(&mut self, file: &str, dir: &Path, d: &lexer::Directive) -> Result<(), ErrorKind> {
        if self.config.set(d)? {
            return Ok(());
        }
        match d.name.to_ascii_lowercase().as_str() {
            "secrule" => {
                let vars = d.arg(0)?;
                let op = d.arg(1)?;
                let actions = d.args.get(2).map(String::as_str).unwrap_or("");
                self.add_rule(file, dir, d.line, Some((vars, op)), actions)
            }
            "secaction" => self.add_rule(file, dir, d.line, None, d.arg(0)?),
            "secmarker" => {
                self.order.push(Item::Marker(d.arg(0)?.to_string()));
                Ok(())
            }
            "secdefaultaction" => {
                let mut a = Actions::default();
                let mut errs = Vec::new();
                rule::parse_actions(d.arg(0)?, &mut a, &mut errs);
                if let Some(e) = errs.into_iter().next() {
                    return Err(e);
                }
                let phase = a.phase.unwrap_or(2);
                self.defaults.insert(phase, a);
                Ok(())
            }
            "include" => {
                // An absolute path replaces the directory.
                self.include(&dir.join(d.arg(0)?), file, d.line);
                Ok(())
            }
            "secruleremovebyid" | "secruleremovebytag" | "secruleremovebymsg" => {
                self.remove_rules(picker(d, &d.args)?);
                Ok(())
            }
            "secruleupdatetargetbyid" | "secruleupdatetargetbytag" | "secruleupdatetargetbymsg" => {
                // The selector, checked first; `picker` reads it.
                d.arg(0)?;
                let (targets, exclusions) = rule::parse_targets(d.arg(1)?)?;
                let replace = d.args.get(2).map(|r| rule::parse_targets(r)).transpose()?;
                let pick = picker(d, &d.args[..1])?;
                for r in self.rules.iter_mut().filter(|r| pick(r)) {
                    r.exclusions.extend(exclusions.iter().cloned());
                    if let Some((old, _)) = &replace {
                        r.targets.retain(|t| {
                            !old.iter().any(|o| {
                                o.var == t.var && o.raw_key.eq_ignore_ascii_case(&t.raw_key)
                            })
                        });
                    }
                    r.targets.extend(targets.iter().cloned());
                }
                Ok(())
            }
            "secruleupdateactionbyid" => {
                let ranges = rule::parse_id_ranges(d.arg(0)?)?;
                let text = d.arg(1)?;
                let mut errs = Vec::new();
                for r in self.rules.iter_mut().filter(|r| r.id_in(&ranges)) {
                    let mut upd = Actions::default();
                    rule::parse_actions(text, &mut upd, &mut errs);
                    merge_update(&mut r.actions, upd);
                    if r.actions.transforms.iter().any(Option::is_none) {
                        r.transforms = resolve_transforms(&[], &r.actions.transforms);
                        r.chain_id = intern(&mut self.chain_ids, &mut self.chains, &r.transforms);
                    }
                }
                if let Some(e) = errs.into_iter().next() {
                    return Err(e);
                }
                Ok(())
            }
            _ => Err(ErrorKind::UnknownDirective(d.name.clone())),
        }
    }

    fn remove_rules(&mut self, pred: impl Fn(&Rule) -> bool) {
        let removed: Vec<bool> = self.rules.iter().map(&pred).collect();
        if !removed.iter().any(|&r| r) {
            return;
        }
        // Indices shift, so rebuild the order list with new indices.
        let mut new_index = vec![usize::MAX; self.rules.len()];
        let mut n = 0;
        for (i, r) in removed.iter().enumerate() {
            if !r {
                new_index[i] = n;
                n += 1;
            }
        }
        let mut k = 0;
        self.rules.retain(|_| {
            let keep = !removed[k];
            k += 1;
            keep
        });
        self.order = std::mem::take(&mut self.order)
            .into_iter()
            .filter_map(|it| match it {
                Item::Rule(i) if new_index[i] == usize::MAX => None,
                Item::Rule(i) => Some(Item::Rule(new_index[i])),
                m => Some(m),
            })
            .collect();
    }

    fn add_rule(
        &mut self,
        file: &str,
        dir: &Path,
        line: usize,
        spec: Option<(&str, &str)>,
        actions_text: &str,
    ) -> Result<(), ErrorKind> {
        let mut actions = Actions::default();
        let mut errs = Vec::new();
        rule::parse_actions(actions_text, &mut actions, &mut errs);
        let (targets, exclusions, negated, op, op_name, op_arg, unconditional) = match spec {
            Some((vars, op)) => {
                let (t, e) = match rule::parse_targets(vars) {
                    Ok(x) => x,
                    Err(k) => {
                        errs.push(k);
                        (Vec::new(), Vec::new())
                    }
                };
                let mut data = DataDir {
                    source: self.source,
                    dir: dir.to_path_buf(),
                };
                match rule::parse_operator(op, &mut data) {
                    Ok((neg, o, n, a)) => (t, e, neg, o, n, a, false),
                    Err(k) => {
                        errs.push(k);
                        (
                            t,
                            e,
                            false,
                            crate::operator::Operator::NoMatch,
                            String::new(),
                            String::new(),
                            false,
                        )
                    }
                }
            }
            None => (
                Vec::new(),
                Vec::new(),
                false,
                crate::operator::Operator::UnconditionalMatch,
                "unconditionalMatch".into(),
                String::new(),
                true,
            ),
        };
        if self.discard_chain {
            self.discard_chain = actions.chain;
            return Ok(());
        }
        let is_child = self.open_chain;
        let phase = if is_child {
            self.rules.last().map(|r| r.phase).unwrap_or(2)
        } else {
            actions.phase.unwrap_or(2)
        };
        if !is_child && actions.id.is_none() {
            errs.push(ErrorKind::Syntax("rule without id".into()));
        }
        if is_child && (actions.id.is_some() || actions.phase.is_some()) {
            // ModSecurity rejects these in chained rules; so do we.
            errs.push(ErrorKind::Syntax(
                "id and phase belong on the first rule of a chain".into(),
            ));
        }
        let failed = !errs.is_empty();
        for e in errs {
            self.err(file, line, e);
        }
        if failed {
            // Keep chain bookkeeping consistent after an error.
            self.open_chain = false;
            self.discard_chain = actions.chain;
            return Ok(());
        }
        let defaults = self.defaults.get(&phase).cloned().unwrap_or_default();
        let transforms = resolve_transforms(&defaults.transforms, &actions.transforms);
        if actions.log.is_none() {
            actions.log = defaults.log;
        }
        if !is_child {
            if actions.disruptive.is_none() {
                actions.disruptive = defaults.disruptive.or(Some(Disruptive::Pass));
            }
            if actions.status.is_none() {
                actions.status = defaults.status;
            }
        }
        let chain_id = intern(&mut self.chain_ids, &mut self.chains, &transforms);
        let chain = actions.chain;
        let r = Rule {
            id: actions.id.unwrap_or(0),
            phase,
            file: file.to_string(),
            line,
            targets,
            exclusions,
            op,
            negated,
            op_name,
            op_arg,
            transforms,
            chain_id,
            actions,
            chain: None,
            unconditional,
            pf_bit: None,
            reject_group: None,
            tx_compare: None,
        };
        if is_child {
            if let Some(parent) = self.rules.last_mut() {
                let mut slot = &mut parent.chain;
                while let Some(next) = slot {
                    slot = &mut next.chain;
                }
                *slot = Some(Box::new(r));
            }
        } else {
            self.order.push(Item::Rule(self.rules.len()));
            self.rules.push(r);
        }
        self.open_chain = chain;
        Ok(())
    }
}

fn merge_update(a: &mut Actions, u: Actions) {
    a.disruptive = u.disruptive.or(a.disruptive);
    a.status = u.status.or(a.status);
    a.msg = u.msg.or(a.msg.take());
    a.logdata = u.logdata.or(a.logdata.take());
    a.severity = u.severity.or(a.severity);
    a.log = u.log.or(a.log);
    if !u.tags.is_empty() {
        a.tags.extend(u.tags);
    }
    if !u.transforms.is_empty() {
        a.transforms.extend(u.transforms);
    }
    a.actions.extend(u.actions);
}

/// Which rules a directive applies to.
type Picker = Box<dyn Fn(&Rule) -> bool>;

/// The rules a `…ById`, `…ByTag` or `…ByMsg` directive picks: those with an
/// id in the ranges of `ids`, or those with a tag or a literal `msg` that the
/// regex in its first argument matches.
fn picker(d: &lexer::Directive, ids: &[String]) -> Result<Picker, ErrorKind> {
    let by = d.name.to_ascii_lowercase();
    if by.ends_with("byid") {
        let mut ranges = Vec::new();
        for a in ids {
            ranges.extend(rule::parse_id_ranges(a)?);
        }
        return Ok(Box::new(move |r: &Rule| r.id_in(&ranges)));
    }
    let re = crate::pcre::compile_cached(d.arg(0)?, false).map_err(ErrorKind::Regex)?;
    Ok(if by.ends_with("bytag") {
        Box::new(move |r: &Rule| r.has_tag(&re))
    } else {
        Box::new(move |r: &Rule| r.msg_matches(&re))
    })
}

fn resolve_transforms(defaults: &[Option<Transform>], own: &[Option<Transform>]) -> Vec<Transform> {
    let mut out = Vec::new();
    for t in defaults.iter().chain(own.iter()) {
        match t {
            None => out.clear(),
            Some(t) => out.push(*t),
        }
    }
    out
}

/// Interns a pipeline and, first, every prefix of it, so that a pipeline's
/// parent (itself minus its last transformation) always has an id: values
/// are then transformed one step from their cached parent.
fn intern(
    ids: &mut HashMap<Vec<Transform>, u32>,
    chains: &mut Vec<Vec<Transform>>,
    t: &[Transform],
) -> u32 {
    if let Some(&id) = ids.get(t) {
        return id;
    }
    if let Some((_, prefix)) = t.split_last() {
        intern(ids, chains, prefix);
    }
    let id = chains.len() as u32;
    chains.push(t.to_vec());
    ids.insert(t.to_vec(), id);
    id
}
