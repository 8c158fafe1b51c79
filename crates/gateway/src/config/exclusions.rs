//! The exclusions file: WAF exclusions an operator added from the console or
//! with `rampart allow`, kept apart from the hand-written configuration so
//! that the gateway never rewrites a file a person edits, and every entry
//! says who added it, when and why.
//!
//! It lives beside the configuration (`rampart-exclusions.toml`), or in the
//! state directory for a gateway started without one, or where
//! `[server] exclusions_file` says. Each entry is one `[[exclusion]]` table;
//! a missing file means none. A broken entry is an error with its line, like
//! any in the configuration, and a reload that meets one keeps the running
//! configuration.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, ConfigErrors, WafExclusion};

/// One exclusion as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddedExclusion {
    /// The site it applies to, by name.
    pub site: String,
    /// The rule switched off, for paths under `prefix`.
    #[serde(flatten)]
    pub exclusion: WafExclusion,
    /// Why, in the operator's words.
    pub reason: String,
    /// Who added it (`console`, `rampart allow`, a name given).
    pub by: String,
    /// When, as RFC 3339 UTC.
    pub added: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    exclusion: Vec<toml::Spanned<AddedExclusion>>,
}

/// Where a configuration's exclusions file is.
pub fn path(config: &Config) -> PathBuf {
    if let Some(p) = &config.server.exclusions_file {
        return p.clone();
    }
    match config.source.as_ref().and_then(|p| p.parent()) {
        Some(dir) => dir.join("rampart-exclusions.toml"),
        None => crate::flood::state_dir().join("exclusions.toml"),
    }
}

/// Reads the exclusions file into `config.added_exclusions`, checking each
/// entry against the configuration's sites. Every error is reported, each
/// with the file and line of its entry.
pub fn read_into(config: &mut Config) -> Result<(), ConfigErrors> {
    let file = path(config);
    let name = file.display().to_string();
    let error = |line: usize, message: String| ConfigError {
        file: name.clone(),
        line,
        column: 0,
        message,
    };
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            config.added_exclusions.clear();
            return Ok(());
        }
        Err(e) => {
            return Err(ConfigErrors(vec![error(
                0,
                format!("cannot read the exclusions file: {e}"),
            )]))
        }
    };
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let parsed: File = toml::from_str(&text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_of(s.start));
        ConfigErrors(vec![error(line, e.message().trim().to_string())])
    })?;
    let mut errors = Vec::new();
    let mut list = Vec::new();
    for entry in parsed.exclusion {
        let line = line_of(entry.span().start);
        let entry = entry.into_inner();
        if !config.sites.iter().any(|s| s.name == entry.site) {
            errors.push(error(
                line,
                format!("no site named `{}` in the configuration", entry.site),
            ));
            continue;
        }
        if let Err(why) = entry.exclusion.check() {
            errors.push(error(line, why));
            continue;
        }
        list.push(entry);
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    config.added_exclusions = list;
    Ok(())
}

/// Appends one entry to the exclusions file, creating it (mode 0600) if
/// need be; never through a symbolic link.
pub fn append(file: &Path, entry: &AddedExclusion) -> Result<(), String> {
    #[derive(Serialize)]
    struct One<'a> {
        exclusion: [&'a AddedExclusion; 1],
    }
    let text = toml::to_string(&One { exclusion: [entry] })
        .map_err(|e| format!("cannot write the exclusion as TOML: {e}"))?;
    let shown = file.display();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(file)
        .map_err(|e| format!("cannot open the exclusions file {shown}: {e}"))?;
    let empty = f.metadata().map(|m| m.len() == 0).unwrap_or(false);
    let header = if empty {
        "# WAF exclusions added from the console or with `rampart allow`.\n# The gateway appends here; edit or delete entries by hand and reload.\n"
    } else {
        ""
    };
    f.write_all(format!("{header}\n{text}").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write the exclusions file {shown}: {e}"))
}
