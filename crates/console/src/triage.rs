//! False-positive triage: from one WAF event, the narrowest exclusion that
//! would have let it pass, and how many recorded events it would have let
//! pass too.
//!
//! The narrowest exclusion switches off only the rules that detected
//! something in the request (not CRS's scoring and reporting rules, which
//! only add up what the others found), only for the request's own path,
//! and only for the one variable they matched in (`ARGS:q`) when they all
//! matched in the same one. When they matched in different variables, one
//! target cannot cover them, and the proposal names no target: the rules
//! are switched off for that path, which the operator sees before agreeing.

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

/// Whether a rule only scores or reports what other rules found: CRS's
/// blocking evaluation (949, 959) and correlation (980) rules. Switching
/// those off would switch off every detection at once.
pub fn is_scoring_rule(id: u32) -> bool {
    matches!(id / 1000, 949 | 959 | 980)
}

/// The rules of an event that detected something, with what they matched.
fn detections(detail: &WafDetail) -> impl Iterator<Item = &RuleMatch> {
    detail.matches.iter().filter(|m| !is_scoring_rule(m.rule))
}

/// The narrowest exclusion that would have let the event pass; `None` when
/// no detecting rule is on record (an event stored before rampart kept
/// what matched, or one where only a scoring rule fired).
pub fn propose(site: &str, detail: &WafDetail) -> Option<Exclusion> {
    let mut rule_ids: Vec<u32> = Vec::new();
    let mut target: Option<&str> = None;
    let mut one_target = true;
    for m in detections(detail) {
        if !rule_ids.contains(&m.rule) {
            rule_ids.push(m.rule);
        }
        match target {
            None => target = Some(&m.target),
            Some(t) if t.eq_ignore_ascii_case(&m.target) => {}
            Some(_) => one_target = false,
        }
    }
    if rule_ids.is_empty() {
        return None;
    }
    rule_ids.sort_unstable();
    Some(Exclusion {
        site: site.to_string(),
        prefix: detail.path.clone(),
        rule_ids,
        target: target
            .filter(|t| one_target && !t.is_empty())
            .map(str::to_string),
    })
}

/// Whether `exclusion` would have let an event of `site` pass: its path is
/// under the prefix and every detecting match is of an excluded rule (in
/// the excluded target, when the exclusion has one). Prefixes compare
/// without case, as the gateway compares them.
pub fn would_allow(exclusion: &Exclusion, site: &str, detail: &WafDetail) -> bool {
    let under = detail.path.len() >= exclusion.prefix.len()
        && detail.path.as_bytes()[..exclusion.prefix.len()]
            .eq_ignore_ascii_case(exclusion.prefix.as_bytes());
    let mut any = false;
    let covered = detections(detail).all(|m| {
        any = true;
        exclusion.rule_ids.contains(&m.rule)
            && exclusion
                .target
                .as_ref()
                .is_none_or(|t| t.eq_ignore_ascii_case(&m.target))
    });
    site == exclusion.site && under && any && covered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(rule: u32, target: &str) -> RuleMatch {
        RuleMatch {
            rule,
            target: target.into(),
            msg: String::new(),
            data: String::new(),
        }
    }

    fn detail(path: &str, matches: Vec<RuleMatch>) -> WafDetail {
        WafDetail {
            method: "GET".into(),
            path: path.into(),
            matches,
        }
    }

    #[test]
    fn the_proposal_is_the_detecting_rules_on_the_path_and_variable() {
        let event = detail(
            "/search",
            vec![
                hit(942100, "ARGS:q"),
                hit(942190, "ARGS:q"),
                hit(949110, "TX:blocking_inbound_anomaly_score"),
                hit(980170, "TX:anomaly_score"),
            ],
        );
        let p = propose("demo", &event).unwrap();
        assert_eq!(
            p,
            Exclusion {
                site: "demo".into(),
                prefix: "/search".into(),
                rule_ids: vec![942100, 942190],
                target: Some("ARGS:q".into()),
            }
        );
        assert!(would_allow(&p, "demo", &event));
    }

    #[test]
    fn matches_in_different_variables_give_a_proposal_without_target() {
        let event = detail("/f", vec![hit(941100, "ARGS:a"), hit(941100, "ARGS:b")]);
        let p = propose("demo", &event).unwrap();
        assert_eq!(p.target, None);
        assert_eq!(p.rule_ids, vec![941100]);
        assert!(propose("demo", &detail("/f", vec![hit(949110, "TX:x")])).is_none());
    }

    #[test]
    fn an_exclusion_allows_only_what_it_covers_whole() {
        let p = Exclusion {
            site: "demo".into(),
            prefix: "/search".into(),
            rule_ids: vec![942100],
            target: Some("ARGS:q".into()),
        };
        assert!(would_allow(
            &p,
            "demo",
            &detail("/search/more", vec![hit(942100, "args:q")])
        ));
        assert!(!would_allow(
            &p,
            "other",
            &detail("/search", vec![hit(942100, "ARGS:q")])
        ));
        assert!(!would_allow(
            &p,
            "demo",
            &detail("/login", vec![hit(942100, "ARGS:q")])
        ));
        assert!(!would_allow(
            &p,
            "demo",
            &detail("/search", vec![hit(942100, "ARGS:r")])
        ));
        assert!(
            !would_allow(
                &p,
                "demo",
                &detail(
                    "/search",
                    vec![hit(942100, "ARGS:q"), hit(941100, "ARGS:q")]
                )
            ),
            "another rule still fires"
        );
        assert!(!would_allow(&p, "demo", &detail("/search", vec![])));
    }
}
