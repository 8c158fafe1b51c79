//! Runs the demo site in the foreground, for trying it in a browser or with curl:
//! `cargo run -p rampart-demo --example serve -- 127.0.0.1:8080`.

use std::net::SocketAddr;

fn main() {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => match arg.parse() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("serve: {arg:?} is not an address like 127.0.0.1:8080: {e}");
                std::process::exit(2);
            }
        },
        // Loopback only: the site is deliberately vulnerable to SQL injection.
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
    };
    match rampart_demo::DemoSite::start(addr) {
        Ok(site) => {
            println!("Fairshare Party demo site on http://{}/", site.local_addr());
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("serve: can't start the demo site on {addr}: {e}");
            std::process::exit(1);
        }
    }
}
