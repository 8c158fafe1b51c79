//! Runs the evaluation harness on a smaller corpus and holds the guard to the targets:
//! checksum kinds precision >= 0.99 and recall >= 0.98, email/phone/postcode >= 0.95 both, every
//! donor list flagged and no page below the threshold.

#[path = "../eval/corpus.rs"]
mod corpus;

use rampart_leakguard::{GuardConfig, LeakGuard};

#[test]
fn evaluation_targets_hold_on_a_small_corpus() {
    let guard = LeakGuard::new(GuardConfig::default()).unwrap();
    for (seed, chunk) in [(7, 4096), (20191119, 97)] {
        let docs = corpus::generate(seed, 150, 90);
        let report = corpus::evaluate(&guard, &docs, chunk);
        corpus::print(&report);
        let failures = corpus::check_targets(&report);
        assert!(failures.is_empty(), "seed {seed}: {failures:#?}");
    }
}

/// Whatever the chunking, the verdict and the redacted bytes are the same: the carry window and
/// look-behind make chunk edges invisible. Checked on generated documents of every format.
#[test]
fn chunking_never_changes_the_result() {
    use rampart_leakguard::{Action, RoutePolicy};
    let guard = LeakGuard::new(GuardConfig::default()).unwrap();
    let mut docs = corpus::generate(99, 40, 30);
    // Long bodies too, documents strung together to 40 KB and more: whole, or in chunks of
    // 9,000 and 20,000 bytes, their clean runs are scanned in place rather than copied, and the
    // result must not change.
    let long: Vec<corpus::Doc> = (0..6)
        .map(|first| {
            let mut body = String::new();
            for doc in docs.iter().cycle().skip(first * 7) {
                if body.len() > 40_000 {
                    break;
                }
                body.push_str(&doc.body);
            }
            corpus::Doc {
                format: docs[first * 7].format,
                body,
                planted: Vec::new(),
                donor_records: None,
            }
        })
        .collect();
    docs.extend(long);
    for policy in [
        // Donor lists block by default on every route, which stops a scan
        // where the list is seen: only report them here, so every finding
        // of every chunking can be compared.
        RoutePolicy {
            donor_list_action: Action::Alert,
            ..RoutePolicy::with_action(Action::Redact)
        },
        RoutePolicy::report_only(),
    ] {
        for doc in &docs {
            let mut reference = None;
            for chunk in [usize::MAX, 1, 3, 64, 1000, 2500, 9000, 20_000] {
                let mut scanner = guard.scanner(&policy);
                let mut out = Vec::new();
                for piece in doc.body.as_bytes().chunks(chunk.min(doc.body.len()).max(1)) {
                    scanner.push(piece, &mut out);
                }
                let outcome = scanner.finish(&mut out);
                let result = (
                    out,
                    outcome.action,
                    outcome
                        .findings
                        .iter()
                        .map(|f| (f.kind, f.count))
                        .collect::<Vec<_>>(),
                );
                // The gateway's way on pass-through routes: `inspect`, and `inspect_last` for
                // the last chunk. Only the verdict can be compared, since nothing is copied out.
                if policy.action != Action::Redact {
                    let mut scanner = guard.scanner(&policy);
                    let pieces: Vec<&[u8]> = doc
                        .body
                        .as_bytes()
                        .chunks(chunk.min(doc.body.len()).max(1))
                        .collect();
                    let (last, first) = pieces.split_last().unwrap();
                    for piece in first {
                        scanner.inspect(piece);
                    }
                    let outcome = scanner.inspect_last(last);
                    let findings: Vec<_> =
                        outcome.findings.iter().map(|f| (f.kind, f.count)).collect();
                    assert!(
                        (outcome.action, &findings) == (result.1, &result.2),
                        "{} document, inspected at chunk {chunk}: {:?} vs {:?}",
                        doc.format,
                        findings,
                        result.2
                    );
                }
                match &reference {
                    None => reference = Some(result),
                    Some(r) => assert!(
                        *r == result,
                        "{} document differs at chunk {chunk}: {:?} vs {:?}",
                        doc.format,
                        r.2,
                        result.2
                    ),
                }
            }
        }
    }
}
