//! The serve-stale cache on the request and response paths.

use super::*;

/// A response being copied into the serve-stale cache as it streams out.
pub(super) struct CacheFill {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) keep_for: (u64, u64),
    /// Whether the whole body has been copied (the response may still fail
    /// before the logging phase stores it).
    pub(super) complete: bool,
}

impl Gateway {
    /// The serve-stale cache, request side: notes the key of an anonymous
    /// GET or HEAD, and answers from a kept copy when the origin should be
    /// spared (the site is under attack) or cannot answer (no healthy
    /// upstream server). Returns true when it answered.
    pub(super) async fn serve_from_cache(
        &self,
        session: &mut Session,
        ctx: &mut RequestContext,
        snapshot: &Snapshot,
        site: usize,
        host: &str,
    ) -> Result<bool> {
        let cache = &self.runtime.cache;
        if !cache.config().enabled || ctx.upgrade {
            return Ok(false);
        }
        let header = session.req_header();
        // The gateway's own clearance and ticket cookies say nothing about
        // who the visitor is to the site; any other cookie may.
        let site_cookies = header.headers.get_all("cookie").iter().any(|v| {
            v.to_str().map_or(true, |v| {
                v.split(';').map(str::trim).any(|c| {
                    !c.is_empty()
                        && !c.starts_with("rampart_clearance=")
                        && !c.starts_with("rampart_ticket=")
                })
            })
        });
        if !rampart_cache::request_is_cacheable(
            header.method.as_str(),
            site_cookies,
            header.headers.contains_key("authorization"),
        ) {
            return Ok(false);
        }
        // The key is made of the resolved authority and the forwarded
        // target, so every spelling of a page shares one copy.
        let target = forwarded_target(
            ctx.path.as_ref().map_or("/", |p| p.forwarded.as_str()),
            header.raw_path(),
        );
        let target = String::from_utf8_lossy(&target);
        let encoding = header
            .headers
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok());
        let key = cache.key(&snapshot.sites[site].name, host, &target, encoding);
        ctx.cache_key = Some(key);
        let under_attack = match (ctx.flood_site, &snapshot.flood) {
            (Some(id), Some(flood)) => flood.shield.under_attack(id),
            _ => false,
        };
        let origin_down = ctx.pool().is_some_and(|p| p.up_count() == 0);
        if !(under_attack || origin_down) {
            return Ok(false);
        }
        let Some((copy, freshness)) = cache.get(key, crate::incidents::now_ms() as u64) else {
            return Ok(false);
        };
        ctx.verdict = Verdict::Cache(if under_attack {
            CacheServe::UnderAttack
        } else {
            CacheServe::OriginDown
        });
        self.write_cached(session, ctx, &copy, freshness).await?;
        Ok(true)
    }

    /// Sends a kept copy, marked with its age and whether it was stale.
    pub(super) async fn write_cached(
        &self,
        session: &mut Session,
        ctx: &RequestContext,
        copy: &rampart_cache::CachedResponse,
        freshness: rampart_cache::Freshness,
    ) -> Result<()> {
        let mut head = ResponseHeader::build(copy.status, Some(copy.headers.len() + 4))?;
        for (name, value) in &copy.headers {
            head.append_header(name.clone(), value.as_str())?;
        }
        head.insert_header("content-length", copy.body.len().to_string())?;
        head.insert_header(
            "age",
            copy.age_secs(crate::incidents::now_ms() as u64).to_string(),
        )?;
        head.insert_header(
            "x-rampart-cache",
            if freshness == rampart_cache::Freshness::Fresh {
                "hit"
            } else {
                "stale"
            },
        )?;
        head.insert_header("x-request-id", ctx.reference.as_str())?;
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(head), head_only)
            .await?;
        if !head_only {
            session
                .write_response_body(Some(copy.body.clone()), true)
                .await?;
        }
        Ok(())
    }

    /// The serve-stale cache, response side: copies the bytes that went to
    /// the client and keeps them at the end, if no layer objected.
    pub(super) fn fill_cache(
        &self,
        body: &Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestContext,
    ) {
        let Some(fill) = ctx.cache_fill.as_mut() else {
            return;
        };
        if let Some(chunk) = body {
            if fill.body.len() + chunk.len() > self.runtime.cache.config().max_entry_bytes {
                ctx.cache_fill = None;
                return;
            }
            fill.body.extend_from_slice(chunk);
        }
        if end_of_stream {
            fill.complete = true;
            // A page whose last chunk the leak guard scans after sending is
            // stored once that scan has given its verdict.
            if ctx.leak.as_ref().is_none_or(|l| l.deferred.is_none()) {
                self.store_cache(ctx);
            }
        }
    }

    /// Keeps a completely copied response in the serve-stale cache, unless a
    /// layer objected to it.
    pub(super) fn store_cache(&self, ctx: &mut RequestContext) {
        let Some(fill) = ctx.cache_fill.take() else {
            return;
        };
        if !fill.complete {
            return;
        }
        // A page whose only findings the leak guard's policy allows (the
        // contact address in a footer) is as clean as one without any;
        // an alerted, redacted or blocked one is never kept to be served
        // again unscanned.
        let allowed = ctx.verdict.clean_for_cache();
        let clean = allowed && !ctx.waf.as_ref().is_some_and(|w| w.intervened);
        if clean {
            if let Some(key) = ctx.cache_key {
                self.runtime.cache.put(
                    key,
                    fill.status,
                    &fill.headers,
                    Bytes::from(fill.body),
                    fill.keep_for,
                    crate::incidents::now_ms() as u64,
                );
            }
        }
    }
}
