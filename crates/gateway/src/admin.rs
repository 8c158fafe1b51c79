//! The admin listener: metrics and reload, on loopback by default.
//!
//! `GET /metrics` answers Prometheus text; `POST /reload` re-reads the
//! configuration file and answers with the outcome (the same as SIGHUP, but
//! the caller sees the errors); `GET /healthz` says the process is alive.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::runtime::Runtime;

pub struct AdminApp {
    pub runtime: Arc<Runtime>,
}

fn respond(status: u16, content_type: &str, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body.into_bytes())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let method = session.req_header().method.as_str().to_string();
        let path = session.req_header().uri.path().to_string();
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
