//! The leak guard on the response path: choosing the route's policy,
//! scanning streamed bodies, and the whole-response fetch of `block` routes.

use super::*;

/// The most decoded response body the leak guard reads from one response;
/// beyond it a decompression bomb is cut off rather than expanded.
pub(super) const LEAK_DECODE_CAP: usize = 64 * 1024 * 1024;

/// Writes a leak-guard outcome to the event log and returns the verdict
/// for the access log, if anything was found.
///
/// Findings the route's policy allows (below its thresholds, such as the
/// contact address in a site's footer) are only counted: an event per
/// response for them would fill the log and the event store with noise and
/// open a data-leak incident for every page of an ordinary site.
pub(super) fn leak_outcome(
    runtime: &crate::runtime::Runtime,
    client: Option<IpAddr>,
    reference: &str,
    site: &str,
    route: &str,
    outcome: &rampart_leakguard::Outcome,
) -> Option<Verdict> {
    use rampart_leakguard::Action;
    if outcome.findings.is_empty() {
        return None;
    }
    let verdict = Verdict::Leak(LeakOutcome::Judged {
        action: outcome.action,
        kinds: Kinds::new(outcome.findings.iter().map(|f| f.kind)),
    });
    if outcome.action == Action::Allow {
        runtime.metrics.leak_allowed.fetch_add(1, Ordering::Relaxed);
        return Some(verdict);
    }
    runtime.metrics.leak_events.fetch_add(1, Ordering::Relaxed);
    runtime.event_lines.send(format!(
        "rampart: event {}",
        crate::leak::findings_event(reference, site, route, outcome)
    ));
    if runtime.events.enabled() {
        for kind in crate::leak::incident_events(reference, outcome) {
            runtime.events.record(site, client, route, kind);
        }
    }
    Some(verdict)
}

/// The leak guard's policy for a request, from its resolved site and path.
pub(super) fn request_leak_policy<'a>(
    snapshot: &'a Snapshot,
    ctx: &RequestContext,
) -> Option<&'a rampart_leakguard::RoutePolicy> {
    let leak = snapshot.leak.as_ref()?;
    let site = &snapshot.sites[ctx.site?];
    Some(leak.policies.route_among(
        &site.leak_sites,
        ctx.path.as_ref().map_or("/", |p| p.matching.as_str()),
    ))
}

/// [`request_leak_policy`] for the snapshot the request holds.
pub(super) fn request_leak_policy_of<'a>(
    leak: &'a crate::leak::LeakRuntime,
    ctx: &RequestContext,
) -> &'a rampart_leakguard::RoutePolicy {
    let sites = match (&ctx.snapshot, ctx.site) {
        (Some(s), Some(i)) => s.sites[i].leak_sites.as_slice(),
        _ => &[],
    };
    leak.policies.route_among(
        sites,
        ctx.path.as_ref().map_or("/", |p| p.matching.as_str()),
    )
}

/// A whole encoded body decoded for judging, within the leak guard's
/// decoding cap; `None` when the encoding is unknown, the bytes are
/// corrupt or they expand past the cap.
pub(super) fn decode_whole(encoding: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = rampart_decode::LayeredDecoder::new(encoding, LEAK_DECODE_CAP).ok()?;
    let mut plain = Vec::with_capacity(body.len() * 4);
    decoder.push(body, &mut plain).ok()?;
    decoder.finish(&mut plain).ok()?;
    Some(plain)
}

/// One piece of a streamed response through its leak-guard state: decoded,
/// scanned, and on a redact route replaced in `body` by the masked text.
/// Returns whether the scan blocked and, at the end of the body or on a
/// block, the outcome.
pub(super) fn scan_piece(
    leak: &mut crate::leak::ResponseLeakState,
    body: &mut Option<Bytes>,
    end_of_stream: bool,
) -> (bool, Option<rampart_leakguard::Outcome>) {
    let mut blocked = false;
    let mut finished = None;
    if let Some(chunk) = body.as_ref() {
        let input: &[u8] = match leak.decoder.as_mut() {
            Some(decoder) => {
                leak.decoded.clear();
                if decoder.push(chunk, &mut leak.decoded).is_err() {
                    blocked = true;
                }
                &leak.decoded
            }
            None => chunk,
        };
        // Only a redact route sends the scanner's output; the others
        // send the original bytes, so the scanner need not copy them.
        let progress = if leak.redact {
            leak.out.clear();
            leak.scanner.push(input, &mut leak.out)
        } else if end_of_stream && leak.decoder.is_none() {
            // The last chunk of an unencoded body: scanned to its end
            // and finished in one call, with nothing carried over.
            finished = Some(leak.scanner.inspect_last(input));
            rampart_leakguard::Progress::Continue
        } else {
            leak.scanner.inspect(input)
        };
        if progress == rampart_leakguard::Progress::Block {
            blocked = true;
        }
        if leak.redact {
            *body = Some(Bytes::copy_from_slice(&leak.out));
        }
    }
    if !(end_of_stream || blocked) {
        return (blocked, None);
    }
    // What the scanner still sends on a redact route: the masked
    // form of the decoder's last bytes, then what it held back.
    let mut rest = Vec::new();
    let outcome = match finished {
        Some(outcome) => outcome,
        None => {
            if let Some(decoder) = leak.decoder.as_mut() {
                leak.decoded.clear();
                let _ = decoder.finish(&mut leak.decoded);
                if leak.redact {
                    leak.scanner.push(&leak.decoded, &mut rest);
                } else {
                    leak.scanner.inspect(&leak.decoded);
                }
            }
            leak.scanner.finish(&mut rest)
        }
    };
    if leak.redact {
        let mut last = body.take().map(|b| b.to_vec()).unwrap_or_default();
        last.extend_from_slice(&rest);
        *body = Some(Bytes::from(last));
    }
    (blocked, Some(outcome))
}

/// Forgets a response's leak-guard state after a panic inside the scanner
/// (it is never pooled again) and marks the request for the access log and
/// the traffic counts: `leak:error` when the response went out unscanned,
/// `leak:error-cut-off` when it was refused or cut off (counted as blocked).
pub(super) fn drop_failed_leak(ctx: &mut RequestContext, cut_off: bool) {
    ctx.leak = None;
    ctx.verdict = Verdict::Leak(if cut_off {
        LeakOutcome::ErrorCutOff
    } else {
        LeakOutcome::Error
    });
}

/// The leak guard of the request's snapshot.
pub(super) fn snapshot_leak(ctx: &RequestContext) -> Option<&crate::leak::LeakRuntime> {
    ctx.snapshot.as_ref()?.leak.as_ref()
}

impl Gateway {
    /// The leak guard on a streamed response: scans each piece after
    /// decoding; redact routes send the masked text, others the original
    /// bytes. A block found mid-stream can only cut the response off. Where
    /// the scan can only report, an unencoded body's last piece is left to
    /// [`finish_deferred_leak`](Self::finish_deferred_leak) in the logging phase.
    pub(super) fn leak_response_body(
        &self,
        session: &Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) -> Result<()> {
        let Some(leak) = ctx.leak.as_mut() else {
            return Ok(());
        };
        let only_reports = leak.only_reports;
        if end_of_stream && leak.decoder.is_none() && only_reports {
            // Nothing the scan can find would change or stop this response,
            // so its last chunk is scanned in the logging phase, once it has
            // gone: the client does not wait for the scan. Keeping the chunk
            // costs a reference count, not a copy.
            leak.deferred = Some(body.clone().unwrap_or_default());
            return Ok(());
        }
        // A panic inside the scanner costs this response, not the process.
        // Where the scan could stop or change the response it is cut off
        // rather than sent unscanned.
        let Some((blocked, outcome)) = guarded(&self.runtime.metrics.leak_errors, || {
            scan_piece(leak, body, end_of_stream)
        }) else {
            drop_failed_leak(ctx, !only_reports);
            return if !only_reports {
                Err(Error::explain(
                    ErrorType::HTTPStatus(503),
                    "response cut off: the leak guard failed",
                ))
            } else {
                Ok(())
            };
        };
        if let Some(outcome) = outcome {
            self.settle_leak(ctx, &outcome);
            if blocked || outcome.action == rampart_leakguard::Action::Block {
                let _ = session;
                return Err(Error::explain(
                    ErrorType::HTTPStatus(503),
                    "response cut off by the leak guard",
                ));
            }
        }
        Ok(())
    }

    /// Records a response's leak-guard outcome (event, verdict) and returns
    /// its state to the pool.
    pub(super) fn settle_leak(
        &self,
        ctx: &mut RequestContext,
        outcome: &rampart_leakguard::Outcome,
    ) {
        let (site, route) = site_and_route(ctx);
        if let Some(verdict) = leak_outcome(
            &self.runtime,
            ctx.client,
            &ctx.reference,
            site,
            route,
            outcome,
        ) {
            ctx.verdict = verdict;
        }
        if let (Some(state), Some(runtime)) = (ctx.leak.take(), snapshot_leak(ctx)) {
            runtime.give_back(state);
        }
    }

    /// The scan [`leak_response_body`](Self::leak_response_body) left for
    /// after the response: its last chunk, the outcome, and then the cache
    /// decision that waits for the outcome's verdict.
    pub(super) fn finish_deferred_leak(&self, ctx: &mut RequestContext) {
        let Some(leak) = ctx.leak.as_mut() else {
            return;
        };
        let Some(last) = leak.deferred.take() else {
            return;
        };
        let outcome = guarded(&self.runtime.metrics.leak_errors, || {
            leak.scanner.inspect_last(&last)
        });
        drop(last);
        // The response has gone either way; a failed scan is only recorded.
        let Some(outcome) = outcome else {
            return drop_failed_leak(ctx, false);
        };
        self.settle_leak(ctx, &outcome);
        self.store_cache(ctx);
    }

    /// A `block` route: fetch the whole response, judge it, then send it or
    /// an error page. Returns true when it answered the request.
    pub(super) async fn leak_block_route(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        site: usize,
    ) -> Result<bool> {
        use rampart_leakguard::Action;
        let Some(leak) = &snapshot.leak else {
            return Ok(false);
        };
        let method = session.req_header().method.clone();
        if ctx.upgrade || !(method == http::Method::GET || method == http::Method::HEAD) {
            return Ok(false);
        }
        let Some(policy) = request_leak_policy(snapshot, ctx).cloned() else {
            return Ok(false);
        };
        if policy.action != Action::Block {
            return Ok(false);
        }
        let Some(pool) = ctx.pool().cloned() else {
            return Ok(false);
        };
        let Some(index) = pool.pick(0) else {
            self.answer(session, ctx, 503, &[("retry-after", "5")])
                .await?;
            return Ok(true);
        };
        ctx.server = Some(index);
        ctx.upstream_sent = Some(Instant::now());
        let limits = &snapshot.config.limits;
        let header = session.req_header();
        // The same target and authority the proxy would send (see
        // `upstream_request_filter`), over HTTP/1.1 whatever the client spoke.
        let target = forwarded_target(
            ctx.path.as_ref().map_or("/", |p| p.forwarded.as_str()),
            header.raw_path(),
        );
        let authority = ctx
            .authority
            .as_ref()
            .map(|a| a.header_value())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| pool.servers[index].address.to_string());
        let forwarded = ctx.client.map(|c| c.to_string()).unwrap_or_default();
        let proto = if self.tls { "https" } else { "http" };
        let request = (|| -> Result<pingora::http::RequestHeader> {
            let mut request = pingora::http::RequestHeader::build(method.clone(), &target, None)?;
            request.insert_header(http::header::HOST, authority.as_str())?;
            for (name, value) in header.headers.iter() {
                if !crate::leak::is_not_forwarded(name.as_str()) {
                    request.append_header(name.clone(), value.clone())?;
                }
            }
            request.insert_header("x-forwarded-for", forwarded.as_str())?;
            request.insert_header("x-real-ip", forwarded.as_str())?;
            request.insert_header("x-forwarded-proto", proto)?;
            request.insert_header("x-request-id", ctx.reference.as_str())?;
            request.insert_header(http::header::ACCEPT_ENCODING, "identity")?;
            request.insert_header(http::header::CONNECTION, "close")?;
            Ok(request)
        })()?;
        let peer = crate::upstream::peer(
            pool.servers[index].address,
            pool.definition.tls_sni.as_deref(),
            limits.upstream_connect_timeout,
            limits.upstream_read_timeout,
        );
        let fetched =
            crate::upstream::fetch(&self.connector, &peer, request, policy.max_buffered).await;
        let response = match fetched {
            Ok(r) => {
                pool.report_success(index);
                ctx.upstream_status = Some(r.status);
                ctx.upstream_latency = ctx.upstream_sent.map(|t| t.elapsed());
                r
            }
            Err(e) => {
                let status = match e {
                    crate::upstream::FetchError::Timeout => 504,
                    crate::upstream::FetchError::TooLarge => {
                        // The upstream answered; only the size was too much,
                        // which says nothing of its load.
                        ctx.upstream_status = Some(200);
                        ctx.verdict = Verdict::Leak(LeakOutcome::TooLargeToJudge);
                        503
                    }
                    crate::upstream::FetchError::Connect => {
                        if pool.report_failure(index) {
                            self.runtime
                                .metrics
                                .upstream_ejections
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        502
                    }
                    crate::upstream::FetchError::Invalid(_) => 502,
                };
                if status >= 500 && ctx.verdict.is_allow() {
                    ctx.verdict = Verdict::UpstreamFailure(UpstreamFailure::Answered);
                }
                self.answer(session, ctx, status, &[]).await?;
                return Ok(true);
            }
        };
        let content_type = response
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        let mut body = response.body;
        if rampart_leakguard::is_scannable(&content_type) {
            // The fetch asked for `identity`, but an origin may send a
            // compressed body whatever it is asked (pre-compressed files):
            // it is decoded before the verdict, and one that cannot be
            // decoded is not sent unjudged.
            let encoding = response
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
                .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
                .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
            let decoded = match &encoding {
                None => None,
                Some(e) => match decode_whole(e, &body) {
                    Some(plain) => Some(plain),
                    None => {
                        ctx.verdict = Verdict::Leak(LeakOutcome::Uninspectable);
                        self.runtime
                            .metrics
                            .leak_uninspectable
                            .fetch_add(1, Ordering::Relaxed);
                        self.answer(session, ctx, 502, &[]).await?;
                        return Ok(true);
                    }
                },
            };
            let mut state = leak.response_state(&policy, None, false);
            let mut out = Vec::with_capacity(body.len());
            let judged: &[u8] = decoded.as_deref().unwrap_or(&body);
            let scanned = guarded(&self.runtime.metrics.leak_errors, || {
                state.scanner.push(judged, &mut out);
                state.scanner.finish(&mut out)
            });
            // A panic inside the scanner: the state is not pooled again and
            // the response, unjudged, is not sent.
            let Some(outcome) = scanned else {
                drop_failed_leak(ctx, true);
                self.answer(session, ctx, 503, &[]).await?;
                return Ok(true);
            };
            leak.give_back(state);
            let route = ctx.route.map_or(String::new(), |r| {
                snapshot.sites[site].routes[r].prefix.clone()
            });
            if let Some(verdict) = leak_outcome(
                &self.runtime,
                ctx.client,
                &ctx.reference,
                &snapshot.sites[site].name,
                &route,
                &outcome,
            ) {
                ctx.verdict = verdict;
            }
            if outcome.action == Action::Block {
                self.answer(session, ctx, 503, &[]).await?;
                return Ok(true);
            }
            // An encoded body passed the scan decoded; the client gets the
            // bytes and the encoding the origin sent.
            if decoded.is_none() {
                body = out;
            }
        }
        let mut reply = ResponseHeader::build(response.status, Some(response.headers.len() + 2))?;
        for (name, value) in &response.headers {
            if crate::leak::is_hop_by_hop(name) {
                continue;
            }
            reply.append_header(name.clone(), value.as_slice())?;
        }
        reply.insert_header("content-length", body.len().to_string())?;
        reply.insert_header("x-request-id", ctx.reference.as_str())?;
        let head_only = method == http::Method::HEAD;
        session
            .write_response_header(Box::new(reply), head_only)
            .await?;
        if !head_only {
            session
                .write_response_body(Some(Bytes::from(body)), true)
                .await?;
        }
        Ok(true)
    }
}
