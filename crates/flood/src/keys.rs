//! Key material for signing clearance cookies, challenge tokens and queue
//! tickets, with rotation.
//!
//! The crate never generates randomness itself (it has no I/O): the gateway
//! passes 32 random bytes from the operating system to `generate` and
//! `rotate`, and persists `to_bytes` in a file readable only by the gateway
//! (mode 0600). Two keys are live at once: tokens are signed with the current
//! key and verified against the current or the previous one, so a rotation
//! does not log every visitor out.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Error, ErrorKind};

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 4] = b"RFK1";

#[derive(Clone)]
struct Key {
    id: u32,
    secret: [u8; 32],
    /// HMAC state with the key already absorbed: cloning it saves the two
    /// SHA-256 blocks of key setup on every token checked.
    keyed: HmacSha256,
}

impl Key {
    fn new(id: u32, secret: [u8; 32]) -> Key {
        let keyed =
            <HmacSha256 as Mac>::new_from_slice(&secret).unwrap_or_else(|_| unreachable_hmac());
        Key { id, secret, keyed }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.id == other.id && self.secret == other.secret
    }
}

impl Eq for Key {}

/// The current signing key and the previous one.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    current: Key,
    previous: Option<Key>,
}

impl fmt::Debug for Keyring {
    // Secrets must never reach a log line, so only key ids are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current_id", &self.current.id)
            .field("previous_id", &self.previous.as_ref().map(|k| k.id))
            .finish()
    }
}

impl Keyring {
    /// A fresh keyring from 32 random bytes supplied by the caller.
    pub fn generate(rand_bytes: [u8; 32]) -> Keyring {
        Keyring {
            current: Key::new(1, rand_bytes),
            previous: None,
        }
    }

    /// Makes a new current key from 32 fresh random bytes; the old current key
    /// becomes the previous one and the old previous key is forgotten, which
    /// invalidates everything it signed.
    pub fn rotate(&mut self, rand_bytes: [u8; 32]) {
        let id = self.current.id.wrapping_add(1).max(1);
        let old = std::mem::replace(&mut self.current, Key::new(id, rand_bytes));
        self.previous = Some(old);
    }

    /// The id of the current key, as written into tokens.
    pub fn current_id(&self) -> u32 {
        self.current.id
    }

    /// Serialises both keys: magic, then (id, secret) for current and, if
    /// present, previous.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 1 + 2 * 36);
        out.extend_from_slice(MAGIC);
        out.push(u8::from(self.previous.is_some()));
        for k in std::iter::once(&self.current).chain(self.previous.as_ref()) {
            out.extend_from_slice(&k.id.to_be_bytes());
            out.extend_from_slice(&k.secret);
        }
        out
    }

    /// Loads what `to_bytes` wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Keyring, Error> {
        let bad = |why: &str| Error::new(ErrorKind::BadKeyMaterial, why.to_string());
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("missing RFK1 header"))?;
        let (&flag, rest) = rest.split_first().ok_or_else(|| bad("truncated"))?;
        let want = match flag {
            0 => 36,
            1 => 72,
            _ => return Err(bad("unknown flag byte")),
        };
        if rest.len() != want {
            return Err(bad("wrong length"));
        }
        let key_at = |at: usize| -> Key {
            let mut id = [0u8; 4];
            id.copy_from_slice(&rest[at..at + 4]);
            let mut secret = [0u8; 32];
            secret.copy_from_slice(&rest[at + 4..at + 36]);
            Key::new(u32::from_be_bytes(id), secret)
        };
        let current = key_at(0);
        let previous = (flag == 1).then(|| key_at(36));
        if previous.as_ref().is_some_and(|p| p.id == current.id) {
            return Err(bad("current and previous keys share an id"));
        }
        Ok(Keyring { current, previous })
    }

    /// MAC with the current key; returns the key id used and the tag.
    pub(crate) fn sign(&self, label: &[u8], fields: &[&[u8]]) -> (u32, [u8; 16]) {
        (self.current.id, mac(&self.current, label, fields))
    }

    /// Checks a tag made by the key `id`, which must be current or previous.
    /// The comparison is constant-time so the tag cannot be guessed byte by
    /// byte from response timing.
    pub(crate) fn verify(&self, id: u32, label: &[u8], fields: &[&[u8]], tag: &[u8; 16]) -> bool {
        let key = if id == self.current.id {
            &self.current
        } else {
            match &self.previous {
                Some(p) if p.id == id => p,
                _ => return false,
            }
        };
        mac_state(key, label, fields)
            .verify_truncated_left(tag)
            .is_ok()
    }
}

fn mac_state(key: &Key, label: &[u8], fields: &[&[u8]]) -> HmacSha256 {
    // Length-prefixing every field makes the encoding unambiguous, so no two
    // different field lists can produce the same MAC input.
    let mut m = key.keyed.clone();
    m.update(&(label.len() as u32).to_be_bytes());
    m.update(label);
    for f in fields {
        m.update(&(f.len() as u32).to_be_bytes());
        m.update(f);
    }
    m
}

fn mac(key: &Key, label: &[u8], fields: &[&[u8]]) -> [u8; 16] {
    let full = mac_state(key, label, fields).finalize().into_bytes();
    let mut tag = [0u8; 16];
    tag.copy_from_slice(&full[..16]);
    tag
}

// HMAC accepts keys of any length, so `new_from_slice` cannot fail; this
// exists only to satisfy the type without an `unwrap`.
#[cold]
fn unreachable_hmac() -> HmacSha256 {
    match <HmacSha256 as Mac>::new_from_slice(&[0u8; 32]) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts every key length"),
    }
}
