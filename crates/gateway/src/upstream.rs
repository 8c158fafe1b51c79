//! One way to reach an upstream server: the proxy, the leak guard's
//! whole-response fetch and the health checks all connect through Pingora's
//! connector with the same peer settings, so a pool with `tls_sni` is
//! reached over TLS by each of them, and what an upstream sends back is
//! parsed by one HTTP implementation whose errors are errors, not panics.

use std::net::SocketAddr;
use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use pingora::ErrorType;

/// The peer for one server of a pool, with the gateway's timeouts.
pub fn peer(
    address: SocketAddr,
    tls_sni: Option<&str>,
    connect_timeout: Duration,
    read_timeout: Duration,
) -> HttpPeer {
    let mut peer = HttpPeer::new(
        address,
        tls_sni.is_some(),
        tls_sni.unwrap_or_default().to_string(),
    );
    peer.options.connection_timeout = Some(connect_timeout);
    peer.options.read_timeout = Some(read_timeout);
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer
}

/// A whole upstream response, fetched for judging.
pub struct FetchedResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// Why a fetch failed, mapped by the caller to 502, 503 or 504.
#[derive(Debug)]
pub enum FetchError {
    Connect,
    Timeout,
    Invalid(String),
    TooLarge,
}

fn failure(e: &pingora::Error) -> FetchError {
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            FetchError::Timeout
        }
        ErrorType::ConnectRefused
        | ErrorType::ConnectError
        | ErrorType::ConnectNoRoute
        | ErrorType::TLSHandshakeFailure
        | ErrorType::TLSHandshakeTimedout => FetchError::Connect,
        _ => FetchError::Invalid(e.to_string()),
    }
}

/// Sends `request` (without a body) on a fresh connection and reads the
/// whole response, at most `max_body` bytes of body.
pub async fn fetch(
    connector: &Connector,
    peer: &HttpPeer,
    request: RequestHeader,
    max_body: usize,
) -> Result<FetchedResponse, FetchError> {
    let (mut session, _) = connector
        .get_http_session(peer)
        .await
        .map_err(|e| failure(&e))?;
    session.set_read_timeout(peer.options.read_timeout);
    session
        .write_request_header(Box::new(request))
        .await
        .map_err(|e| failure(&e))?;
    session
        .finish_request_body()
        .await
        .map_err(|e| failure(&e))?;
    session
        .read_response_header()
        .await
        .map_err(|e| failure(&e))?;
    let head = session
        .response_header()
        .ok_or_else(|| FetchError::Invalid("no response head".into()))?;
    let status = head.status.as_u16();
    let headers = head
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_response_body()
        .await
        .map_err(|e| failure(&e))?
    {
        if body.len() + chunk.len() > max_body {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(FetchedResponse {
        status,
        headers,
        body,
    })
}

/// One HTTP health probe: a GET of the check path that must answer with a
/// status below 500 within the timeout, on a fresh connection (never one
/// from the proxy's pool, which can look alive after the server has died).
pub async fn probe(connector: &Connector, peer: &HttpPeer, path: &str, timeout: Duration) -> bool {
    let attempt = async {
        let mut request = RequestHeader::build("GET", path.as_bytes(), None).ok()?;
        let host = if peer.sni.is_empty() {
            peer._address.to_string()
        } else {
            peer.sni.clone()
        };
        request.insert_header("host", host).ok()?;
        request
            .insert_header("user-agent", "rampart-health-check")
            .ok()?;
        request.insert_header("connection", "close").ok()?;
        let fetched = fetch(connector, peer, request, 64 * 1024).await;
        match fetched {
            Ok(r) => Some(r.status < 500),
            // A body over the cap still answered.
            Err(FetchError::TooLarge) => Some(true),
            Err(_) => Some(false),
        }
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}
