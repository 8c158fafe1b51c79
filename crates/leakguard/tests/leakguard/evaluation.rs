//! Runs the evaluation harness on a smaller corpus and holds the guard to the targets:
//! checksum kinds precision >= 0.99 and recall >= 0.98, email/phone/postcode >= 0.95 both, every
//! donor list flagged and no page below the threshold.

#[path = "../../eval/corpus.rs"]
mod corpus;
#[path = "../../eval/shapes.rs"]
mod shapes;

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

/// The size range a shape's name states: `donor_rss_3` is exactly 3 records, `donor_rss_5_19`
/// 5 to 19, `single_card` none.
fn stated_range(shape: &str) -> Option<(usize, usize)> {
    let numbers: Vec<usize> = shape
        .rsplit('_')
        .map_while(|part| part.parse().ok())
        .collect();
    match numbers.as_slice() {
        [n] => Some((*n, *n)),
        [hi, lo] => Some((*lo, *hi)),
        _ => None,
    }
}

/// Checks the shape generator itself, not the guard: labels, stated record counts, that every
/// record is really in the body where the document says, that JSON parses, that single values
/// pass their checksums, and that the two splits are different documents.
#[test]
fn shape_generator_makes_what_it_says() {
    use shapes::{Label, Split, Unit};
    let all = shapes::shapes();
    let per_shape = 12;
    // Shape names are unique, and a name says its label.
    for (i, s) in all.iter().enumerate() {
        assert!(
            all[..i].iter().all(|t| t.name != s.name),
            "{} listed twice",
            s.name
        );
        assert_eq!(
            s.name.starts_with("clean_"),
            s.label == Label::Clean,
            "{}: label does not match its name",
            s.name
        );
    }
    assert!(all.iter().filter(|s| s.label == Label::Leaky).count() >= 60);
    assert!(all.iter().filter(|s| s.label == Label::Clean).count() >= 15);

    let mut bodies = Vec::new();
    for split in [Split::Tune, Split::HeldOut] {
        let docs = shapes::generate(split, per_shape);
        assert_eq!(docs.len(), all.len() * per_shape);
        let mut first_names = std::collections::HashSet::new();
        for (doc, shape) in docs
            .iter()
            .zip(all.iter().flat_map(|s| std::iter::repeat_n(s, per_shape)))
        {
            let what = format!("{} ({})", doc.shape, split.name());
            assert_eq!(
                doc.shape, shape.name,
                "{what}: generated under another shape's name"
            );
            assert_eq!(
                doc.label, shape.label,
                "{what}: label differs from its shape"
            );
            assert!(
                rampart_leakguard::is_scannable(doc.content_type),
                "{what}: content type {} is not one the guard scans",
                doc.content_type
            );
            // JSON parses: whole documents, NDJSON line by line, __NEXT_DATA__ islands.
            let json_parses = |text: &str| serde_json::from_str::<serde_json::Value>(text).is_ok();
            if doc.content_type.contains("ndjson") {
                for line in doc.body.lines().filter(|l| !l.is_empty()) {
                    assert!(
                        json_parses(line),
                        "{what}: NDJSON line does not parse: {line}"
                    );
                }
            } else if doc.content_type.contains("json") {
                assert!(
                    json_parses(&doc.body),
                    "{what}: JSON does not parse:\n{}",
                    doc.body
                );
            }
            if doc.shape.contains("next_data") {
                let island = shapes::next_data_json(&doc.body).expect("a __NEXT_DATA__ island");
                assert!(json_parses(island), "{what}: __NEXT_DATA__ does not parse");
            }
            match doc.label {
                Label::Clean => {
                    assert_eq!(doc.records, 0, "{what}");
                    assert!(doc.markers.is_empty() && doc.unit.is_none(), "{what}");
                }
                Label::Leaky => {
                    let unit = doc.unit.as_ref().expect("leaky documents say how to count");
                    if let Some((lo, hi)) = stated_range(doc.shape) {
                        assert!(
                            (lo..=hi).contains(&doc.records),
                            "{what}: {} records, name says {lo}-{hi}",
                            doc.records
                        );
                    }
                    assert_eq!(
                        doc.markers.len(),
                        doc.records,
                        "{what}: one marker per record"
                    );
                    let records = &doc.body[doc.records_from..];
                    for m in &doc.markers {
                        assert!(
                            records.contains(m.as_str()),
                            "{what}: {m} is not among the records"
                        );
                    }
                    if !matches!(unit, Unit::Opens(u) if u == "\"first_name\":") {
                        let mut distinct = doc.markers.clone();
                        distinct.sort();
                        distinct.dedup();
                        assert_eq!(distinct.len(), doc.records, "{what}: records repeat");
                    }
                    match unit {
                        Unit::Opens(open) => assert_eq!(
                            records.matches(open.as_str()).count(),
                            doc.records,
                            "{what}: records opening with {open:?}"
                        ),
                        Unit::Lines { header } => assert_eq!(
                            records.lines().filter(|l| !l.trim().is_empty()).count(),
                            doc.records + header,
                            "{what}: CSV lines"
                        ),
                        Unit::Single => {
                            let v = &doc.markers[0];
                            let valid = match doc.shape {
                                "single_card" => shapes::card_is_valid(v),
                                "single_iban" => shapes::iban_is_valid(v),
                                "single_ni_number" => shapes::ni_is_valid(v),
                                other => panic!("{other}: no check for this single value"),
                            };
                            assert!(valid, "{what}: {v} fails its checksum");
                        }
                    }
                    if doc.shape.contains("after_100kb") {
                        assert!(
                            doc.records_from >= 100_000,
                            "{what}: list starts at {}",
                            doc.records_from
                        );
                    }
                    assert_eq!(doc.encoding.is_some(), doc.shape.contains("gzip"), "{what}");
                    if doc.shape.starts_with("donor_") {
                        for m in &doc.markers {
                            if let Some(w) = m.split([' ', ',', '"']).find(|w| w.len() > 2) {
                                first_names.insert(w.to_string());
                            }
                        }
                    }
                }
            }
        }
        // Names vary: many different ones across the donor lists, not a handful.
        assert!(
            first_names.len() >= 80,
            "{} split: only {} distinct names",
            split.name(),
            first_names.len()
        );
        // The order numbers of the clean shape really fail Luhn.
        for doc in docs
            .iter()
            .filter(|d| d.shape == "clean_order_numbers_failing_luhn")
        {
            for part in doc.body.split("Order ").skip(1) {
                let number: String = part.split('<').next().unwrap().to_string();
                assert!(
                    !shapes::card_is_valid(&number),
                    "order number {number} passes Luhn"
                );
            }
        }
        bodies.push(docs.into_iter().map(|d| d.body).collect::<Vec<_>>());
    }
    // The splits are different documents: none of the held-out split is in the tune split.
    let tune: std::collections::HashSet<&String> = bodies[0].iter().collect();
    let shared = bodies[1].iter().filter(|b| tune.contains(b)).count();
    assert_eq!(shared, 0, "{shared} documents are in both splits");
    // And a split is the same every time it is generated.
    let again = shapes::generate(Split::HeldOut, 2);
    assert!(again
        .iter()
        .zip(shapes::generate(Split::HeldOut, 2))
        .all(|(a, b)| a.body == b.body));
}
