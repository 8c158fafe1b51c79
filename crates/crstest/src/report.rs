//! What a run of a suite found: each request's outcome checked against its
//! case's expectations, and the report of passes, failures and skips.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::cases::{Case, Expect, Input, OverrideAction, Overrides, Suite};

/// The result of sending one request through the engine and backend.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status the client got.
    pub status: u16,
    /// Whether a rule denied or dropped the request.
    pub blocked: bool,
    /// The error log lines of the transaction.
    pub log: Vec<String>,
}

/// A failed case and why.
#[derive(Debug, Clone)]
pub struct Failure {
    pub case: String,
    pub rule_id: u32,
    pub reasons: Vec<String>,
}

/// The result of running a suite.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Cases whose status expectation was waived by an override.
    pub status_waived: usize,
    pub failures: Vec<Failure>,
}

impl Report {
    /// Counts a case that ran: passed when its run found no reason to fail,
    /// failed with those reasons otherwise.
    pub(crate) fn record(&mut self, case: &Case, reasons: Vec<String>) {
        if reasons.is_empty() {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(Failure {
                case: case.name.clone(),
                rule_id: case.rule_id,
                reasons,
            });
        }
    }

    /// The share of run (not skipped) cases that passed, in percent.
    pub fn pass_rate(&self) -> f64 {
        let total = self.passed + self.failed;
        if total == 0 {
            return 0.0;
        }
        100.0 * self.passed as f64 / total as f64
    }

    /// Failures grouped by rule, then the closing `N passed, M failed, K skipped` line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut by_rule: BTreeMap<u32, Vec<&Failure>> = BTreeMap::new();
        for f in &self.failures {
            by_rule.entry(f.rule_id).or_default().push(f);
        }
        for (rule, fs) in &by_rule {
            let _ = writeln!(out, "rule {rule}: {} failed", fs.len());
            for f in fs {
                let _ = writeln!(out, "  {}: {}", f.case, f.reasons.join("; "));
            }
        }
        if self.status_waived > 0 {
            let _ = writeln!(
                out,
                "({} cases ran with their HTTP status expectation waived by overrides)",
                self.status_waived
            );
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        );
        out
    }
}

fn log_has_id(log: &[String], id: u32) -> bool {
    let needle = format!("[id \"{id}\"]");
    log.iter().any(|l| l.contains(&needle))
}

/// Compares one outcome with its expectations, adding a reason per miss.
pub fn check(expect: &Expect, out: Option<&Outcome>, reasons: &mut Vec<String>) {
    let Some(out) = out else {
        if !expect.expect_error {
            reasons.push("request could not be built".into());
        }
        return;
    };
    let text = out.log.join("\n");
    for id in &expect.ids {
        if !log_has_id(&out.log, *id) {
            reasons.push(format!("expected id {id} not in log"));
        }
    }
    for id in &expect.no_ids {
        if log_has_id(&out.log, *id) {
            reasons.push(format!("unexpected id {id} in log"));
        }
    }
    for r in &expect.match_regex {
        match regex::Regex::new(r) {
            Ok(re) if re.is_match(&text) => {}
            Ok(_) => reasons.push(format!("log does not match `{r}`")),
            Err(e) => reasons.push(format!("bad regex `{r}`: {e}")),
        }
    }
    for r in &expect.no_match_regex {
        if let Ok(re) = regex::Regex::new(r) {
            if re.is_match(&text) {
                reasons.push(format!("log matches `{r}`"));
            }
        }
    }
    if !expect.status.is_empty() && !expect.status.contains(&out.status) {
        reasons.push(format!("status {} not in {:?}", out.status, expect.status));
    }
}

/// Runs every case of a suite that the overrides do not skip, one stage at a
/// time through `run`, and counts the results. `run` is given the stage's
/// input, its unique name (`<case>-<stage>`) and its expectations (without
/// the status expectation where an override waives it), adds a reason per
/// miss, and answers whether the expectations were checked at all; only
/// those stages count as run with their status waived.
pub(crate) fn run_cases(
    suite: &Suite,
    cases: &[Case],
    overrides: &Overrides,
    mut run: impl FnMut(&Input, &str, &Expect, &mut Vec<String>) -> bool,
) -> Report {
    let mut report = Report::default();
    for case in cases {
        let action = overrides.action(&suite.name, &case.name);
        if action == Some(&OverrideAction::Skip) {
            report.skipped += 1;
            continue;
        }
        let waive_status = action == Some(&OverrideAction::IgnoreStatus);
        let mut reasons = Vec::new();
        for (k, (input, expect)) in case.stages.iter().enumerate() {
            let mut expect = expect.clone();
            if waive_status {
                expect.status.clear();
            }
            let checked = run(input, &format!("{}-{k}", case.name), &expect, &mut reasons);
            if waive_status && checked {
                report.status_waived += 1;
            }
        }
        report.record(case, reasons);
    }
    report
}
