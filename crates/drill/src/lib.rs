//! `rampart drill`: attack your own deployment before an attacker does.
//!
//! A drill floods a target from many source addresses (on loopback it binds
//! addresses across 127.0.0.0/8, so the gateway sees thousands of distinct
//! clients) while browser-like clients use the site as people would: they
//! keep cookies, solve the proof-of-work challenge as the challenge page's
//! script does, and follow the waiting room. It then reports what the
//! legitimate clients experienced (success rate, latency), what happened to
//! the attack (blocked, challenged, limited, queued), how much reached the
//! upstream, and the gateway's peak memory. It stops by itself after the
//! given duration. Given a gateway command (after `--`), it starts the
//! gateway itself and floods it cold, seconds after its start, and can
//! restart it mid-flood.
//!
//! The pieces, each usable alone:
//!
//! | module | what |
//! |---|---|
//! | [`options`] | the command line, and the refusal of non-loopback targets |
//! | [`addrs`] | which source address each attacker and browser uses |
//! | [`client`] | a small HTTP/1.1 client over a socket bound to a chosen source address |
//! | [`challenge`] | reading the challenge page and solving its puzzle |
//! | [`browser`] | one legitimate visitor |
//! | [`attack`] | the open-loop flood |
//! | [`watch`] | memory of the gateway's processes, and the upstream's counts |
//! | [`gateway`] | a gateway the drill starts (and restarts) itself, for a cold start |
//! | [`report`] | the summary, as a table or JSON |
//!
//! The drill knows nothing of the gateway's internals: it sees only HTTP, as
//! an attacker and a visitor would.

pub mod addrs;
pub mod attack;
pub mod browser;
pub mod challenge;
pub mod client;
pub mod gateway;
pub mod options;
pub mod report;
mod run;
pub mod watch;

use std::process::ExitCode;

pub use options::{DrillArgs, DrillOptions};
pub use report::Summary;
pub use run::run;

/// `rampart drill ARGS`: checks the flags, runs the drill and prints the
/// summary (a table, or JSON with `--json`). Returns exit code 0 when the
/// drill ran to its end, whatever the figures; errors are for flags that do
/// not go together or a drill that could not start.
pub fn command(args: DrillArgs) -> anyhow::Result<ExitCode> {
    let options = DrillOptions::from_args(args)?;
    if !options.json {
        eprintln!("{}", options.describe());
    }
    let summary = run(&options)?;
    if options.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.render());
    }
    Ok(ExitCode::SUCCESS)
}
