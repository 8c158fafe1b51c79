//! Counters, exposed in Prometheus text format on the admin listener.
//!
//! Plain atomics rather than a metrics library: the set is small and fixed,
//! and a relaxed atomic add is the cheapest thing the request path can do.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Upper bounds of the request-duration histogram, in seconds.
const DURATION_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub connections_rejected_per_client: AtomicU64,
    pub connections_rejected_global: AtomicU64,
    pub connections_evicted: AtomicU64,
    pub head_timeouts: AtomicU64,
    pub slow_bodies: AtomicU64,
    pub idle_closes: AtomicU64,
    pub upstream_connect_failures: AtomicU64,
    pub upstream_retries: AtomicU64,
    pub upstream_ejections: AtomicU64,
    pub health_flips: AtomicU64,
    pub reloads_ok: AtomicU64,
    pub reloads_failed: AtomicU64,
    pub log_lines_dropped: AtomicU64,
    pub waf_blocks: AtomicU64,
    pub waf_detections: AtomicU64,
    pub waf_errors: AtomicU64,
    pub leak_allowed: AtomicU64,
    pub leak_events: AtomicU64,
    pub leak_errors: AtomicU64,
    pub leak_uninspectable: AtomicU64,
    pub waf_uninspectable: AtomicU64,
    pub malformed_requests: AtomicU64,
    pub upgrades_refused: AtomicU64,
    pub tunnels: AtomicU64,
    sites: Mutex<BTreeMap<String, Arc<SiteMetrics>>>,
}

/// Per-site request counters.
#[derive(Debug, Default)]
pub struct SiteMetrics {
    /// Responses by status class: index 1 is 1xx ... index 5 is 5xx.
    pub responses: [AtomicU64; 6],
    pub bytes_sent: AtomicU64,
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_micros_sum: AtomicU64,
    /// The current one-second window for the event store's traffic samples.
    pub traffic: crate::incidents::TrafficWindow,
}

impl SiteMetrics {
    pub fn record(&self, status: u16, bytes: u64, seconds: f64) {
        let class = (status / 100).min(5) as usize;
        self.responses[class].fetch_add(1, Relaxed);
        self.bytes_sent.fetch_add(bytes, Relaxed);
        for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.duration_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Relaxed);
        self.duration_micros_sum
            .fetch_add((seconds * 1e6) as u64, Relaxed);
    }
}

impl Metrics {
    /// The counters of one site, created on first use and kept across
    /// reloads so that a reload does not reset the site's totals.
    pub fn site(&self, name: &str) -> Arc<SiteMetrics> {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        sites.entry(name.to_string()).or_default().clone()
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let counters: [(&str, &str, &AtomicU64); 26] = [
            ("rampart_connections_open", "Client connections open now.", &self.connections_open),
            ("rampart_connections_total", "Client connections accepted.", &self.connections_total),
            ("rampart_connections_rejected_per_client_total", "Connections refused by the per-client cap.", &self.connections_rejected_per_client),
            ("rampart_connections_rejected_global_total", "Connections refused by the global cap.", &self.connections_rejected_global),
            ("rampart_connections_evicted_total", "Connections waiting for a request head, closed under a full table to make room for a new one.", &self.connections_evicted),
            ("rampart_head_timeouts_total", "Connections cut off for not sending a request head in time.", &self.head_timeouts),
            ("rampart_slow_bodies_total", "Requests cut off for a request body below the minimum rate.", &self.slow_bodies),
            ("rampart_idle_closes_total", "Keep-alive connections closed after the idle timeout.", &self.idle_closes),
            ("rampart_upstream_connect_failures_total", "Failed connections to upstream servers.", &self.upstream_connect_failures),
            ("rampart_upstream_retries_total", "Requests retried on another upstream server.", &self.upstream_retries),
            ("rampart_upstream_ejections_total", "Upstream servers ejected after failures on traffic.", &self.upstream_ejections),
            ("rampart_health_flips_total", "Changes of an upstream server's health-check verdict.", &self.health_flips),
            ("rampart_reloads_total{result=\"ok\"}", "Configuration reloads.", &self.reloads_ok),
            ("rampart_reloads_total{result=\"rejected\"}", "", &self.reloads_failed),
            ("rampart_log_lines_dropped_total", "Log lines dropped because a log writer fell behind.", &self.log_lines_dropped),
            ("rampart_waf_blocks_total", "Requests or responses stopped by the WAF.", &self.waf_blocks),
            ("rampart_waf_detections_total", "Transactions in which the WAF matched a rule without stopping it.", &self.waf_detections),
            ("rampart_waf_errors_total", "WAF evaluations that failed internally (the request was refused).", &self.waf_errors),
            ("rampart_leak_allowed_total", "Responses with leak-guard findings the route's policy allows (below its thresholds); no event is raised.", &self.leak_allowed),
            ("rampart_leak_events_total", "Responses whose leak-guard findings raised an event (alert, redact or block).", &self.leak_events),
            ("rampart_leak_errors_total", "Responses whose leak-guard scan failed internally (cut off on routes that redact, block or stop canaries; sent unscanned on the others).", &self.leak_errors),
            ("rampart_leak_uninspectable_total", "Responses the leak guard could not read (an unknown or corrupt encoding) on a route that redacts or blocks; refused with 502.", &self.leak_uninspectable),
            ("rampart_waf_uninspectable_total", "Response bodies the WAF could not decode (unknown encoding, corrupt or over its cap): passed, or judged on what decoded.", &self.waf_uninspectable),
            ("rampart_malformed_requests_total", "Request heads the HTTP layer refused (400) before any hook ran; logged, judged by the WAF for its log, never forwarded.", &self.malformed_requests),
            ("rampart_upgrades_refused_total", "Requests whose Upgrade header was removed because the route does not allow a tunnel (or the request was not a bodiless GET).", &self.upgrades_refused),
            ("rampart_tunnels_total", "Upgrades the upstream accepted (101): connections no layer reads from then on.", &self.tunnels),
        ];
        for (name, help, value) in counters {
            let base = name.split('{').next().unwrap_or(name);
            if !help.is_empty() {
                let kind = if base.ends_with("_open") {
                    "gauge"
                } else {
                    "counter"
                };
                let _ = writeln!(out, "# HELP {base} {help}\n# TYPE {base} {kind}");
            }
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        }
        let sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP rampart_responses_total Responses sent, by site and status class.\n# TYPE rampart_responses_total counter\n");
        for (site, m) in sites.iter().map(|(site, m)| (LabelValue(site), m)) {
            for class in 1..=5 {
                let _ = writeln!(
                    out,
                    "rampart_responses_total{{site=\"{site}\",class=\"{class}xx\"}} {}",
                    m.responses[class].load(Relaxed)
                );
            }
        }
        out.push_str("# HELP rampart_response_bytes_total Body bytes sent to clients.\n# TYPE rampart_response_bytes_total counter\n");
        for (site, m) in sites.iter().map(|(site, m)| (LabelValue(site), m)) {
            let _ = writeln!(
                out,
                "rampart_response_bytes_total{{site=\"{site}\"}} {}",
                m.bytes_sent.load(Relaxed)
            );
        }
        out.push_str("# HELP rampart_request_duration_seconds Time from request head to end of response.\n# TYPE rampart_request_duration_seconds histogram\n");
        for (site, m) in sites.iter().map(|(site, m)| (LabelValue(site), m)) {
            for (i, bound) in DURATION_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rampart_request_duration_seconds_bucket{{site=\"{site}\",le=\"{bound}\"}} {}",
                    m.duration_buckets[i].load(Relaxed)
                );
            }
            let count = m.duration_count.load(Relaxed);
            let _ = writeln!(
                out,
                "rampart_request_duration_seconds_bucket{{site=\"{site}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "rampart_request_duration_seconds_sum{{site=\"{site}\"}} {}",
                m.duration_micros_sum.load(Relaxed) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "rampart_request_duration_seconds_count{{site=\"{site}\"}} {count}"
            );
        }
        out
    }
}

/// A label value in the Prometheus text format: a backslash, a double quote
/// or a line feed in it (a site name is the operator's free text) would end
/// the value early or break the line, so they are escaped as the format says.
struct LabelValue<'a>(&'a str);

impl std::fmt::Display for LabelValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => std::fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod label_tests {
    use super::LabelValue;

    #[test]
    fn label_values_are_escaped_as_the_text_format_says() {
        assert_eq!(LabelValue("www").to_string(), "www");
        assert_eq!(LabelValue("a\"b\\c\nd").to_string(), "a\\\"b\\\\c\\nd");
    }
}
