//! The site's SQLite database: donations, organiser accounts and news articles.
//!
//! Each [`Store`] is a fresh in-memory database seeded with a month of realistic campaign data,
//! so every `DemoSite` starts from the same state and tests don't interfere with each other.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::limits::Limit;
use rusqlite::types::Value;
use rusqlite::{params, Connection};

/// How long one search query may run. An injected query can ask SQLite for unbounded work (a
/// recursive CTE, a cross join of cross joins); the deadline interrupts it so it can't hold the
/// database lock, and with it every other page, for ever.
const SEARCH_DEADLINE: Duration = Duration::from_secs(2);

/// How many SQLite virtual-machine steps run between checks of [`SEARCH_DEADLINE`]. Ten thousand
/// steps take well under a millisecond, so the deadline is kept closely at negligible cost.
const PROGRESS_CHECK_STEPS: i32 = 10_000;

/// The most rows, and bytes of titles and summaries, a search returns. The seeded table has a
/// dozen rows; an injected `UNION` could produce millions.
pub(crate) const MAX_SEARCH_ROWS: usize = 200;
const MAX_SEARCH_BYTES: usize = 256 * 1024;

/// The longest string or blob SQLite will build. Without it an injected `zeroblob(2000000000)`
/// could make the site allocate gigabytes.
const MAX_SQL_VALUE_BYTES: i32 = 1024 * 1024;

const SCHEMA: &str = "
    CREATE TABLE donations (
        id INTEGER PRIMARY KEY,
        first_name TEXT NOT NULL,
        last_name TEXT NOT NULL,
        email TEXT NOT NULL,
        amount_pence INTEGER NOT NULL,
        donated_at TEXT NOT NULL
    );
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        -- Stored in plain text, as careless sites do. An injected UNION on /search can read it.
        password TEXT NOT NULL,
        display_name TEXT NOT NULL
    );
    CREATE TABLE articles (
        id INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        summary TEXT NOT NULL,
        published_on TEXT NOT NULL
    );
";

/// Donations made during November 2019: first name as the donor typed it (some typed their full
/// name into the first-name box), last name, email, amount in pence, and when.
const SEED_DONATIONS: &[(&str, &str, &str, i64, &str)] = &[
    (
        "Margaret",
        "Holloway",
        "m.holloway@example.org",
        2500,
        "2019-11-01 09:12:44",
    ),
    (
        "David Okafor",
        "Okafor",
        "dokafor@example.com",
        10000,
        "2019-11-01 18:40:02",
    ),
    (
        "Priya",
        "Raman",
        "priya.raman@example.net",
        1500,
        "2019-11-02 11:05:19",
    ),
    (
        "Siobhan",
        "Gallagher",
        "siobhan.g@example.org",
        5000,
        "2019-11-03 20:17:55",
    ),
    (
        "Tom",
        "Ashworth",
        "tom.ashworth@example.com",
        1000,
        "2019-11-04 07:58:31",
    ),
    (
        "Gareth Llewellyn",
        "Llewellyn",
        "gareth@example.co.uk",
        25000,
        "2019-11-05 13:22:08",
    ),
    (
        "Aisha",
        "Rahman",
        "aisha.rahman@example.org",
        2000,
        "2019-11-06 16:45:37",
    ),
    (
        "Callum",
        "McLeod",
        "callum.mcleod@example.net",
        500,
        "2019-11-07 22:03:14",
    ),
    (
        "Eleanor",
        "Whitfield",
        "eleanor.w@example.com",
        7500,
        "2019-11-08 10:31:50",
    ),
    (
        "Mohammed",
        "Iqbal",
        "m.iqbal@example.org",
        3000,
        "2019-11-09 14:09:26",
    ),
    (
        "Fiona",
        "Campbell",
        "fiona.campbell@example.co.uk",
        1200,
        "2019-11-10 19:54:03",
    ),
    (
        "Rhys",
        "Pritchard",
        "rhys.p@example.net",
        2000,
        "2019-11-11 08:26:47",
    ),
    (
        "Hannah Whitfield",
        "Whitfield",
        "hannah.whitfield@example.com",
        50000,
        "2019-11-12 14:03:00",
    ),
    (
        "Oluwaseun",
        "Adeyemi",
        "seun.adeyemi@example.org",
        4000,
        "2019-11-13 12:37:21",
    ),
    (
        "Bethan",
        "Morgan",
        "bethan.morgan@example.co.uk",
        1000,
        "2019-11-14 17:11:09",
    ),
    (
        "James",
        "O'Connor",
        "jim.oconnor@example.com",
        15000,
        "2019-11-15 21:48:42",
    ),
    (
        "Zainab",
        "Hussain",
        "zainab.h@example.net",
        2500,
        "2019-11-16 09:02:58",
    ),
    (
        "Ruth Abernethy",
        "Abernethy",
        "ruth.abernethy@example.org",
        100000,
        "2019-11-17 15:30:12",
    ),
    (
        "Kwame",
        "Mensah",
        "kwame.mensah@example.com",
        3500,
        "2019-11-18 11:19:36",
    ),
    (
        "Harriet",
        "Pemberton",
        "harriet.pemberton@example.co.uk",
        20000,
        "2019-11-19 18:55:04",
    ),
    (
        "Declan",
        "Byrne",
        "declan.byrne@example.net",
        1000,
        "2019-11-20 07:44:29",
    ),
    (
        "Anjali",
        "Patel",
        "anjali.patel@example.org",
        5000,
        "2019-11-21 13:13:13",
    ),
    (
        "Stuart",
        "Henderson",
        "s.henderson@example.com",
        800,
        "2019-11-22 20:27:51",
    ),
    (
        "Imogen Clarke",
        "Clarke",
        "imogen.clarke@example.co.uk",
        30000,
        "2019-11-23 10:06:17",
    ),
    (
        "Tariq",
        "Mahmood",
        "tariq.mahmood@example.net",
        2000,
        "2019-11-24 16:38:45",
    ),
    (
        "Niamh",
        "Doherty",
        "niamh.doherty@example.org",
        1500,
        "2019-11-25 12:21:33",
    ),
    (
        "Olivia",
        "Bennett",
        "olivia.bennett@example.com",
        6000,
        "2019-11-26 19:49:08",
    ),
    (
        "Ewan",
        "Fraser",
        "ewan.fraser@example.co.uk",
        2500,
        "2019-11-27 08:15:52",
    ),
    (
        "Grace Achterberg",
        "Achterberg",
        "grace.a@example.net",
        12500,
        "2019-11-28 14:57:26",
    ),
    (
        "Sunil",
        "Chaudhry",
        "sunil.chaudhry@example.org",
        4500,
        "2019-11-29 17:32:40",
    ),
    (
        "Megan",
        "Lloyd",
        "megan.lloyd@example.com",
        1000,
        "2019-11-30 21:08:19",
    ),
];

/// Organiser accounts: username, password, display name. The first is the one `rampart demo`
/// tells the user about.
const SEED_USERS: &[(&str, &str, &str)] = &[
    ("organiser", "correct horse battery staple", "Sam Okonkwo"),
    ("treasurer", "Tr3asurer!2019", "Jo Lindqvist"),
    ("volunteer", "doorstep-2019", "Chris Ellery"),
];

/// Campaign news: title, summary, publication date.
const SEED_ARTICLES: &[(&str, &str, &str)] = &[
    ("Fairshare launches its manifesto for a fairer future", "Free school meals for every child, a cap on rents and a green jobs guarantee head our plan for the next parliament.", "2019-11-04"),
    ("Volunteers knock on 10,000 doors in Bristol", "Over one weekend, 240 volunteers spoke to voters across Bristol West about the cost of living.", "2019-11-06"),
    ("Our plan for fair rents", "Three-year tenancies, an end to no-fault evictions and a national landlord register.", "2019-11-08"),
    ("Candidate hustings in Leeds North West", "Our candidate, Dr Amara Nwosu, took questions on buses, the NHS and local high streets.", "2019-11-11"),
    ("Green jobs guarantee: 400,000 new apprenticeships", "Retrofitting homes and building the grid of the future, with training paid for in every region.", "2019-11-13"),
    ("Fairshare pledges to protect the NHS from privatisation", "No new outsourcing contracts, and a ten-year funding settlement agreed with staff.", "2019-11-15"),
    ("Why small donations matter", "Nine in ten of our donors give less than 50 pounds. Here is how every pound is spent.", "2019-11-18"),
    ("Register to vote before 26 November", "It takes five minutes online. Tell a friend, a flatmate, and your nan.", "2019-11-20"),
    ("Buses for everyone: our rural transport plan", "Restoring 3,000 cut routes and capping fares at two pounds across England.", "2019-11-22"),
    ("Fair pay for carers", "A real living wage for every care worker and respite breaks for unpaid family carers.", "2019-11-25"),
    ("Debate night: watch with us in Cardiff", "Join organisers at the Fairshare hub on Queen Street for the leaders' debate.", "2019-11-27"),
    ("Final push: polling day volunteers wanted", "Help us get out the vote on 12 December. Tea, biscuits and umbrellas provided.", "2019-11-29"),
];

/// One donation as the feed shows it.
pub(crate) struct Donation {
    pub(crate) id: i64,
    pub(crate) first_name: String,
    pub(crate) amount_pence: i64,
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub(crate) donated_at: String,
}

/// A donation being made through the form.
pub(crate) struct NewDonation<'a> {
    pub(crate) first_name: &'a str,
    pub(crate) last_name: &'a str,
    pub(crate) email: &'a str,
    pub(crate) amount_pence: i64,
}

/// One row of search results: whatever the (possibly injected) query's two columns held.
pub(crate) struct SearchHit {
    pub(crate) title: String,
    pub(crate) summary: String,
}

/// What a search returned, and whether rows were left out to respect the caps.
pub(crate) struct SearchResults {
    pub(crate) hits: Vec<SearchHit>,
    pub(crate) truncated: bool,
}

/// The site's database, shared by every connection thread behind a mutex: SQLite work here is
/// microseconds, so one connection serialised by a lock is simpler than a pool and fast enough.
pub(crate) struct Store {
    db: Mutex<Connection>,
}

impl Store {
    /// Opens a new in-memory database, creates the tables and seeds them.
    pub(crate) fn open_seeded() -> rusqlite::Result<Store> {
        let db = Connection::open_in_memory()?;
        db.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_SQL_VALUE_BYTES);
        db.execute_batch(SCHEMA)?;
        {
            let mut insert = db.prepare(
                "INSERT INTO donations (first_name, last_name, email, amount_pence, donated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (first, last, email, pence, at) in SEED_DONATIONS {
                insert.execute(params![first, last, email, pence, at])?;
            }
            let mut insert = db.prepare(
                "INSERT INTO users (username, password, display_name) VALUES (?1, ?2, ?3)",
            )?;
            for (username, password, display) in SEED_USERS {
                insert.execute(params![username, password, display])?;
            }
            let mut insert = db.prepare(
                "INSERT INTO articles (title, summary, published_on) VALUES (?1, ?2, ?3)",
            )?;
            for (title, summary, published) in SEED_ARTICLES {
                insert.execute(params![title, summary, published])?;
            }
        }
        Ok(Store { db: Mutex::new(db) })
    }

    /// Locks the database. A thread that panicked while holding the lock can't have left SQLite
    /// half-way through a statement, so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a donation made now and returns its id.
    pub(crate) fn record_donation(&self, donation: &NewDonation<'_>) -> rusqlite::Result<i64> {
        let db = self.lock();
        db.execute(
            "INSERT INTO donations (first_name, last_name, email, amount_pence, donated_at)
             VALUES (?1, ?2, ?3, ?4, datetime('now'))",
            params![
                donation.first_name,
                donation.last_name,
                donation.email,
                donation.amount_pence
            ],
        )?;
        Ok(db.last_insert_rowid())
    }

    /// The `limit` most recent donations, newest first.
    pub(crate) fn recent_donations(&self, limit: usize) -> rusqlite::Result<Vec<Donation>> {
        let db = self.lock();
        let mut query = db.prepare_cached(
            "SELECT id, first_name, amount_pence, donated_at FROM donations
             ORDER BY donated_at DESC, id DESC LIMIT ?1",
        )?;
        let rows = query.query_map([limit as i64], |row| {
            Ok(Donation {
                id: row.get(0)?,
                first_name: row.get(1)?,
                amount_pence: row.get(2)?,
                donated_at: row.get(3)?,
            })
        })?;
        rows.collect()
    }

    /// The display name of the user whose username and password match, if any. This query is
    /// parameterised: only the search page is meant to be injectable.
    pub(crate) fn check_login(
        &self,
        username: &str,
        password: &str,
    ) -> rusqlite::Result<Option<String>> {
        let db = self.lock();
        let mut query = db.prepare_cached(
            "SELECT display_name FROM users WHERE username = ?1 AND password = ?2",
        )?;
        let mut rows = query.query(params![username, password])?;
        match rows.next()? {
            Some(row) => Ok(Some(row.get(0)?)),
            None => Ok(None),
        }
    }

    /// Searches article titles for `q`.
    ///
    /// DELIBERATELY VULNERABLE TO SQL INJECTION. The query is built by pasting `q` into the SQL
    /// text, exactly as a careless site would, so that rampart's WAF has a real injection to
    /// stop: `' OR '1'='1` lists every article, and
    /// `' UNION SELECT username, password FROM users --` lists the organisers' passwords.
    /// Never copy this pattern; never expose this site except through the gateway, and keep it
    /// bound to loopback as `rampart demo` does.
    ///
    /// Only the first statement of the SQL text is prepared and run, so stacked queries such as
    /// `'; DROP TABLE articles; --` run the search and silently drop the rest. Runaway queries are
    /// interrupted after [`SEARCH_DEADLINE`] and results are capped at [`MAX_SEARCH_ROWS`], so an
    /// injection can read the database but can't take the site down.
    pub(crate) fn search_articles_unsafely(&self, q: &str) -> rusqlite::Result<SearchResults> {
        let sql = "SELECT title, summary FROM articles WHERE title LIKE '%".to_owned() + q + "%'";
        let db = self.lock();
        let deadline = Instant::now() + SEARCH_DEADLINE;
        db.progress_handler(
            PROGRESS_CHECK_STEPS,
            Some(move || Instant::now() >= deadline),
        );
        let results = run_search(&db, &sql);
        db.progress_handler(PROGRESS_CHECK_STEPS, None::<fn() -> bool>);
        results
    }
}

fn run_search(db: &Connection, sql: &str) -> rusqlite::Result<SearchResults> {
    let mut query = db.prepare(sql)?;
    let columns = query.column_count();
    let mut rows = query.query([])?;
    let mut results = SearchResults {
        hits: Vec::new(),
        truncated: false,
    };
    let mut bytes = 0;
    while let Some(row) = rows.next()? {
        if results.hits.len() == MAX_SEARCH_ROWS || bytes > MAX_SEARCH_BYTES {
            results.truncated = true;
            break;
        }
        // An injected query may return other types, or fewer columns than two; show whatever
        // came back, as a careless page would.
        let title = if columns > 0 {
            display(row.get::<_, Value>(0)?)
        } else {
            String::new()
        };
        let summary = if columns > 1 {
            display(row.get::<_, Value>(1)?)
        } else {
            String::new()
        };
        bytes += title.len() + summary.len();
        results.hits.push(SearchHit { title, summary });
    }
    Ok(results)
}

fn display(value: Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Integer(n) => n.to_string(),
        Value::Real(x) => x.to_string(),
        Value::Text(text) => text,
        Value::Blob(blob) => String::from_utf8_lossy(&blob).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn titles(results: &SearchResults) -> Vec<&str> {
        results.hits.iter().map(|hit| hit.title.as_str()).collect()
    }

    #[test]
    fn seeded_counts() {
        let store = Store::open_seeded().unwrap();
        assert_eq!(
            store.recent_donations(100).unwrap().len(),
            SEED_DONATIONS.len()
        );
        assert_eq!(
            store.search_articles_unsafely("").unwrap().hits.len(),
            SEED_ARTICLES.len()
        );
    }

    #[test]
    fn recent_donations_are_newest_first() {
        let store = Store::open_seeded().unwrap();
        let recent = store.recent_donations(3).unwrap();
        let names: Vec<&str> = recent.iter().map(|d| d.first_name.as_str()).collect();
        assert_eq!(names, ["Megan", "Sunil", "Grace Achterberg"]);
        let id = store
            .record_donation(&NewDonation {
                first_name: "Alice",
                last_name: "Smith",
                email: "a@example.org",
                amount_pence: 2500,
            })
            .unwrap();
        let newest = &store.recent_donations(1).unwrap()[0];
        assert_eq!(
            (newest.id, newest.first_name.as_str(), newest.amount_pence),
            (id, "Alice", 2500)
        );
    }

    #[test]
    fn login_checks_both_fields() {
        let store = Store::open_seeded().unwrap();
        assert_eq!(
            store
                .check_login("organiser", "correct horse battery staple")
                .unwrap()
                .as_deref(),
            Some("Sam Okonkwo")
        );
        assert_eq!(store.check_login("organiser", "wrong").unwrap(), None);
        assert_eq!(
            store.check_login("' OR '1'='1", "' OR '1'='1").unwrap(),
            None
        );
    }

    #[test]
    fn search_is_injectable_by_design() {
        let store = Store::open_seeded().unwrap();
        assert_eq!(
            titles(&store.search_articles_unsafely("fair rents").unwrap()),
            ["Our plan for fair rents"]
        );
        assert_eq!(
            store
                .search_articles_unsafely("' OR '1'='1")
                .unwrap()
                .hits
                .len(),
            SEED_ARTICLES.len()
        );
        let leaked = store
            .search_articles_unsafely("zzz' UNION SELECT username, password FROM users --")
            .unwrap();
        assert!(leaked
            .hits
            .iter()
            .any(|hit| hit.summary == "correct horse battery staple"));
        assert!(store.search_articles_unsafely("'").is_err());
    }

    // An injected query must not be able to run stacked statements that change the database:
    // only the first statement runs, so the demo survives to be attacked again.
    #[test]
    fn search_ignores_stacked_statements() {
        let store = Store::open_seeded().unwrap();
        let stacked = store
            .search_articles_unsafely("'; DROP TABLE articles; --")
            .unwrap();
        assert_eq!(stacked.hits.len(), SEED_ARTICLES.len());
        assert_eq!(
            store.search_articles_unsafely("").unwrap().hits.len(),
            SEED_ARTICLES.len()
        );
    }

    // An injected runaway query must be interrupted, and the rows it could return capped, so it
    // can't hold the database lock for ever or fill memory.
    #[test]
    fn search_caps_runaway_queries() {
        let store = Store::open_seeded().unwrap();
        let endless = "zzz' UNION ALL SELECT x, x FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n) --";
        let results = store.search_articles_unsafely(endless).unwrap();
        assert!(results.truncated);
        assert_eq!(results.hits.len(), MAX_SEARCH_ROWS);
        let started = Instant::now();
        let spin = "zzz' UNION SELECT count(*), 0 FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT x FROM n) --";
        assert!(store.search_articles_unsafely(spin).is_err());
        assert!(started.elapsed() < SEARCH_DEADLINE + Duration::from_secs(2));
        assert!(store
            .search_articles_unsafely("zzz' UNION SELECT zeroblob(100000000), 1 --")
            .is_err());
    }
}
