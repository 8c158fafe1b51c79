//! A compiled rule set, [`Engine`], and its public entry points. Loading one
//! is spread over `load` (directives into rules), `settings` (engine-wide
//! settings) and `compile` (the last step: regexes, prefilters and the
//! phase lists).

mod compile;
mod load;
mod settings;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ErrorKind, LoadError, LoadErrors};
use crate::operator::{Operator, Rx};
use crate::rule::{Disruptive, Rule};
use crate::source::{FileSource, FsSource};
use crate::transform::Transform;
use crate::tx::{Transaction, TxMeta};

pub(crate) use compile::{OwnAutomaton, RejectGroup};
pub(crate) use settings::{Config, LimitAction};

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
        load::load(source, inputs, opts)
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
        let mut lazies = Vec::new();
        let mut phrase_sets = Vec::new();
        for r in &self.inner.rules {
            for l in r.links() {
                match &l.op {
                    Operator::Rx(Rx::Lazy(lz)) => lazies.push((r, &**lz)),
                    Operator::Pm(pm) => phrase_sets.push((r, pm)),
                    _ => {}
                }
            }
        }
        let threads = compile::worker_threads();
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
        let regex_errors = lazies.iter().filter_map(|(r, lz)| {
            let e = lz.get().err()?;
            Some((r, ErrorKind::Regex(e.to_string())))
        });
        let pm_errors = phrase_sets.iter().filter_map(|(r, pm)| {
            let e = pm.automaton().err()?;
            let msg = format!("the @pm phrases cannot be built into an automaton: {e}");
            Some((r, ErrorKind::Syntax(msg)))
        });
        let errors: Vec<LoadError> = regex_errors
            .chain(pm_errors)
            .map(|(r, kind)| LoadError {
                file: r.file.clone(),
                line: r.line,
                kind,
            })
            .collect();
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
