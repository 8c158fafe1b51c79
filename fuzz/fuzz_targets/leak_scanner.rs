//! The leak guard's streaming scanner over arbitrary bytes, cut into chunks
//! at fuzzed points, for each action (allow, alert, redact, block).
//! `push`, `inspect`, `inspect_last` and `finish` must never panic, and
//! what `push` lets out must follow the route's action:
//! * allow and alert send the body unchanged;
//! * redact sends something for every non-empty body, and the body
//!   unchanged when nothing was redacted;
//! * block sends nothing when it blocks, and the body unchanged otherwise.
//!
//! Input: byte 0 holds flags (action, feeding method, repetition, policy),
//! bytes 1 to 3 are chunk sizes used in turn, the rest is the body. The
//! body may be repeated, so that short inputs reach the scanner's
//! kilobyte-sized windows.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rampart_leakguard::{Action, GuardConfig, LeakGuard, Progress, RoutePolicy};

fn guard() -> &'static LeakGuard {
    static GUARD: OnceLock<LeakGuard> = OnceLock::new();
    GUARD.get_or_init(|| {
        LeakGuard::new(GuardConfig {
            fingerprint_key: b"0123456789abcdef0123456789abcdef".to_vec(),
            canaries_csv: Some(
                "first_name,last_name,email,phone\nZebedee,Quarrington,z.quarrington.7f3a@example.net,07700 900461\n"
                    .into(),
            ),
            records_csv: Some("name,email\nPat Doe,pat.doe@example.com\n".into()),
            public_values: vec!["press@example.org".into()],
        })
        .expect("the guard builds")
    })
}

const ACTIONS: [Action; 4] = [Action::Allow, Action::Alert, Action::Redact, Action::Block];

fuzz_target!(|data: &[u8]| {
    let [flags, c1, c2, c3, rest @ ..] = data else {
        return;
    };
    let action = ACTIONS[(flags & 3) as usize];
    // Bits 2-3: push, inspect, inspect + inspect_last, or push in one go.
    let method = (flags >> 2) & 3;
    let repeat = [1, 4, 16, 64][((flags >> 4) & 3) as usize];
    // Bit 6: the default policy (canaries and donor lists block, whatever
    // the action) instead of one where every kind follows the action.
    let strict = flags & 0x40 == 0;
    // Bit 7: chunk sizes in units of 64 bytes instead of bytes.
    let unit = if flags & 0x80 != 0 { 64 } else { 1 };
    let sizes = [c1, c2, c3].map(|&c| 1 + c as usize * unit);

    let body = rest.repeat(repeat);
    let policy = if strict {
        RoutePolicy {
            canary_action: action.max(Action::Alert),
            donor_list_action: action.max(Action::Alert),
            ..RoutePolicy::with_action(action)
        }
    } else {
        RoutePolicy::with_action(action)
    };
    let mut scanner = guard().scanner(&policy);
    let mut out = Vec::new();
    let mut chunks = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= body.len() {
            break;
        }
        let end = (at + size).min(body.len());
        chunks.push(&body[at..end]);
        at = end;
    }

    let outcome = match method {
        0 | 3 => {
            let mut progress = Progress::Continue;
            if method == 3 {
                progress = scanner.push(&body, &mut out);
            } else {
                for chunk in &chunks {
                    progress = scanner.push(chunk, &mut out);
                    if progress == Progress::Block {
                        // Further pushes do nothing; check that they do not panic.
                        assert_eq!(scanner.push(chunk, &mut out), Progress::Block);
                        break;
                    }
                }
            }
            let outcome = scanner.finish(&mut out);
            if progress == Progress::Block {
                assert!(scanner.is_blocked());
            }
            outcome
        }
        _ if action == Action::Redact => {
            // `inspect` is only for routes that send their bytes unchanged.
            return;
        }
        1 => {
            for chunk in &chunks {
                if scanner.inspect(chunk) == Progress::Block {
                    break;
                }
            }
            scanner.finish(&mut out)
        }
        _ => {
            let empty: &[u8] = b"";
            let (last, front) = match chunks.split_last() {
                Some((last, front)) => (*last, front),
                None => (empty, &[][..]),
            };
            for chunk in front {
                if scanner.inspect(chunk) == Progress::Block {
                    break;
                }
            }
            scanner.inspect_last(last)
        }
    };
    assert!(outcome.scanned <= body.len() as u64);
    // A second finish reports the same action.
    let again = scanner.finish(&mut Vec::new());
    assert_eq!(again.action, outcome.action);

    if method == 1 || method == 2 || !strict {
        return;
    }
    let blocked = scanner.is_blocked();
    match action {
        Action::Allow | Action::Alert => {
            assert!(!blocked, "an {action:?} route blocked");
            assert!(outcome.action <= Action::Alert);
            assert!(out == body, "an {action:?} route changed the body");
        }
        Action::Redact => {
            assert!(!blocked, "a redact route blocked");
            assert!(
                body.is_empty() || !out.is_empty(),
                "a redact route sent nothing for {} bytes",
                body.len()
            );
            if outcome.action < Action::Redact {
                assert!(
                    out == body,
                    "a redact route changed a body it did not redact"
                );
            }
        }
        Action::Block => {
            if outcome.action == Action::Block {
                assert!(blocked);
                assert!(
                    out.is_empty(),
                    "a blocked response sent {} bytes",
                    out.len()
                );
            } else {
                assert!(!blocked);
                assert!(out == body, "a block route changed a body it let through");
            }
        }
    }
});
