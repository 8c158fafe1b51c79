//! The flood shield on the request path: the challenge and waiting-room
//! endpoints, bans, rate limits, the challenge and the site gate.

use super::*;

impl Gateway {
    /// The flood layer: its two challenge endpoints, then admission by rate
    /// limits, bans, challenge and concurrency caps. Returns true when it
    /// answered the request itself.
    pub(super) async fn flood_gate(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        site: usize,
    ) -> Result<bool> {
        use rampart_flood::{pages, FloodVerdict, Reject, RequestFacts, RouteId};
        // A site the shield does not guard, or a gateway without one.
        let Some((flood, site_id)) =
            (snapshot.flood.as_ref()).and_then(|flood| Some((flood, flood.site_ids[site]?)))
        else {
            return Ok(false);
        };
        let Some(client) = ctx.client else {
            return Ok(false);
        };
        ctx.flood_site = Some(site_id);
        let shield = &flood.shield;
        let now = crate::flood::now();
        let header = session.req_header();
        let path = header.uri.path().to_string();
        let method = header.method.clone();

        if path == pages::VERIFY_PATH && method == http::Method::POST {
            // The solution form is tiny; anything larger is not ours.
            let mut form = Vec::new();
            while let Some(chunk) = session.read_request_body().await? {
                form.extend_from_slice(&chunk);
                if form.len() > 4096 {
                    break;
                }
            }
            let form = String::from_utf8_lossy(&form).into_owned();
            let token = pages::form_field(&form, "token")
                .map(pages::percent_decode)
                .unwrap_or_default();
            let solution = pages::form_field(&form, "solution")
                .map(pages::percent_decode)
                .unwrap_or_default();
            match shield.verify_solution(site_id, client, &token, &solution, now) {
                Ok(clearance) => {
                    ctx.verdict = Verdict::Flood(FloodOutcome::Cleared);
                    let mut head = ResponseHeader::build(204, Some(3))?;
                    head.insert_header("set-cookie", clearance.set_cookie())?;
                    head.insert_header("cache-control", "no-store")?;
                    session.write_response_header(Box::new(head), true).await?;
                }
                Err(why) => {
                    ctx.verdict = Verdict::Flood(FloodOutcome::ChallengeRejected(why));
                    self.answer(session, ctx, 403, &[]).await?;
                }
            }
            return Ok(true);
        }
        if path == pages::WAIT_PATH {
            let query = header.uri.query().unwrap_or("").to_string();
            let token = pages::form_field(&query, "t")
                .map(pages::percent_decode)
                .unwrap_or_default();
            let return_to = pages::form_field(&query, "r")
                .map(pages::percent_decode)
                .unwrap_or_else(|| "/".into());
            match shield.redeem_wait(site_id, client, &token, now) {
                Ok(clearance) => {
                    ctx.verdict = Verdict::Flood(FloodOutcome::ClearedNoScript);
                    let mut head = ResponseHeader::build(303, Some(4))?;
                    head.insert_header("location", pages::safe_return_path(&return_to))?;
                    head.insert_header("set-cookie", clearance.set_cookie())?;
                    head.insert_header("cache-control", "no-store")?;
                    head.insert_header("content-length", "0")?;
                    session.write_response_header(Box::new(head), true).await?;
                }
                Err(Reject::TooEarly { remaining }) => {
                    let page = pages::wait_page(
                        &token,
                        &return_to,
                        rampart_flood::retry_after_secs(remaining),
                    );
                    self.answer_page(session, ctx, 403, page, &[]).await?;
                }
                Err(Reject::PrefixCapped) => {
                    ctx.verdict = Verdict::Flood(FloodOutcome::Limited(FloodLimit::WaitPrefix));
                    self.answer(session, ctx, 429, &[("retry-after", "12")])
                        .await?;
                }
                Err(why) => {
                    ctx.verdict = Verdict::Flood(FloodOutcome::ChallengeRejected(why));
                    self.answer(session, ctx, 403, &[]).await?;
                }
            }
            return Ok(true);
        }

        // Most requests carry one Cookie header; only several need joining.
        let mut cookie_values = header
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|v| v.to_str().ok());
        let cookies: Cow<'_, str> = match (cookie_values.next(), cookie_values.next()) {
            (None, _) => Cow::Borrowed(""),
            (Some(one), None) => Cow::Borrowed(one),
            (Some(a), Some(b)) => Cow::Owned(
                std::iter::once(a)
                    .chain(std::iter::once(b))
                    .chain(cookie_values)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        };
        // `Accept` only chooses how an answer is written (a page or JSON);
        // it never decides whether a request is challenged.
        let accept = header
            .headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let is_browser = accept.contains("text/html") && !ctx.api;
        let facts = RequestFacts {
            client,
            site: site_id,
            route: ctx
                .route
                .map_or(RouteId::NONE, |r| flood.route_ids[site][r]),
            is_api: ctx.api,
            is_browser,
            clearance_cookie: pages::find_cookie(&cookies, pages::CLEARANCE_COOKIE),
            ticket_cookie: pages::find_cookie(&cookies, pages::TICKET_COOKIE),
            now,
        };
        let return_to = header
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        match shield.admit(&facts) {
            FloodVerdict::Continue { mut permit } => {
                // A body still to come holds no place in the upstream's
                // capacity until it has arrived (`request_body_filter`).
                if let Some(p) = permit.as_mut().filter(|_| !session.is_body_empty()) {
                    p.hold_for_body();
                }
                ctx.flood_permit = permit;
                Ok(false)
            }
            FloodVerdict::Limited {
                retry_after_secs,
                scope,
            } => {
                ctx.verdict = Verdict::Flood(FloodOutcome::Limited(FloodLimit::Scope(scope)));
                self.answer(
                    session,
                    ctx,
                    429,
                    &[("retry-after", &retry_after_secs.to_string())],
                )
                .await?;
                Ok(true)
            }
            FloodVerdict::Challenge(challenge) => {
                ctx.verdict = Verdict::Flood(FloodOutcome::Challenge);
                if is_browser {
                    let page = challenge.page(&return_to);
                    self.answer_page(
                        session,
                        ctx,
                        403,
                        page,
                        &[("content-security-policy", pages::challenge_csp())],
                    )
                    .await?;
                } else {
                    // An API client (or any client that did not ask for a
                    // page) gets what it can act on: 429, when to retry, and
                    // the proof of work in JSON and in a header, to solve and
                    // post to the verify path for a clearance cookie.
                    let body = serde_json::json!({
                        "error": "challenge_required",
                        "reference": ctx.reference,
                        "retry_after": 1,
                        "challenge": { "token": challenge.token, "difficulty": challenge.difficulty, "verify": pages::VERIFY_PATH },
                    })
                    .to_string();
                    let header = format!(
                        "token={}, difficulty={}, verify={}",
                        challenge.token,
                        challenge.difficulty,
                        pages::VERIFY_PATH
                    );
                    self.write_page(
                        session,
                        ctx,
                        429,
                        "application/json",
                        Bytes::from(body),
                        &[
                            ("retry-after", "1".to_string()),
                            ("rampart-challenge", header),
                        ],
                    )
                    .await?;
                }
                Ok(true)
            }
            FloodVerdict::WaitingRoom {
                position,
                refresh_secs,
                ticket_cookie,
            } => {
                ctx.verdict = Verdict::Flood(FloodOutcome::WaitingRoom);
                let page = pages::waiting_room_page(position, refresh_secs);
                self.answer_page(
                    session,
                    ctx,
                    503,
                    page,
                    &[
                        ("retry-after", refresh_secs.to_string()),
                        ("set-cookie", pages::ticket_set_cookie(&ticket_cookie)),
                    ],
                )
                .await?;
                Ok(true)
            }
            FloodVerdict::Unavailable { retry_after_secs } => {
                ctx.verdict = Verdict::Flood(FloodOutcome::Unavailable);
                if is_browser {
                    self.answer_page(
                        session,
                        ctx,
                        503,
                        pages::busy_page(retry_after_secs),
                        &[("retry-after", retry_after_secs.to_string())],
                    )
                    .await?;
                } else {
                    self.answer(
                        session,
                        ctx,
                        503,
                        &[("retry-after", &retry_after_secs.to_string())],
                    )
                    .await?;
                }
                Ok(true)
            }
            FloodVerdict::Banned { .. } => {
                ctx.verdict = Verdict::Flood(FloodOutcome::Banned);
                self.answer(session, ctx, 403, &[]).await?;
                Ok(true)
            }
        }
    }
}
