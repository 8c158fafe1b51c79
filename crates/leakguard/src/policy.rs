//! Policies: what the leak guard does on a site and route, as plain data the gateway's TOML
//! configuration deserialises into.

use serde::{Deserialize, Serialize};

/// What the leak guard recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntityKind {
    /// A canary record (honeytoken): a value that exists only to be noticed if it ever leaves.
    Canary,
    /// A value fingerprinted from the organisation's own sensitive records.
    Record,
    /// A payment card number (issuer prefix and Luhn check).
    Card,
    /// An international bank account number (length by country and mod-97 check).
    Iban,
    /// A UK National Insurance number (prefix rules).
    NiNumber,
    /// An NHS number (mod-11 check).
    NhsNumber,
    /// A UK sort code together with an account number.
    BankAccount,
    /// An email address.
    Email,
    /// A UK phone number.
    Phone,
    /// A UK postcode.
    Postcode,
    /// A date next to words that say it is a date of birth.
    DateOfBirth,
    /// Repeated records pairing a person's name with an amount and a date: a donor list.
    DonorList,
    /// The body was larger than the route lets the guard hold back.
    Oversize,
}

impl EntityKind {
    /// How many kinds there are; kinds index arrays by `kind as usize`.
    pub const COUNT: usize = 13;

    /// Every kind, in declaration order.
    pub const ALL: [EntityKind; EntityKind::COUNT] = [
        EntityKind::Canary,
        EntityKind::Record,
        EntityKind::Card,
        EntityKind::Iban,
        EntityKind::NiNumber,
        EntityKind::NhsNumber,
        EntityKind::BankAccount,
        EntityKind::Email,
        EntityKind::Phone,
        EntityKind::Postcode,
        EntityKind::DateOfBirth,
        EntityKind::DonorList,
        EntityKind::Oversize,
    ];

    /// The name used in configuration and reports.
    pub fn name(self) -> &'static str {
        match self {
            EntityKind::Canary => "canary",
            EntityKind::Record => "record",
            EntityKind::Card => "card",
            EntityKind::Iban => "iban",
            EntityKind::NiNumber => "ni_number",
            EntityKind::NhsNumber => "nhs_number",
            EntityKind::BankAccount => "bank_account",
            EntityKind::Email => "email",
            EntityKind::Phone => "phone",
            EntityKind::Postcode => "postcode",
            EntityKind::DateOfBirth => "date_of_birth",
            EntityKind::DonorList => "donor_list",
            EntityKind::Oversize => "oversize",
        }
    }

    /// How bad one of these is when it leaves.
    pub fn severity(self) -> Severity {
        match self {
            EntityKind::Canary => Severity::Critical,
            EntityKind::Record
            | EntityKind::Card
            | EntityKind::Iban
            | EntityKind::NiNumber
            | EntityKind::NhsNumber
            | EntityKind::BankAccount
            | EntityKind::DonorList => Severity::High,
            EntityKind::DateOfBirth | EntityKind::Oversize => Severity::Medium,
            EntityKind::Email | EntityKind::Phone | EntityKind::Postcode => Severity::Low,
        }
    }

    pub(crate) fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// How bad a finding is. A canary trip is always the highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Contact details: normal in small numbers.
    Low,
    /// Personal data that is rarely public.
    Medium,
    /// Financial, health or identity numbers, donor lists, the organisation's own records.
    High,
    /// A canary record: something was stolen or misrouted, no innocent explanation.
    Critical,
}

/// What the guard does to a response. Ordered from least to most severe, so the outcome of a
/// response is the maximum over its findings.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Send the response unchanged and record nothing beyond the findings.
    Allow,
    /// Send the response unchanged and raise an event.
    Alert,
    /// Replace each match with a mask of its kind; the caller removes `Content-Length`.
    Redact,
    /// Replace the whole response; the caller renders an error page with a reference id.
    #[default]
    Block,
}

/// What to do when a `block` route's body is larger than the guard may hold back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// Fail closed: block the response with an [`EntityKind::Oversize`] finding. The route owner
    /// chose `block` because its data must not leak, so an unscannable body must not pass.
    #[default]
    Block,
    /// Send what was held (it had no findings) and go on scanning the rest in `redact` mode.
    Release,
}

/// How many different values of each kind in one response make it a leak rather than normal
/// content. A kind trips when its distinct count reaches its threshold; `0` means the kind never
/// trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Always 1 in practice: a canary has no legitimate reason to be anywhere.
    pub canary: u32,
    /// One of the organisation's own fingerprinted records is already a leak.
    pub record: u32,
    /// A card number has no place in a page.
    pub card: u32,
    /// An IBAN is sometimes published for donations to the organisation itself; allowlist that
    /// value rather than raising this.
    pub iban: u32,
    /// National Insurance numbers are never public.
    pub ni_number: u32,
    /// NHS numbers are never public.
    pub nhs_number: u32,
    /// Sort code with account number: as for IBAN.
    pub bank_account: u32,
    /// A contact page lists a handful of addresses; a member list lists hundreds. Ten sits
    /// between a team page and a leak.
    pub email: u32,
    /// People's own addresses (not a role such as `info@` or `press@`) at two or more domains:
    /// a list of members or supporters, however short. A team page's addresses share the
    /// organisation's domain and answer to `email` instead.
    pub personal_email: u32,
    /// As for email: a few numbers on a contact page are normal.
    pub phone: u32,
    /// Office and venue addresses appear on events pages, so more are tolerated than emails.
    pub postcode: u32,
    /// A profile page may show its own user's date of birth once; two is someone else's.
    pub date_of_birth: u32,
    /// Distinct name-amount-date records that make a donor list. A thank-you page shows one
    /// record; three is already a list (judged by the score in `structure.rs`).
    pub donor_list: u32,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            canary: 1,
            record: 1,
            card: 1,
            iban: 1,
            ni_number: 1,
            nhs_number: 1,
            bank_account: 1,
            email: 10,
            personal_email: 3,
            phone: 10,
            postcode: 20,
            date_of_birth: 2,
            donor_list: 3,
        }
    }
}

impl Thresholds {
    /// The threshold for one kind. Oversize always trips at once.
    pub fn get(&self, kind: EntityKind) -> u32 {
        match kind {
            EntityKind::Canary => self.canary.max(1),
            EntityKind::Record => self.record,
            EntityKind::Card => self.card,
            EntityKind::Iban => self.iban,
            EntityKind::NiNumber => self.ni_number,
            EntityKind::NhsNumber => self.nhs_number,
            EntityKind::BankAccount => self.bank_account,
            EntityKind::Email => self.email,
            EntityKind::Phone => self.phone,
            EntityKind::Postcode => self.postcode,
            EntityKind::DateOfBirth => self.date_of_birth,
            EntityKind::DonorList => self.donor_list,
            EntityKind::Oversize => 1,
        }
    }
}

/// The leak guard's policy for one route of one site.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutePolicy {
    /// What happens when a kind trips. `block` by default: the routes that matter most (feeds,
    /// exports, APIs) fail closed, and routes that are meant to publish data say so explicitly.
    pub action: Action,
    /// What happens on a canary trip, whatever the route says. A canary ignores the allowlist.
    pub canary_action: Action,
    /// What happens when a donor list trips on a route that does not list `donor_list` in
    /// `allow`: `block` by default, whatever `action` says, because a list of donors reveals
    /// their political opinions (special-category data under UK GDPR). The stricter of this
    /// and `action` applies. Routes that publish such a list on purpose allow it explicitly.
    pub donor_list_action: Action,
    /// Per-kind counts that make a leak.
    pub thresholds: Thresholds,
    /// Kinds this route is meant to publish (a staff directory's emails, a branch finder's
    /// postcodes). They are still counted and reported, never acted on.
    pub allow: Vec<EntityKind>,
    /// How many body bytes a `block` route may hold back while deciding. 2 MiB covers every
    /// HTML page, feed and JSON API a campaign site serves; exports larger than that should use
    /// `redact` or be allowlisted.
    pub max_buffered: usize,
    /// What to do when a `block` route's body exceeds `max_buffered`.
    pub on_overflow: Overflow,
}

impl Default for RoutePolicy {
    fn default() -> RoutePolicy {
        RoutePolicy {
            action: Action::Block,
            canary_action: Action::Block,
            donor_list_action: Action::Block,
            thresholds: Thresholds::default(),
            allow: Vec::new(),
            max_buffered: 2 * 1024 * 1024,
            on_overflow: Overflow::Block,
        }
    }
}

impl RoutePolicy {
    fn problems_into(&self, at: &str, problems: &mut Vec<String>) {
        if self.action == Action::Block && self.max_buffered == 0 {
            problems.push(format!("{at}: action is block but max_buffered is 0, so every scannable response is blocked"));
        }
        if self.allow.contains(&EntityKind::Canary) {
            problems.push(format!(
                "{at}: canary cannot be allowed; a canary ignores the allowlist"
            ));
        }
        if self.canary_action < Action::Alert {
            problems.push(format!(
                "{at}: canary_action is allow, so a canary trip would go unreported"
            ));
        }
        if self.donor_list_action < Action::Alert && !self.allow.contains(&EntityKind::DonorList) {
            problems.push(format!(
                "{at}: donor_list_action is allow; to publish donor lists on this route say so with allow = [\"donor_list\"]"
            ));
        }
        if self.thresholds.canary == 0 {
            problems.push(format!(
                "{at}: thresholds.canary is 0; a canary always trips at 1"
            ));
        }
    }

    /// A policy that only reports, donor lists included (`alert` for every kind): what an
    /// operator writes as `action = "alert"` with `donor_list_action = "alert"`, and what
    /// measurements use to see every finding of a response.
    pub fn report_only() -> RoutePolicy {
        RoutePolicy {
            action: Action::Alert,
            donor_list_action: Action::Alert,
            ..RoutePolicy::default()
        }
    }

    /// A policy with the given action and every other field at its default.
    pub fn with_action(action: Action) -> RoutePolicy {
        RoutePolicy {
            action,
            ..RoutePolicy::default()
        }
    }
}

/// One route's policy, chosen by path prefix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// The path prefix this rule covers, e.g. `/donations/`. The longest matching prefix wins.
    pub path_prefix: String,
    /// The policy for matching paths.
    #[serde(flatten)]
    pub policy: RoutePolicy,
}

/// The policies of one site.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SitePolicy {
    /// The site's host name, compared without case.
    pub host: String,
    /// The policy for paths no rule covers; the set's default when absent.
    #[serde(default)]
    pub default: Option<RoutePolicy>,
    /// Per-route rules.
    #[serde(default)]
    pub routes: Vec<RouteRule>,
}

/// Policies for every site, with a default for sites that have none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySet {
    /// The policy for sites and routes nothing else covers.
    pub default: RoutePolicy,
    /// Per-site policies.
    pub sites: Vec<SitePolicy>,
}

impl PolicySet {
    /// Everything that is valid TOML but probably not what the operator meant, each with where
    /// it is, so `rampart check` can list them all at once. Empty when the set is sound.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        self.default.problems_into("default", &mut problems);
        for (i, site) in self.sites.iter().enumerate() {
            let at = format!("sites[{i}] ({})", site.host);
            if site.host.trim().is_empty() {
                problems.push(format!("{at}: host is empty"));
            }
            if self.sites[..i]
                .iter()
                .any(|s| s.host.eq_ignore_ascii_case(&site.host))
            {
                problems.push(format!(
                    "{at}: host is listed twice; only the first is used"
                ));
            }
            if let Some(default) = &site.default {
                default.problems_into(&format!("{at}.default"), &mut problems);
            }
            for (j, route) in site.routes.iter().enumerate() {
                let at = format!("{at}.routes[{j}] ({})", route.path_prefix);
                if !route.path_prefix.starts_with('/') {
                    problems.push(format!("{at}: path_prefix must start with '/'"));
                }
                if site.routes[..j]
                    .iter()
                    .any(|r| r.path_prefix == route.path_prefix)
                {
                    problems.push(format!(
                        "{at}: path_prefix is listed twice; only the first is used"
                    ));
                }
                route.policy.problems_into(&at, &mut problems);
            }
        }
        problems
    }

    /// The policy for a request: the site's longest matching route prefix, else the site's
    /// default, else the set's default. Host names and prefixes are compared without case.
    pub fn route(&self, host: &str, path: &str) -> &RoutePolicy {
        let host = host.split(':').next().unwrap_or(host);
        let Some(site) = self
            .sites
            .iter()
            .position(|s| s.host.eq_ignore_ascii_case(host))
        else {
            return &self.default;
        };
        self.route_among(&[site], path)
    }

    /// The policy for a request whose site the caller has already resolved to the entries
    /// `sites` (indices into [`PolicySet::sites`]; several when one gateway site answers to
    /// several of their host names). `path` is the request's normalised path. Of the
    /// entries' policies for the path, the strictest applies: a client may choose whichever
    /// of a site's names it likes, so no name may be more lenient than another. With no
    /// entry, the set's default applies.
    pub fn route_among(&self, sites: &[usize], path: &str) -> &RoutePolicy {
        let mut chosen: Option<&RoutePolicy> = None;
        for site in sites.iter().filter_map(|&i| self.sites.get(i)) {
            let policy = site
                .routes
                .iter()
                .filter(|r| starts_with_ignoring_case(path, &r.path_prefix))
                .max_by_key(|r| r.path_prefix.len())
                .map(|r| &r.policy)
                .or(site.default.as_ref())
                .unwrap_or(&self.default);
            if chosen.is_none_or(|c| policy.strictness() > c.strictness()) {
                chosen = Some(policy);
            }
        }
        chosen.unwrap_or(&self.default)
    }
}

impl RoutePolicy {
    /// Orders policies from lenient to strict, for [`PolicySet::route_among`].
    fn strictness(&self) -> (Action, Action, Action, usize) {
        let donor = if self.allow.contains(&EntityKind::DonorList) {
            Action::Allow
        } else {
            self.donor_list_action
        };
        (
            self.action,
            self.canary_action,
            donor,
            usize::MAX - self.allow.len(),
        )
    }
}

fn starts_with_ignoring_case(path: &str, prefix: &str) -> bool {
    path.len() >= prefix.len()
        && path.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// A route policy reduced to what the scanner consults per match: no allocation, `Copy`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    pub action: Action,
    pub canary_action: Action,
    pub donor_list_action: Action,
    pub thresholds: [u32; EntityKind::COUNT],
    pub personal_email: u32,
    pub allow_mask: u32,
    pub max_buffered: usize,
    pub on_overflow: Overflow,
}

impl Rules {
    pub fn new(policy: &RoutePolicy) -> Rules {
        let mut thresholds = [0; EntityKind::COUNT];
        for kind in EntityKind::ALL {
            thresholds[kind as usize] = policy.thresholds.get(kind);
        }
        let allow_mask = policy
            .allow
            .iter()
            .filter(|k| **k != EntityKind::Canary)
            .fold(0, |m, k| m | k.bit());
        Rules {
            action: policy.action,
            canary_action: policy.canary_action,
            donor_list_action: policy.donor_list_action,
            thresholds,
            personal_email: policy.thresholds.personal_email,
            allow_mask,
            max_buffered: policy.max_buffered,
            on_overflow: policy.on_overflow,
        }
    }

    pub fn allowed(&self, kind: EntityKind) -> bool {
        self.allow_mask & kind.bit() != 0
    }

    /// The action a tripped kind calls for.
    pub fn action_for(&self, kind: EntityKind) -> Action {
        match kind {
            EntityKind::Canary => self.canary_action,
            EntityKind::Oversize => Action::Block,
            _ if self.allowed(kind) => Action::Allow,
            EntityKind::DonorList => self.action.max(self.donor_list_action),
            _ => self.action,
        }
    }

    pub fn tripped(&self, kind: EntityKind, count: u32) -> bool {
        let t = self.thresholds[kind as usize];
        t > 0 && count >= t
    }

    /// Whether people's own addresses at two or more domains make a member list.
    pub fn personal_emails_tripped(&self, personal: &PersonalEmails) -> bool {
        self.personal_email > 0
            && personal.count >= self.personal_email
            && personal.domains_seen >= 2
    }
}

/// People's own email addresses in one response: how many distinct ones, and at how many
/// domains (up to a few: two is all the rule asks).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PersonalEmails {
    pub count: u32,
    pub domains: [u64; 4],
    pub domains_seen: u8,
}

/// Local parts that name a role or a mailbox, not a person: a contact page lists these.
const ROLE_MAILBOXES: &[&str] = &[
    "accounts",
    "admin",
    "bookings",
    "campaigns",
    "careers",
    "chair",
    "contact",
    "contactus",
    "data",
    "donate",
    "donations",
    "dpo",
    "enquiries",
    "enquiry",
    "events",
    "feedback",
    "finance",
    "fundraising",
    "general",
    "hello",
    "help",
    "hq",
    "info",
    "jobs",
    "mail",
    "media",
    "members",
    "membership",
    "news",
    "newsletter",
    "no-reply",
    "noreply",
    "office",
    "postmaster",
    "press",
    "privacy",
    "reception",
    "sales",
    "secretary",
    "support",
    "team",
    "treasurer",
    "volunteer",
    "volunteers",
    "webmaster",
];

impl PersonalEmails {
    /// Notes a new distinct address, unless its local part is a role mailbox.
    pub fn note(&mut self, address: &[u8], domain_hash: impl Fn(&[u8]) -> u64) {
        let Some(at) = address.iter().position(|b| *b == b'@') else {
            return;
        };
        let local = &address[..at];
        if ROLE_MAILBOXES
            .iter()
            .any(|r| r.as_bytes().eq_ignore_ascii_case(local))
        {
            return;
        }
        self.count += 1;
        let domain = domain_hash(&address[at + 1..]);
        let known = usize::from(self.domains_seen);
        if known < self.domains.len() && !self.domains[..known].contains(&domain) {
            self.domains[known] = domain;
            self.domains_seen += 1;
        }
    }
}
