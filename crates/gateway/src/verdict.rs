//! What happened to a request, as one value: the layers set it, and the
//! access log (through `Display`), the per-second traffic samples and the
//! event store read it. Nothing builds a verdict as text and parses it back.

use std::fmt;

use rampart_flood::{LimitScope, Reject};
use rampart_leakguard::{Action, EntityKind};

use crate::incidents::Outcome as Traffic;

/// The security verdict on one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    /// Nothing stopped or changed it.
    #[default]
    Allow,
    /// No site answers for its host.
    UnknownSite,
    /// Refused before any layer: the request itself is malformed.
    BadRequest(BadRequest),
    /// Over one of the gateway's size limits.
    Limit(SizeLimit),
    /// The WAF's word on it.
    Waf(WafOutcome),
    /// The flood shield's word on it.
    Flood(FloodOutcome),
    /// The leak guard's word on its response.
    Leak(LeakOutcome),
    /// Answered from the cache instead of the upstream.
    Cache(CacheServe),
    /// The upstream failed it.
    UpstreamFailure(UpstreamFailure),
}

/// Why a request was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// A `CONNECT`: the gateway is no forward proxy.
    Connect,
    /// A fragment in the target, which is the client's own.
    Fragment,
    /// HTTP/1.1 without a `Host` header.
    HostMissing,
    /// More than one `Host` header.
    HostRepeated,
    /// `Host` and the target's authority disagree.
    HostConflict,
    /// Not a valid host, IP literal or port.
    HostInvalid,
    /// A head refused by the HTTP layer whose framing could not be read.
    MalformedFraming,
    /// A head refused by the HTTP layer.
    MalformedHead,
    /// A head refused by the HTTP layer, on which the WAF also matched.
    MalformedHeadWaf,
}

/// Which size limit a request went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    HeaderSize,
    BodySize,
}

/// What the WAF did with a request or its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WafOutcome {
    /// Refused (denied, dropped or redirected) by this rule.
    Block { rule_id: u32 },
    /// The evaluation failed; the request was refused with 500.
    Error,
    /// Rules matched and logged, and nothing intervened (mode `on`).
    Logged,
    /// Rules matched in detection-only mode.
    Detect,
    /// A compressed response body the WAF cannot read, refused.
    Uninspectable,
    /// A compressed request body the WAF cannot read, refused.
    UninspectableBody,
}

/// What the flood shield did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloodOutcome {
    /// A solved challenge earned a clearance.
    Cleared,
    /// A no-script wait earned a clearance.
    ClearedNoScript,
    /// A challenge answer or wait token was refused.
    ChallengeRejected(Reject),
    /// Over a rate limit.
    Limited(FloodLimit),
    /// Sent the challenge.
    Challenge,
    /// Sent to the waiting room.
    WaitingRoom,
    /// Refused with 503: the waiting room is full.
    Unavailable,
    /// The client or its prefix is banned.
    Banned,
}

/// Which rate limit a request went over. Its serde form is the limit's
/// name in events: `client`, `route_total`, ..., `wait_prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FloodLimit {
    /// The per-prefix allowance of no-script clearances.
    WaitPrefix,
    /// One of the site's or route's limits.
    #[serde(untagged)]
    Scope(LimitScope),
}

/// What the leak guard did with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakOutcome {
    /// Scanned: the action taken and the kinds found, in the outcome's order.
    Judged { action: Action, kinds: Kinds },
    /// An encoding the guard cannot read, refused.
    Uninspectable,
    /// A `block` route's body over what it may hold back.
    TooLargeToJudge,
    /// The scanner failed; the response went out unscanned.
    Error,
    /// The scanner failed; the response was refused or cut off.
    ErrorCutOff,
}

/// Finding kinds in order, without allocating: at most one of each.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Kinds {
    kinds: [u8; EntityKind::COUNT],
    len: u8,
}

impl Kinds {
    pub fn new(kinds: impl IntoIterator<Item = EntityKind>) -> Kinds {
        let mut out = Kinds {
            kinds: [0; EntityKind::COUNT],
            len: 0,
        };
        for kind in kinds {
            let index = EntityKind::ALL.iter().position(|k| *k == kind);
            if let Some(index) = index {
                if usize::from(out.len) < out.kinds.len() && !out.iter().any(|k| k == kind) {
                    out.kinds[usize::from(out.len)] = index as u8;
                    out.len += 1;
                }
            }
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = EntityKind> + '_ {
        self.kinds[..usize::from(self.len)]
            .iter()
            .map(|&i| EntityKind::ALL[usize::from(i)])
    }
}

impl fmt::Debug for Kinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Why a response came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheServe {
    /// The upstream failed and a stale copy stood in.
    StaleOnError,
    /// The site is under attack and a copy spared the upstream.
    UnderAttack,
    /// Every upstream server is down.
    OriginDown,
}

/// How the upstream failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// It answered 5xx, or could not be reached.
    Answered,
    /// It switched protocols (101) on a request that asked for no upgrade.
    Unrequested101,
    /// It was overloaded and a browser got the self-reloading busy page.
    RetryPage,
}

/// The name serde gives a unit-like value (`block`, `route_total`), for the
/// event store's text columns, which use the same names as the JSON lines.
pub fn serde_name(value: impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

impl Verdict {
    pub fn is_allow(&self) -> bool {
        *self == Verdict::Allow
    }

    /// Whether the response may be kept in the cache: nothing objected to
    /// it, or the leak guard's only findings are ones its policy allows.
    pub fn clean_for_cache(&self) -> bool {
        matches!(
            self,
            Verdict::Allow
                | Verdict::Leak(LeakOutcome::Judged {
                    action: Action::Allow,
                    ..
                })
        )
    }

    /// How the request counts in the traffic samples.
    pub fn traffic(&self) -> Traffic {
        match self {
            Verdict::Waf(WafOutcome::Block { .. } | WafOutcome::Error) => Traffic::Blocked,
            Verdict::Flood(FloodOutcome::Challenge) => Traffic::Challenged,
            Verdict::Flood(
                FloodOutcome::Limited(_) | FloodOutcome::WaitingRoom | FloodOutcome::Unavailable,
            ) => Traffic::Limited,
            Verdict::Flood(FloodOutcome::Banned | FloodOutcome::ChallengeRejected(_)) => {
                Traffic::Blocked
            }
            Verdict::Limit(_) | Verdict::UnknownSite | Verdict::BadRequest(_) => Traffic::Blocked,
            Verdict::Leak(
                LeakOutcome::Judged {
                    action: Action::Block,
                    ..
                }
                | LeakOutcome::TooLargeToJudge
                | LeakOutcome::ErrorCutOff,
            ) => Traffic::Blocked,
            Verdict::UpstreamFailure(_) | Verdict::Cache(CacheServe::StaleOnError) => {
                Traffic::UpstreamError
            }
            _ => Traffic::Passed,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Allow => f.write_str("allow"),
            Verdict::UnknownSite => f.write_str("unknown-site"),
            Verdict::BadRequest(why) => {
                f.write_str("bad-request:")?;
                f.write_str(match why {
                    BadRequest::Connect => "connect",
                    BadRequest::Fragment => "fragment",
                    BadRequest::HostMissing => "host-missing",
                    BadRequest::HostRepeated => "host-repeated",
                    BadRequest::HostConflict => "host-conflict",
                    BadRequest::HostInvalid => "host-invalid",
                    BadRequest::MalformedFraming => "malformed-framing",
                    BadRequest::MalformedHead => "malformed-head",
                    BadRequest::MalformedHeadWaf => "malformed-head+waf",
                })
            }
            Verdict::Limit(SizeLimit::HeaderSize) => f.write_str("limit:header-size"),
            Verdict::Limit(SizeLimit::BodySize) => f.write_str("limit:body-size"),
            Verdict::Waf(outcome) => match outcome {
                WafOutcome::Block { rule_id } => write!(f, "waf:block:{rule_id}"),
                WafOutcome::Error => f.write_str("waf:error"),
                WafOutcome::Logged => f.write_str("waf:logged"),
                WafOutcome::Detect => f.write_str("waf:detect"),
                WafOutcome::Uninspectable => f.write_str("waf:uninspectable"),
                WafOutcome::UninspectableBody => f.write_str("waf:uninspectable-body"),
            },
            Verdict::Flood(outcome) => match outcome {
                FloodOutcome::Cleared => f.write_str("flood:cleared"),
                FloodOutcome::ClearedNoScript => f.write_str("flood:cleared-nojs"),
                FloodOutcome::ChallengeRejected(why) => {
                    f.write_str("flood:challenge-rejected:")?;
                    f.write_str(reject_name(why))
                }
                FloodOutcome::Limited(FloodLimit::Scope(scope)) => {
                    write!(f, "flood:limited:{scope:?}")
                }
                FloodOutcome::Limited(FloodLimit::WaitPrefix) => {
                    f.write_str("flood:limited:WaitPrefix")
                }
                FloodOutcome::Challenge => f.write_str("flood:challenge"),
                FloodOutcome::WaitingRoom => f.write_str("flood:waiting-room"),
                FloodOutcome::Unavailable => f.write_str("flood:unavailable"),
                FloodOutcome::Banned => f.write_str("flood:banned"),
            },
            Verdict::Leak(outcome) => match outcome {
                LeakOutcome::Judged { action, kinds } => {
                    f.write_str("leak:")?;
                    f.write_str(match action {
                        Action::Allow => "allow",
                        Action::Alert => "alert",
                        Action::Redact => "redact",
                        Action::Block => "block",
                    })?;
                    for (i, kind) in kinds.iter().enumerate() {
                        f.write_str(if i == 0 { ":" } else { "+" })?;
                        f.write_str(kind.name())?;
                    }
                    Ok(())
                }
                LeakOutcome::Uninspectable => f.write_str("leak:uninspectable"),
                LeakOutcome::TooLargeToJudge => f.write_str("leak:too-large-to-judge"),
                LeakOutcome::Error => f.write_str("leak:error"),
                LeakOutcome::ErrorCutOff => f.write_str("leak:error-cut-off"),
            },
            Verdict::Cache(serve) => f.write_str(match serve {
                CacheServe::StaleOnError => "cache:stale-on-error",
                CacheServe::UnderAttack => "cache:under-attack",
                CacheServe::OriginDown => "cache:origin-down",
            }),
            Verdict::UpstreamFailure(failure) => f.write_str(match failure {
                UpstreamFailure::Answered => "upstream-failure",
                UpstreamFailure::Unrequested101 => "upstream-failure:unrequested-101",
                UpstreamFailure::RetryPage => "upstream-failure:retry-page",
            }),
        }
    }
}

/// A refused challenge's reason as the access log has always named it.
fn reject_name(why: &Reject) -> &'static str {
    match why {
        Reject::Invalid => "Invalid",
        Reject::Expired => "Expired",
        Reject::Replayed => "Replayed",
        Reject::WrongSolution => "WrongSolution",
        Reject::TooEarly { .. } => "TooEarly",
        Reject::PrefixCapped => "PrefixCapped",
        _ => "Rejected",
    }
}

/// The access log's JSON carries the verdict as its text.
impl serde::Serialize for Verdict {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rate-limit events name their limit as the event store always has.
    #[test]
    fn limits_are_named_in_snake_case() {
        let name = |l: FloodLimit| serde_json::to_value(l).unwrap();
        assert_eq!(
            name(FloodLimit::Scope(LimitScope::RouteTotal)),
            "route_total"
        );
        assert_eq!(name(FloodLimit::Scope(LimitScope::Client)), "client");
        assert_eq!(name(FloodLimit::WaitPrefix), "wait_prefix");
    }

    #[test]
    fn verdicts_read_as_the_access_log_always_wrote_them() {
        let cases = [
            (Verdict::Allow, "allow"),
            (
                Verdict::Waf(WafOutcome::Block { rule_id: 942100 }),
                "waf:block:942100",
            ),
            (
                Verdict::Flood(FloodOutcome::Limited(FloodLimit::Scope(LimitScope::Client))),
                "flood:limited:Client",
            ),
            (
                Verdict::Flood(FloodOutcome::ChallengeRejected(Reject::Replayed)),
                "flood:challenge-rejected:Replayed",
            ),
            (
                Verdict::Leak(LeakOutcome::Judged {
                    action: Action::Block,
                    kinds: Kinds::new([EntityKind::DonorList, EntityKind::Email]),
                }),
                "leak:block:donor_list+email",
            ),
            (
                Verdict::BadRequest(BadRequest::MalformedHeadWaf),
                "bad-request:malformed-head+waf",
            ),
        ];
        for (verdict, text) in cases {
            assert_eq!(verdict.to_string(), text);
        }
    }

    /// A leak-guard failure counts as blocked only where the response was
    /// refused or cut off; sent unscanned, it passed.
    #[test]
    fn leak_guard_failures_count_by_what_the_client_got() {
        assert_eq!(
            Verdict::Leak(LeakOutcome::ErrorCutOff).traffic(),
            Traffic::Blocked
        );
        assert_eq!(Verdict::Leak(LeakOutcome::Error).traffic(), Traffic::Passed);
        let donor_list = Verdict::Leak(LeakOutcome::Judged {
            action: Action::Block,
            kinds: Kinds::new([EntityKind::DonorList]),
        });
        assert_eq!(donor_list.traffic(), Traffic::Blocked);
    }

    #[test]
    fn kinds_keep_their_order_and_no_repeats() {
        let kinds = Kinds::new([EntityKind::Phone, EntityKind::Card, EntityKind::Phone]);
        assert_eq!(
            kinds.iter().collect::<Vec<_>>(),
            vec![EntityKind::Phone, EntityKind::Card]
        );
    }
}
