//! The admin token: made at the first start, 32 random bytes in hex, in
//! `admin-token` in the state directory (mode 0600, never through a link),
//! read from there at later starts and by the `rampart` commands, and
//! replaced by `rampart admin-token --rotate`.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the admin token lives: `admin-token` in the state directory
/// (`$XDG_STATE_HOME/rampart`, else `~/.local/state/rampart`).
pub fn token_file() -> PathBuf {
    crate::flood::state_dir().join("admin-token")
}

/// Reads the token from `text` as found in a token file or variable:
/// surrounding white space is dropped; what is left must be at least 32
/// visible ASCII characters.
pub fn parse_token(text: &str) -> Result<String, String> {
    let token = text.trim();
    if token.len() < 32 {
        return Err(format!(
            "it holds {} characters, fewer than the 32 a token needs",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("it holds characters other than visible ASCII".into());
    }
    Ok(token.to_string())
}

/// Reads the token file for a client (the `rampart` commands).
pub fn read_token_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    parse_token(&text)
}

fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Reads the gateway's admin token from `path`, or makes a new one there.
/// Returns the token and whether it was just made.
///
/// The file is opened without following a link, and must be this user's
/// and readable by no one else; its directory must be writable by no one
/// else (who could otherwise swap the file for one holding a token they
/// know). A new token is written to a fresh temporary file (mode 0600,
/// `O_EXCL`, no link followed) and hard-linked into place, which fails
/// rather than replace anything: two gateways starting together agree on
/// one token and no reader sees half a file.
pub fn load_or_create_token(path: &Path) -> Result<(String, bool), String> {
    let dir = private_dir(path)?;
    let uid = effective_uid();
    for _ in 0..3 {
        match read_own_token(path, uid) {
            Ok(token) => return Ok((token, false)),
            Err(Missing) => {}
            Err(Refused(message)) => return Err(message),
        }
        let (token, tmp) = write_new_token(dir)?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => return Ok((token, true)),
            // Another gateway made it first (or someone planted something
            // there): read what is there, with the same checks.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot put the admin token file in place at {}: {e}",
                    path.display()
                ))
            }
        }
    }
    Err(format!("the admin token file {} keeps appearing and disappearing; is something else writing there?", path.display()))
}

/// Replaces the token at `path` with a new one and returns it. The new file
/// is renamed over the old, so a reader sees one or the other whole; a
/// running gateway notices the change at its next admin call and ends the
/// console sessions made with the old token.
pub fn rotate_token(path: &Path) -> Result<String, String> {
    let dir = private_dir(path)?;
    let (token, tmp) = write_new_token(dir)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "cannot put the new admin token in place at {}: {e}",
            path.display()
        )
    })?;
    Ok(token)
}

/// Reads the token file as the gateway does at its start, with every check.
pub fn read_gateway_token(path: &Path) -> Result<String, String> {
    match read_own_token(path, effective_uid()) {
        Ok(token) => Ok(token),
        Err(Missing) => Err(format!("the admin token file {} is gone", path.display())),
        Err(Refused(message)) => Err(message),
    }
}

/// The token file's directory, made private if missing, and refused if
/// another user owns it or others can write to it (they could replace the
/// token).
fn private_dir(path: &Path) -> Result<&Path, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let meta = std::fs::metadata(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    if meta.uid() != effective_uid() && meta.uid() != 0 {
        return Err(format!("the directory {} of the admin token belongs to another user (uid {}); use a directory of your own (set XDG_STATE_HOME)", dir.display(), meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("the directory {} of the admin token is writable by other users (mode {:o}), who could replace the token; run chmod go-w {} or set XDG_STATE_HOME to a private directory", dir.display(), meta.mode() & 0o7777, dir.display()));
    }
    Ok(dir)
}

/// A new token in a fresh temporary file of `dir` (mode 0600, `O_EXCL`, no
/// link followed); returns the token and the file.
fn write_new_token(dir: &Path) -> Result<(String, PathBuf), String> {
    let token = hex::encode(crate::flood::random_bytes()?);
    let tmp = dir.join(format!(
        ".admin-token.{}.{}.tmp",
        std::process::id(),
        crate::flood::now().as_nanos()
    ));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{token}\n").as_bytes())?;
            f.sync_all()
        });
    match written {
        Ok(()) => Ok((token, tmp)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(format!(
                "cannot write the admin token file {}: {e}",
                tmp.display()
            ))
        }
    }
}

enum ReadToken {
    Missing,
    Refused(String),
}
use ReadToken::{Missing, Refused};

fn read_own_token(path: &Path, uid: u32) -> Result<String, ReadToken> {
    let shown = path.display();
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Missing),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(Refused(format!("the admin token file {shown} is a symbolic link, which is not followed; delete it and start again to make a new token")))
        }
        Err(e) => return Err(Refused(format!("cannot read the admin token file {shown}: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| Refused(format!("cannot read the admin token file {shown}: {e}")))?;
    if !meta.is_file() {
        return Err(Refused(format!(
            "{shown} is not a plain file; delete it and start again to make a new admin token"
        )));
    }
    if meta.uid() != uid {
        return Err(Refused(format!("the admin token file {shown} belongs to another user (uid {}); delete it and start again to make a new token", meta.uid())));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(Refused(format!("the admin token file {shown} can be read by other users (mode {:o}); run chmod 600 {shown}, or delete it and start again to make a new token", meta.mode() & 0o7777)));
    }
    let mut text = String::new();
    file.take(4096)
        .read_to_string(&mut text)
        .map_err(|e| Refused(format!("cannot read the admin token file {shown}: {e}")))?;
    parse_token(&text).map_err(|why| Refused(format!("the admin token file {shown} holds no usable token ({why}); delete it and start again to make a new one")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "rampart-admin-{name}-{}-{}",
            std::process::id(),
            crate::flood::now().as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_new_token_is_private_and_read_back_at_the_next_start() {
        let dir = temp("new");
        let path = dir.join("state/rampart/admin-token");
        let (token, made) = load_or_create_token(&path).unwrap();
        assert!(made);
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(path.parent().unwrap()).unwrap().mode() & 0o777,
            0o700
        );
        assert_eq!(load_or_create_token(&path).unwrap(), (token.clone(), false));
        assert_eq!(read_token_file(&path).unwrap(), token);
        // No temporary file is left behind.
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_planted_link_is_not_followed_and_its_target_is_untouched() {
        let dir = temp("link");
        let target = dir.join("elsewhere");
        std::fs::write(&target, "precious\n").unwrap();
        let path = dir.join("admin-token");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let err = load_or_create_token(&path).unwrap_err();
        assert!(err.contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        // A dangling link is no invitation to create its target either.
        let dangling = dir.join("dangling-token");
        std::os::unix::fs::symlink(dir.join("nothing"), &dangling).unwrap();
        assert!(load_or_create_token(&dangling).is_err());
        assert!(!dir.join("nothing").exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_token_others_can_read_or_replace_is_refused() {
        let dir = temp("perms");
        let path = dir.join("admin-token");
        std::fs::write(&path, "a".repeat(64)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = load_or_create_token(&path).unwrap_err();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            load_or_create_token(&path).unwrap(),
            ("a".repeat(64), false)
        );
        std::fs::write(&path, "short\n").unwrap();
        assert!(load_or_create_token(&path)
            .unwrap_err()
            .contains("no usable token"));
        let open = dir.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = load_or_create_token(&open.join("admin-token")).unwrap_err();
        assert!(err.contains("writable by other users"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_rotated_token_replaces_the_old_one_whole() {
        let dir = temp("rotate");
        let path = dir.join("admin-token");
        let (old, _) = load_or_create_token(&path).unwrap();
        let new = rotate_token(&path).unwrap();
        assert_ne!(old, new);
        assert_eq!(read_gateway_token(&path).unwrap(), new);
        assert_eq!(load_or_create_token(&path).unwrap(), (new, false));
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
