//! One legitimate visitor, behaving as a browser does: browser headers, a
//! cookie jar, one keep-alive connection, the challenge solved as the page's
//! script would, redirects followed, and the waiting room's refresh obeyed.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::challenge::{is_waiting_room, meta_refresh_secs, parse_challenge, verify_form, Solvers};
use crate::client::{request, ClientError, Connection, Response};
use crate::report::BrowserTally;

/// Requests one page view may take: the page, a challenge and its answer,
/// redirects and waiting-room refreshes. Past it the view has failed.
const MAX_STEPS: u32 = 64;

/// Headers every request carries, as a current desktop browser sends them
/// (without compression, which the drill does not decode).
const BROWSER_HEADERS: &str = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 rampart-drill\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-GB,en;q=0.9\r\n";

/// A cookie jar for one site: names and values, as `Set-Cookie` left them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CookieJar {
    cookies: Vec<(String, String)>,
}

impl CookieJar {
    /// Takes one `Set-Cookie` value. `Max-Age=0` (or less) removes it. Other
    /// attributes are ignored: on loopback a browser sends `Secure` cookies
    /// over plain HTTP too.
    pub fn store(&mut self, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() {
            return;
        }
        let expired = parts.any(|a| {
            a.trim().split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("max-age")
                    && v.trim().parse::<i64>().is_ok_and(|n| n <= 0)
            })
        });
        self.cookies.retain(|(n, _)| n != name);
        if !expired {
            self.cookies.push((name.to_string(), value.to_string()));
        }
    }

    /// The `Cookie` header line (with CRLF), or nothing.
    pub fn header_line(&self) -> String {
        if self.cookies.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        format!("Cookie: {}\r\n", pairs.join("; "))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A visitor.
pub struct Visitor {
    source: Option<IpAddr>,
    target: SocketAddr,
    host: String,
    timeout: Duration,
    conn: Option<Connection>,
    pub jar: CookieJar,
}

/// What one page view came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewOutcome {
    /// The real page, after at most one challenge.
    Success,
    /// Anything else, with the reason for the report.
    Failed(String),
}

impl Visitor {
    pub fn new(
        source: Option<IpAddr>,
        target: SocketAddr,
        host: String,
        timeout: Duration,
    ) -> Visitor {
        Visitor {
            source,
            target,
            host,
            timeout,
            conn: None,
            jar: CookieJar::default(),
        }
    }

    /// Opens `path` as a person would and keeps at it until the real page
    /// shows or the view fails. Every request's latency and every challenge
    /// and wait go into `tally` as they happen, so a view cut short still
    /// counts what it did. `solvers` solve the challenge.
    pub async fn view(
        &mut self,
        path: &str,
        solvers: &Solvers,
        tally: &mut BrowserTally,
    ) -> ViewOutcome {
        let mut url = path.to_string();
        let mut challenged = false;
        for _ in 0..MAX_STEPS {
            let r = match self.fetch("GET", &url, None, tally).await {
                Ok(r) => r,
                Err(why) => return ViewOutcome::Failed(why),
            };
            let body = r.text();
            if let Some(page) = parse_challenge(&body) {
                if challenged {
                    return ViewOutcome::Failed("challenged again after solving".into());
                }
                challenged = true;
                let started = Instant::now();
                let Some(solution) = solvers.solve(&page.token, page.bits).await else {
                    return ViewOutcome::Failed("no solver".into());
                };
                tally.solve_us.push(micros(started.elapsed()));
                tally.challenges += 1;
                let form = verify_form(&page.token, solution);
                match self.fetch("POST", &page.verify, Some(&form), tally).await {
                    // The script reloads the page when the answer is accepted.
                    Ok(v) if (200..300).contains(&v.status) => continue,
                    Ok(v) => {
                        return ViewOutcome::Failed(format!("solution refused ({})", v.status))
                    }
                    Err(why) => return ViewOutcome::Failed(why),
                }
            }
            match r.status {
                200..=299 => return ViewOutcome::Success,
                301 | 302 | 303 | 307 | 308 => match r
                    .header("location")
                    .and_then(|l| local_path(l, &self.host))
                {
                    Some(next) => url = next,
                    None => {
                        return ViewOutcome::Failed(format!("status {} to another site", r.status))
                    }
                },
                // The waiting room, and any other 503 page that reloads
                // itself (a real browser follows the refresh and the visitor
                // waits; it is not a failure unless it never ends).
                503 if is_waiting_room(&body) || meta_refresh_secs(&body).is_some() => {
                    tally.waits += 1;
                    let secs = meta_refresh_secs(&body)
                        .or_else(|| r.header("retry-after").and_then(|v| v.parse().ok()))
                        .unwrap_or(1);
                    tokio::time::sleep(Duration::from_secs(u64::from(secs.clamp(1, 60)))).await;
                }
                s => return ViewOutcome::Failed(format!("status {s}")),
            }
        }
        ViewOutcome::Failed("too many steps".into())
    }

    /// One request on the visitor's connection (reconnecting when the
    /// server closed it), with cookies in and out and its latency recorded.
    async fn fetch(
        &mut self,
        method: &str,
        path: &str,
        form: Option<&str>,
        tally: &mut BrowserTally,
    ) -> Result<Response, String> {
        let bytes = request(
            method,
            path,
            &self.host,
            &format!("{BROWSER_HEADERS}{}", self.jar.header_line()),
            form,
        );
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.exchange(&bytes)).await;
        tally.request_us.push(micros(started.elapsed()));
        let r = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                self.conn = None;
                return Err(error_reason(&e));
            }
            Err(_) => {
                self.conn = None;
                return Err("timeout".into());
            }
        };
        for c in r.headers_named("set-cookie") {
            self.jar.store(c);
        }
        if !r.keep_alive {
            self.conn = None;
        }
        Ok(r)
    }

    /// Sends on the open connection, or a new one. A kept-alive connection
    /// the server closed meanwhile is retried once on a new one, as browsers do.
    async fn exchange(&mut self, bytes: &[u8]) -> Result<Response, ClientError> {
        if let Some(mut c) = self.conn.take() {
            match c.exchange(bytes, false).await {
                Ok(r) => {
                    self.conn = Some(c);
                    return Ok(r);
                }
                Err(ClientError::ClosedBeforeResponse) => {}
                Err(e) => return Err(e),
            }
        }
        let mut c = Connection::open(self.source, self.target).await?;
        let r = c.exchange(bytes, false).await?;
        self.conn = Some(c);
        Ok(r)
    }
}

/// A report-friendly reason for a failed request.
fn error_reason(e: &ClientError) -> String {
    match e {
        ClientError::Connect(_) => "cannot connect".into(),
        ClientError::ClosedBeforeResponse => "closed without answering".into(),
        ClientError::Io(_) => "connection failed".into(),
        ClientError::Malformed(why) => format!("bad response ({why})"),
    }
}

/// A redirect target as a local path: `/x` as is, `http://HOST/x` for our
/// own host; anything else is another site.
fn local_path(location: &str, host: &str) -> Option<String> {
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(location.to_string());
    }
    let rest = location.strip_prefix("http://")?.strip_prefix(host)?;
    Some(if rest.is_empty() {
        "/".into()
    } else if rest.starts_with('/') {
        rest.to_string()
    } else {
        return None;
    })
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jar_keeps_replaces_and_expires_cookies() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header_line(), "");
        jar.store("rampart_clearance=1.2.ab; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax");
        jar.store("session=x");
        jar.store("rampart_clearance=1.3.cd; Path=/");
        assert_eq!(
            jar.header_line(),
            "Cookie: session=x; rampart_clearance=1.3.cd\r\n"
        );
        jar.store("session=; Max-Age=0");
        assert_eq!(jar.get("session"), None);
        jar.store("garbage");
        assert_eq!(jar.header_line(), "Cookie: rampart_clearance=1.3.cd\r\n");
    }

    #[test]
    fn redirects_stay_on_the_site() {
        assert_eq!(local_path("/donate?x=1", "a:1"), Some("/donate?x=1".into()));
        assert_eq!(local_path("http://a:1/x", "a:1"), Some("/x".into()));
        assert_eq!(local_path("http://a:1", "a:1"), Some("/".into()));
        assert_eq!(local_path("//evil/", "a:1"), None);
        assert_eq!(local_path("http://a:12/x", "a:1"), None);
        assert_eq!(local_path("https://a:1/x", "a:1"), None);
    }
}
