//! The `[incidents]` section: the event store, the grouping thresholds and
//! the webhooks that hear of incidents.

use std::path::PathBuf;

use rampart_incidents::grouping::Thresholds;
use serde::Deserialize;

/// The `[incidents]` section. Every field has a default, so a file without
/// the section records events next to itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentSettings {
    /// Record events at all. On by default: an account of an attack is
    /// worth far more than the few per cent of throughput it costs.
    pub record: bool,
    /// The SQLite store; relative paths are relative to the configuration
    /// file. Default: `rampart-events.db` next to the configuration.
    pub store: Option<PathBuf>,
    /// Events that may wait for the writer. 65,536 holds several seconds of
    /// a flood's per-request events while the writer commits a batch.
    pub channel_capacity: usize,
    /// Events older than this are deleted. 30 days covers an incident's
    /// investigation and the ICO's questions that follow a report.
    #[serde(with = "humantime_serde")]
    pub retention: std::time::Duration,
    /// The store's size cap; the oldest events go first beyond it.
    pub max_store_mb: u64,
    /// Who the reports are from.
    pub organisation: String,
    /// The contact point the ICO asks for (Article 33(3)(b)).
    pub contact: String,
    /// The organisation's sector, for the NCSC report.
    pub sector: String,
    /// When incidents open and close.
    pub thresholds: Thresholds,
    /// Where alerts go when an incident opens, escalates or closes.
    pub webhook: Vec<Webhook>,
}

impl Default for IncidentSettings {
    fn default() -> Self {
        IncidentSettings {
            record: true,
            store: None,
            channel_capacity: 65_536,
            retention: std::time::Duration::from_secs(30 * 86_400),
            max_store_mb: 1024,
            organisation: String::new(),
            contact: String::new(),
            sector: String::new(),
            thresholds: Thresholds::default(),
            webhook: Vec::new(),
        }
    }
}

/// One alert destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// A name for events and logs (the URL may carry a secret, so it is
    /// never logged).
    pub name: String,
    /// `http://` or `https://`.
    pub url: String,
    /// `slack` (Slack-compatible `text` and `blocks`) or `json` (generic).
    #[serde(default = "default_format")]
    pub format: WebhookFormat,
}

fn default_format() -> WebhookFormat {
    WebhookFormat::Json
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    Slack,
    Json,
}

impl IncidentSettings {
    /// Problems serde cannot see: reported with the rest of the file's errors.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.channel_capacity == 0 {
            out.push("`channel_capacity` must be at least 1".to_string());
        }
        if self.retention < std::time::Duration::from_secs(1) {
            out.push("`retention` must be at least \"1s\"".to_string());
        }
        for hook in &self.webhook {
            if let Err(e) = crate::client::check_url(&hook.url) {
                out.push(format!("webhook `{}`: {e}", hook.name));
            }
        }
        out
    }
}
