//! Writes every page the flood layer serves to a folder, for looking at them
//! in a browser: `cargo run -p rampart-flood --example render_pages -- OUT_DIR`.

use rampart_flood::pages;

fn main() {
    let out = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let token =
        "00000001.0123456789abcdef0123456789abcdef.1795939200.16.0123456789abcdef0123456789abcdef";
    let wait =
        "00000001.0123456789abcdef0123456789abcdef.1795939205.0123456789abcdef0123456789abcdef";
    let files = [
        (
            "challenge.html",
            pages::challenge_page(&pages::ChallengePage {
                token,
                difficulty: 16,
                wait_token: wait,
                wait_secs: 5,
                return_to: "/donate?amount=10",
            }),
        ),
        ("wait.html", pages::wait_page(wait, "/donate", 3)),
        ("waiting-room.html", pages::waiting_room_page(42, 5)),
        ("busy.html", pages::busy_page(30)),
    ];
    for (name, html) in files {
        let path = std::path::Path::new(&out).join(name);
        std::fs::write(&path, html).expect("write page");
        println!("{}", path.display());
    }
}
