//! Runs a CRS regression suite through rampart-waf, in process.
//!
//! Usage: `cargo run -p rampart-crstest --release --example crs_test -- [v4.28.0|v3.3.4|PATH] [--blocking] [--only RULE]`

use rampart_crstest::{self as crs_test, Suite};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "v4.28.0".into());
    let only: Option<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let root = if std::path::Path::new(&which).is_dir() {
        which.into()
    } else {
        crs_test::crs_root().join(&which)
    };
    let suite = Suite::new(root);
    let overrides =
        crs_test::Overrides::load(&crs_test::default_overrides_path()).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    let mut cases = crs_test::read_cases(&suite).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    if let Some(o) = &only {
        cases.retain(|c| c.name.starts_with(o.as_str()));
    }
    let blocking = args.iter().any(|a| a == "--blocking");
    let t = std::time::Instant::now();
    let engine = crs_test::load_engine(&suite, !blocking, if blocking { 1 } else { 4 })
        .unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(2)
        });
    eprintln!("loaded {} rules in {:?}", engine.rule_count(), t.elapsed());
    let t = std::time::Instant::now();
    let report = if blocking {
        crs_test::run_blocking(&engine, &suite, &cases, &overrides)
    } else {
        crs_test::run_suite(&engine, &suite, &cases, &overrides)
    };
    if args.iter().any(|a| a == "--verbose") {
        for c in &cases {
            for (i, _) in &c.stages {
                if let Some(out) = crs_test::run_request(&engine, i, &c.name) {
                    println!("== {} status {}", c.name, out.status);
                    for l in out.log {
                        println!("{l}");
                    }
                }
            }
        }
    }
    print!("{}", report.render());
    eprintln!("{:.2}% in {:?}", report.pass_rate(), t.elapsed());
}
