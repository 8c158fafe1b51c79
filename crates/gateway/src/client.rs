//! The gateway's one HTTP client, for its own calls out: incident webhooks,
//! and the `rampart` commands' calls to a running gateway's admin listener.
//! hyper speaks HTTP/1.1, rustls with the system's root certificates speaks
//! TLS for `https://`. Calls block: each runs on a small runtime of its own,
//! because its callers are plain threads (the alert thread, a command).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The most of an answer's body that is read: the admin listener's longest
/// answers (ban lists) fit, and a hostile webhook endpoint cannot make the
/// alert thread hold more.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// An answer: its status and its body as text.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Checks that `url` is one this client can call: `http://` or `https://`,
/// a host, and no `user:password@` (which would be sent nowhere).
pub fn check_url(url: &str) -> Result<http::Uri, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("the url must start with http:// or https://".into());
    }
    match uri.authority() {
        Some(a) if a.host().is_empty() || a.as_str().contains('@') => {
            Err("the url needs a host (and no user:password@)".into())
        }
        // Anything after the host that is not a port number.
        Some(a) if a.port_u16().is_none() && a.as_str() != a.host() => {
            Err(format!("`{a}` does not end in a port number"))
        }
        Some(_) => Ok(uri),
        None => Err("the url needs a host".into()),
    }
}

/// Sends one request to `url` and reads the answer, all within `timeout`.
pub fn call(
    method: http::Method,
    url: &str,
    headers: &[(&str, &str)],
    body: String,
    timeout: Duration,
) -> Result<Answer, String> {
    let uri = check_url(url)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client's runtime: {e}"))?;
    runtime.block_on(async {
        tokio::time::timeout(timeout, exchange(method, uri, headers, body))
            .await
            .map_err(|_| format!("no answer within {}", humantime::format_duration(timeout)))?
    })
}

async fn exchange(
    method: http::Method,
    uri: http::Uri,
    headers: &[(&str, &str)],
    body: String,
) -> Result<Answer, String> {
    let tls = uri.scheme_str() == Some("https");
    let authority = uri.authority().cloned().ok_or("the url needs a host")?;
    let host = authority.host().trim_matches(|c| c == '[' || c == ']');
    let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let socket = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let mut request = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "rampart");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    if tls {
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("`{host}` is not a valid TLS server name: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, socket)
            .await
            .map_err(|e| format!("TLS with {authority}: {e}"))?;
        send(stream, request).await
    } else {
        send(socket, request).await
    }
}

async fn send<S>(stream: S, request: http::Request<Full<Bytes>>) -> Result<Answer, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let answer = sender
        .send_request(request)
        .await
        .map_err(|e| format!("sending: {e}"))?;
    let status = answer.status().as_u16();
    let body = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// rustls with the system's root certificates, read once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs()
                .map_err(|e| format!("cannot read the system's root certificates: {e}"))?;
            for cert in native {
                let _ = roots.add(cert);
            }
            if roots.is_empty() {
                return Err(
                    "the system has no root certificates (install ca-certificates)".to_string(),
                );
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let u = check_url("https://hooks.slack.com/services/T/B/X").unwrap();
        assert_eq!(
            (u.scheme_str(), u.host(), u.port_u16(), u.path()),
            (
                Some("https"),
                Some("hooks.slack.com"),
                None,
                "/services/T/B/X"
            )
        );
        let u = check_url("http://127.0.0.1:9000").unwrap();
        assert_eq!((u.host(), u.port_u16()), (Some("127.0.0.1"), Some(9000)));
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("http://user:pw@host/").is_err());
        assert!(check_url("http://host:notaport/").is_err());
        assert!(check_url("/relative").is_err());
    }

    /// A call to a port nobody listens on fails with the address in the
    /// reason, rather than hanging or panicking.
    #[test]
    fn a_refused_connection_is_an_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/");
        let error = call(
            http::Method::GET,
            &url,
            &[],
            String::new(),
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    }
}
