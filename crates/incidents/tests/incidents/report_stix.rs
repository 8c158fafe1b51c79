//! The STIX export passes OASIS's own validator (`stix2-validator` from
//! PyPI, which `scripts/setup` installs into `.venv-tools`) with no errors,
//! for incidents of every shape. Warnings are printed, not failed.

use crate::report_fixture::*;
use rampart_incidents::export::stix_bundle;
use rampart_incidents::{DataLeft, IncidentKind, IncidentStatus, Severity};
use std::path::PathBuf;
use std::process::Command;

/// `RAMPART_STIX_VALIDATOR`, or the repository's `.venv-tools/bin/stix2_validator`.
fn validator() -> PathBuf {
    if let Some(path) = std::env::var_os("RAMPART_STIX_VALIDATOR") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-tools/bin/stix2_validator")
}

fn validate(name: &str, bundle: &serde_json::Value) {
    let validator = validator();
    assert!(
        validator.exists(),
        "the STIX validator is not installed at {}: run scripts/setup (it installs stix2-validator from PyPI into .venv-tools), or set RAMPART_STIX_VALIDATOR",
        validator.display()
    );
    let file =
        std::env::temp_dir().join(format!("rampart-stix-{}-{name}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_string_pretty(bundle).unwrap()).unwrap();
    let output = Command::new(&validator)
        .arg(&file)
        .output()
        .expect("the STIX validator runs");
    let _ = std::fs::remove_file(&file);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("[X]")).collect();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("[!]")).collect();
    for warning in &warnings {
        eprintln!("{name}: {}", warning.trim());
    }
    assert!(
        errors.is_empty(),
        "{name}: the validator found errors:\n{}",
        errors.join("\n")
    );
    assert!(
        output.status.success(),
        "{name}: the validator failed ({}):\n{text}",
        output.status
    );
    assert!(
        text.contains("STIX JSON: Valid"),
        "{name}: the validator did not say valid:\n{text}"
    );
}

#[test]
fn the_realistic_incident_validates() {
    let (incident, timeline, org) = (realistic(), timeline(), organisation());
    validate(
        "realistic",
        &stix_bundle(&input(&incident, &timeline, &org)),
    );
}

#[test]
fn a_closed_leak_that_left_validates() {
    let mut incident = realistic();
    incident.kinds = vec![IncidentKind::DataLeak];
    incident.status = IncidentStatus::Closed;
    incident.closed_at = Some(at(11, 30));
    incident.attacks.clear();
    incident.rules.clear();
    if let Some(data) = &mut incident.data {
        data.left = DataLeft::Yes;
    }
    let (timeline, org) = (timeline(), organisation());
    validate("leak", &stix_bundle(&input(&incident, &timeline, &org)));
}

#[test]
fn a_bare_incident_validates() {
    // No prefixes, no attacks, no data, no timeline, the default organisation.
    let mut incident = realistic();
    incident.kinds = vec![IncidentKind::Availability];
    incident.severity = Severity::Low;
    incident.top_prefixes.clear();
    incident.attacks.clear();
    incident.rules.clear();
    incident.actions.clear();
    incident.decisions.clear();
    incident.peak_rps = 0.0;
    incident.data = Some(no_personal_data());
    let org = rampart_incidents::report::Organisation::default();
    validate("bare", &stix_bundle(&input(&incident, &[], &org)));
}

#[test]
fn a_credential_stuffing_run_from_ipv6_validates() {
    let mut incident = realistic();
    incident.kinds = vec![IncidentKind::CredentialStuffing];
    incident.attacks.clear();
    incident.data = None;
    incident.top_prefixes.retain(|t| t.key.contains(':'));
    let org = organisation();
    validate("stuffing", &stix_bundle(&input(&incident, &[], &org)));
}
