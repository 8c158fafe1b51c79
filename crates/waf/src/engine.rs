//! Loading a rule set into an [`Engine`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ErrorKind, LoadError, LoadErrors};
use crate::lexer;
use crate::operator::{Operator, Rx};
use crate::rule::{self, Actions, DataFiles, Disruptive, EngineMode, Rule};
use crate::source::{FileSource, FsSource};
use crate::transform::Transform;
use crate::tx::{Transaction, TxMeta};
use crate::vars::Var;

/// Options for loading rules.
#[derive(Debug, Clone, Default)]
pub struct RuleLoadOptions {
    /// Configuration text evaluated before the files, e.g. a
    /// `SecRuleEngine DetectionOnly` or a `SecAction` setting CRS variables.
    pub prelude: Option<String>,
    /// Configuration text evaluated after the files.
    pub epilogue: Option<String>,
}

/// A piece of configuration to load.
#[derive(Debug, Clone)]
pub enum ConfigInput {
    /// A file or a glob (`rules/*.conf`) read through the file source.
    File(PathBuf),
    /// A configuration text with a name for error positions and a base
    /// directory for relative `Include` and data file paths.
    Text {
        name: String,
        text: String,
        base_dir: PathBuf,
    },
}

/// What `SecRequestBodyLimitAction` says to do with a body over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitAction {
    Reject,
    ProcessPartial,
}

/// Engine-wide settings made by directives.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub mode: EngineMode,
    pub request_body_access: bool,
    pub response_body_access: bool,
    /// ModSecurity's default, 12.5 MiB: the hard cap on a buffered request body.
    pub request_body_limit: u64,
    /// ModSecurity's default, 128 KiB: the cap on a body without files.
    pub request_body_no_files_limit: u64,
    pub request_body_limit_action: LimitAction,
    /// ModSecurity's default, 512 KiB of response body inspected.
    pub response_body_limit: u64,
    pub response_body_limit_action: LimitAction,
    pub response_mime_types: Vec<String>,
    /// How many arguments are parsed at most; 1000 like ModSecurity's default.
    pub arguments_limit: usize,
    pub component_signatures: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: EngineMode::On,
            request_body_access: false,
            response_body_access: false,
            request_body_limit: 13_107_200,
            request_body_no_files_limit: 131_072,
            request_body_limit_action: LimitAction::Reject,
            response_body_limit: 524_288,
            response_body_limit_action: LimitAction::ProcessPartial,
            response_mime_types: vec!["text/plain".into(), "text/html".into()],
            arguments_limit: 1000,
            component_signatures: Vec::new(),
        }
    }
}

/// An item of a phase's rule list.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    Rule(usize),
    Marker(String),
}

pub(crate) struct Inner {
    pub config: Config,
    pub rules: Vec<Rule>,
    /// Rules (by index) and markers of each phase 1..=5, in order.
    pub phases: [Vec<Item>; 6],
    /// Per phase, parallel to `phases`: for a rule with `skipAfter`, the
    /// index just past its marker (or the end), resolved once at load so a
    /// skip costs no search.
    pub skip_targets: [Vec<u32>; 6],
    /// The default disruptive action (what `block` means) per phase.
    pub default_disruptive: [Disruptive; 6],
    pub transform_chains: Vec<Vec<Transform>>,
    /// For each pipeline, the id of its parent (all but the last step);
    /// `u32::MAX` for the empty pipeline.
    pub chain_parent: Vec<u32>,
    /// Literal prefilter per pipeline id (see `prefilter.rs`).
    pub prefilter: Option<crate::prefilter::ChainPrefilter>,
    /// For each body variable that some prefiltered rule reads (see
    /// `has_own_automaton_candidate`), the same bits built from only those
    /// rules' literals: a body is scanned with this smaller automaton
    /// instead of the shared one. Its bits are only ever read by those
    /// rules.
    pub own_prefilters: Vec<OwnAutomaton>,
    /// Per variable id, 1 + its index in `own_prefilters`, or 0.
    pub own_prefilter_slot: [u8; 256],
    /// Target sets (with their pipeline) of the rules that can be skipped
    /// whole when no value of the set carries their prefilter bit.
    pub reject_groups: Vec<RejectGroup>,
    /// Idle per-transaction buffers, reused by the next transaction.
    pub cache_pool: std::sync::Mutex<Vec<crate::tx::Caches>>,
    /// Regexes compiled from macro-expanded `@rx` patterns.
    pub dynamic_regex: std::sync::Mutex<crate::FastMap<Vec<u8>, Option<regex::bytes::Regex>>>,
}

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

/// A compiled rule set. Cheap to clone; share it between threads.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.inner.rules.len())
            .finish()
    }
}

struct Loader<'a> {
    source: &'a dyn FileSource,
    config: Config,
    rules: Vec<Rule>,
    /// Markers by position: (index in `rules` before which it sits, name).
    order: Vec<Item>,
    defaults: HashMap<u8, Actions>,
    chain_ids: HashMap<Vec<Transform>, u32>,
    chains: Vec<Vec<Transform>>,
    errors: Vec<LoadError>,
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
        let p = Path::new(name);
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        };
        self.source.read(&p)
    }
}

impl Engine {
    /// Loads rule files from the file system, in order. A path may be a
    /// glob (`rules/*.conf`) or a directory, which loads its `*.conf` files
    /// in name order.
    pub fn from_files<P: AsRef<Path>>(
        paths: &[P],
        opts: &RuleLoadOptions,
    ) -> Result<Engine, LoadErrors> {
        let inputs: Vec<ConfigInput> = paths
            .iter()
            .map(|p| {
                let p = p.as_ref();
                if p.is_dir() {
                    ConfigInput::File(p.join("*.conf"))
                } else {
                    ConfigInput::File(p.to_path_buf())
                }
            })
            .collect();
        Engine::load(&FsSource, &inputs, opts)
    }

    /// Loads a configuration text; `name` appears in error positions.
    pub fn from_str_with_name(text: &str, name: &str) -> Result<Engine, LoadErrors> {
        let inputs = [ConfigInput::Text {
            name: name.to_string(),
            text: text.to_string(),
            base_dir: PathBuf::from("."),
        }];
        Engine::load(&FsSource, &inputs, &RuleLoadOptions::default())
    }

    /// Loads configuration inputs in order through a file source.
    pub fn load(
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

    /// Starts a transaction for one request.
    pub fn transaction(&self, meta: TxMeta) -> Transaction {
        Transaction::new(self.clone(), meta)
    }

    /// Whether both handles are the same loaded rule set (clones of one
    /// engine), as opposed to two loads of equal rules.
    pub fn same_rules_as(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Compiles every regex and builds every `@pm` phrase set's automaton and
    /// every variable's own automaton now instead of on first use, so the
    /// first requests do not pay for them; returns the patterns and phrase
    /// sets that fail (which then never match). Call it once after loading, e.g. on a background thread.
    pub fn warm_up(&self) -> Result<(), LoadErrors> {
        let mut errors = Vec::new();
        let mut lazies = Vec::new();
        let mut phrase_sets = Vec::new();
        for r in &self.inner.rules {
            let mut link: Option<&Rule> = Some(r);
            while let Some(l) = link {
                match &l.op {
                    Operator::Rx(Rx::Lazy(lz)) => lazies.push((r, &**lz)),
                    Operator::Pm(pm) => phrase_sets.push((r, pm)),
                    _ => {}
                }
                link = l.chain.as_deref();
            }
        }
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8);
        std::thread::scope(|scope| {
            for t in 0..threads {
                let (lazies, phrase_sets) = (&lazies, &phrase_sets);
                scope.spawn(move || {
                    for (_, lz) in lazies.iter().skip(t).step_by(threads) {
                        let _ = lz.get();
                    }
                    for (_, pm) in phrase_sets.iter().skip(t).step_by(threads) {
                        let _ = pm.automaton();
                    }
                });
            }
        });
        for own in &self.inner.own_prefilters {
            own.get();
        }
        for (r, lz) in &lazies {
            if let Err(e) = lz.get() {
                errors.push(LoadError {
                    file: r.file.clone(),
                    line: r.line,
                    kind: ErrorKind::Regex(e.to_string()),
                });
            }
        }
        for (r, pm) in &phrase_sets {
            if let Err(e) = pm.automaton() {
                errors.push(LoadError {
                    file: r.file.clone(),
                    line: r.line,
                    kind: ErrorKind::Syntax(format!(
                        "the @pm phrases cannot be built into an automaton: {e}"
                    )),
                });
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(LoadErrors { errors })
        }
    }

    /// The ids of rules carrying a tag (exactly), e.g. `paranoia-level/1`.
    pub fn rules_with_tag(&self, tag: &str) -> Vec<u32> {
        self.inner
            .rules
            .iter()
            .filter(|r| r.actions.tags.iter().any(|t| t == tag))
            .map(|r| r.id)
            .collect()
    }

    /// The number of rules (chain starters and SecActions) loaded.
    pub fn rule_count(&self) -> usize {
        self.inner.rules.len()
    }
}

impl Loader<'_> {
    fn finish(mut self) -> Result<Engine, LoadErrors> {
        // Check every static regex and extract its prefilter literals on all
        // cores; compiling waits for first use (see `Rx::Lazy`).
        let mut patterns: Vec<String> = Vec::new();
        for r in &self.rules {
            let mut link: Option<&Rule> = Some(r);
            while let Some(l) = link {
                if let Operator::Rx(Rx::Pending(p)) = &l.op {
                    patterns.push(p.clone());
                }
                link = l.chain.as_deref();
            }
        }
        let compiled = compile_all(&patterns);
        let mut results = compiled.into_iter();
        // One automaton for every prefiltered regex: a value is scanned once
        // and the result serves every pipeline that leaves it unchanged
        // (ignoring ASCII case, as the scan does).
        let mut group: LiteralSets = Vec::new();
        let mut own_groups: HashMap<crate::vars::Var, LiteralSets> = HashMap::new();
        let note_reader =
            |l: &Rule,
             bit: u32,
             lits: &[Vec<u8>],
             own: &mut HashMap<crate::vars::Var, LiteralSets>| {
                let mut seen: Vec<crate::vars::Var> = Vec::new();
                for t in &l.targets {
                    if has_own_automaton_candidate(t.var) && !seen.contains(&t.var) {
                        seen.push(t.var);
                        own.entry(t.var).or_default().push((bit, lits.to_vec()));
                    }
                }
            };
        for r in self.rules.iter_mut() {
            let (file, line) = (r.file.clone(), r.line);
            let mut link: Option<&mut Rule> = Some(r);
            while let Some(l) = link {
                if let Operator::Rx(Rx::Pending(_)) = &l.op {
                    match results.next() {
                        Some(Ok((pattern, lits))) => {
                            l.op = Operator::Rx(Rx::Lazy(Box::new(crate::operator::LazyRegex {
                                pattern,
                                cell: std::sync::OnceLock::new(),
                            })));
                            if let Some(lits) = lits {
                                let bit = group.len() as u32;
                                note_reader(l, bit, &lits, &mut own_groups);
                                group.push((bit, lits));
                                l.pf_bit = Some(bit);
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
                        let bit = group.len() as u32;
                        note_reader(l, bit, &lits, &mut own_groups);
                        group.push((bit, lits));
                        l.pf_bit = Some(bit);
                    }
                }
                link = l.chain.as_deref_mut();
            }
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
                let mut link: Option<&mut Rule> = Some(r);
                while let Some(l) = link {
                    l.pf_bit = None;
                    link = l.chain.as_deref_mut();
                }
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
            let mut link: Option<&mut Rule> = Some(r);
            while let Some(l) = link {
                l.tx_compare = crate::rule::TxCompare::of(l);
                link = l.chain.as_deref_mut();
            }
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

    fn arg(d: &lexer::Directive, i: usize) -> Result<&str, ErrorKind> {
        d.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| ErrorKind::Syntax(format!("{} needs {} argument(s)", d.name, i + 1)))
    }

    fn directive(&mut self, file: &str, dir: &Path, d: &lexer::Directive) -> Result<(), ErrorKind> {
        let on = |s: &str| match s.to_ascii_lowercase().as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            _ => Err(ErrorKind::Syntax(format!("expected On or Off, got `{s}`"))),
        };
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| ErrorKind::Syntax(format!("expected a number, got `{s}`")))
        };
        match d.name.to_ascii_lowercase().as_str() {
            "secrule" => {
                let vars = Self::arg(d, 0)?;
                let op = Self::arg(d, 1)?;
                let actions = d.args.get(2).map(String::as_str).unwrap_or("");
                self.add_rule(file, dir, d.line, Some((vars, op)), actions)
            }
            "secaction" => {
                let actions = Self::arg(d, 0)?;
                self.add_rule(file, dir, d.line, None, actions)
            }
            "secmarker" => {
                self.order.push(Item::Marker(Self::arg(d, 0)?.to_string()));
                Ok(())
            }
            "secdefaultaction" => {
                let mut a = Actions::default();
                let mut errs = Vec::new();
                rule::parse_actions(Self::arg(d, 0)?, &mut a, &mut errs);
                if let Some(e) = errs.into_iter().next() {
                    return Err(e);
                }
                let phase = a.phase.unwrap_or(2);
                self.defaults.insert(phase, a);
                Ok(())
            }
            "secruleengine" => {
                self.config.mode = rule::parse_engine_mode(Self::arg(d, 0)?)
                    .ok_or_else(|| ErrorKind::Syntax("expected On, Off or DetectionOnly".into()))?;
                Ok(())
            }
            "secrequestbodyaccess" => {
                self.config.request_body_access = on(Self::arg(d, 0)?)?;
                Ok(())
            }
            "secresponsebodyaccess" => {
                self.config.response_body_access = on(Self::arg(d, 0)?)?;
                Ok(())
            }
            "secrequestbodylimit" => {
                self.config.request_body_limit = num(Self::arg(d, 0)?)?;
                Ok(())
            }
            "secrequestbodynofileslimit" => {
                self.config.request_body_no_files_limit = num(Self::arg(d, 0)?)?;
                Ok(())
            }
            "secrequestbodylimitaction" | "secresponsebodylimitaction" => {
                let a = match Self::arg(d, 0)?.to_ascii_lowercase().as_str() {
                    "reject" => LimitAction::Reject,
                    "processpartial" => LimitAction::ProcessPartial,
                    other => {
                        return Err(ErrorKind::Syntax(format!(
                            "expected Reject or ProcessPartial, got `{other}`"
                        )))
                    }
                };
                if d.name.eq_ignore_ascii_case("secrequestbodylimitaction") {
                    self.config.request_body_limit_action = a;
                } else {
                    self.config.response_body_limit_action = a;
                }
                Ok(())
            }
            "secresponsebodylimit" => {
                self.config.response_body_limit = num(Self::arg(d, 0)?)?;
                Ok(())
            }
            "secresponsebodymimetype" => {
                self.config.response_mime_types = d
                    .args
                    .iter()
                    .flat_map(|a| a.split_whitespace())
                    .map(|s| s.to_ascii_lowercase())
                    .collect();
                Ok(())
            }
            "secresponsebodymimetypesclear" => {
                self.config.response_mime_types.clear();
                Ok(())
            }
            "secargumentslimit" => {
                self.config.arguments_limit = num(Self::arg(d, 0)?)? as usize;
                Ok(())
            }
            "seccomponentsignature" => {
                self.config
                    .component_signatures
                    .push(Self::arg(d, 0)?.to_string());
                Ok(())
            }
            "seccollectiontimeout" => {
                num(Self::arg(d, 0)?)?;
                Ok(())
            }
            "include" => {
                let p = Path::new(Self::arg(d, 0)?);
                let p = if p.is_absolute() {
                    p.to_path_buf()
                } else {
                    dir.join(p)
                };
                self.include(&p, file, d.line);
                Ok(())
            }
            "secruleremovebyid" => {
                let mut ranges = Vec::new();
                for a in &d.args {
                    ranges.extend(rule::parse_id_ranges(a)?);
                }
                self.remove_rules(|r| ranges.iter().any(|&(a, b)| r.id >= a && r.id <= b));
                Ok(())
            }
            "secruleremovebytag" => {
                let re = crate::pcre::compile_cached(Self::arg(d, 0)?, false)
                    .map_err(ErrorKind::Regex)?;
                self.remove_rules(|r| r.has_tag(&re));
                Ok(())
            }
            "secruleremovebymsg" => {
                let re = crate::pcre::compile_cached(Self::arg(d, 0)?, false)
                    .map_err(ErrorKind::Regex)?;
                self.remove_rules(|r| {
                    r.actions
                        .msg
                        .as_ref()
                        .and_then(|m| m.as_literal())
                        .is_some_and(|m| re.is_match(m))
                });
                Ok(())
            }
            "secruleupdatetargetbyid" | "secruleupdatetargetbytag" | "secruleupdatetargetbymsg" => {
                let sel = Self::arg(d, 0)?.to_string();
                let (targets, exclusions) = rule::parse_targets(Self::arg(d, 1)?)?;
                let replace = d.args.get(2).map(|r| rule::parse_targets(r)).transpose()?;
                let by = d.name.to_ascii_lowercase();
                let pick: Box<dyn Fn(&Rule) -> bool> = if by.ends_with("byid") {
                    let ranges = rule::parse_id_ranges(&sel)?;
                    Box::new(move |r: &Rule| ranges.iter().any(|&(a, b)| r.id >= a && r.id <= b))
                } else if by.ends_with("bytag") {
                    let re = crate::pcre::compile_cached(&sel, false).map_err(ErrorKind::Regex)?;
                    Box::new(move |r: &Rule| r.has_tag(&re))
                } else {
                    let re = crate::pcre::compile_cached(&sel, false).map_err(ErrorKind::Regex)?;
                    Box::new(move |r: &Rule| {
                        r.actions
                            .msg
                            .as_ref()
                            .and_then(|m| m.as_literal())
                            .is_some_and(|m| re.is_match(m))
                    })
                };
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
                let ranges = rule::parse_id_ranges(Self::arg(d, 0)?)?;
                let text = Self::arg(d, 1)?.to_string();
                let mut errs = Vec::new();
                for r in self
                    .rules
                    .iter_mut()
                    .filter(|r| ranges.iter().any(|&(a, b)| r.id >= a && r.id <= b))
                {
                    let mut upd = Actions::default();
                    rule::parse_actions(&text, &mut upd, &mut errs);
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
        let mut first = true;
        for e in errs {
            if first {
                first = false;
            }
            self.err(file, line, e);
        }
        if !first {
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
    if u.disruptive.is_some() {
        a.disruptive = u.disruptive;
    }
    if u.status.is_some() {
        a.status = u.status;
    }
    if u.msg.is_some() {
        a.msg = u.msg;
    }
    if u.logdata.is_some() {
        a.logdata = u.logdata;
    }
    if u.severity.is_some() {
        a.severity = u.severity;
    }
    if u.log.is_some() {
        a.log = u.log;
    }
    if !u.tags.is_empty() {
        a.tags.extend(u.tags);
    }
    if !u.transforms.is_empty() {
        a.transforms.extend(u.transforms);
    }
    a.actions.extend(u.actions);
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

/// Prefilter bits and the literals that set them, as the automata are built from.
type LiteralSets = Vec<(u32, Vec<Vec<u8>>)>;

/// An automaton over only the literals of the rules that read one scalar
/// variable, with the shared automaton's bit numbering. Built the first time
/// a value of the variable is scanned (or by [`Engine::warm_up`]), as regexes
/// are.
#[derive(Debug)]
pub(crate) struct OwnAutomaton {
    pub var: crate::vars::Var,
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
fn has_own_automaton_candidate(var: crate::vars::Var) -> bool {
    matches!(
        var,
        crate::vars::Var::RequestBody | crate::vars::Var::ResponseBody
    )
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
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
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
