//! `GET /api/v1/live`: Server-Sent Events for the console, an `event: tick`
//! each second with the last second's traffic, each site's mode, the number
//! of bans and the configuration's generation.
//!
//! Each stream reads what the gateway's clock already sampled (one point of
//! `Runtime::live`) and the shield's state; it adds no work to the request
//! path. Streams are capped, so a client that opens many cannot hold many
//! tasks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use serde_json::json;

use super::AdminApp;

/// Open live streams at most: a few consoles, with room for reloads.
const MAX_STREAMS: usize = 16;

static OPEN_STREAMS: AtomicUsize = AtomicUsize::new(0);

/// Releases a stream's place when it ends, however it ends.
struct Place;

impl Drop for Place {
    fn drop(&mut self) {
        OPEN_STREAMS.fetch_sub(1, Ordering::Relaxed);
    }
}

impl AdminApp {
    /// Holds the connection and writes a tick each second until the client
    /// goes or the gateway stops.
    pub(super) async fn live(&self, http: &mut ServerSession, shutdown: &ShutdownWatch) {
        let full = OPEN_STREAMS.fetch_add(1, Ordering::Relaxed) >= MAX_STREAMS;
        let _place = Place;
        let mut head = ResponseHeader::build(if full { 503 } else { 200 }, None)
            .expect("a status and no headers is a valid response head");
        let headers: &[(&str, &str)] = &[
            (
                "content-type",
                if full {
                    "application/json"
                } else {
                    "text/event-stream"
                },
            ),
            ("cache-control", "no-store"),
            ("x-content-type-options", "nosniff"),
            ("connection", "close"),
        ];
        for (name, value) in headers {
            let _ = head.insert_header(*name, *value);
        }
        if full {
            let body = format!("{{\"error\":\"at most {MAX_STREAMS} live streams at once\"}}");
            let _ = head.insert_header("content-length", body.len().to_string());
            let _ = http.write_response_header(Box::new(head)).await;
            let _ = http.write_response_body(body.into(), true).await;
            return;
        }
        http.set_keepalive(None);
        if http.write_response_header(Box::new(head)).await.is_err() {
            return;
        }
        let mut shutdown = shutdown.clone();
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
            let frame = format!("event: tick\ndata: {}\n\n", self.tick());
            if http.write_response_body(frame.into(), false).await.is_err() {
                return;
            }
        }
    }

    /// One tick's data.
    fn tick(&self) -> serde_json::Value {
        let snapshot = self.runtime.snapshot();
        let point = self.runtime.live.latest();
        let bans = snapshot
            .flood
            .as_ref()
            .map_or(0, |f| f.shield.ban_count(crate::flood::now(), 10_000));
        let sites: Vec<serde_json::Value> = self
            .sites()
            .into_iter()
            .map(|s| json!({ "name": s["name"], "mode": s["mode"], "under_attack": s["under_attack"] }))
            .collect();
        let mut tick = match point {
            Some(p) => serde_json::to_value(p).unwrap_or_default(),
            None => {
                json!({ "at": crate::incidents::now_ms(), "requests": 0, "passed": 0, "blocked": 0, "challenged": 0, "limited": 0, "upstream_errors": 0 })
            }
        };
        tick["sites"] = json!(sites);
        tick["bans"] = json!(bans);
        tick["generation"] = json!(snapshot.generation);
        tick
    }
}
