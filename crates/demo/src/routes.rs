//! Maps each request to the page that answers it.
//!
//! | route | methods | answer |
//! | --- | --- | --- |
//! | `/` | GET | home page |
//! | `/donate` | GET, POST | donation form; POST records the donation and thanks the donor |
//! | `/login` | GET, POST | organiser login; POST answers 200 "Welcome" or 401 |
//! | `/search?q=` | GET | news search, deliberately injectable |
//! | `/donations/feed` | GET | RSS feed of the 20 latest donations, leaking donors' names |
//! | `/api/health` | GET | `{"status":"ok"}` |
//! | `/static/style.css` | GET | the stylesheet |
//! | `/slow?ms=` | GET | waits, then 200, for timeout tests |
//! | `/echo` | any | JSON description of the request, for proxy tests |
//! | `/big?kb=` | GET | `kb` KiB of numbered text, for streaming tests |
//!
//! `HEAD` is accepted wherever `GET` is. Anything else is a 404 page.
//!
//! A site started with a capacity (see [`crate::Options`]) answers 503 to requests beyond it and
//! serves its counts at `/.demo/stats`.

use std::thread;
use std::time::Duration;

use crate::server::{Body, Request, Response};
use crate::store::NewDonation;
use crate::{form, pages, Shared};

/// How many donations the RSS feed lists.
const FEED_LENGTH: usize = 20;

/// The longest `/slow` will wait. Thirty seconds is past every timeout a gateway test would set,
/// without letting one request pin a blocking thread for long.
const MAX_SLOW_MS: u64 = 30_000;

/// How long `/slow` waits when not told.
const DEFAULT_SLOW_MS: u64 = 1_000;

/// The largest body `/big` will stream: 64 MiB is enough to see a proxy stream rather than buffer
/// without making a test wait long on loopback.
const MAX_BIG_KIB: u64 = 64 * 1024;

/// The largest single donation the form takes. It keeps amounts far from integer overflow and
/// the demo's numbers believable.
const MAX_DONATION_PENCE: i64 = 100_000 * 100;

/// The longest name the donation form takes, in characters.
const MAX_NAME_CHARS: usize = 100;
/// The longest email address the donation form takes (RFC 5321 allows 254).
const MAX_EMAIL_CHARS: usize = 254;

const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// Answers one request. Runs on one of the runtime's blocking threads; the database lock is held
/// only inside the store's methods.
pub(crate) fn route(request: &Request, shared: &Shared) -> Response {
    if let Some(capacity) = &shared.capacity {
        if request.path == crate::STATS_PATH {
            return Response::new(200, "application/json", capacity.stats_json())
                .with_header("Cache-Control", "no-store");
        }
        if !capacity.admit() {
            return Response::html(503, crate::capacity::OVER_CAPACITY_PAGE.to_string())
                .with_header("Retry-After", "1");
        }
    }
    let method = request.method.as_str();
    let is_get = matches!(method, "GET" | "HEAD");
    match (request.path.as_str(), method) {
        ("/", _) if is_get => Response::html(200, pages::home()),
        ("/donate", _) if is_get => Response::html(200, pages::donate_form(None)),
        ("/donate", "POST") => donate(request, shared),
        ("/login", _) if is_get => Response::html(200, pages::login_form()),
        ("/login", "POST") => login(request, shared),
        ("/search", _) if is_get => search(request, shared),
        ("/donations/feed", _) if is_get => feed(request, shared),
        ("/api/health", _) if is_get => {
            Response::new(200, "application/json", &br#"{"status":"ok"}"#[..])
        }
        ("/static/style.css", _) if is_get => {
            Response::new(200, "text/css; charset=utf-8", pages::STYLESHEET)
                .with_header("Cache-Control", "public, max-age=3600")
        }
        ("/slow", _) if is_get => slow(request),
        ("/echo", _) => echo(request),
        ("/big", _) if is_get => big(request),
        ("/donate" | "/login", _) => method_not_allowed("GET, HEAD, POST"),
        (
            "/" | "/search" | "/donations/feed" | "/api/health" | "/static/style.css" | "/slow"
            | "/big",
            _,
        ) => method_not_allowed("GET, HEAD"),
        (path, _) => Response::html(404, pages::not_found(path)),
    }
}

fn method_not_allowed(allow: &'static str) -> Response {
    Response::html(
        405,
        pages::client_error(405, "That page doesn't accept this method."),
    )
    .with_header("Allow", allow)
}

/// The body of a form POST as text, or the response refusing it when it isn't a form.
fn form_body(request: &Request) -> Result<String, Response> {
    let content_type = request.header("content-type").unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case(FORM_CONTENT_TYPE) {
        return Err(Response::html(
            415,
            pages::client_error(
                415,
                "Forms must be sent as application/x-www-form-urlencoded.",
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&request.body).into_owned())
}

fn query_param(request: &Request, name: &str) -> Option<String> {
    request
        .query
        .as_deref()
        .and_then(|query| form::field(query, name))
}

fn donate(request: &Request, shared: &Shared) -> Response {
    let body = match form_body(request) {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let field = |name| {
        form::field(&body, name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (first_name, last_name, email, amount) = (
        field("first_name"),
        field("last_name"),
        field("email"),
        field("amount"),
    );
    let refuse = |message: &str| Response::html(400, pages::donate_form(Some(message)));

    if first_name.is_empty() {
        return refuse("Please tell us your first name.");
    }
    if first_name.chars().count() > MAX_NAME_CHARS || last_name.chars().count() > MAX_NAME_CHARS {
        return refuse("Names can be at most 100 characters long.");
    }
    if email.chars().count() > MAX_EMAIL_CHARS {
        return refuse("That email address is too long.");
    }
    let Some(amount_pence) = parse_pence(&amount) else {
        return refuse("Please enter an amount in pounds, such as 25 or 12.50.");
    };
    if !(100..=MAX_DONATION_PENCE).contains(&amount_pence) {
        return refuse("Donations must be between £1 and £100,000.");
    }
    let donation = NewDonation {
        first_name: &first_name,
        last_name: &last_name,
        email: &email,
        amount_pence,
    };
    match shared.store.record_donation(&donation) {
        Ok(_) => Response::html(200, pages::thank_you(&first_name, amount_pence)),
        Err(e) => Response::html(500, pages::database_error(&e.to_string())),
    }
}

/// Parses an amount in pounds such as `25`, `12.5`, `£1,250.00` into pence. `None` for anything
/// that isn't a plain non-negative amount with at most two decimal places.
fn parse_pence(text: &str) -> Option<i64> {
    let text = text.trim();
    let text = text.strip_prefix('£').unwrap_or(text).trim_start();
    let cleaned: String = text.chars().filter(|&c| c != ',').collect();
    let (pounds, fraction) = cleaned.split_once('.').unwrap_or((&cleaned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // Twelve digits of pounds is far past the donation cap, so the arithmetic can't overflow.
    if pounds.is_empty() || pounds.len() > 12 || !all_digits(pounds) {
        return None;
    }
    if fraction.len() > 2 || !all_digits(fraction) || (cleaned.contains('.') && fraction.is_empty())
    {
        return None;
    }
    let pounds: i64 = pounds.parse().ok()?;
    let pence: i64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    Some(pounds * 100 + pence)
}

fn login(request: &Request, shared: &Shared) -> Response {
    let body = match form_body(request) {
        Ok(body) => body,
        Err(refusal) => return refusal,
    };
    let username = form::field(&body, "username").unwrap_or_default();
    let password = form::field(&body, "password").unwrap_or_default();
    match shared.store.check_login(&username, &password) {
        Ok(Some(display_name)) => Response::html(200, pages::welcome(&display_name)),
        Ok(None) => Response::html(401, pages::login_failed()),
        Err(e) => Response::html(500, pages::database_error(&e.to_string())),
    }
}

fn search(request: &Request, shared: &Shared) -> Response {
    let q = query_param(request, "q");
    // See `Store::search_articles_unsafely`: `q` goes into the SQL text unescaped, on purpose.
    match shared
        .store
        .search_articles_unsafely(q.as_deref().unwrap_or(""))
    {
        Ok(results) => Response::html(200, pages::search(q.as_deref(), Some(&results))),
        // A careless site shows the database's own error message, which is what makes
        // error-based injection easy; this one does too.
        Err(e) => Response::html(500, pages::database_error(&e.to_string())),
    }
}

fn feed(request: &Request, shared: &Shared) -> Response {
    let host = request.header("host").unwrap_or("localhost");
    match shared.store.recent_donations(FEED_LENGTH) {
        Ok(donations) => Response::new(
            200,
            "application/rss+xml; charset=utf-8",
            pages::donations_feed(host, &donations),
        ),
        Err(e) => Response::html(500, pages::database_error(&e.to_string())),
    }
}

/// Reads a whole-number query parameter, `default` when absent, capped at `max`. `Err` holds the
/// 400 answer for a value that isn't a number.
fn number_param(request: &Request, name: &str, default: u64, max: u64) -> Result<u64, Response> {
    match query_param(request, name) {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) => Ok(n.min(max)),
            // All digits but unparseable means too many digits: treat it as the cap.
            Err(_) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => Ok(max),
            Err(_) => Err(Response::html(
                400,
                pages::client_error(400, "That parameter must be a whole number."),
            )),
        },
    }
}

fn slow(request: &Request) -> Response {
    let ms = match number_param(request, "ms", DEFAULT_SLOW_MS, MAX_SLOW_MS) {
        Ok(ms) => ms,
        Err(refusal) => return refusal,
    };
    thread::sleep(Duration::from_millis(ms));
    Response::new(200, "text/plain; charset=utf-8", format!("slept {ms} ms\n"))
}

fn big(request: &Request) -> Response {
    let kib = match number_param(request, "kb", 1, MAX_BIG_KIB) {
        Ok(kib) => kib,
        Err(refusal) => return refusal,
    };
    Response {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        headers: Vec::new(),
        body: Body::Filler { kib },
    }
}

/// Describes the request as JSON, so a proxy test can see exactly what reached the origin.
fn echo(request: &Request) -> Response {
    let headers: Vec<[&str; 2]> = request
        .headers
        .iter()
        .map(|(name, value)| [name.as_str(), value.as_str()])
        .collect();
    let description = serde_json::json!({
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "version": format!("{:?}", request.version),
        "headers": headers,
        "body_length": request.body.len(),
        "peer": request.peer.to_string(),
    });
    let mut body = serde_json::to_vec_pretty(&description).unwrap_or_default();
    body.push(b'\n');
    Response::new(200, "application/json", body)
}

#[cfg(test)]
mod tests {
    use super::parse_pence;

    #[test]
    fn pence_from_pounds() {
        assert_eq!(parse_pence("25"), Some(2500));
        assert_eq!(parse_pence("12.5"), Some(1250));
        assert_eq!(parse_pence(" £1,250.00 "), Some(125_000));
        assert_eq!(parse_pence("0.99"), Some(99));
        assert_eq!(parse_pence(""), None);
        assert_eq!(parse_pence("12."), None);
        assert_eq!(parse_pence(".5"), None);
        assert_eq!(parse_pence("1.234"), None);
        assert_eq!(parse_pence("-5"), None);
        assert_eq!(parse_pence("ten"), None);
        assert_eq!(parse_pence("9999999999999999999999"), None);
    }
}
