//! Sign-in sessions and the throttle on failed sign-ins.
//!
//! A session is what the dashboard holds instead of the admin token: a
//! random id in an `HttpOnly`, `SameSite=Strict` cookie, and a second random
//! value, the CSRF token, that the page keeps in memory and sends as
//! `X-CSRF-Token` with every change. A cookie alone (sent by the browser
//! whatever page asked) is never enough to change anything.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// How long a session lasts from sign-in: a working day, so an operator
/// through a long incident is not signed out at its height.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// At most this many sessions at once; a new one replaces the oldest. It
/// caps memory whatever a client with the token does.
pub const MAX_SESSIONS: usize = 64;

/// Failed sign-ins allowed per client address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Client addresses whose failures are remembered; beyond it the oldest
/// entries are forgotten (an attacker with that many addresses is limited
/// by the token's 256 bits, not by this table).
const MAX_TRACKED_CLIENTS: usize = 4096;

struct Session {
    csrf: String,
    expires: Duration,
    made: Duration,
}

/// The live sessions. Times are since the Unix epoch, passed in.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// A new session's cookie value and CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: String,
    pub csrf: String,
}

impl Sessions {
    /// Makes a session from 32 random bytes for its id and 32 for its CSRF
    /// token.
    pub fn create(&self, id: [u8; 32], csrf: [u8; 32], now: Duration) -> NewSession {
        let made = NewSession {
            id: hex::encode(id),
            csrf: hex::encode(csrf),
        };
        let mut map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.made)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            made.id.clone(),
            Session {
                csrf: made.csrf.clone(),
                expires: now + SESSION_LIFETIME,
                made: now,
            },
        );
        made
    }

    /// The CSRF token of a live session, if `id` names one.
    pub fn csrf(&self, id: &str, now: Duration) -> Option<String> {
        let map = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .filter(|s| s.expires > now)
            .map(|s| s.csrf.clone())
    }

    /// Ends one session.
    pub fn end(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Ends every session: the token they were made with has changed.
    pub fn end_all(&self) {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Counts failed sign-ins per client address (IPv6 by its /64, which one
/// host usually holds whole).
#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<IpAddr, VecDeque<Duration>>>,
}

fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
        v4 => v4,
    }
}

impl SignInThrottle {
    /// How long `client` must wait before trying again, if it has used up
    /// its failures.
    pub fn wait(&self, client: IpAddr, now: Duration) -> Option<Duration> {
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.get(&client_key(client))?;
        let recent: Vec<&Duration> = list
            .iter()
            .filter(|t| now.saturating_sub(**t) < FAILURE_WINDOW)
            .collect();
        (recent.len() >= MAX_FAILURES).then(|| {
            let oldest = recent[recent.len() - MAX_FAILURES];
            (*oldest + FAILURE_WINDOW)
                .saturating_sub(now)
                .max(Duration::from_secs(1))
        })
    }

    /// Notes a failed sign-in.
    pub fn failed(&self, client: IpAddr, now: Duration) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED_CLIENTS {
            map.retain(|_, l| {
                l.back()
                    .is_some_and(|t| now.saturating_sub(*t) < FAILURE_WINDOW)
            });
            if map.len() >= MAX_TRACKED_CLIENTS {
                map.clear();
            }
        }
        let list = map.entry(client_key(client)).or_default();
        list.push_back(now);
        while list.len() > MAX_FAILURES {
            list.pop_front();
        }
    }

    /// Forgets a client's failures once it signs in.
    pub fn succeeded(&self, client: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&client_key(client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn a_session_knows_its_csrf_token_until_it_expires_or_ends() {
        let sessions = Sessions::default();
        let one = sessions.create([1; 32], [2; 32], S(1000));
        assert_eq!(one.id.len(), 64);
        assert_ne!(one.id, one.csrf);
        assert_eq!(sessions.csrf(&one.id, S(1001)), Some(one.csrf.clone()));
        assert_eq!(
            sessions.csrf(&one.csrf, S(1001)),
            None,
            "the CSRF token is no session id"
        );
        assert_eq!(sessions.csrf(&one.id, S(1000) + SESSION_LIFETIME), None);
        let two = sessions.create([3; 32], [4; 32], S(2000));
        sessions.end(&two.id);
        assert_eq!(sessions.csrf(&two.id, S(2001)), None);
        let three = sessions.create([5; 32], [6; 32], S(3000));
        sessions.end_all();
        assert_eq!(sessions.csrf(&three.id, S(3001)), None);
    }

    #[test]
    fn sessions_are_capped_and_the_oldest_goes_first() {
        let sessions = Sessions::default();
        let first = sessions.create([0; 32], [0; 32], S(10));
        for i in 1..=MAX_SESSIONS {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            sessions.create(id, [9; 32], S(10 + i as u64));
        }
        assert_eq!(sessions.csrf(&first.id, S(500)), None);
        assert_eq!(sessions.by_id.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn five_failures_in_a_minute_make_a_client_wait_and_others_do_not() {
        let throttle = SignInThrottle::default();
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        for i in 0..MAX_FAILURES as u64 {
            assert_eq!(throttle.wait(client, S(100 + i)), None);
            throttle.failed(client, S(100 + i));
        }
        assert_eq!(throttle.wait(client, S(105)), Some(S(55)));
        assert_eq!(throttle.wait("198.51.100.8".parse().unwrap(), S(105)), None);
        assert_eq!(throttle.wait(client, S(160)), None, "the window passed");
        // Another address of the same IPv6 /64 counts as the same client.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        for i in 0..MAX_FAILURES as u64 {
            throttle.failed(v6a, S(200 + i));
        }
        assert!(throttle
            .wait("2001:db8::ffff".parse().unwrap(), S(205))
            .is_some());
        throttle.succeeded(v6a);
        assert_eq!(throttle.wait(v6a, S(205)), None);
    }
}
