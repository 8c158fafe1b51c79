//! Macro expansion (`%{TX.score}`, `%{MATCHED_VAR}`, `%{RULE.id}`) and the
//! scalar variables that macros and rule targets read.

use std::borrow::Cow;
use std::time::Instant;

use crate::body;
use crate::macros::{Macro, Part};
use crate::rule::Rule;
use crate::vars::Var;

use super::{store_index, Request, State, TxMeta};

pub(super) fn expand<'a>(
    req: &'a Request,
    st: &'a State,
    meta: &TxMeta,
    started: Instant,
    rule: &Rule,
    m: &'a Macro,
) -> Cow<'a, [u8]> {
    match m.parts.as_slice() {
        [] => return Cow::Borrowed(b""),
        [Part::Literal(l)] => return Cow::Borrowed(l),
        [Part::Var(v, Some(k))] if v.is_store() => {
            return Cow::Borrowed(
                st.stores[store_index(*v)]
                    .get(k.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(b""),
            );
        }
        _ => {}
    }
    let mut out = Vec::new();
    for p in &m.parts {
        match p {
            Part::Literal(l) => out.extend_from_slice(l),
            Part::Rule(k) => match k.as_str() {
                "id" => out.extend_from_slice(rule.id.to_string().as_bytes()),
                "msg" => {
                    if let Some(msg) = rule.actions.msg.as_ref().and_then(|m| m.as_literal()) {
                        out.extend_from_slice(msg);
                    }
                }
                "severity" => {
                    if let Some(s) = rule.actions.severity {
                        out.extend_from_slice(s.to_string().as_bytes());
                    }
                }
                "phase" => out.extend_from_slice(rule.phase.to_string().as_bytes()),
                _ => {}
            },
            Part::Var(v, key) => {
                if v.is_store() {
                    if let Some(k) = key {
                        if let Some(val) = st.stores[store_index(*v)].get(k) {
                            out.extend_from_slice(val);
                        }
                    }
                } else if v.is_collection() {
                    let list: &[(String, Vec<u8>)] = match v {
                        Var::RequestHeaders => &req.headers,
                        Var::ResponseHeaders => &req.resp_headers,
                        Var::RequestCookies => &req.cookies,
                        Var::ArgsGet => &req.args_get,
                        Var::ArgsPost => &req.args_post,
                        Var::Args => {
                            if let Some(k) = key {
                                if let Some((_, val)) = req
                                    .args_get
                                    .iter()
                                    .chain(req.args_post.iter())
                                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                                {
                                    out.extend_from_slice(val);
                                }
                            }
                            continue;
                        }
                        _ => &[],
                    };
                    if let Some(k) = key {
                        if let Some((_, val)) = list.iter().find(|(n, _)| n.eq_ignore_ascii_case(k))
                        {
                            out.extend_from_slice(val);
                        }
                    }
                } else if let Some(val) = scalar_value(req, st, meta, started, *v) {
                    out.extend_from_slice(&val);
                }
            }
        }
    }
    Cow::Owned(out)
}

fn flag(b: bool) -> Cow<'static, [u8]> {
    Cow::Borrowed(if b { b"1" } else { b"0" })
}

pub(super) fn scalar_value<'a>(
    r: &'a Request,
    st: &'a State,
    meta: &'a TxMeta,
    started: Instant,
    v: Var,
) -> Option<Cow<'a, [u8]>> {
    let s = |x: &'a [u8]| Some(Cow::Borrowed(x));
    let n = |x: usize| Some(Cow::Owned(x.to_string().into_bytes()));
    let mp = r.multipart.as_ref();
    let mpf = |f: fn(&body::Multipart) -> bool| Some(flag(mp.is_some_and(f)));
    match v {
        Var::ArgsCombinedSize => n(r
            .args_get
            .iter()
            .chain(r.args_post.iter())
            .map(|(k, v)| k.len() + v.len())
            .sum()),
        Var::RequestUri => s(&r.uri),
        Var::RequestUriRaw => s(&r.uri_raw),
        Var::RequestLine => s(&r.line),
        Var::RequestMethod => s(&r.method),
        Var::RequestProtocol => s(&r.protocol),
        Var::RequestFilename => s(&r.filename),
        Var::RequestBasename => s(&r.basename),
        Var::QueryString => s(&r.query),
        Var::RequestBody => {
            // As in ModSecurity v2: only the URL-encoded processor, or
            // ctl:forceRequestBodyVariable, fills REQUEST_BODY.
            if r.body_processor.as_deref() == Some("URLENCODED") || st.force_body_variable {
                s(&r.body)
            } else {
                None
            }
        }
        Var::RequestBodyLength => n(r.body.len()),
        Var::FilesCombinedSize => n(r.files_combined_size),
        Var::ReqbodyError => Some(flag(r.reqbody_error.is_some())),
        Var::ReqbodyErrorMsg | Var::ReqbodyProcessorError => Some(Cow::Borrowed(
            r.reqbody_error.as_deref().unwrap_or("").as_bytes(),
        )),
        Var::ReqbodyProcessor => match (&r.body_processor, &st.body_processor) {
            (Some(p), _) | (None, Some(p)) => Some(Cow::Owned(p.as_bytes().to_vec())),
            (None, None) => Some(Cow::Borrowed(b"")),
        },
        Var::ResponseStatus => s(&r.resp_status),
        Var::ResponseBody => s(&r.resp_body),
        Var::ResponseContentType => s(&r.resp_content_type),
        Var::ResponseContentLength => r
            .resp_headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| Cow::Borrowed(v.as_slice())),
        Var::ResponseProtocol => s(&r.resp_protocol),
        Var::StatusLine => Some(Cow::Owned(
            [r.resp_protocol.as_slice(), b" ", r.resp_status.as_slice()].concat(),
        )),
        Var::MatchedVar => s(&st.matched_var),
        Var::MatchedVarName => s(&st.matched_var_name),
        Var::RemoteAddr => s(meta.remote_addr.as_bytes()),
        Var::RemotePort => n(meta.remote_port as usize),
        Var::RemoteHost => s(meta.remote_addr.as_bytes()),
        Var::ServerAddr => s(meta.server_addr.as_bytes()),
        Var::ServerPort => n(meta.server_port as usize),
        Var::ServerName => r
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map(|(_, v)| Cow::Borrowed(v.as_slice())),
        Var::UniqueId => s(meta.unique_id.as_bytes()),
        Var::Duration => n(started.elapsed().as_micros() as usize),
        Var::HighestSeverity => n(st.highest_severity as usize),
        Var::FullRequestLength => n(r.line.len()
            + r.headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 4)
                .sum::<usize>()
            + r.body.len()),
        Var::InboundDataError => Some(flag(r.body_truncated)),
        Var::OutboundDataError => Some(flag(r.resp_body_truncated)),
        Var::UrlencodedError => Some(flag(false)),
        Var::MultipartStrictError => mpf(|m| m.strict_error()),
        Var::MultipartUnmatchedBoundary => mpf(|m| m.unmatched_boundary),
        Var::MultipartBoundaryQuoted => mpf(|m| m.boundary_quoted),
        Var::MultipartBoundaryWhitespace => mpf(|m| m.boundary_whitespace),
        Var::MultipartDataBefore => mpf(|m| m.data_before),
        Var::MultipartDataAfter => mpf(|m| m.data_after),
        Var::MultipartHeaderFolding => mpf(|m| m.header_folding),
        Var::MultipartLfLine => mpf(|m| m.lf_line),
        Var::MultipartCrlfLfLines => mpf(|m| m.lf_line && m.crlf_line),
        Var::MultipartMissingSemicolon => mpf(|m| m.missing_semicolon),
        Var::MultipartInvalidQuoting => mpf(|m| m.invalid_quoting),
        Var::MultipartInvalidPart => mpf(|m| m.invalid_part),
        Var::MultipartInvalidHeaderFolding => mpf(|m| m.invalid_header_folding),
        Var::MultipartFileLimitExceeded => Some(flag(false)),
        Var::MultipartFilename => mp.map(|m| Cow::Borrowed(m.last_filename.as_slice())),
        Var::MultipartName => mp.map(|m| Cow::Borrowed(m.last_name.as_slice())),
        Var::AuthType | Var::RemoteUser | Var::PathInfo | Var::Webappid | Var::FullRequest => None,
        Var::Time | Var::TimeEpoch => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            n(secs as usize)
        }
        _ => None,
    }
}
