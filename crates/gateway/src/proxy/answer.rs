//! Answers the gateway writes itself: error pages, the shield's pages, and
//! refusals of malformed requests.

use super::*;

pub(super) fn status_error(status: u16, why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::HTTPStatus(status), why)
}

pub(super) fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

impl Gateway {
    /// Writes one of the gateway's own error pages as the whole response.
    pub(super) async fn answer(
        &self,
        session: &mut Session,
        ctx: &RequestContext,
        status: u16,
        extra: &[(&str, &str)],
    ) -> Result<()> {
        let accept = session
            .req_header()
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok());
        let json = pages::wants_json(ctx.api, accept);
        let (content_type, body) = pages::render(status, &ctx.reference, json);
        let headers: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.write_page(session, ctx, status, content_type, body, &headers)
            .await
    }

    /// Writes a page the flood layer made (challenge, waiting room, wait).
    pub(super) async fn answer_page(
        &self,
        session: &mut Session,
        ctx: &RequestContext,
        status: u16,
        body: String,
        headers: &[(&str, String)],
    ) -> Result<()> {
        self.write_page(
            session,
            ctx,
            status,
            "text/html; charset=utf-8",
            Bytes::from(body),
            headers,
        )
        .await
    }

    /// Sends a whole response the gateway made itself: never cached, tagged
    /// with the request's reference, and the connection closed after it.
    pub(super) async fn write_page(
        &self,
        session: &mut Session,
        ctx: &RequestContext,
        status: u16,
        content_type: &str,
        body: Bytes,
        headers: &[(&str, String)],
    ) -> Result<()> {
        let mut head = ResponseHeader::build(status, Some(4 + headers.len()))?;
        head.insert_header("content-type", content_type)?;
        head.insert_header("content-length", body.len().to_string())?;
        head.insert_header("cache-control", "no-store")?;
        head.insert_header("x-request-id", ctx.reference.as_str())?;
        for (k, v) in headers {
            head.append_header(k.to_string(), v.as_str())?;
        }
        session.set_keepalive(None);
        session.write_response_header(Box::new(head), false).await?;
        session.write_response_body(Some(body), true).await?;
        Ok(())
    }

    /// Refuses a request the gateway will not forward (an invalid
    /// authority, a fragment in the target) after the WAF of the site a
    /// request for no name reaches has judged it for its log, as it judges
    /// any other request: a scanner's malformed probes are logged and
    /// counted like its others, and nothing reaches an upstream.
    pub(super) async fn refuse_judged(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        status: u16,
        why: BadRequest,
    ) -> Result<bool> {
        let site = snapshot
            .site_for_host("")
            .or((!snapshot.sites.is_empty()).then_some(0));
        if let Some(site) = site {
            ctx.site = Some(site);
            ctx.path = Some(Box::new(crate::resolve::resolve_path(&request_path(
                session.req_header(),
            ))));
            let _ = self.request_waf(session, ctx, snapshot, site, false);
        }
        ctx.verdict = Verdict::BadRequest(why);
        self.answer(session, ctx, status, &[]).await?;
        Ok(true)
    }
}
