//! The WAF on the request path: the transaction's request phases, acting on
//! its verdict, the response body phase and the logging phase.

use super::*;

/// The WAF's view of one request in flight.
pub(super) struct WafState {
    pub(super) tx: Transaction,
    pub(super) mode: WafMode,
    /// The request body, held back from the upstream until phase 2 has
    /// judged it; after release, kept (shared, not copied) for the audit log.
    pub(super) request_body: Vec<u8>,
    pub(super) released_body: Option<Bytes>,
    /// Phase 2 has run (for a request without a body, in `request_filter`).
    pub(super) request_judged: bool,
    /// Response body held back for phase 4, up to the engine's limit.
    pub(super) holding_response: bool,
    pub(super) response_body: Vec<u8>,
    /// Decodes a compressed response for phase 4 (the client still gets the
    /// bytes the upstream sent), with the decoded piece of the last chunk.
    pub(super) response_decoder: Option<Box<rampart_decode::LayeredDecoder>>,
    pub(super) decoded: Vec<u8>,
    pub(super) intervened: bool,
    pub(super) response_status: u16,
    pub(super) response_headers: Vec<(String, String)>,
    /// Error-log lines already written: each phase's lines go out as soon
    /// as it has run, before the response they explain, so a reader of the
    /// log who has seen the response also finds its lines (go-ftw does).
    pub(super) lines_written: usize,
}

impl WafState {
    /// Writes the error-log lines of the phases run since the last call.
    pub(super) fn flush_lines(&mut self, sink: &LineSink) {
        let lines = self.tx.error_log_lines();
        for line in lines.iter().skip(self.lines_written) {
            sink.send(line.clone());
        }
        self.lines_written = lines.len();
    }
}

/// The most response body held back for inspection: ModSecurity's default
/// `SecResponseBodyLimit`, beyond which the rest streams (ProcessPartial).
pub(super) const RESPONSE_INSPECTION_CAP: usize = 512 * 1024;

impl Gateway {
    /// WAF phases 1 and 2 (2 only for a request without a body; one with a
    /// body is judged as it arrives) on `site`'s engine: the transaction is
    /// kept in the context and its lines are written at once. `None` when
    /// the site has no WAF.
    pub(super) fn request_waf(
        &self,
        session: &Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        site: usize,
        has_body: bool,
    ) -> Option<Option<WafVerdict>> {
        let engine = snapshot.sites[site].waf.as_ref()?;
        let header = session.req_header();
        let inet = |a: Option<&pingora::protocols::l4::socket::SocketAddr>| {
            a.and_then(|a| a.as_inet()).copied()
        };
        let meta = TxMeta {
            remote_addr: ctx.client.map(|c| c.to_string()).unwrap_or_default(),
            remote_port: inet(session.client_addr()).map_or(0, |a| a.port()),
            server_addr: inet(session.server_addr())
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            server_port: inet(session.server_addr()).map_or(0, |a| a.port()),
            unique_id: ctx.reference.clone(),
        };
        let uri = String::from_utf8_lossy(header.raw_path()).into_owned();
        let protocol = protocol_name(header.version);
        let metrics = &self.runtime.metrics;
        let mut tx = engine.transaction(meta);
        let exclusions = &snapshot.sites[site].waf_exclusions;
        if !exclusions.is_empty() {
            crate::waf::apply_exclusions(
                &mut tx,
                exclusions,
                ctx.path.as_ref().map_or("/", |p| p.matching.as_str()),
            );
        }
        // Header names as the client wrote them (HTTP/1 keeps their case),
        // as ModSecurity shows them in its log.
        let mut verdict = guarded(&metrics.waf_errors, || {
            let method = header.method.as_str();
            if header.has_case() {
                let names = header.case_header_iter().map(|(k, v)| {
                    (
                        std::str::from_utf8(k.as_slice()).unwrap_or(""),
                        v.as_bytes(),
                    )
                });
                tx.process_request_headers(method, &uri, protocol, names)
            } else {
                tx.process_request_headers(
                    method,
                    &uri,
                    protocol,
                    header
                        .headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_bytes())),
                )
            }
        });
        // Phase 2 holds CRS's argument checks; for a request without a
        // body it runs now, before any upstream is contacted.
        if !has_body && verdict == Some(WafVerdict::Continue) {
            verdict = guarded(&metrics.waf_errors, || tx.process_request_body());
        }
        let mut waf = Box::new(WafState {
            tx,
            mode: snapshot.sites[site].waf_mode,
            request_body: Vec::new(),
            released_body: None,
            request_judged: !has_body,
            holding_response: false,
            response_body: Vec::new(),
            response_decoder: None,
            decoded: Vec::new(),
            intervened: false,
            response_status: 0,
            response_headers: Vec::new(),
            lines_written: 0,
        });
        waf.flush_lines(&self.waf_log);
        ctx.waf = Some(waf);
        Some(verdict)
    }

    /// Records that the WAF refused the transaction and says which status
    /// to answer with. A failed evaluation (`None`) refuses with 500.
    pub(super) fn note_waf_refusal(
        &self,
        ctx: &mut RequestContext,
        verdict: Option<WafVerdict>,
    ) -> u16 {
        if let Some(waf) = ctx.waf.as_mut() {
            waf.intervened = true;
        }
        self.runtime
            .metrics
            .waf_blocks
            .fetch_add(1, Ordering::Relaxed);
        match verdict {
            Some(WafVerdict::Deny { status, rule_id }) => {
                ctx.verdict = Verdict::Waf(WafOutcome::Block { rule_id });
                status
            }
            Some(WafVerdict::Redirect { rule_id, .. }) | Some(WafVerdict::Drop { rule_id }) => {
                ctx.verdict = Verdict::Waf(WafOutcome::Block { rule_id });
                403
            }
            _ => {
                ctx.verdict = Verdict::Waf(WafOutcome::Error);
                500
            }
        }
    }

    /// Acts on a request-side verdict. Returns true when a response was sent.
    pub(super) async fn enforce_request_verdict(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        verdict: Option<WafVerdict>,
    ) -> Result<bool> {
        match verdict {
            Some(WafVerdict::Continue) => Ok(false),
            Some(WafVerdict::Drop { .. }) => {
                self.note_waf_refusal(ctx, verdict);
                Err(Error::explain(
                    ErrorType::ConnectionClosed,
                    "dropped by the WAF",
                ))
            }
            Some(WafVerdict::Redirect {
                status,
                ref location,
                ..
            }) => {
                let location = location.clone();
                self.note_waf_refusal(ctx, verdict);
                let mut head = ResponseHeader::build(status, Some(3))?;
                head.insert_header("location", location)?;
                head.insert_header("content-length", "0")?;
                head.insert_header("x-request-id", ctx.reference.as_str())?;
                session.set_keepalive(None);
                session.write_response_header(Box::new(head), true).await?;
                Ok(true)
            }
            other => {
                let status = self.note_waf_refusal(ctx, other);
                self.answer(session, ctx, status, &[]).await?;
                Ok(true)
            }
        }
    }

    /// Phase 5, the error log lines and the audit record.
    pub(super) fn finish_waf(&self, session: &Session, ctx: &mut RequestContext, status: u16) {
        let Some(waf) = ctx.waf.as_mut() else { return };
        let metrics = &self.runtime.metrics;
        guarded(&metrics.waf_errors, || waf.tx.process_logging());
        waf.flush_lines(&self.waf_log);
        let matched = waf.tx.matched_rules();
        let logged = matched.iter().any(|m| m.logged);
        if logged && !waf.intervened {
            metrics.waf_detections.fetch_add(1, Ordering::Relaxed);
            if ctx.verdict.is_allow() {
                ctx.verdict = Verdict::Waf(if waf.mode == WafMode::On {
                    WafOutcome::Logged
                } else {
                    WafOutcome::Detect
                });
            }
        }
        if !(logged || waf.intervened) || !self.audit_log.enabled() {
            return;
        }
        let header = session.req_header();
        let content_type = header
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let body: &[u8] = match &waf.released_body {
            Some(b) => b,
            None => &waf.request_body,
        };
        let client = session.client_addr().and_then(|a| a.as_inet()).copied();
        let server = session.server_addr().and_then(|a| a.as_inet()).copied();
        let entry = AuditEntry {
            time: now_rfc3339(),
            unique_id: &ctx.reference,
            client_ip: ctx.client.map(|c| c.to_string()).unwrap_or_default(),
            client_port: client.map_or(0, |a| a.port()),
            host_ip: server.map(|a| a.ip().to_string()).unwrap_or_default(),
            host_port: server.map_or(0, |a| a.port()),
            method: header.method.as_str(),
            uri: header.uri.path_and_query().map_or("/", |p| p.as_str()),
            http_version: protocol_name(header.version),
            request_headers: header
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            request_body: masked_body(content_type, body),
            response_status: if status > 0 {
                status
            } else {
                waf.response_status
            },
            response_headers: std::mem::take(&mut waf.response_headers),
            engine_mode: waf.mode,
            matched,
            intervened: waf.intervened,
        };
        self.audit_log.send(audit_line(&entry));
    }

    /// Phase 4: holds inspected response types back until the WAF has
    /// judged them.
    pub(super) fn waf_response_body(
        &self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<Option<Duration>> {
        let Some(waf) = ctx.waf.as_mut() else {
            return Ok(None);
        };
        if !waf.holding_response {
            return Ok(None);
        }
        let mut undecodable = false;
        if let Some(chunk) = body.take() {
            match waf.response_decoder.as_mut() {
                Some(decoder) => {
                    waf.decoded.clear();
                    undecodable = decoder.push(&chunk, &mut waf.decoded).is_err();
                    if end_of_stream && !undecodable {
                        undecodable = decoder.finish(&mut waf.decoded).is_err();
                    }
                    waf.tx.append_response_body(&waf.decoded);
                }
                None => waf.tx.append_response_body(&chunk),
            }
            waf.response_body.extend_from_slice(&chunk);
        }
        if undecodable {
            // Corrupt or a bomb: judged on what decoded, and counted.
            self.runtime
                .metrics
                .waf_uninspectable
                .fetch_add(1, Ordering::Relaxed);
        }
        if end_of_stream || undecodable || waf.response_body.len() >= RESPONSE_INSPECTION_CAP {
            waf.holding_response = false;
            waf.response_decoder = None;
            let verdict = guarded(&self.runtime.metrics.waf_errors, || {
                waf.tx.process_response_body()
            });
            waf.flush_lines(&self.waf_log);
            if verdict != Some(WafVerdict::Continue) {
                // The status line is already on its way, so the only safe
                // answer is to cut the response off before the body leaks.
                self.note_waf_refusal(ctx, verdict);
                return Err(Error::explain(
                    ErrorType::HTTPStatus(403),
                    "response body refused by the WAF",
                ));
            }
            *body = Some(Bytes::from(std::mem::take(&mut waf.response_body)));
        }
        Ok(None)
    }
}
