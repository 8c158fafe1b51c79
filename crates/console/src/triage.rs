//! False-positive triage: from one WAF event, the narrowest exclusion that
//! would have let it pass, and how many recorded events it would have let
//! pass too.
//!
//! CRS blocks by adding up an anomaly score: each detecting rule adds 5, 4,
//! 3 or 2 by its severity, and a scoring rule (949110) blocks once the sum
//! reaches the site's threshold. The narrowest exclusion switches off the
//! fewest detecting rules that bring the score under the threshold,
//! heaviest first, and among equals those that matched in what the client
//! typed (arguments) before headers: a search for `1' OR '1'='1` that also
//! came with a numeric `Host` needs only the SQL rule off for `ARGS:q`, not
//! the protocol rule too. It applies to the request's own path only, and to
//! the one variable the chosen rules matched in when they share one; when
//! they matched in different variables, one target cannot cover them, and
//! the proposal names no target (the rules are off for that path), which the
//! operator sees before agreeing.
//!
//! The score a rule adds is known from its severity only when each rule
//! counted once: when the recorded score is not the sum of the detecting
//! rules' shares (a rule that matched in several variables counts for each),
//! or a rule blocked on its own, every detecting rule is proposed.

use rampart_incidents::{RuleMatch, WafDetail};
use serde::{Deserialize, Serialize};

/// A proposed or requested exclusion, as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclusion {
    pub site: String,
    pub prefix: String,
    pub rule_ids: Vec<u32>,
    #[serde(default)]
    pub target: Option<String>,
}

/// A WAF event as triage reads it.
pub struct Blocked<'a> {
    pub site: &'a str,
    pub detail: &'a WafDetail,
    /// The recorded inbound anomaly score.
    pub score: u32,
}

/// Whether a rule only scores or reports what other rules found: CRS's
/// blocking evaluation (949, 959) and correlation (980) rules. Switching
/// those off would switch off every detection at once.
pub fn is_scoring_rule(id: u32) -> bool {
    matches!(id / 1000, 949 | 959 | 980)
}

/// Whether an exclusion for `prefix` covers a request's matching path
/// (decoded, normalised, lower case): the path itself and what lies below
/// it, segment by segment, compared without case. `/search` covers
/// `/search` and `/search/more` but not `/search-admin`, another endpoint
/// an attacker could aim the same payload at; a prefix ending in `/` covers
/// everything below it.
pub fn covers_path(prefix: &str, path: &str) -> bool {
    let (p, q) = (prefix.as_bytes(), path.as_bytes());
    q.len() >= p.len()
        && q[..p.len()].eq_ignore_ascii_case(p)
        && (q.len() == p.len() || p.ends_with(b"/") || q[p.len()] == b'/')
}

/// What a detecting rule of this severity adds to CRS's anomaly score.
fn points(severity: Option<u8>) -> Option<u32> {
    match severity? {
        2 => Some(5),
        3 => Some(4),
        4 => Some(3),
        5 => Some(2),
        _ => None,
    }
}

/// The rules of an event that detected something, with what they matched.
fn detections(detail: &WafDetail) -> impl Iterator<Item = &RuleMatch> {
    detail.matches.iter().filter(|m| !is_scoring_rule(m.rule))
}

/// Each detection's share of the score, when the recorded score is exactly
/// the sum of the shares.
fn shares<'a>(event: &Blocked<'a>) -> Option<Vec<(&'a RuleMatch, u32)>> {
    let list: Vec<(&RuleMatch, u32)> = detections(event.detail)
        .map(|m| points(m.severity).map(|p| (m, p)))
        .collect::<Option<_>>()?;
    let sum: u32 = list.iter().map(|(_, p)| p).sum();
    (sum == event.score && !list.is_empty()).then_some(list)
}

/// The narrowest exclusion that would have let the event pass at the
/// site's `threshold`; `None` when no detecting rule is on record (an event
/// stored before rampart kept what matched, or one where only a scoring
/// rule fired).
pub fn propose(event: &Blocked<'_>, threshold: u32) -> Option<Exclusion> {
    let chosen: Vec<&RuleMatch> = match shares(event) {
        Some(mut list) => {
            // Heaviest first; among equals, what the client typed first.
            list.sort_by_key(|(m, p)| {
                (
                    std::cmp::Reverse(*p),
                    !m.target.to_ascii_uppercase().starts_with("ARGS"),
                )
            });
            let mut left = event.score;
            let mut chosen = Vec::new();
            for (m, p) in list {
                if left < threshold {
                    break;
                }
                left -= p;
                chosen.push(m);
            }
            chosen
        }
        None => detections(event.detail).collect(),
    };
    let mut rule_ids: Vec<u32> = chosen.iter().map(|m| m.rule).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let first = chosen.first()?;
    let one_target = chosen
        .iter()
        .all(|m| m.target.eq_ignore_ascii_case(&first.target));
    Some(Exclusion {
        site: event.site.to_string(),
        prefix: event.detail.path.clone(),
        rule_ids,
        target: (one_target && !first.target.is_empty()).then(|| first.target.clone()),
    })
}

/// Whether `exclusion` would have let an event pass at `threshold`: its
/// path is under the prefix, and what the uncovered detections add up to
/// stays under the threshold (when each rule's share is known), else every
/// detection is covered. Prefixes compare without case, as the gateway
/// compares them.
pub fn would_allow(exclusion: &Exclusion, event: &Blocked<'_>, threshold: u32) -> bool {
    if event.site != exclusion.site || !covers_path(&exclusion.prefix, &event.detail.path) {
        return false;
    }
    let covered = |m: &RuleMatch| {
        exclusion.rule_ids.contains(&m.rule)
            && exclusion
                .target
                .as_ref()
                .is_none_or(|t| t.eq_ignore_ascii_case(&m.target))
    };
    match shares(event) {
        Some(list) => {
            let left: u32 = list
                .iter()
                .filter(|(m, _)| !covered(m))
                .map(|(_, p)| p)
                .sum();
            left < threshold && list.iter().any(|(m, _)| covered(m))
        }
        None => {
            let mut any = false;
            detections(event.detail).all(|m| {
                any = true;
                covered(m)
            }) && any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(rule: u32, target: &str, severity: u8) -> RuleMatch {
        RuleMatch {
            rule,
            target: target.into(),
            msg: String::new(),
            data: String::new(),
            severity: Some(severity),
        }
    }

    fn detail(path: &str, matches: Vec<RuleMatch>) -> WafDetail {
        WafDetail {
            method: "GET".into(),
            path: path.into(),
            matches,
        }
    }

    fn blocked<'a>(detail: &'a WafDetail, score: u32) -> Blocked<'a> {
        Blocked {
            site: "demo",
            detail,
            score,
        }
    }

    #[test]
    fn the_proposal_is_the_fewest_rules_that_bring_the_score_under_the_threshold() {
        // A SQL injection in `q` (critical, 5) sent with a numeric Host
        // (warning, 3): 8 points. Only the SQL rule needs to go.
        let event = detail(
            "/search",
            vec![
                hit(920350, "REQUEST_HEADERS:Host", 4),
                hit(942100, "ARGS:q", 2),
                hit(949110, "TX:blocking_inbound_anomaly_score", 2),
                hit(980170, "TX:anomaly_score", 2),
            ],
        );
        let p = propose(&blocked(&event, 8), 5).unwrap();
        assert_eq!(
            p,
            Exclusion {
                site: "demo".into(),
                prefix: "/search".into(),
                rule_ids: vec![942100],
                target: Some("ARGS:q".into()),
            }
        );
        assert!(would_allow(&p, &blocked(&event, 8), 5));
        // Two critical rules in the same field: both go, with the target.
        let two = detail(
            "/s",
            vec![hit(942100, "ARGS:q", 2), hit(942190, "ARGS:q", 2)],
        );
        let p = propose(&blocked(&two, 10), 5).unwrap();
        assert_eq!(
            (p.rule_ids, p.target.as_deref()),
            (vec![942100, 942190], Some("ARGS:q"))
        );
    }

    #[test]
    fn a_prefix_covers_its_path_and_what_is_below_it_segment_by_segment() {
        for (prefix, path, covered) in [
            ("/search", "/search", true),
            ("/search", "/search/", true),
            ("/search", "/search/more", true),
            ("/Search", "/search", true),
            ("/search", "/searchx", false),
            ("/search", "/search-admin", false),
            ("/search", "/sear", false),
            ("/api/", "/api/upload", true),
            ("/api/", "/api", false),
            ("/", "/anything", true),
        ] {
            assert_eq!(covers_path(prefix, path), covered, "{prefix} {path}");
        }
    }

    #[test]
    fn without_a_consistent_score_every_detection_is_proposed() {
        // The score says a rule counted twice: the shares are not known.
        let event = detail(
            "/f",
            vec![
                hit(941100, "ARGS:a", 2),
                hit(920350, "REQUEST_HEADERS:Host", 4),
            ],
        );
        let p = propose(&blocked(&event, 13), 5).unwrap();
        assert_eq!(p.rule_ids, vec![920350, 941100]);
        assert_eq!(p.target, None, "two variables: no one target covers both");
        assert!(would_allow(&p, &blocked(&event, 13), 5));
        let only_scoring = detail("/f", vec![hit(949110, "TX:x", 2)]);
        assert!(propose(&blocked(&only_scoring, 5), 5).is_none());
    }

    #[test]
    fn an_exclusion_allows_only_what_it_brings_under_the_threshold() {
        let p = Exclusion {
            site: "demo".into(),
            prefix: "/search".into(),
            rule_ids: vec![942100],
            target: Some("ARGS:q".into()),
        };
        let same = detail("/search/more", vec![hit(942100, "args:q", 2)]);
        assert!(would_allow(&p, &blocked(&same, 5), 5));
        let elsewhere = detail("/login", vec![hit(942100, "ARGS:q", 2)]);
        let next_door = detail("/search-admin", vec![hit(942100, "ARGS:q", 2)]);
        assert!(
            !would_allow(&p, &blocked(&next_door, 5), 5),
            "another endpoint"
        );
        assert!(!would_allow(&p, &blocked(&elsewhere, 5), 5));
        let other_field = detail("/search", vec![hit(942100, "ARGS:r", 2)]);
        assert!(!would_allow(&p, &blocked(&other_field, 5), 5));
        let another_rule = detail(
            "/search",
            vec![hit(942100, "ARGS:q", 2), hit(941100, "ARGS:q", 2)],
        );
        assert!(
            !would_allow(&p, &blocked(&another_rule, 10), 5),
            "another rule still blocks"
        );
        let with_warning = detail(
            "/search",
            vec![
                hit(942100, "ARGS:q", 2),
                hit(920350, "REQUEST_HEADERS:Host", 4),
            ],
        );
        assert!(
            would_allow(&p, &blocked(&with_warning, 8), 5),
            "3 left is under 5"
        );
        let mut other_site = blocked(&same, 5);
        other_site.site = "other";
        assert!(!would_allow(&p, &other_site, 5));
        assert!(!would_allow(&p, &blocked(&detail("/search", vec![]), 0), 5));
    }
}
