//! The drill's browsers solve the challenge the flood crate issues, from the
//! page the gateway would serve, and the flood crate accepts the solution.

use std::net::IpAddr;

use rampart_drill::challenge::{parse_challenge, solve, verify_form};
use rampart_flood::{
    pages, Challenge, FloodConfig, FloodVerdict, Keyring, RequestFacts, Shield, Time,
};

/// A shield whose `/donate` route always challenges, at `bits` bits, and
/// the challenge it gives `client` there.
fn challenge(
    bits: u8,
    client: IpAddr,
    now: Time,
) -> (
    Shield<rampart_flood::MemoryState>,
    rampart_flood::SiteId,
    Challenge,
) {
    let config: FloodConfig = toml::from_str(&format!(
        "max_tracked_keys = 4096\n[challenge]\nmin_difficulty = {bits}\nmax_difficulty = {bits}\n[[sites]]\nname = \"www\"\n[[sites.routes]]\nname = \"/donate\"\nalways_challenge = true\n"
    ))
    .unwrap();
    let shield = Shield::in_memory(
        &config,
        Keyring::generate([7; 32]),
        Time::from_secs(1_800_000_000),
    )
    .unwrap();
    let site = shield.site_id("www").unwrap();
    let route = shield.route_id(site, "/donate").unwrap();
    let facts = RequestFacts {
        client,
        site,
        route,
        is_api: false,
        is_browser: true,
        clearance_cookie: None,
        ticket_cookie: None,
        now,
    };
    let FloodVerdict::Challenge(challenge) = shield.admit(&facts) else {
        panic!("the route always challenges")
    };
    (shield, site, challenge)
}

#[test]
fn a_solved_challenge_page_is_accepted_by_the_flood_crate() {
    let client: IpAddr = "127.9.8.7".parse().unwrap();
    let now = Time::from_secs(1_800_000_001);
    let (shield, site, challenge) = challenge(10, client, now);
    let html = challenge.page("/donate?amount=10&x=\"y\"");

    let page = parse_challenge(&html).expect("the drill reads the gateway's challenge page");
    assert_eq!(page.token, challenge.token);
    assert_eq!(page.bits, 10);
    assert_eq!(page.verify, pages::VERIFY_PATH);

    let solution = solve(&page.token, page.bits);
    // The form goes through the gateway's own form parsing.
    let form = verify_form(&page.token, solution);
    let token = pages::percent_decode(pages::form_field(&form, "token").unwrap());
    let posted = pages::form_field(&form, "solution").unwrap();
    let clearance = shield
        .verify_solution(site, client, &token, posted, now)
        .expect("the solution is accepted");
    assert!(clearance.set_cookie().starts_with(pages::CLEARANCE_COOKIE));

    // The same solution cannot be used twice.
    assert!(shield
        .verify_solution(site, client, &token, posted, now)
        .is_err());
}

#[test]
fn a_wrong_solution_is_refused() {
    let client: IpAddr = "127.1.2.3".parse().unwrap();
    let now = Time::from_secs(1_800_000_001);
    let (shield, site, challenge) = challenge(16, client, now);
    let page = parse_challenge(&challenge.page("/")).unwrap();
    let right = solve(&page.token, page.bits);
    // Some n below the right one: by construction it does not have the bits.
    if right > 0 {
        assert!(shield
            .verify_solution(site, client, &page.token, &(right - 1).to_string(), now)
            .is_err());
    }
    assert!(shield
        .verify_solution(site, client, &page.token, &right.to_string(), now)
        .is_ok());
}
