//! Signed tokens: clearance cookies, proof-of-work challenges, no-script wait
//! tokens and waiting-room tickets.
//!
//! Every token is ASCII (hex and decimal, separated by dots) so it is safe in
//! a cookie, a URL and an HTML attribute without escaping. Every token is
//! bound to the client's prefix rather than its exact address, so a visitor
//! whose mobile network moves it within a /24 or /64 keeps its clearance, and
//! a cookie copied to a botnet is useless outside that network.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::addr::addr_bytes;
use crate::keys::Keyring;
use crate::time::Time;

/// Longest token accepted; anything longer is rejected before parsing so a
/// hostile cookie costs nothing.
pub const MAX_TOKEN_LEN: usize = 160;

/// Why a submitted token or solution was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reject {
    /// It does not parse, is too long, or its signature is wrong (tampered,
    /// made for another site or prefix, or signed by a retired key).
    Invalid,
    /// It was valid once but has expired.
    Expired,
    /// Its nonce was already used.
    Replayed,
    /// The proof of work does not have enough leading zero bits.
    WrongSolution,
    /// A no-script wait token presented before its wait is over.
    TooEarly {
        /// How long the client must still wait.
        remaining: Duration,
    },
    /// The client's address prefix has redeemed as many no-script wait
    /// tokens as it may for now: waiting costs a flood tool nothing but
    /// time, so the path that needs no JavaScript gives each prefix only a
    /// few clearances a minute.
    PrefixCapped,
}

/// Parsed parts of a token: the dot-separated fields and the trailing tag.
struct Parts<'a> {
    fields: [&'a str; 5],
    tag: [u8; 16],
}

fn split(token: &str, want: usize) -> Result<Parts<'_>, Reject> {
    if token.len() > MAX_TOKEN_LEN || !token.is_ascii() {
        return Err(Reject::Invalid);
    }
    let mut fields = [""; 5];
    let mut it = token.split('.');
    for f in fields.iter_mut().take(want) {
        *f = it.next().ok_or(Reject::Invalid)?;
    }
    let tag_hex = it.next().ok_or(Reject::Invalid)?;
    if it.next().is_some() {
        return Err(Reject::Invalid);
    }
    let mut tag = [0u8; 16];
    decode_hex(tag_hex, &mut tag)?;
    Ok(Parts { fields, tag })
}

/// Tokens are issued in lower-case hex, and only that spelling is taken, so
/// that one token has one spelling.
fn decode_hex(s: &str, out: &mut [u8]) -> Result<(), Reject> {
    if s.bytes().any(|c| c.is_ascii_uppercase()) {
        return Err(Reject::Invalid);
    }
    hex::decode_to_slice(s, out).map_err(|_| Reject::Invalid)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.push_str(&hex::encode(bytes));
}

fn parse_u64(s: &str) -> Result<u64, Reject> {
    // Decimal only, no sign, no leading "+", at most 20 digits.
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(Reject::Invalid);
    }
    s.parse().map_err(|_| Reject::Invalid)
}

fn parse_kid(s: &str) -> Result<u32, Reject> {
    let mut b = [0u8; 4];
    decode_hex(s, &mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn finish(mut body: String, tag: &[u8; 16]) -> String {
    body.push('.');
    push_hex(&mut body, tag);
    body
}

/// Issues a clearance cookie value for `site` and the client's `prefix`,
/// valid until `expires`.
pub fn issue_clearance(keys: &Keyring, site: &str, prefix: IpAddr, expires: Time) -> String {
    let exp = expires.as_secs();
    let pb = addr_bytes(prefix);
    let (kid, tag) = keys.sign(b"clearance", &[site.as_bytes(), &pb, &exp.to_be_bytes()]);
    let mut s = String::with_capacity(64);
    let _ = write!(s, "{kid:08x}.{exp}");
    finish(s, &tag)
}

/// Checks a clearance cookie value. Allocation-free: it runs on every request
/// of a cleared visitor while a site is under attack.
pub fn verify_clearance(
    keys: &Keyring,
    site: &str,
    prefix: IpAddr,
    cookie: &str,
    now: Time,
) -> Result<(), Reject> {
    let p = split(cookie, 2)?;
    let kid = parse_kid(p.fields[0])?;
    let exp = parse_u64(p.fields[1])?;
    let pb = addr_bytes(prefix);
    if !keys.verify(
        kid,
        b"clearance",
        &[site.as_bytes(), &pb, &exp.to_be_bytes()],
        &p.tag,
    ) {
        return Err(Reject::Invalid);
    }
    if now.as_secs() >= exp {
        return Err(Reject::Expired);
    }
    Ok(())
}

/// A proof-of-work challenge as handed to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeToken {
    /// The signed token; the client hashes `token + ":" + counter`.
    pub token: String,
    /// Leading zero bits required of the SHA-256 hash.
    pub difficulty: u8,
}

/// Issues a challenge for the client's prefix on `site` with a fresh nonce.
pub fn issue_challenge(
    keys: &Keyring,
    site: &str,
    prefix: IpAddr,
    nonce: [u8; 16],
    difficulty: u8,
    now: Time,
) -> ChallengeToken {
    let issued = now.as_secs();
    let pb = addr_bytes(prefix);
    let (kid, tag) = keys.sign(
        b"challenge",
        &[
            site.as_bytes(),
            &pb,
            &nonce,
            &issued.to_be_bytes(),
            &[difficulty],
        ],
    );
    let mut s = String::with_capacity(128);
    let _ = write!(s, "{kid:08x}.");
    push_hex(&mut s, &nonce);
    let _ = write!(s, ".{issued}.{difficulty}");
    ChallengeToken {
        token: finish(s, &tag),
        difficulty,
    }
}

/// A checked challenge: the nonce to claim and when the claim may lapse.
pub(crate) struct SolvedChallenge {
    pub nonce: [u8; 16],
    pub expires: Time,
}

/// Checks a challenge token and its solution (a decimal counter). The caller
/// must then claim the nonce to stop replays.
pub(crate) fn check_solution(
    keys: &Keyring,
    site: &str,
    prefix: IpAddr,
    token: &str,
    solution: &str,
    lifetime: Duration,
    now: Time,
) -> Result<SolvedChallenge, Reject> {
    let p = split(token, 4)?;
    let kid = parse_kid(p.fields[0])?;
    let mut nonce = [0u8; 16];
    decode_hex(p.fields[1], &mut nonce)?;
    let issued = parse_u64(p.fields[2])?;
    let difficulty = u8::try_from(parse_u64(p.fields[3])?).map_err(|_| Reject::Invalid)?;
    let pb = addr_bytes(prefix);
    if !keys.verify(
        kid,
        b"challenge",
        &[
            site.as_bytes(),
            &pb,
            &nonce,
            &issued.to_be_bytes(),
            &[difficulty],
        ],
        &p.tag,
    ) {
        return Err(Reject::Invalid);
    }
    let expires = Time::from_secs(issued).plus(lifetime);
    if now >= expires {
        return Err(Reject::Expired);
    }
    parse_u64(solution).map_err(|_| Reject::WrongSolution)?;
    if leading_zero_bits(token, solution) < u32::from(difficulty) {
        return Err(Reject::WrongSolution);
    }
    Ok(SolvedChallenge { nonce, expires })
}

/// Leading zero bits of SHA-256(`token` ":" `solution`), the puzzle the
/// challenge page's worker solves.
pub fn leading_zero_bits(token: &str, solution: &str) -> u32 {
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update(b":");
    h.update(solution.as_bytes());
    let digest = h.finalize();
    let mut bits = 0;
    for &b in digest.iter() {
        if b == 0 {
            bits += 8;
        } else {
            bits += b.leading_zeros();
            break;
        }
    }
    bits
}

/// Finds a solution by brute force, as the browser does. For tests and for
/// measuring what a difficulty costs; the gateway never calls it.
pub fn solve(token: &str, difficulty: u8) -> u64 {
    let mut buf = String::with_capacity(24);
    for n in 0u64.. {
        buf.clear();
        let _ = write!(buf, "{n}");
        if leading_zero_bits(token, &buf) >= u32::from(difficulty) {
            return n;
        }
    }
    u64::MAX
}

/// Issues a no-script wait token: it becomes redeemable at `not_before` and
/// carries a nonce so it can be redeemed only once.
pub fn issue_wait(
    keys: &Keyring,
    site: &str,
    prefix: IpAddr,
    nonce: [u8; 16],
    not_before: Time,
) -> String {
    let nb = not_before.as_secs();
    let pb = addr_bytes(prefix);
    let (kid, tag) = keys.sign(b"wait", &[site.as_bytes(), &pb, &nonce, &nb.to_be_bytes()]);
    let mut s = String::with_capacity(96);
    let _ = write!(s, "{kid:08x}.");
    push_hex(&mut s, &nonce);
    let _ = write!(s, ".{nb}");
    finish(s, &tag)
}

/// Checks a wait token; returns the nonce to claim and its expiry.
pub(crate) fn check_wait(
    keys: &Keyring,
    site: &str,
    prefix: IpAddr,
    token: &str,
    lifetime: Duration,
    now: Time,
) -> Result<SolvedChallenge, Reject> {
    let p = split(token, 3)?;
    let kid = parse_kid(p.fields[0])?;
    let mut nonce = [0u8; 16];
    decode_hex(p.fields[1], &mut nonce)?;
    let nb = parse_u64(p.fields[2])?;
    let pb = addr_bytes(prefix);
    if !keys.verify(
        kid,
        b"wait",
        &[site.as_bytes(), &pb, &nonce, &nb.to_be_bytes()],
        &p.tag,
    ) {
        return Err(Reject::Invalid);
    }
    let not_before = Time::from_secs(nb);
    if now < not_before {
        return Err(Reject::TooEarly {
            remaining: not_before.since(now),
        });
    }
    let expires = not_before.plus(lifetime);
    if now >= expires {
        return Err(Reject::Expired);
    }
    Ok(SolvedChallenge { nonce, expires })
}

/// Issues a waiting-room ticket for route `route` of `site`, queue `epoch`.
pub(crate) fn issue_ticket(
    keys: &Keyring,
    site: &str,
    route: u32,
    epoch: u64,
    prefix: IpAddr,
    ticket: u64,
) -> String {
    let pb = addr_bytes(prefix);
    let (kid, tag) = keys.sign(
        b"ticket",
        &[
            site.as_bytes(),
            &route.to_be_bytes(),
            &epoch.to_be_bytes(),
            &pb,
            &ticket.to_be_bytes(),
        ],
    );
    let mut s = String::with_capacity(64);
    let _ = write!(s, "{kid:08x}.{ticket}");
    finish(s, &tag)
}

/// Reads a waiting-room ticket back, or `None` if it is not one of ours for
/// this route, queue and prefix.
pub(crate) fn check_ticket(
    keys: &Keyring,
    site: &str,
    route: u32,
    epoch: u64,
    prefix: IpAddr,
    cookie: &str,
) -> Option<u64> {
    let p = split(cookie, 2).ok()?;
    let kid = parse_kid(p.fields[0]).ok()?;
    let ticket = parse_u64(p.fields[1]).ok()?;
    let pb = addr_bytes(prefix);
    keys.verify(
        kid,
        b"ticket",
        &[
            site.as_bytes(),
            &route.to_be_bytes(),
            &epoch.to_be_bytes(),
            &pb,
            &ticket.to_be_bytes(),
        ],
        &p.tag,
    )
    .then_some(ticket)
}
