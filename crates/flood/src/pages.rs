//! The pages the flood layer answers with: the proof-of-work challenge, the
//! no-script wait page, the waiting room and the "too busy" page.
//!
//! Every page is self-contained (no external assets: the site's own assets
//! may be what is being flooded), readable without colour or script, and has
//! a live status region so screen readers announce progress. Dynamic values
//! are only ever our own tokens (hex, digits, dots) and numbers, plus the
//! return path, which is HTML-escaped.

use std::fmt::Write as _;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rampart_escape::html as escape;
use sha2::{Digest, Sha256};

/// Where the challenge page posts a solution (`token` and `solution`, form
/// encoded). The gateway answers it with `Shield::verify_solution`.
pub const VERIFY_PATH: &str = "/.rampart/challenge/verify";

/// Where the no-script fallback sends the browser (`t` = wait token, `r` =
/// return path). The gateway answers it with `Shield::redeem_wait`.
pub const WAIT_PATH: &str = "/.rampart/challenge/wait";

/// The name of the clearance cookie.
pub const CLEARANCE_COOKIE: &str = "rampart_clearance";

/// The name of the waiting-room ticket cookie.
pub const TICKET_COOKIE: &str = "rampart_ticket";

const STYLE: &str = "body{font:1.1rem/1.5 system-ui,sans-serif;max-width:34rem;margin:10vh auto;padding:0 1rem;color:#111;background:#fff}\
@media (prefers-color-scheme:dark){body{color:#eee;background:#111}a{color:#9cf}}\
h1{font-size:1.5rem}";

/// The challenge page's only script. It is static (the token travels in data
/// attributes) so its hash can be allowed by a strict Content-Security-Policy;
/// see `challenge_csp`.
///
/// It hashes `token + ":" + n` with SHA-256 in a Web Worker (so the page stays
/// responsive and the status stays readable), 256 candidates per batch, until
/// the hash has `bits` leading zero bits; posts the answer; and reloads the
/// original URL. Without Web Workers or WebCrypto (WebCrypto needs HTTPS) it
/// falls back to the same timed wait as browsers without script.
pub const CHALLENGE_SCRIPT: &str = r#"(function(){
var root=document.getElementById('rampart-challenge');
var status=document.getElementById('rampart-status');
var token=root.getAttribute('data-token');
var bits=parseInt(root.getAttribute('data-bits'),10);
var verify=root.getAttribute('data-verify');
var wait=root.getAttribute('data-wait');
var waitSecs=parseInt(root.getAttribute('data-wait-secs'),10);
function fallback(){status.textContent='Checking your connection. This page will continue in '+waitSecs+' seconds.';setTimeout(function(){location.replace(wait);},waitSecs*1000+250);}
if(!window.Worker||!window.crypto||!crypto.subtle||!window.fetch){fallback();return;}
var code="self.onmessage=async function(e){var p=e.data.prefix,b=e.data.bits,enc=new TextEncoder(),full=b>>3,rem=b&7,mask=rem?(0xff<<(8-rem))&0xff:0,n=0;"+
"function ok(h){for(var i=0;i<full;i++){if(h[i]!==0)return false;}return rem===0||(h[full]&mask)===0;}"+
"for(;;){var jobs=[];for(var i=0;i<256;i++){jobs.push(crypto.subtle.digest('SHA-256',enc.encode(p+(n+i))));}"+
"var hs=await Promise.all(jobs);for(var j=0;j<256;j++){if(ok(new Uint8Array(hs[j]))){self.postMessage({solution:n+j});return;}}n+=256;}};";
var worker;
try{worker=new Worker(URL.createObjectURL(new Blob([code],{type:'text/javascript'})));}catch(e){fallback();return;}
worker.onerror=function(){fallback();};
worker.onmessage=function(e){
status.textContent='Almost done…';
fetch(verify,{method:'POST',credentials:'same-origin',headers:{'Content-Type':'application/x-www-form-urlencoded'},
body:'token='+encodeURIComponent(token)+'&solution='+e.data.solution}).then(function(r){
if(r.ok){status.textContent='Done. Loading the page…';location.replace(location.href);}else{fallback();}
},function(){fallback();});
};
worker.postMessage({prefix:token+':',bits:bits});
})();"#;

/// A `Content-Security-Policy` value that allows exactly the challenge
/// page's script, its worker and its style, and nothing else.
pub fn challenge_csp() -> String {
    format!(
        "default-src 'none'; script-src 'sha256-{}'; worker-src blob:; connect-src 'self'; style-src 'sha256-{}'; base-uri 'none'; form-action 'self'",
        STANDARD.encode(Sha256::digest(CHALLENGE_SCRIPT.as_bytes())),
        STANDARD.encode(Sha256::digest(STYLE.as_bytes())),
    )
}

/// What the challenge page needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengePage<'a> {
    /// The challenge token to solve.
    pub token: &'a str,
    /// Leading zero bits required.
    pub difficulty: u8,
    /// The no-script wait token.
    pub wait_token: &'a str,
    /// Seconds until the wait token is valid.
    pub wait_secs: u32,
    /// Where to go back to; passed through `safe_return_path`.
    pub return_to: &'a str,
}

/// Renders the challenge page. Serve it with status 403 (or 503 when the
/// site is in under-attack mode, to tell crawlers to come back),
/// `Cache-Control: no-store` and `challenge_csp()`.
pub fn challenge_page(p: &ChallengePage<'_>) -> String {
    let wait_url = wait_url(p.wait_token, p.return_to);
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<title>Checking your connection</title>\
<noscript><meta http-equiv=\"refresh\" content=\"{wait};url={url}\"></noscript>\
<style>{STYLE}</style></head><body>\
<main id=\"rampart-challenge\" data-token=\"{token}\" data-bits=\"{bits}\" data-verify=\"{VERIFY_PATH}\" data-wait=\"{url}\" data-wait-secs=\"{wait}\">\
<h1>Checking your connection</h1>\
<p>This site is receiving unusually heavy traffic. Your browser is doing a short calculation to show it is a real visitor; it usually takes a few seconds.</p>\
<p id=\"rampart-status\" role=\"status\" aria-live=\"polite\">Please wait…</p>\
<noscript><p>Your browser is not running JavaScript, so please wait {wait} seconds and this page will continue by itself.</p></noscript>\
<p>If nothing happens, <a href=\"{url}\">continue after a short wait</a>.</p>\
</main><script>{CHALLENGE_SCRIPT}</script></body></html>\n",
        wait = p.wait_secs,
        url = wait_url,
        token = escape(p.token),
        bits = p.difficulty,
    );
    s
}

/// Renders the page for a wait token presented too early: it refreshes to the
/// same link when the wait is over.
pub fn wait_page(wait_token: &str, return_to: &str, remaining_secs: u32) -> String {
    let url = wait_url(wait_token, return_to);
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<meta http-equiv=\"refresh\" content=\"{remaining_secs};url={url}\">\
<title>Please wait</title><style>{STYLE}</style></head><body><main>\
<h1>Please wait</h1>\
<p role=\"status\">This page will continue by itself in {remaining_secs} seconds.</p>\
<p>If it does not, <a href=\"{url}\">follow this link</a>.</p></main></body></html>\n"
    )
}

/// Renders the waiting-room page. It refreshes itself every `refresh_secs`;
/// the ticket travels in the `rampart_ticket` cookie. Serve it with status
/// 503, `Retry-After: refresh_secs` and `Cache-Control: no-store`.
pub fn waiting_room_page(position: u32, refresh_secs: u32) -> String {
    let every = if refresh_secs == 1 {
        "second".to_string()
    } else {
        format!("{refresh_secs} seconds")
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<meta http-equiv=\"refresh\" content=\"{refresh_secs}\">\
<title>You are in the queue</title><style>{STYLE}</style></head><body><main>\
<h1>You are in the queue</h1>\
<p>Many people are using this page right now. To keep it working for everyone, visitors are let in one after another, in the order they arrived.</p>\
<p role=\"status\" aria-live=\"polite\">Your place in the queue: <strong>{position}</strong>.</p>\
<p>Please keep this page open. It checks again every {every} and will take you in when it is your turn. Reloading it yourself does not lose your place.</p>\
</main></body></html>\n"
    )
}

/// A `Set-Cookie` value for a waiting-room ticket. It lives for an hour:
/// long enough for any real queue, and the ticket is useless once served.
pub fn ticket_set_cookie(ticket_cookie: &str) -> String {
    format!("{TICKET_COOKIE}={ticket_cookie}; Path=/; Max-Age=3600; HttpOnly; Secure; SameSite=Lax")
}

/// Renders the page for browsers when the queue is full too. Serve it with
/// status 503 and `Retry-After`.
pub fn busy_page(retry_after_secs: u32) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\">\
<meta http-equiv=\"refresh\" content=\"{retry_after_secs}\">\
<title>Very busy</title><style>{STYLE}</style></head><body><main>\
<h1>This page is very busy</h1>\
<p role=\"status\">Too many people are waiting right now. This page will try again in {retry_after_secs} seconds.</p>\
</main></body></html>\n"
    )
}

/// The path of the no-script wait link: `WAIT_PATH?t=TOKEN&r=RETURN`, with
/// the return path percent-encoded and the whole HTML-escaped.
pub fn wait_url(wait_token: &str, return_to: &str) -> String {
    let mut s = String::with_capacity(WAIT_PATH.len() + wait_token.len() + return_to.len() + 16);
    s.push_str(WAIT_PATH);
    s.push_str("?t=");
    s.push_str(&escape(wait_token));
    s.push_str("&amp;r=");
    for b in safe_return_path(return_to).bytes() {
        // `&` and `#` would end the parameter, so they and everything
        // outside the plain URL characters are percent-encoded.
        if b.is_ascii_alphanumeric() || b"/-._~?=:@!$'()*+,;".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

/// Returns `path` if it is a local path (starts with one `/`, no scheme, no
/// backslash, no control characters), else `/`. This stops the challenge's
/// return link from being an open redirect to another site.
pub fn safe_return_path(path: &str) -> &str {
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && path.len() <= 2048
        && !path.bytes().any(|b| b.is_ascii_control());
    if local {
        path
    } else {
        "/"
    }
}

/// Finds a cookie's value in a `Cookie` header value, without allocating.
pub fn find_cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v.trim_matches('"'))
    })
}

/// Finds a field in a form-encoded body or a query string, without
/// decoding: our tokens and solutions never need it. Use `percent_decode`
/// for the return path.
pub fn form_field<'a>(form: &'a str, name: &str) -> Option<&'a str> {
    form.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v)
    })
}

/// Decodes `%XX` escapes and `+`; invalid escapes are kept as they are and
/// invalid UTF-8 is replaced, so hostile input never fails.
pub fn percent_decode(s: &str) -> String {
    // Forms write a space as `+` and a plus as `%2B`, so turning every `+`
    // into a space before decoding cannot touch a decoded plus.
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_helpers_find_and_decode() {
        assert_eq!(
            find_cookie(
                "a=1; rampart_clearance=00000001.5.ab; b=2",
                CLEARANCE_COOKIE
            ),
            Some("00000001.5.ab")
        );
        assert_eq!(find_cookie("a=1", CLEARANCE_COOKIE), None);
        assert_eq!(form_field("token=x.y&solution=42", "solution"), Some("42"));
        assert_eq!(percent_decode("/donate%3Famount%3D10"), "/donate?amount=10");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn return_path_rejects_other_sites() {
        assert_eq!(safe_return_path("/donate?x=1"), "/donate?x=1");
        assert_eq!(safe_return_path("//evil.example/"), "/");
        assert_eq!(safe_return_path("https://evil.example/"), "/");
        assert_eq!(safe_return_path("/\\evil.example"), "/");
    }
}
