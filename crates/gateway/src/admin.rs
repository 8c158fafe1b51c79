//! The admin listener: metrics, reload, modes and bans, on loopback by
//! default.
//!
//! `GET /metrics` answers Prometheus text and `GET /healthz` says the process
//! is alive; both are open, for scrapers. `POST /reload` re-reads the
//! configuration file and answers with the outcome (the same as SIGHUP, but
//! the caller sees the errors); `POST /mode`, `POST /ban`, `POST /unban` and
//! `GET /bans` (which lists client addresses) need the admin token, sent as
//! `Authorization: Bearer TOKEN`: 401 without it or with another.
//!
//! Whatever the path, a request is refused with 403 when a browser could
//! have been made to send it: a `Host` that is a name other than
//! `localhost` (DNS rebinding: a page of `evil.example`, whose name now
//! points at 127.0.0.1, still sends `Host: evil.example`), an `Origin` other
//! than the listener's own (as the `Host` names it), or a `Sec-Fetch-Site`
//! that says another site asked.
//!
//! The token is made at the first start, 32 random bytes in hex, in
//! `admin-token` in the state directory (mode 0600, never through a link),
//! and read from there at later starts; the `rampart` commands read the same
//! file.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::runtime::Runtime;

pub struct AdminApp {
    pub runtime: Arc<Runtime>,
    /// The bearer token the state-changing calls need.
    pub token: String,
}

fn respond(status: u16, content_type: &str, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body.into_bytes())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

fn error(status: u16, message: &str) -> Response<Vec<u8>> {
    respond(
        status,
        "application/json",
        serde_json::json!({ "error": message }).to_string(),
    )
}

/// The calls that change state or reveal client addresses.
fn needs_token(method: &str, path: &str) -> bool {
    matches!(
        (method, path),
        ("POST", "/reload")
            | ("POST", "/mode")
            | ("POST", "/ban")
            | ("POST", "/unban")
            | ("GET", "/bans")
    )
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.as_str().to_string();
        let path = session.req_header().uri.path().to_string();
        if let Err(why) = browser_check(session.req_header()) {
            return error(403, &why);
        }
        if needs_token(&method, &path) && !bearer_matches(session.req_header(), &self.token) {
            let mut refused = error(401, "this call needs the admin token: send Authorization: Bearer TOKEN, with the token from the admin-token file the gateway named when it started (the rampart commands read it themselves)");
            refused.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"rampart admin\""),
            );
            return refused;
        }
        match (method.as_str(), path.as_str()) {
            ("GET", "/metrics") => {
                let mut text = self.runtime.metrics.render();
                if let Some(flood) = &self.runtime.snapshot().flood {
                    let c = flood.shield.counters();
                    text.push_str("# HELP rampart_flood_requests_total Requests by the flood shield's decision.\n# TYPE rampart_flood_requests_total counter\n");
                    for (what, n) in [("continued", c.continued), ("limited", c.limited), ("challenged", c.challenged), ("queued", c.queued), ("unavailable", c.unavailable), ("banned", c.banned), ("cleared", c.cleared)] {
                        text.push_str(&format!("rampart_flood_requests_total{{decision=\"{what}\"}} {n}\n"));
                    }
                    text.push_str(&format!("# TYPE rampart_flood_events_dropped_total counter\nrampart_flood_events_dropped_total {}\n", c.events_dropped));
                }
                let cache = self.runtime.cache.stats();
                text.push_str(&format!(
                    "# HELP rampart_cache_entries Responses kept by the serve-stale cache.\n# TYPE rampart_cache_entries gauge\nrampart_cache_entries {}\n\
                     # HELP rampart_cache_bytes Memory held by the serve-stale cache.\n# TYPE rampart_cache_bytes gauge\nrampart_cache_bytes {}\n\
                     # HELP rampart_cache_stored_total Responses copied into the cache.\n# TYPE rampart_cache_stored_total counter\nrampart_cache_stored_total {}\n",
                    cache.entries, cache.bytes, cache.stored
                ));
                if self.runtime.events.enabled() {
                    let (recorded, dropped) = self.runtime.events.counts();
                    text.push_str(&format!(
                        "# HELP rampart_events_recorded_total Events handed to the event store.\n# TYPE rampart_events_recorded_total counter\nrampart_events_recorded_total {recorded}\n\
                         # HELP rampart_events_dropped_total Events dropped because the store's queue was full.\n# TYPE rampart_events_dropped_total counter\nrampart_events_dropped_total {dropped}\n"
                    ));
                }
                respond(200, "text/plain; version=0.0.4", text)
            }
            ("POST", "/mode") | ("POST", "/ban") | ("POST", "/unban") | ("GET", "/bans") => self.flood_admin(&method, &path, session.req_header().uri.query().unwrap_or("")),
            ("GET", "/healthz") => respond(200, "text/plain", "ok\n".into()),
            ("POST", "/reload") => match self.runtime.reload() {
                Ok(warnings) => {
                    let generation = self.runtime.snapshot().generation;
                    let body = serde_json::json!({ "reloaded": true, "generation": generation, "warnings": warnings });
                    respond(200, "application/json", body.to_string())
                }
                Err(errors) => {
                    let list: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
                    let body = serde_json::json!({ "reloaded": false, "errors": list });
                    respond(422, "application/json", body.to_string())
                }
            },
            _ => respond(404, "text/plain", "not found: try GET /metrics, GET /healthz, POST /reload, POST /mode, POST /ban, POST /unban or GET /bans\n".into()),
        }
    }
}

fn query_field(query: &str, name: &str) -> Option<String> {
    rampart_flood::pages::form_field(query, name).map(rampart_flood::pages::percent_decode)
}

impl AdminApp {
    /// Site modes and bans: `POST /mode?site=S&mode=under-attack|normal|auto`,
    /// `POST /ban?client=IP[&secs=N]`, `POST /unban?client=IP`, `GET /bans`.
    fn flood_admin(&self, method: &str, path: &str, query: &str) -> Response<Vec<u8>> {
        let snapshot = self.runtime.snapshot();
        let Some(flood) = &snapshot.flood else {
            return respond(
                409,
                "application/json",
                serde_json::json!({"error": "the flood shield is off in this configuration"})
                    .to_string(),
            );
        };
        let shield = &flood.shield;
        let now = crate::flood::now();
        let bad = |m: String| {
            respond(
                400,
                "application/json",
                serde_json::json!({ "error": m }).to_string(),
            )
        };
        match (method, path) {
            ("POST", "/mode") => {
                let Some(site) = query_field(query, "site") else {
                    return bad("give ?site=NAME".into());
                };
                let Some(id) = shield.site_id(&site) else {
                    return bad(format!("no site `{site}` in the flood configuration"));
                };
                let manual = match query_field(query, "mode").as_deref() {
                    Some("under-attack") => Some(true),
                    Some("normal") => Some(false),
                    Some("auto") => None,
                    _ => return bad("mode must be under-attack, normal or auto".into()),
                };
                shield.set_mode(id, manual, now);
                respond(
                    200,
                    "application/json",
                    serde_json::json!({ "site": site, "under_attack": shield.under_attack(id) })
                        .to_string(),
                )
            }
            ("POST", "/ban") | ("POST", "/unban") => {
                let Some(client) =
                    query_field(query, "client").and_then(|c| c.parse::<std::net::IpAddr>().ok())
                else {
                    return bad("give ?client=ADDRESS (an IPv4 or IPv6 address)".into());
                };
                if path == "/unban" {
                    let lifted = shield.unban(client, now);
                    return respond(
                        200,
                        "application/json",
                        serde_json::json!({ "client": client.to_string(), "unbanned": lifted })
                            .to_string(),
                    );
                }
                let duration = query_field(query, "secs")
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(std::time::Duration::from_secs);
                let record = shield.ban(client, duration, now);
                respond(200, "application/json", serde_json::json!({ "client": client.to_string(), "until": record.until.as_secs(), "level": record.level }).to_string())
            }
            _ => {
                let list: Vec<serde_json::Value> = shield
                    .bans(now, 10_000)
                    .into_iter()
                    .map(|(ip, r)| serde_json::json!({ "client": ip.to_string(), "until": r.until.as_secs(), "level": r.level, "reason": format!("{:?}", r.reason) }))
                    .collect();
                respond(
                    200,
                    "application/json",
                    serde_json::Value::Array(list).to_string(),
                )
            }
        }
    }
}

/// Refuses what a browser could have been made to send; see the module
/// documentation. Requests from programs (curl, the `rampart` commands,
/// scrapers) carry an address or `localhost` as their `Host` and no
/// `Origin`, and pass.
fn browser_check(req: &pingora::http::RequestHeader) -> Result<(), String> {
    let single = |name: http::header::HeaderName| -> Result<Option<&str>, String> {
        let mut values = req.headers.get_all(&name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(format!("more than one {name} header"));
        }
        first
            .map(|v| {
                v.to_str()
                    .map_err(|_| format!("the {name} header is not plain text"))
            })
            .transpose()
    };
    let host = single(http::header::HOST)?;
    for authority in host
        .into_iter()
        .chain(req.uri.authority().map(|a| a.as_str()))
    {
        if !is_address_authority(authority) {
            return Err(format!("the admin listener answers only to an address or localhost, not to `{authority}` (a name other than localhost may have been pointed here by someone else's page)"));
        }
    }
    if let Some(origin) = single(http::header::ORIGIN)? {
        let own = host.is_some_and(|h| {
            origin
                .strip_prefix("http://")
                .is_some_and(|o| o.eq_ignore_ascii_case(h))
        });
        if !own {
            return Err(format!(
                "requests from web pages are refused (Origin `{origin}`)"
            ));
        }
    }
    if let Some(site) = single(http::header::HeaderName::from_static("sec-fetch-site"))? {
        if !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none") {
            return Err(format!(
                "requests from web pages are refused (Sec-Fetch-Site `{site}`)"
            ));
        }
    }
    Ok(())
}

/// Whether a `Host` value is an IP address or `localhost`, with an
/// optional port: never a name that someone else's DNS could point here.
fn is_address_authority(authority: &str) -> bool {
    let port_ok = |p: &str| {
        !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && p.parse::<u16>().is_ok()
    };
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return false;
        };
        let after_ok = after.is_empty() || after.strip_prefix(':').is_some_and(port_ok);
        return after_ok && ip.parse::<Ipv6Addr>().is_ok();
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port_ok(port) => host,
        Some(_) => return false,
        None => authority,
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<Ipv4Addr>().is_ok()
}

/// Whether the request carries `Authorization: Bearer TOKEN` with the
/// admin token; compared in constant time.
fn bearer_matches(req: &pingora::http::RequestHeader, token: &str) -> bool {
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    let value = value.as_bytes();
    let Some(space) = value.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, rest) = value.split_at(space);
    let given = rest.trim_ascii();
    scheme.eq_ignore_ascii_case(b"bearer") && same_secret(given, token.as_bytes())
}

/// Compares two secrets in time that depends only on their lengths (the
/// length of a token is no secret: 64 hex digits).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// The warning printed at start when the admin listener is reachable from
/// other machines.
pub fn exposure_warning(admin: SocketAddr) -> Option<String> {
    let ip = match admin.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    (!ip.is_loopback()).then(|| format!(
        "the admin listener on {admin} is not on a loopback address: the admin API is reachable from the network and protected only by the admin token; keep admin_listen on 127.0.0.1 unless it must be reached from elsewhere, and then behind a firewall"
    ))
}

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
    let uid = effective_uid();
    if meta.uid() != uid && meta.uid() != 0 {
        return Err(format!("the directory {} of the admin token belongs to another user (uid {}); use a directory of your own (set XDG_STATE_HOME)", dir.display(), meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("the directory {} of the admin token is writable by other users (mode {:o}), who could replace the token; run chmod go-w {} or set XDG_STATE_HOME to a private directory", dir.display(), meta.mode() & 0o7777, dir.display()));
    }
    for _ in 0..3 {
        match read_own_token(path, uid) {
            Ok(token) => return Ok((token, false)),
            Err(Missing) => {}
            Err(Refused(message)) => return Err(message),
        }
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
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(format!(
                "cannot write the admin token file {}: {e}",
                tmp.display()
            ));
        }
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

    fn request(lines: &[(&str, &str)]) -> pingora::http::RequestHeader {
        let mut req = pingora::http::RequestHeader::build("POST", b"/mode", None).unwrap();
        for (name, value) in lines {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
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
    fn host_must_be_an_address_or_localhost() {
        for ok in [
            "127.0.0.1:9901",
            "127.0.0.1",
            "localhost:9901",
            "LOCALHOST",
            "[::1]:9901",
            "[::1]",
            "10.0.0.5:80",
        ] {
            assert!(is_address_authority(ok), "{ok}");
            assert!(browser_check(&request(&[("host", ok)])).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9901",
            "localhost.evil.example:9901",
            "127.0.0.1.nip.io:9901",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "[::1",
            "::1",
            "",
            "127.1:9901",
        ] {
            assert!(!is_address_authority(bad), "{bad}");
        }
        assert!(browser_check(&request(&[("host", "evil.example:9901")])).is_err());
        assert!(browser_check(&request(&[
            ("host", "127.0.0.1:9901"),
            ("host", "127.0.0.1:9901")
        ]))
        .is_err());
        assert!(
            browser_check(&request(&[])).is_ok(),
            "no Host (HTTP/1.0) is no browser"
        );
    }

    #[test]
    fn only_the_listeners_own_origin_passes() {
        let host = ("host", "127.0.0.1:9901");
        assert!(browser_check(&request(&[host, ("origin", "http://127.0.0.1:9901")])).is_ok());
        for bad in [
            "http://evil.example",
            "null",
            "https://127.0.0.1:9901",
            "http://127.0.0.1:9902",
            "http://127.0.0.1:9901.evil.example",
            "",
        ] {
            assert!(
                browser_check(&request(&[host, ("origin", bad)])).is_err(),
                "{bad}"
            );
        }
        assert!(browser_check(&request(&[("origin", "http://127.0.0.1:9901")])).is_err());
        assert!(browser_check(&request(&[host, ("sec-fetch-site", "cross-site")])).is_err());
        assert!(browser_check(&request(&[host, ("sec-fetch-site", "same-site")])).is_err());
        assert!(browser_check(&request(&[host, ("sec-fetch-site", "none")])).is_ok());
    }

    #[test]
    fn the_bearer_token_must_match_exactly() {
        let token = "0123456789abcdef".repeat(4);
        let with = |v: &str| request(&[("authorization", v)]);
        assert!(bearer_matches(&with(&format!("Bearer {token}")), &token));
        assert!(bearer_matches(&with(&format!("bearer  {token} ")), &token));
        assert!(!bearer_matches(&request(&[]), &token));
        assert!(!bearer_matches(&with(&format!("Basic {token}")), &token));
        assert!(!bearer_matches(
            &with(&format!("Bearer {}", &token[1..])),
            &token
        ));
        assert!(!bearer_matches(&with(&format!("Bearer {token}0")), &token));
        assert!(!bearer_matches(
            &with(&format!("Bearer {}", "f".repeat(64))),
            &token
        ));
        assert!(!bearer_matches(&with("Bearer"), &token));
        let twice = request(&[
            ("authorization", &format!("Bearer {token}")),
            ("authorization", &format!("Bearer {token}")),
        ]);
        assert!(!bearer_matches(&twice, &token));
        assert!(
            same_secret(b"abc", b"abc")
                && !same_secret(b"abc", b"abd")
                && !same_secret(b"abc", b"ab")
        );
    }

    #[test]
    fn a_listener_beyond_loopback_is_warned_about() {
        for quiet in ["127.0.0.1:9901", "[::1]:9901", "[::ffff:127.0.0.1]:9901"] {
            assert!(
                exposure_warning(quiet.parse().unwrap()).is_none(),
                "{quiet}"
            );
        }
        for loud in ["0.0.0.0:9901", "[::]:9901", "192.0.2.7:9901"] {
            let w = exposure_warning(loud.parse().unwrap()).unwrap();
            assert!(
                w.contains("reachable from the network") && w.contains("only by the admin token"),
                "{w}"
            );
        }
    }

    #[test]
    fn the_state_changing_calls_need_the_token_and_the_scrapers_do_not() {
        for call in [
            ("POST", "/reload"),
            ("POST", "/mode"),
            ("POST", "/ban"),
            ("POST", "/unban"),
            ("GET", "/bans"),
        ] {
            assert!(needs_token(call.0, call.1), "{call:?}");
        }
        for call in [("GET", "/metrics"), ("GET", "/healthz")] {
            assert!(!needs_token(call.0, call.1), "{call:?}");
        }
    }
}
