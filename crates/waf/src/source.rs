//! Where rule files come from.
//!
//! The engine reads files only while loading, and only through [`FileSource`],
//! so evaluation never touches the file system and tests can load rules from
//! memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A read-only view of rule files, data files and directories.
pub trait FileSource {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> Result<Vec<u8>, String>;
    /// Lists the files matching a glob pattern whose wildcards (`*`, `?`) sit
    /// in the last path component only, sorted by name, as Apache does.
    fn glob(&self, pattern: &Path) -> Result<Vec<PathBuf>, String>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsSource;

impl FileSource for FsSource {
    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn glob(&self, pattern: &Path) -> Result<Vec<PathBuf>, String> {
        let name = pattern
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !name.contains(['*', '?']) {
            return Ok(vec![pattern.to_path_buf()]);
        }
        let dir = pattern.parent().unwrap_or(Path::new("."));
        let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if wildcard_match(name.as_bytes(), file.as_bytes()) {
                out.push(entry.path());
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Files held in memory, keyed by path; used by tests.
#[derive(Debug, Default, Clone)]
pub struct MemSource {
    files: BTreeMap<PathBuf, Vec<u8>>,
}

impl MemSource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a file.
    pub fn insert(&mut self, path: impl Into<PathBuf>, content: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), content.into());
    }
}

impl FileSource for MemSource {
    fn read(&self, path: &Path) -> Result<Vec<u8>, String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| format!("{}: no such file", path.display()))
    }

    fn glob(&self, pattern: &Path) -> Result<Vec<PathBuf>, String> {
        let name = pattern
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = pattern.parent().unwrap_or(Path::new(""));
        Ok(self
            .files
            .keys()
            .filter(|p| {
                p.parent().unwrap_or(Path::new("")) == dir
                    && p.file_name().is_some_and(|f| {
                        wildcard_match(name.as_bytes(), f.to_string_lossy().as_bytes())
                    })
            })
            .cloned()
            .collect())
    }
}

/// Matches `*` and `?` wildcards against a file name.
pub(crate) fn wildcard_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (usize::MAX, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = p;
            mark = n;
            p += 1;
        } else if star != usize::MAX {
            p = star + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}
