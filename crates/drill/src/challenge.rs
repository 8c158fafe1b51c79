//! The gateway's interstitial pages, read as a browser reads them: the
//! proof-of-work challenge and the waiting room.
//!
//! The challenge is solved exactly as the page's script does (see
//! `rampart_flood::pages::CHALLENGE_SCRIPT`): read `data-token`, `data-bits`
//! and `data-verify` from the `#rampart-challenge` element; hash
//! `token + ":" + n` with SHA-256 for n = 0, 1, 2, … until the hash has
//! `bits` leading zero bits; POST `token=encodeURIComponent(token)&solution=n`
//! to the verify path; then reload the page.

use std::fmt::Write as _;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// What a challenge page asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengePage {
    /// The token to hash.
    pub token: String,
    /// Leading zero bits required.
    pub bits: u32,
    /// Where to POST the solution.
    pub verify: String,
}

/// Reads a challenge page, or `None` if `html` is not one.
pub fn parse_challenge(html: &str) -> Option<ChallengePage> {
    let start = html.find("id=\"rampart-challenge\"")?;
    // The element's attributes: up to the end of its start tag.
    let tag_end = html[start..].find('>')? + start;
    let tag = &html[start..tag_end];
    let token = unescape(attribute(tag, "data-token")?);
    let bits = attribute(tag, "data-bits")?
        .parse()
        .ok()
        .filter(|b| *b <= 64)?;
    let verify = unescape(attribute(tag, "data-verify")?);
    Some(ChallengePage {
        token,
        bits,
        verify,
    })
}

/// Whether `html` is the waiting-room page.
pub fn is_waiting_room(html: &str) -> bool {
    html.contains("<title>You are in the queue</title>")
}

/// The seconds of a page's `<meta http-equiv="refresh" content="N...">`.
pub fn meta_refresh_secs(html: &str) -> Option<u32> {
    let at = html.find("http-equiv=\"refresh\"")?;
    let content = attribute(&html[at..], "content")?;
    content.split(';').next()?.trim().parse().ok()
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let key = format!(" {name}=\"");
    let start = tag.find(&key)? + key.len();
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Undoes HTML escaping of attribute values (the five the page uses).
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Finds the smallest `n` such that SHA-256(`token` ":" `n`) has `bits`
/// leading zero bits, with the worker's test: `bits / 8` whole zero bytes,
/// then the top `bits % 8` bits of the next byte zero.
pub fn solve(token: &str, bits: u32) -> u64 {
    let bits = bits.min(256);
    let full = (bits / 8) as usize;
    let rem = bits % 8;
    let mask: u8 = if rem == 0 {
        0
    } else {
        (0xffu16 << (8 - rem)) as u8
    };
    let mut prefix = Sha256::new();
    prefix.update(token.as_bytes());
    prefix.update(b":");
    let mut digits = String::with_capacity(20);
    for n in 0u64.. {
        digits.clear();
        let _ = write!(digits, "{n}");
        let mut h = prefix.clone();
        h.update(digits.as_bytes());
        let hash = h.finalize();
        if hash[..full].iter().all(|b| *b == 0) && (rem == 0 || hash[full] & mask == 0) {
            return n;
        }
    }
    u64::MAX
}

/// One puzzle for a [`Solvers`] thread, and where to send its answer.
type Job = (String, u32, tokio::sync::oneshot::Sender<u64>);

/// Threads that solve puzzles for the drill's visitors, at the lowest CPU
/// priority. Real visitors solve on their own devices; the drill's visitors
/// share the machine with the gateway under test, so their solving must not
/// slow the gateway (or the drill's own clock) more than it can help.
pub struct Solvers {
    jobs: mpsc::Sender<Job>,
}

impl Solvers {
    /// Starts `n` solver threads (at least one). They end when the
    /// `Solvers` is dropped.
    pub fn start(n: usize) -> std::io::Result<Solvers> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("drill-solver-{i}"))
                .spawn(move || {
                    lowest_priority();
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((token, bits, answer)) = job else {
                            return;
                        };
                        let _ = answer.send(solve(&token, bits));
                    }
                })?;
        }
        Ok(Solvers { jobs: tx })
    }

    /// Solves one puzzle on a solver thread; waits its turn if all are busy.
    pub async fn solve(&self, token: &str, bits: u32) -> Option<u64> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs.send((token.to_string(), bits, tx)).ok()?;
        rx.await.ok()
    }
}

/// Lowers the calling thread's CPU priority to nice 19. On Linux
/// `setpriority(PRIO_PROCESS, 0, …)` applies to the calling thread only.
fn lowest_priority() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours;
    // failure (e.g. a seccomp filter) only leaves the priority as it was.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// The verify form exactly as the script builds it.
pub fn verify_form(token: &str, solution: u64) -> String {
    format!("token={}&solution={solution}", encode_uri_component(token))
}

/// JavaScript's `encodeURIComponent`.
pub fn encode_uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solutions_have_the_leading_zero_bits() {
        for bits in [0, 1, 7, 8, 9, 12] {
            let n = solve("00000001.abc.5.12.ff", bits);
            assert!(
                rampart_flood::token::leading_zero_bits("00000001.abc.5.12.ff", &n.to_string())
                    >= bits,
                "{bits}"
            );
            // The smallest one: no smaller n passes.
            assert!((0..n).all(|m| rampart_flood::token::leading_zero_bits(
                "00000001.abc.5.12.ff",
                &m.to_string()
            ) < bits));
        }
    }

    #[tokio::test]
    async fn solver_threads_answer() {
        let solvers = Solvers::start(2).unwrap();
        let (a, b) = tokio::join!(solvers.solve("x", 8), solvers.solve("y", 8));
        assert_eq!((a, b), (Some(solve("x", 8)), Some(solve("y", 8))));
    }

    #[test]
    fn pages_are_recognised() {
        let waiting = rampart_flood::pages::waiting_room_page(3, 5);
        assert!(is_waiting_room(&waiting));
        assert_eq!(meta_refresh_secs(&waiting), Some(5));
        assert!(parse_challenge(&waiting).is_none());
        assert_eq!(encode_uri_component("a.b c/é"), "a.b%20c%2F%C3%A9");
    }
}
