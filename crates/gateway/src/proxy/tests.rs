/// A header the client lists in `Connection` is not forwarded, so it
/// cannot name the forwarding headers the gateway adds afterwards.
#[test]
fn connection_listed_headers_are_not_forwarded() {
    let mut request = pingora::http::RequestHeader::build("GET", b"/", None).unwrap();
    request
        .insert_header("connection", "close, X-Forwarded-For, x-secret")
        .unwrap();
    request.insert_header("x-secret", "1").unwrap();
    request.insert_header("x-forwarded-for", "6.6.6.6").unwrap();
    request.insert_header("te", "trailers").unwrap();
    request.insert_header("accept", "text/html").unwrap();
    super::strip_connection_headers(&mut request, false);
    for gone in ["connection", "x-secret", "x-forwarded-for", "te"] {
        assert!(request.headers.get(gone).is_none(), "{gone}");
    }
    assert!(request.headers.get("accept").is_some());
    let mut upgrade = pingora::http::RequestHeader::build("GET", b"/ws", None).unwrap();
    upgrade.insert_header("connection", "Upgrade").unwrap();
    upgrade.insert_header("upgrade", "websocket").unwrap();
    super::strip_connection_headers(&mut upgrade, true);
    assert_eq!(upgrade.headers.get("connection").unwrap(), "upgrade");
    assert!(upgrade.headers.get("upgrade").is_some());
}

#[test]
fn the_upstream_target_keeps_the_query_as_written() {
    assert_eq!(
        super::forwarded_target("/donations/feed", b"/%64onations/feed?a=%2e&b"),
        b"/donations/feed?a=%2e&b".to_vec()
    );
    assert_eq!(super::forwarded_target("/", b"http://x/"), b"/".to_vec());
}

/// A panic inside an inspection step becomes `None` and is counted; a
/// step that returns is passed through and counts nothing.
#[test]
fn a_panicking_inspection_step_is_counted_not_propagated() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let failures = AtomicU64::new(0);
    assert_eq!(super::guarded(&failures, || 7), Some(7));
    assert_eq!(failures.load(Ordering::Relaxed), 0);
    let failed: Option<u32> = super::guarded(&failures, || panic!("a bug in a layer"));
    assert_eq!(failed, None);
    assert_eq!(failures.load(Ordering::Relaxed), 1);
}

mod size_probe {
    /// Pingora keeps the context inside each request's future, which is
    /// moved as a whole; the layers' large state stays behind a pointer.
    #[test]
    fn the_request_context_stays_small() {
        let size = std::mem::size_of::<crate::proxy::RequestContext>();
        assert!(
            size <= 512,
            "RequestContext is {size} bytes; box the large parts"
        );
    }
}
