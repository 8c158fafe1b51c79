//! The site's HTML pages, stylesheet and RSS feed.
//!
//! Pages are plain `format!` templates. Every value that came from a client or the database is
//! escaped with [`escape::html`] or [`escape::xml`] on its way in.

use crate::escape;
use crate::server::reason_phrase;
use crate::store::{Donation, SearchResults};

/// The campaign's name, as it appears in titles and the header.
pub(crate) const PARTY: &str = "Fairshare Party";
const SLOGAN: &str = "Vote for a fairer future";

/// The shared stylesheet served at `/static/style.css`.
pub(crate) const STYLESHEET: &str = r#"/* Fairshare Party demo site */
:root { --ink: #1d2433; --brand: #0b6e4f; --brand-dark: #08533b; --accent: #f2b705; --paper: #f7f5ef; }
* { box-sizing: border-box; }
body { margin: 0; font: 17px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: var(--paper); }
header { background: var(--brand); color: #fff; padding: 1rem 0; border-bottom: 6px solid var(--accent); }
header .wrap { display: flex; align-items: center; justify-content: space-between; flex-wrap: wrap; gap: .5rem; }
header a.brand { color: #fff; text-decoration: none; font-weight: 800; font-size: 1.35rem; letter-spacing: .01em; }
header nav a { color: #fff; margin-left: 1.1rem; text-decoration: none; opacity: .9; }
header nav a:hover { opacity: 1; text-decoration: underline; }
.wrap { max-width: 52rem; margin: 0 auto; padding: 0 1.25rem; }
main { padding: 2rem 0 3rem; }
h1 { font-size: 2rem; line-height: 1.2; margin: 0 0 1rem; }
.card { background: #fff; border-radius: 12px; padding: 1.5rem; box-shadow: 0 1px 3px rgba(0,0,0,.08); margin-bottom: 1.25rem; }
form label { display: block; font-weight: 600; margin: .8rem 0 .25rem; }
form input { width: 100%; padding: .6rem .7rem; font: inherit; border: 1px solid #c9c4b5; border-radius: 8px; }
button, .button { display: inline-block; margin-top: 1.1rem; background: var(--brand); color: #fff; border: 0; border-radius: 8px; padding: .7rem 1.4rem; font: inherit; font-weight: 700; cursor: pointer; text-decoration: none; }
button:hover, .button:hover { background: var(--brand-dark); }
.error { background: #fdecea; color: #8a1c13; border-radius: 8px; padding: .75rem 1rem; }
.muted { color: #5d6475; font-size: .9rem; }
ul.results { list-style: none; padding: 0; }
ul.results li { padding: .8rem 0; border-bottom: 1px solid #e5e1d6; }
pre { white-space: pre-wrap; background: #fff; padding: 1rem; border-radius: 8px; }
footer { color: #5d6475; font-size: .85rem; padding: 1.5rem 0; border-top: 1px solid #e5e1d6; }
"#;

/// Wraps `body` in the site layout. `title` and `body` must already be escaped.
fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {PARTY}</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="alternate" type="application/rss+xml" title="Recent donations" href="/donations/feed">
</head>
<body>
<header><div class="wrap">
<a class="brand" href="/">{PARTY}</a>
<nav><a href="/donate">Donate</a><a href="/search">News</a><a href="/login">Organisers</a></nav>
</div></header>
<main><div class="wrap">
{body}
</div></main>
<footer><div class="wrap">Promoted by the {PARTY}, 1 Example Street, London. A demonstration site bundled with rampart; not a real party.</div></footer>
</body>
</html>
"#
    )
}

pub(crate) fn home() -> String {
    layout(
        SLOGAN,
        &format!(
            r#"<section class="card" style="border-top: 6px solid #f2b705">
<h1>{PARTY} — {SLOGAN}</h1>
<p>Fair rents, free school meals for every child, buses that run, and an NHS that stays public.
We are funded by thousands of small donations, not by billionaires.</p>
<a class="button" href="/donate">Donate today</a>
</section>
<section class="card">
<h2>Get involved</h2>
<ul>
<li><a href="/donate">Make a donation</a> — every pound goes to the campaign.</li>
<li><a href="/search">Read the campaign news</a> or <a href="/search?q=rent">search it</a>.</li>
<li><a href="/login">Organiser login</a> for volunteers and staff.</li>
<li><a href="/donations/feed">Recent donations</a> (RSS).</li>
</ul>
</section>"#
        ),
    )
}

/// The donation form, with an error message above it when a submission was refused.
pub(crate) fn donate_form(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, escape::html(e)))
        .unwrap_or_default();
    layout(
        "Donate",
        &format!(
            r#"<section class="card">
<h1>Donate to the {PARTY}</h1>
<p>Your donation pays for leaflets, halls and the volunteers' tea. Donations over £500 must come
from someone on the UK electoral register.</p>
{error}
<form method="post" action="/donate">
<label for="first_name">First name</label>
<input id="first_name" name="first_name" autocomplete="given-name" required maxlength="100">
<label for="last_name">Last name</label>
<input id="last_name" name="last_name" autocomplete="family-name" maxlength="100">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email" maxlength="200">
<label for="amount">Amount (£)</label>
<input id="amount" name="amount" inputmode="decimal" placeholder="25.00" required>
<button type="submit">Donate</button>
</form>
</section>"#
        ),
    )
}

/// The thank-you page. The donor's first name appears exactly once, addressed to the donor
/// themselves: the one place a site may legitimately show it.
pub(crate) fn thank_you(first_name: &str, amount_pence: i64) -> String {
    layout(
        "Thank you",
        &format!(
            r#"<section class="card" style="border-top: 6px solid #0b6e4f">
<h1>Thank you, {}!</h1>
<p>We have received your donation of <strong>{}</strong>. A receipt is on its way to your inbox.</p>
<a class="button" href="/">Back to the campaign</a>
</section>"#,
            escape::html(first_name),
            money(amount_pence)
        ),
    )
}

pub(crate) fn login_form() -> String {
    layout("Organiser login", &login_card(None))
}

pub(crate) fn login_failed() -> String {
    layout(
        "Login failed",
        &login_card(Some(
            "Login failed: that username and password don't match.",
        )),
    )
}

fn login_card(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!(r#"<p class="error">{}</p>"#, escape::html(e)))
        .unwrap_or_default();
    format!(
        r#"<section class="card">
<h1>Organiser login</h1>
{error}
<form method="post" action="/login">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>
</section>"#
    )
}

pub(crate) fn welcome(display_name: &str) -> String {
    layout(
        "Welcome",
        &format!(
            r#"<section class="card">
<h1>Welcome back, {}</h1>
<p>You are logged in to the organisers' area. Canvassing sheets for this weekend are ready.</p>
</section>"#,
            escape::html(display_name)
        ),
    )
}

/// The search page: the form, and the results when a query was given.
pub(crate) fn search(q: Option<&str>, results: Option<&SearchResults>) -> String {
    let value = q.map(escape::html).unwrap_or_default();
    let mut body = format!(
        r#"<section class="card">
<h1>Campaign news</h1>
<form method="get" action="/search">
<label for="q">Search the news</label>
<input id="q" name="q" value="{value}" placeholder="rent, NHS, buses…">
<button type="submit">Search</button>
</form>
</section>"#
    );
    if let Some(results) = results {
        body.push_str(r#"<section class="card">"#);
        match q {
            Some(q) if !q.is_empty() => body.push_str(&format!(
                "<h2>{} result{} for “{}”</h2>",
                results.hits.len(),
                if results.hits.len() == 1 { "" } else { "s" },
                escape::html(q)
            )),
            _ => body.push_str("<h2>All news</h2>"),
        }
        body.push_str(r#"<ul class="results">"#);
        for hit in &results.hits {
            body.push_str(&format!(
                "<li><strong>{}</strong><br>{}</li>",
                escape::html(&hit.title),
                escape::html(&hit.summary)
            ));
        }
        body.push_str("</ul>");
        if results.truncated {
            body.push_str(r#"<p class="muted">More results were left out.</p>"#);
        }
        body.push_str("</section>");
    }
    layout("News", &body)
}

/// The page a careless site shows when its database query fails: the raw error, which tells an
/// attacker exactly how their injection broke the SQL.
pub(crate) fn database_error(error: &str) -> String {
    layout(
        "Database error",
        &format!(
            r#"<section class="card">
<h1>Something went wrong</h1>
<p class="error">SQL error: {}</p>
</section>"#,
            escape::html(error)
        ),
    )
}

pub(crate) fn not_found(path: &str) -> String {
    layout(
        "Page not found",
        &format!(
            r#"<section class="card">
<h1>Page not found</h1>
<p>There is nothing at <code>{}</code>. Try the <a href="/">home page</a>.</p>
</section>"#,
            escape::html(path)
        ),
    )
}

/// The page for any 4xx or 5xx answer that has no page of its own.
pub(crate) fn client_error(status: u16, explanation: &str) -> String {
    layout(
        reason_phrase(status),
        &format!(
            r#"<section class="card">
<h1>{status} {}</h1>
<p>{}</p>
</section>"#,
            reason_phrase(status),
            escape::html(explanation)
        ),
    )
}

/// The RSS 2.0 feed of recent donations. Publishing donors' names and amounts is the mistake
/// rampart's response filter exists to catch; here the feed does it on purpose.
pub(crate) fn donations_feed(host: &str, donations: &[Donation]) -> String {
    let site = format!("http://{}/", escape::xml(host));
    let mut items = String::new();
    for donation in donations {
        let amount = money(donation.amount_pence);
        let name = escape::xml(&donation.first_name);
        let date = crate::clock::rss_date(&donation.donated_at)
            .map(|d| format!("<pubDate>{d}</pubDate>"))
            .unwrap_or_default();
        items.push_str(&format!(
            "    <item>\n      <title>{name} donated {amount}</title>\n      <description>{name} gave {amount} to the {PARTY} campaign.</description>\n      <link>{site}donate</link>\n      <guid isPermaLink=\"false\">donation-{}</guid>\n      {date}\n    </item>\n",
            donation.id
        ));
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>{PARTY}: recent donations</title>
    <link>{site}</link>
    <description>Thank you to everyone who has donated to the campaign.</description>
    <language>en-gb</language>
{items}  </channel>
</rss>
"#
    )
}

/// Formats pence as pounds, for example `£1,250.00`.
pub(crate) fn money(pence: i64) -> String {
    let sign = if pence < 0 { "-" } else { "" };
    let pence = pence.unsigned_abs();
    let pounds = (pence / 100).to_string();
    let mut grouped = String::with_capacity(pounds.len() + pounds.len() / 3);
    for (i, digit) in pounds.chars().enumerate() {
        if i > 0 && (pounds.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("{sign}£{grouped}.{:02}", pence % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(0), "£0.00");
        assert_eq!(money(2550), "£25.50");
        assert_eq!(money(125_000), "£1,250.00");
        assert_eq!(money(123_456_789), "£1,234,567.89");
    }

    #[test]
    fn thank_you_names_the_donor_once() {
        let page = thank_you("Alice", 2500);
        assert_eq!(page.matches("Alice").count(), 1);
        assert!(page.contains("Thank you, Alice!"));
        assert!(page.contains("£25.00"));
    }

    #[test]
    fn thank_you_escapes_the_name() {
        let page = thank_you("<script>alert(1)</script>", 100);
        assert!(!page.contains("<script>"));
    }
}
