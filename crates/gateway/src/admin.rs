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
            ("GET", "/metrics") => respond(200, "text/plain; version=0.0.4", self.runtime.metrics.render()),
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
            _ => respond(404, "text/plain", "not found: try GET /metrics, GET /healthz or POST /reload\n".into()),
        }
    }
}
