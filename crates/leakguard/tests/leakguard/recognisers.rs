//! Edge cases of each recogniser, through the public API: what must be found and what must not,
//! whole and split at every byte.

use rampart_leakguard::{Action, EntityKind, GuardConfig, LeakGuard, Progress, RoutePolicy};

fn counts(body: &str, chunk: usize) -> Vec<(EntityKind, u32)> {
    let guard = LeakGuard::new(GuardConfig::default()).unwrap();
    let mut scanner = guard.scanner(&RoutePolicy::with_action(Action::Alert));
    let mut out = Vec::new();
    for piece in body.as_bytes().chunks(chunk.max(1)) {
        assert_eq!(scanner.push(piece, &mut out), Progress::Continue);
    }
    let outcome = scanner.finish(&mut out);
    assert_eq!(out, body.as_bytes(), "alert never changes the body");
    outcome
        .findings
        .iter()
        .filter(|f| f.kind != EntityKind::DonorList)
        .map(|f| (f.kind, f.count))
        .collect()
}

/// Checks that `body` yields exactly `expected` (kind and count; empty for nothing), fed whole
/// and in chunks of 1, 2 and 7 bytes.
fn check(body: &str, expected: &[(EntityKind, u32)]) {
    for chunk in [usize::MAX, 1, 2, 7] {
        let mut got = counts(body, chunk.min(body.len().max(1)));
        got.sort();
        let mut want = expected.to_vec();
        want.sort();
        assert_eq!(got, want, "{body:?} in chunks of {chunk}");
    }
}

use EntityKind::*;

#[test]
fn cards() {
    check("Paid with 4242-4242-4242-4242 today", &[(Card, 1)]);
    check("Amex 3782 822463 10005.", &[(Card, 1)]);
    check(r#"{"card_number":"4111111111111111"}"#, &[(Card, 1)]);
    check("<td>5555555555554444</td>", &[(Card, 1)]);
    // Mixed separators, a failed Luhn check, no scheme starting with 9, a piece of a longer run.
    check("pay 4242-4242 4242-4242", &[]);
    check("pay 4242 4242 4242 4241", &[]);
    check("voucher 9999 9999 9999 9995", &[]);
    check("isbn 978 4242 4242 4242 4242", &[]);
    // A JSON reference next to a card key is not vouched for by that key.
    check(
        r#"{"card_number":"4111111111111111","ref":"4242424242424242"}"#,
        &[(Card, 1)],
    );
}

#[test]
fn ibans() {
    check("IBAN GB82 WEST 1234 5698 7654 32", &[(Iban, 1)]);
    check("to GB82WEST12345698765432.", &[(Iban, 1)]);
    check("DE89 3704 0044 0532 0130 00", &[(Iban, 1)]);
    check("GB83 WEST 1234 5698 7654 32", &[]);
    check("XX82 WEST 1234 5698 7654 32", &[]);
}

#[test]
fn national_insurance_numbers() {
    check("NI: AB 12 34 56 C", &[(NiNumber, 1)]);
    check("nino=AB123456C;", &[(NiNumber, 1)]);
    // Prefixes never issued, a suffix that is not A-D, uneven spacing.
    check("ref GB 12 34 56 C, BG123456A, AB123456E, AB 1234 56 C", &[]);
}

#[test]
fn nhs_numbers() {
    check("NHS number 943 476 5919", &[(NhsNumber, 1)]);
    check("NHS: 943-476-5919", &[(NhsNumber, 1)]);
    check("NHS No:9434765919", &[(NhsNumber, 1)]);
    // 943 476 5919 is the NHS's own example, outside the issued ranges a bare cell must be in.
    check("<td>4010232137</td>", &[(NhsNumber, 1)]);
    check("<td>9434765919</td>", &[]);
    // Bare ten digits in prose, a failed check digit, a Unix timestamp in a cell.
    check("order 9434765919 shipped", &[]);
    check("NHS number 943 476 5918", &[]);
    // A US fax number that happens to pass mod 11 (from a real licence file).
    check("phone 317-278-4100, fax 317-274-5902.", &[]);
    check("patient 401 023 2137", &[(NhsNumber, 1)]);
    check("<td>1574157600</td>", &[]);
}

#[test]
fn bank_accounts() {
    check("Sort code 20-00-00, account 12345678", &[(BankAccount, 1)]);
    check("Account 12345678, sort code 20 00 00", &[(BankAccount, 1)]);
    // A sort code alone is a bank branch, not a person; a date is not a sort code.
    check("sort code 20-00-00 for the branch", &[]);
    check("Match on 19-11-19, attendance 12345678", &[]);
}

#[test]
fn emails() {
    check("write to jo.bloggs@example.org.", &[(Email, 1)]);
    check("JO.Bloggs@Example.ORG", &[(Email, 1)]);
    check(
        "jo&#64;example.org jo&commat;example.org jo&#x40;example.org",
        &[(Email, 3)],
    );
    check(r#"{"email":"jo\u0040example.org"}"#, &[(Email, 1)]);
    check(
        r#"<img src="logo@2x.png"> admin@localhost @media screen npm i pkg@1.2.3"#,
        &[],
    );
}

#[test]
fn phones() {
    check("Tel 020 7946 0958", &[(Phone, 1)]);
    check("(020) 7946 0958 or +44 (0)20 7946 0958", &[(Phone, 2)]);
    check("mobile +447700900123", &[(Phone, 1)]);
    check("Mobile: 07700900123", &[(Phone, 1)]);
    check("07700 900 123", &[(Phone, 1)]);
    // A five-digit area code in brackets leaves six digits after it.
    check("(01680) 303360", &[(Phone, 1)]);
    // A bare mobile alone in a CSV field or a table cell, its `phone` header far above.
    check("name,phone\nAisha Mwangi,07407862061\n", &[(Phone, 1)]);
    check("<td>07407862061</td>", &[(Phone, 1)]);
    // Unlabelled bare digits, a bare landline in a cell, a US number, an unallocated 04 range.
    check("booking 07700900123", &[]);
    check("<td>01612345678</td>", &[]);
    check("US office +1 (415) 555-0100", &[]);
    check("ref 0400 123 4567", &[]);
}

#[test]
fn postcodes() {
    check("Office: SW1A 1AA", &[(Postcode, 1)]);
    check("EC1A 1BB and M1 1AE", &[(Postcode, 2)]);
    check("Postcode: LS14DY", &[(Postcode, 1)]);
    // Unlabelled unspaced, inward letters never used (C, I, K, M, O, V), outward only.
    check("code LS14DY", &[]);
    check("SW1A 1CA", &[]);
    check("the SE1 area", &[]);
}

#[test]
fn dates_of_birth() {
    check("Date of birth: 12/03/1985", &[(DateOfBirth, 1)]);
    check(r#"{"dob":"1985-03-12"}"#, &[(DateOfBirth, 1)]);
    check("born on 3rd March 1985", &[(DateOfBirth, 1)]);
    check("Birthday: March 3, 1985", &[(DateOfBirth, 1)]);
    // Dates with no birth context, and dates that do not exist.
    check("Published 12/03/1985", &[]);
    check("DOB 31/02/1985", &[]);
}

#[test]
fn every_kind_survives_every_split_point() {
    let body = "Card 4242 4242 4242 4242; IBAN GB82 WEST 1234 5698 7654 32; NI AB 12 34 56 C; NHS 943 476 5919; sort code 20-00-00 account 12345678; jo&#64;example.org; Tel +44 (0)20 7946 0958; Postcode SW1A 1AA; DOB 12/03/1985.";
    let expected = [
        (Card, 1),
        (Iban, 1),
        (NiNumber, 1),
        (NhsNumber, 1),
        (BankAccount, 1),
        (Email, 1),
        (Phone, 1),
        (Postcode, 1),
        (DateOfBirth, 1),
    ];
    let guard = LeakGuard::new(GuardConfig::default()).unwrap();
    for split in 0..=body.len() {
        let mut scanner = guard.scanner(&RoutePolicy::with_action(Action::Alert));
        let mut out = Vec::new();
        scanner.push(&body.as_bytes()[..split], &mut out);
        scanner.push(&body.as_bytes()[split..], &mut out);
        let outcome = scanner.finish(&mut out);
        let mut got: Vec<_> = outcome.findings.iter().map(|f| (f.kind, f.count)).collect();
        got.sort();
        assert_eq!(got, expected.to_vec(), "split at {split}");
    }
}

#[test]
fn identifiers_far_apart_in_a_long_body_are_all_found() {
    // Each identifier sits at a different offset relative to the scanner's internal windows.
    let mut body = String::new();
    for i in 0..400 {
        body.push_str(
            &"<p>Plain text about the campaign, nothing personal here at all.</p>\n".repeat(i % 7),
        );
        body.push_str(&format!("<p>reach me at person{i}@example.org</p>\n"));
    }
    let got = counts(&body, 4096);
    assert_eq!(got, vec![(Email, 400)]);
    let got = counts(&body, 333);
    assert_eq!(got, vec![(Email, 400)]);
}

#[test]
fn the_guard_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<LeakGuard>();
    assert_send::<rampart_leakguard::ResponseScanner>();
    let guard = LeakGuard::new(GuardConfig::default()).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let guard = guard.clone();
            std::thread::spawn(move || {
                let body = format!("Card 4242 4242 4242 4242 thread {t}");
                let mut scanner = guard.scanner(&RoutePolicy::default());
                let mut out = Vec::new();
                scanner.push(body.as_bytes(), &mut out);
                scanner.finish(&mut out).action
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Action::Block);
    }
}
