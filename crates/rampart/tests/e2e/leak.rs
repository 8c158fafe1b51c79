//! End-to-end tests of the leak guard in the gateway: real `rampart`
//! processes in front of the real demo site and a reflecting backend.

use std::io::Write;
use std::net::SocketAddr;

use crate::common::*;

fn leak_config(upstream: SocketAddr, server_extra: &str, policies: &str) -> String {
    format!(
        r#"
[server]
admin_listen = "{{admin}}"
{server_extra}

[[listener]]
address = "{{listen}}"

[[upstream]]
name = "app"
servers = ["{upstream}"]

[[site]]
name = "www"
hosts = ["*"]
upstream = "app"

{policies}
"#
    )
}

#[test]
fn the_demo_donor_feed_is_blocked_and_the_thank_you_page_passes() {
    let site = rampart_demo::DemoSite::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let gw = GatewayProcess::start(
        "leak-demo",
        &leak_config(site.local_addr(), "", "[leak_guard.default]\naction = \"alert\"\n[[leak_guard.sites]]\nhost = \"party.example\"\n[[leak_guard.sites.routes]]\npath_prefix = \"/donations/feed\"\naction = \"block\"\n"),
    );
    let feed = raw(gw.listen, b"GET /donations/feed HTTP/1.1\r\nHost: party.example\r\nAccept: text/html\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(feed.status, 503, "the donor feed must not leave");
    let reference = feed.header("x-request-id").unwrap().to_string();
    assert!(feed.body_text().contains(&reference));
    assert!(
        !feed.body_text().contains('£'),
        "no donor data in the error page"
    );

    let form = "first_name=Alice&last_name=Smith&email=alice%40example.org&amount=25";
    let thanks = raw(
        gw.listen,
        format!("POST /donate HTTP/1.1\r\nHost: party.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}", form.len()).as_bytes(),
    )
    .unwrap();
    assert_eq!(thanks.status, 200);
    assert!(
        thanks.body_text().contains("Thank you, Alice"),
        "{}",
        thanks.body_text()
    );

    eventually("the leak is an event with a masked sample", || {
        gw.stderr().contains("\"event\":\"leak\"") && gw.stderr().contains("donor_list")
    });
    let events = gw.stderr();
    let line = events
        .lines()
        .find(|l| l.contains(&reference))
        .expect("the event names the reference");
    // The seeded donors must not appear in the event, only masked samples.
    for name in ["Margaret", "Siobhan", "Oluwaseun"] {
        assert!(
            !line.contains(name),
            "the event carries a donor's name: {line}"
        );
    }
    assert!(gw.access_log().contains("leak:block:donor_list"));
}

fn reflect(gw: &GatewayProcess, json: &str) -> Reply {
    raw(gw.listen, format!("POST /reflect HTTP/1.1\r\nHost: app.example\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}", json.len()).as_bytes()).unwrap()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn redact_routes_mask_card_numbers_even_in_gzip_bodies() {
    let backend = rampart_crstest::ReflectBackend::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let gw = GatewayProcess::start(
        "leak-redact",
        &leak_config(
            backend.local_addr(),
            "",
            "[leak_guard.default]\naction = \"redact\"\n",
        ),
    );
    let page = "<html><body><p>Receipt</p><p>Card number: 4111 1111 1111 1111</p><p>Thank you</p></body></html>";
    let r = reflect(
        &gw,
        &format!(r#"{{"status":200,"headers":{{"Content-Type":"text/html"}},"body":"{page}"}}"#),
    );
    assert_eq!(r.status, 200);
    let text = r.body_text();
    assert!(!text.contains("4111 1111 1111 1111"), "{text}");
    assert!(
        text.contains("Receipt") && text.contains("Thank you"),
        "{text}"
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(page.as_bytes()).unwrap();
    let encoded = base64(&gz.finish().unwrap());
    let r = reflect(
        &gw,
        &format!(
            r#"{{"status":200,"headers":{{"Content-Type":"text/html","Content-Encoding":"gzip"}},"encodedBody":"{encoded}"}}"#
        ),
    );
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-encoding").is_none(),
        "the masked body goes out decoded"
    );
    let text = r.body_text();
    assert!(
        text.contains("Receipt") && !text.contains("4111 1111 1111 1111"),
        "{text}"
    );
}

#[test]
fn alert_routes_pass_data_through_and_report_it() {
    let backend = rampart_crstest::ReflectBackend::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let gw = GatewayProcess::start(
        "leak-alert",
        &leak_config(
            backend.local_addr(),
            "",
            "[leak_guard.default]\naction = \"alert\"\n",
        ),
    );
    let page = "<p>Card number: 4111 1111 1111 1111</p>";
    let r = reflect(
        &gw,
        &format!(r#"{{"status":200,"headers":{{"Content-Type":"text/html"}},"body":"{page}"}}"#),
    );
    assert_eq!(r.status, 200);
    assert!(
        r.body_text().contains("4111 1111 1111 1111"),
        "alert must not change the response"
    );
    eventually("the card is reported, masked", || {
        gw.stderr().contains("\"kind\":\"card\"")
    });
    assert!(
        !gw.stderr().contains("4111 1111 1111 1111"),
        "the event must not carry the number"
    );

    // A site's public contact address is below every threshold: the guard
    // allows it, so it is counted but raises no event (else every page of an
    // ordinary site would be one).
    let footer = "<footer>Contact us: press@fairshare.example</footer>";
    let r = reflect(
        &gw,
        &format!(r#"{{"status":200,"headers":{{"Content-Type":"text/html"}},"body":"{footer}"}}"#),
    );
    assert_eq!(r.status, 200);
    assert!(r.body_text().contains("press@fairshare.example"));
    eventually("the allowed finding is counted", || {
        gw.metrics().contains("rampart_leak_allowed_total 1")
    });
    assert!(
        gw.metrics().contains("rampart_leak_events_total 1"),
        "only the card raised an event"
    );
    assert!(
        !gw.stderr().contains("\"kind\":\"email\""),
        "no event for an allowed finding: {}",
        gw.stderr()
    );
}

#[test]
fn a_canary_record_trips_even_on_an_alert_route() {
    let backend = rampart_crstest::ReflectBackend::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let dir = temp_dir("leak-canary-files");
    let csv = dir.join("canaries.csv");
    std::fs::write(
        &csv,
        "name,email,phone\nCanary Person,trap.donor.7731@fairshare-canary.example,07700 900123\n",
    )
    .unwrap();
    let gw = GatewayProcess::start(
        "leak-canary",
        &leak_config(
            backend.local_addr(),
            &format!(
                "canaries_csv = \"{}\"\nkey_file = \"{}\"",
                csv.display(),
                dir.join("keys").display()
            ),
            "[leak_guard.default]\naction = \"alert\"\n",
        ),
    );
    let page = "<table><tr><td>trap.donor.7731@fairshare-canary.example</td></tr></table>";
    let r = reflect(
        &gw,
        &format!(r#"{{"status":200,"headers":{{"Content-Type":"text/html"}},"body":"{page}"}}"#),
    );
    assert!(
        !r.body_text().contains("trap.donor.7731"),
        "the canary record must not leave (status {})",
        r.status
    );
    eventually("the canary trip is a critical event", || {
        gw.stderr().contains("\"kind\":\"canary\"")
            && gw.stderr().contains("\"severity\":\"critical\"")
    });
    // The fingerprint key was made, private to the gateway's user.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("keys.fingerprint"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the fingerprint key must be mode 0600, is {mode:o}"
    );
}

/// An origin that answers every request with the body its path names, sent
/// chunked in `piece`-byte writes with a pause every 64 writes, so that the
/// gateway receives a list cut at arbitrary places.
struct TricklingOrigin {
    addr: SocketAddr,
}

impl TricklingOrigin {
    fn start(bodies: Vec<(&'static str, &'static str, String)>, piece: usize) -> TricklingOrigin {
        use std::io::{BufRead, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = std::sync::Arc::new(bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let bodies = bodies.clone();
                std::thread::spawn(move || {
                    stream.set_nodelay(true).unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
                        while line.trim_end() != "" {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                        }
                        let Some((_, content_type, body)) =
                            bodies.iter().find(|(p, _, _)| *p == path)
                        else {
                            let _ = stream
                                .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                            continue;
                        };
                        let head = format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n");
                        if stream.write_all(head.as_bytes()).is_err() {
                            return;
                        }
                        for (i, part) in body.as_bytes().chunks(piece).enumerate() {
                            let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
                            chunk.extend_from_slice(part);
                            chunk.extend_from_slice(b"\r\n");
                            if stream.write_all(&chunk).is_err() {
                                return;
                            }
                            if i % 64 == 63 {
                                std::thread::sleep(std::time::Duration::from_millis(1));
                            }
                        }
                        if stream.write_all(b"0\r\n\r\n").is_err() {
                            return;
                        }
                    }
                });
            }
        });
        TricklingOrigin { addr }
    }
}

/// The shapes an attacker or a careless export would use to get a list of
/// people past the guard, over real HTTP: records with no element of their
/// own after 100 KB of ordinary page, a plain-text export, names written
/// surname first with a particle, and three members' own addresses, each
/// trickled through in pieces of a few bytes. Pages that pair groups or staff
/// with sums or addresses pass.
#[test]
fn every_shape_of_list_is_refused_wherever_it_starts_and_however_it_arrives() {
    let filler: String = (0..1400)
        .map(|i| format!("<p>Update {i}: volunteers met in the town hall to plan the spring leafleting.</p>\n"))
        .collect();
    assert!(filler.len() > 100 * 1024);
    let flat = format!(
        "<html><body>{filler}<h2>Our supporters</h2><dl>\n<dt>Zoltan Pritchard</dt><dd>£192.00</dd><dd>9 July 2026</dd>\n<dt>Keziah Ashworth</dt><dd>£13.00</dd><dd>2 April 2026</dd>\n<dt>Farida van der Berg</dt><dd>£25.00</dd><dd>26 June 2026</dd>\n</dl></body></html>"
    );
    let text = "Zoltan Pritchard - £192.00 - 9 July 2026\nKeziah Ashworth - £13.00 - 2 April 2026\nFarida Oyelaran - £25.00 - 26 June 2026\n".to_string();
    let particles = "\"ap Gwilym, Keziah\",£138.00,2026-04-10\n\"García, Torquil\",£25.00,2025-02-15\n\"Adeyemi, Farida\",£5.00,2026-06-11\n".to_string();
    let members = "name,email\nAisha Mwangi,aisha.mwangi@gmail.com\nKofi Baxter,kbaxter71@outlook.com\nFfion Singh,ffion_singh@btinternet.com\n".to_string();
    let grants = "<table><tr><th>Group</th><th>Award</th><th>Date</th></tr><tr><td>Hartley Youth Club</td><td>£2,500.00</td><td>3 May 2026</td></tr><tr><td>Truro Toddlers</td><td>£3,500.00</td><td>4 May 2026</td></tr><tr><td>Carlisle Choir</td><td>£4,500.00</td><td>5 May 2026</td></tr></table>".to_string();
    let team: String = ["aisha.mwangi", "kofi.baxter", "ffion.singh"]
        .iter()
        .map(|l| format!("<p>{l}@valleygreens.org.uk</p>\n"))
        .collect();
    let origin = TricklingOrigin::start(
        vec![
            ("/flat", "text/html", flat),
            ("/export.txt", "text/plain", text),
            ("/export.csv", "text/csv", particles),
            ("/members.csv", "text/csv", members),
            ("/grants", "text/html", grants),
            ("/team", "text/html", team),
        ],
        7,
    );
    let gw = GatewayProcess::start(
        "leak-shapes",
        &leak_config(
            origin.addr,
            "",
            "[leak_guard.default]\naction = \"block\"\n",
        ),
    );
    for (path, refused) in [
        ("/flat", true),
        ("/export.txt", true),
        ("/export.csv", true),
        ("/members.csv", true),
        ("/grants", false),
        ("/team", false),
    ] {
        let reply = get(gw.listen, path);
        assert_eq!(
            reply.status,
            if refused { 503 } else { 200 },
            "{path}: {}",
            reply.body_text()
        );
        let body = reply.body_text();
        assert!(
            !body.contains("Keziah") && !body.contains("aisha.mwangi@gmail"),
            "{path}: a person left in the body"
        );
    }
    let log = gw.access_log();
    assert!(log.contains("leak:block:donor_list"), "{log}");
    assert!(log.contains("leak:block:email"), "{log}");
}
