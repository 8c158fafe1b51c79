//! Runs the CRS regression suites (v4.28.0 and v3.3.4) from
//! `RAMPART_CRS_ROOT` (default `<workspace>/../shared/crs`) and asserts the
//! pass rates. The thresholds only go up: raise them when the rate rises.
//!
//! Run with `cargo test -p rampart-crstest --release --test crs -- --nocapture`.

use rampart_crstest::{self as crs_test, Suite};

fn run(name: &str, min_rate: f64) {
    let suite = Suite::new(crs_test::crs_root().join(name));
    assert!(
        suite.root.is_dir(),
        "CRS not found at {}; set RAMPART_CRS_ROOT",
        suite.root.display()
    );
    let overrides =
        crs_test::Overrides::load(&crs_test::default_overrides_path()).expect("overrides file");
    let cases = crs_test::read_cases(&suite).expect("test files");
    let engine = crs_test::load_engine(&suite, true, 4)
        .unwrap_or_else(|e| panic!("{name} failed to load:\n{e}"));
    // Every regex must compile, not only the ones the suite happens to reach.
    engine
        .warm_up()
        .unwrap_or_else(|e| panic!("{name} regexes fail to compile:\n{e}"));
    let report = crs_test::run_suite(&engine, &suite, &cases, &overrides);
    println!("CRS {name}:\n{}", report.render());
    println!("CRS {name}: {:.2}% pass", report.pass_rate());
    assert!(
        report.pass_rate() >= min_rate,
        "CRS {name} pass rate {:.2}% is below {min_rate}%",
        report.pass_rate()
    );
}

fn run_blocking(name: &str, min_rate: f64) {
    let suite = Suite::new(crs_test::crs_root().join(name));
    let overrides =
        crs_test::Overrides::load(&crs_test::default_overrides_path()).expect("overrides file");
    let cases = crs_test::read_cases(&suite).expect("test files");
    let engine = crs_test::load_engine(&suite, false, 1)
        .unwrap_or_else(|e| panic!("{name} failed to load:\n{e}"));
    let report = crs_test::run_blocking(&engine, &suite, &cases, &overrides);
    println!("CRS {name} blocking PL1:\n{}", report.render());
    assert!(
        report.pass_rate() >= min_rate,
        "CRS {name} blocking pass rate {:.2}% is below {min_rate}%",
        report.pass_rate()
    );
}

#[test]
fn crs_v4_suite() {
    run("v4.28.0", 99.9);
}

#[test]
fn crs_v3_suite() {
    run("v3.3.4", 99.9);
}

#[test]
fn crs_v4_blocking_pl1() {
    run_blocking("v4.28.0", 99.5);
}

#[test]
fn crs_v3_blocking_pl1() {
    run_blocking("v3.3.4", 99.5);
}
