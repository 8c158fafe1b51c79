//! The phase entry points of [`Transaction`]: what the caller hands each
//! phase (request line and headers, bodies, response status and headers),
//! the body processors and limits applied to them, and then the phase's
//! rules (see `run`).

use crate::body;
use crate::engine::LimitAction;
use crate::rule::EngineMode;

use super::log::{esc, MAX_LOGDATA, MAX_LOG_LINES};
use super::{MatchedRule, Request, Transaction, Verdict, ARGUMENTS_LIMIT_RULE_ID};

impl Transaction {
    /// Phase 1: the request line and headers. Call once, first.
    pub fn process_request_headers<I, K, V>(
        &mut self,
        method: &str,
        uri: &str,
        protocol: &str,
        headers: I,
    ) -> Verdict
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        let r = &mut self.req;
        r.method = method.as_bytes().to_vec();
        r.uri_raw = uri.as_bytes().to_vec();
        r.protocol = protocol.as_bytes().to_vec();
        r.line = format!("{method} {uri} {protocol}").into_bytes();
        // An absolute URI keeps only its path and query in REQUEST_URI.
        let rel = match uri.find("://") {
            Some(p) if !uri[..p].contains(['/', '?']) => {
                let rest = &uri[p + 3..];
                match rest.find('/') {
                    Some(s) => &rest[s..],
                    None => "/",
                }
            }
            _ => uri,
        };
        r.uri = rel.as_bytes().to_vec();
        let (path, query) = match rel.find('?') {
            Some(q) => (&rel[..q], Some(&rel[q + 1..])),
            None => (rel, None),
        };
        let path = path.split('#').next().unwrap_or(path);
        // The path is percent-decoded (not `+`), as the web server hands it
        // to ModSecurity; the CRS tests rely on it (e.g. 933151).
        r.filename = percent_decode(path.as_bytes());
        let base_start = r
            .filename
            .iter()
            .rposition(|&c| c == b'/')
            .map(|p| p + 1)
            .unwrap_or(0);
        r.basename = r.filename[base_start..].to_vec();
        if let Some(q) = query {
            let q = q.split('#').next().unwrap_or(q);
            r.query = q.as_bytes().to_vec();
            let limit = self.engine.inner.config.arguments_limit;
            if body::parse_urlencoded(q.as_bytes(), limit, &mut r.args_get) {
                note_truncation(r, format!("Query string has more than {limit} arguments"));
            }
        }
        for (k, v) in headers {
            let k = k.as_ref();
            let v = v.as_ref();
            if k.eq_ignore_ascii_case("cookie") {
                body::parse_cookies(v, &mut r.cookies);
            }
            if k.eq_ignore_ascii_case("content-type") && self.st.body_processor.is_none() {
                // ModSecurity picks the processor from the content type when
                // the transaction starts, so phase 1 rules already see it.
                let lower = v.to_ascii_lowercase();
                if lower.starts_with(b"application/x-www-form-urlencoded") {
                    self.st.body_processor = Some("URLENCODED".into());
                } else if lower.starts_with(b"multipart/form-data") {
                    self.st.body_processor = Some("MULTIPART".into());
                }
            }
            r.headers.push((k.to_string(), v.to_vec()));
        }
        let v = self.run_phase(1);
        // Query arguments left out for the limit are acted on here, once
        // phase 1 has run, rather than before it or in phase 2: phase 1
        // rules may still change the engine mode (`ctl:ruleEngine`, as CRS's
        // test setup and per-path settings do), and refusing now keeps the
        // request from any upstream even if a caller skips phase 2 for a
        // request without a body.
        if v == Verdict::Continue {
            if let Some(refused) = self.enforce_argument_limits(1) {
                return refused;
            }
        }
        v
    }

    /// Buffers request body bytes, up to the configured limit.
    pub fn append_request_body(&mut self, chunk: &[u8]) {
        let limit = self.st.body_limit as usize;
        append_capped(
            &mut self.req.body,
            &mut self.req.body_truncated,
            chunk,
            limit,
        );
    }

    /// Whether more request body would still be inspected: false once the
    /// buffer holds as much as the body limit allows (or body access is
    /// off), when a caller can run phase 2 on what it holds and stream the
    /// rest instead of holding all of it.
    pub fn request_body_wanted(&self) -> bool {
        // A body without files is judged once it passes the smaller
        // no-files limit, as phase 2 then refuses or inspects it in part.
        let multipart = self
            .header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with(b"multipart/"));
        let no_files = self.engine.inner.config.request_body_no_files_limit;
        let limit = if multipart {
            self.st.body_limit
        } else {
            self.st.body_limit.min(no_files.saturating_add(1))
        };
        self.st.body_access && !self.req.body_truncated && (self.req.body.len() as u64) < limit
    }

    /// Phase 2: parses the buffered body and runs the body rules.
    pub fn process_request_body(&mut self) -> Verdict {
        if self.interrupted.is_some() {
            return self.interrupted.clone().unwrap_or(Verdict::Continue);
        }
        // SecRequestBodyNoFilesLimit: a body that carries no files (anything
        // but multipart) is held to the smaller limit, as in ModSecurity.
        let multipart = self
            .header("content-type")
            .is_some_and(|v| v.to_ascii_lowercase().starts_with(b"multipart/"));
        let over_no_files = !multipart
            && self.req.body.len() as u64 > self.engine.inner.config.request_body_no_files_limit;
        if (self.req.body_truncated || over_no_files)
            && self.engine.inner.config.request_body_limit_action == LimitAction::Reject
            && self.st.mode == EngineMode::On
        {
            let v = Verdict::Deny {
                status: 413,
                rule_id: 0,
            };
            self.interrupted = Some(v.clone());
            return v;
        }
        if self.st.body_access {
            self.parse_body();
        }
        // Before the phase 2 rules: a refused request is not worth their
        // time, and a flagged one shows REQBODY_ERROR to them.
        if let Some(refused) = self.enforce_argument_limits(2) {
            return refused;
        }
        self.run_phase(2)
    }

    /// Acts on arguments the parsers left out for a limit since the last
    /// call. With `SecRuleEngine On` the request is refused (400, rule id
    /// [`ARGUMENTS_LIMIT_RULE_ID`]) rather than inspected in part; in
    /// `DetectionOnly` it goes on with REQBODY_ERROR set (done when the
    /// parser reported it). Either way the engine records a match and writes
    /// an error log line, so the event is never silent. This holds whatever
    /// `SecRequestBodyLimitAction` says: that directive is about the body's
    /// size, not about arguments left out of a body that was read.
    fn enforce_argument_limits(&mut self, phase: u8) -> Option<Verdict> {
        let new = &self.req.truncations[self.req.truncations_reported..];
        if new.is_empty() {
            return None;
        }
        let what = new.join("; ");
        self.req.truncations_reported = self.req.truncations.len();
        let blocking = match self.st.mode {
            EngineMode::Off => return None,
            EngineMode::On => true,
            EngineMode::DetectionOnly => false,
        };
        let id = ARGUMENTS_LIMIT_RULE_ID;
        let severity = 2;
        self.st.highest_severity = self.st.highest_severity.min(severity);
        let msg = "Request arguments left out by a parser limit".to_string();
        let (head, tail) = if blocking {
            (
                format!("Access denied with code 400 (phase {phase}). "),
                "refused rather than inspected in part",
            )
        } else {
            ("Warning. ".to_string(), "inspected in part only")
        };
        let host = self.header("host").unwrap_or_default();
        let line = format!(
            "ModSecurity: {head}{what}; {tail} [id \"{id}\"] [msg \"{}\"] [data \"{}\"] [severity \"{}\"] [hostname \"{}\"] [uri \"{}\"] [unique_id \"{}\"]",
            esc(msg.as_bytes(), 1024),
            esc(what.as_bytes(), MAX_LOGDATA),
            crate::rule::severity_name(severity),
            esc(host, 256),
            esc(&self.req.filename, 256),
            self.meta.unique_id
        );
        if self.log_lines.len() < MAX_LOG_LINES {
            self.log_lines.push(line);
        }
        let mut data = what;
        if data.len() > MAX_LOGDATA {
            let mut cut = MAX_LOGDATA;
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            data.truncate(cut);
        }
        self.matched.push(MatchedRule {
            id,
            phase,
            msg,
            data,
            severity: Some(severity),
            tags: Vec::new(),
            // Phase 1 reports the query string, phase 2 the body.
            matched_var_name: if phase == 1 { "ARGS_GET" } else { "ARGS_POST" }.to_string(),
            logged: true,
        });
        if !blocking {
            return None;
        }
        let v = Verdict::Deny {
            status: 400,
            rule_id: id,
        };
        self.interrupted = Some(v.clone());
        Some(v)
    }

    pub(super) fn header(&self, name: &str) -> Option<&[u8]> {
        self.req
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn parse_body(&mut self) {
        let ct = self
            .header("content-type")
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let lower = ct.to_ascii_lowercase();
        let processor = match &self.st.body_processor {
            Some(p) => Some(p.clone()),
            None if lower.starts_with(b"application/x-www-form-urlencoded") => {
                Some("URLENCODED".to_string())
            }
            None if lower.starts_with(b"multipart/form-data") => Some("MULTIPART".to_string()),
            None => None,
        };
        let limit = self.engine.inner.config.arguments_limit;
        let r = &mut self.req;
        r.body_processor = processor.clone();
        if r.body.is_empty() && processor.as_deref() != Some("MULTIPART") {
            return;
        }
        match processor.as_deref() {
            Some("URLENCODED") => {
                let dropped = body::parse_urlencoded(&r.body, limit, &mut r.args_post);
                if dropped {
                    note_truncation(
                        r,
                        format!("URL-encoded body has more than {limit} arguments"),
                    );
                }
            }
            Some("MULTIPART") => {
                let mp = body::parse_multipart(&ct, &r.body, limit);
                r.args_post.extend(mp.args.iter().cloned());
                r.files = mp.files.clone();
                r.files_sizes = mp
                    .file_sizes
                    .iter()
                    .map(|(k, s)| (k.clone(), s.to_string().into_bytes()))
                    .collect();
                r.files_combined_size = mp.file_sizes.iter().map(|(_, s)| s).sum();
                r.part_headers = mp.part_headers.clone();
                if let Some(e) = &mp.error {
                    add_reqbody_error(&mut r.reqbody_error, e);
                }
                if mp.args_truncated {
                    note_truncation(r, format!("Multipart body has more than {limit} arguments"));
                }
                r.multipart = Some(mp);
            }
            Some("JSON") => {
                let mut dropped = body::JsonDropped::default();
                if let Err(e) = body::parse_json(&r.body, limit, &mut r.args_post, &mut dropped) {
                    add_reqbody_error(&mut r.reqbody_error, &e);
                }
                if dropped.over_limit {
                    note_truncation(r, format!("JSON body has more than {limit} values"));
                }
                if dropped.long_name {
                    note_truncation(
                        r,
                        format!(
                            "JSON body has an argument name longer than {} bytes",
                            body::MAX_JSON_NAME
                        ),
                    );
                }
            }
            Some("XML") => match body::parse_xml(&r.body) {
                Ok(x) => r.xml = Some(x),
                Err(e) => add_reqbody_error(&mut r.reqbody_error, &e),
            },
            _ => {}
        }
    }

    /// Phase 3: the response status line and headers.
    pub fn process_response_headers<I, K, V>(
        &mut self,
        status: u16,
        protocol: &str,
        headers: I,
    ) -> Verdict
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<[u8]>,
    {
        self.req.resp_status = status.to_string().into_bytes();
        self.req.resp_protocol = protocol.as_bytes().to_vec();
        for (k, v) in headers {
            let (k, v) = (k.as_ref(), v.as_ref());
            if k.eq_ignore_ascii_case("content-type") {
                self.req.resp_content_type = v.to_vec();
            }
            self.req.resp_headers.push((k.to_string(), v.to_vec()));
        }
        if self.interrupted.is_some() {
            return self.interrupted.clone().unwrap_or(Verdict::Continue);
        }
        self.run_phase(3)
    }

    /// Whether the response body will be inspected (access on and a MIME
    /// type listed in SecResponseBodyMimeType).
    pub fn response_body_wanted(&self) -> bool {
        let cfg = &self.engine.inner.config;
        if !cfg.response_body_access {
            return false;
        }
        let ct = String::from_utf8_lossy(&self.req.resp_content_type).to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim().to_string();
        cfg.response_mime_types.contains(&mime)
    }

    /// Buffers response body bytes, up to the configured limit.
    pub fn append_response_body(&mut self, chunk: &[u8]) {
        if !self.response_body_wanted() {
            return;
        }
        let limit = self.engine.inner.config.response_body_limit as usize;
        append_capped(
            &mut self.req.resp_body,
            &mut self.req.resp_body_truncated,
            chunk,
            limit,
        );
    }

    /// Phase 4: the response body rules.
    pub fn process_response_body(&mut self) -> Verdict {
        if self.interrupted.is_some() {
            return self.interrupted.clone().unwrap_or(Verdict::Continue);
        }
        self.run_phase(4)
    }

    /// Phase 5: logging rules (e.g. CRS's correlation rules). Runs even when
    /// an earlier phase denied.
    pub fn process_logging(&mut self) {
        let _ = self.run_phase(5);
    }
}

/// Records arguments a parser left out for a limit: REQBODY_ERROR is set
/// (also for the query string, so `DetectionOnly` rules on REQBODY_ERROR
/// see it) and the transaction acts on it at the end of the phase.
fn note_truncation(r: &mut Request, what: String) {
    add_reqbody_error(&mut r.reqbody_error, &what);
    r.truncations.push(what);
}

/// Sets REQBODY_ERROR_MSG, or adds to it: one body processor error must not
/// hide another, nor a truncation that the query string already reported.
fn add_reqbody_error(slot: &mut Option<String>, msg: &str) {
    match slot {
        Some(e) => {
            e.push_str("; ");
            e.push_str(msg);
        }
        None => *slot = Some(msg.to_string()),
    }
}

fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && i + 2 < input.len()
            && input[i + 1].is_ascii_hexdigit()
            && input[i + 2].is_ascii_hexdigit()
        {
            let h = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push((h(input[i + 1]) << 4) | h(input[i + 2]));
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

/// Appends what fits of `chunk` to a body held to `limit` bytes, and notes in `truncated` that
/// some did not fit (the INBOUND_DATA_ERROR / OUTBOUND_DATA_ERROR flags).
fn append_capped(body: &mut Vec<u8>, truncated: &mut bool, chunk: &[u8], limit: usize) {
    let room = limit.saturating_sub(body.len());
    if chunk.len() > room {
        *truncated = true;
    }
    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
}
