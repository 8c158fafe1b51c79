fn main() {
    let root = std::env::args().nth(1).unwrap();
    let t = std::time::Instant::now();
    let r = rampart_waf::Engine::from_files(&[format!("{root}/crs-setup.conf.example"), format!("{root}/rules/*.conf")], &Default::default());
    match r {
        Ok(e) => println!("ok {} rules in {:?}", e.rule_count(), t.elapsed()),
        Err(e) => println!("{e}\n{} errors", e.errors.len()),
    }
}
