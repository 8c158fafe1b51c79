//! The SQLite event store: events, incidents and the operators' decisions.
//!
//! One file in WAL mode. The gateway's writer thread (see [`crate::writer`]) is
//! the only busy writer; the command line opens the same file read-only to list
//! and report while the gateway runs, or read-write for the short transactions
//! that add a decision or move the awareness time. `synchronous=NORMAL` in WAL
//! mode means a committed transaction survives the process being killed (it
//! can be lost only if the machine itself loses power before a checkpoint).
//!
//! Operators' decisions live in their own table and the operator's awareness
//! time in its own column, and both are merged into the incident on read, so
//! the writer rewriting an incident's body can never lose them.

use crate::model::{Decision, Event, EventKind, Incident, Millis, ICO_WINDOW_MS};
use rusqlite::types::Value;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use crate::writer::Recorder;

/// The schema version this build writes, kept in SQLite's `user_version`.
const SCHEMA_VERSION: i64 = 1;

/// How long a statement waits for another process's lock before failing. An
/// operator's command holds the lock for milliseconds; five seconds rides out
/// a slow disk without letting a stuck process stall the writer for long.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL file is truncated back to this after a checkpoint, so a burst of
/// writes does not leave a large WAL file behind for good.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// SQLite's page cache, in KiB. The client index takes inserts at random
/// places; with the default 2 MiB cache every insert rereads index pages from
/// the OS, which costs more than the insert itself. 64 MiB holds the hot
/// index pages of a store of millions of events, and is allocated only as used.
const CACHE_KIB: i64 = 64 * 1024;

/// Pages read through a memory map rather than `read` calls, up to this size.
const MMAP_BYTES: i64 = 256 * 1024 * 1024;

/// Checkpoint the WAL into the main file every this many pages (about 200
/// MiB) rather than SQLite's 1,000 (4 MiB). Under a flood the random client
/// index dirties pages all over the file; a page written many times between
/// two checkpoints is copied to the main file once, which measured about 1.5
/// to 2 times the sustained insert rate on a small server's disk. The cost:
/// the WAL file may reach that size on top of the store (it is cut back to
/// `JOURNAL_SIZE_LIMIT` after each checkpoint), and one checkpoint pauses the
/// writer for a fraction of a second, which the channel absorbs.
const WAL_AUTOCHECKPOINT_PAGES: i64 = 50_000;

/// Rows deleted per statement when pruning by size: small enough that each
/// transaction is short (readers and the writer's next batch wait on it),
/// large enough that a store far over its size is brought back in few steps.
const PRUNE_CHUNK: i64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    site TEXT NOT NULL,
    client TEXT,
    kind TEXT NOT NULL,
    route TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_at ON events(at);
CREATE INDEX IF NOT EXISTS events_site_at ON events(site, at);
CREATE INDEX IF NOT EXISTS events_client_at ON events(client, at);
CREATE INDEX IF NOT EXISTS events_kind_at ON events(kind, at);
CREATE TABLE IF NOT EXISTS incidents(
    id INTEGER PRIMARY KEY,
    site TEXT NOT NULL,
    status TEXT NOT NULL,
    first_event INTEGER NOT NULL,
    last_event INTEGER NOT NULL,
    aware_override INTEGER,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS incidents_last_event ON incidents(last_event);
CREATE TABLE IF NOT EXISTS decisions(
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    at INTEGER NOT NULL,
    by_whom TEXT NOT NULL,
    text TEXT NOT NULL,
    told TEXT
);
CREATE INDEX IF NOT EXISTS decisions_incident ON decisions(incident_id, at);
";

const INSERT_EVENT: &str =
    "INSERT INTO events(at, site, client, kind, route, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// What went wrong with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The file could not be opened or created.
    Open,
    /// The file is not a SQLite database, or it is damaged.
    Corrupt,
    /// The file is a SQLite database but not a rampart event store.
    NotAStore,
    /// The store was written by a newer rampart with a schema this one does not know.
    NewerSchema,
    /// The disk is full.
    DiskFull,
    /// Another process held the store locked for longer than the busy timeout.
    Busy,
    /// A read or write failed for another reason (I/O, permissions).
    Io,
    /// There is no incident with the given id.
    NoSuchIncident,
    /// The writer thread could not be started.
    Thread,
}

/// An error from the event store: what failed, on which file, and what to do.
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    path: PathBuf,
    detail: String,
}

impl StoreError {
    pub(crate) fn new(kind: StoreErrorKind, path: &Path, detail: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            path: path.to_path_buf(),
            detail: detail.into(),
        }
    }

    /// Wraps a SQLite error, classifying it by SQLite's error code.
    fn sqlite(path: &Path, doing: &str, error: rusqlite::Error) -> StoreError {
        let kind = match error.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreErrorKind::Corrupt,
            Some(ErrorCode::DiskFull) => StoreErrorKind::DiskFull,
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreErrorKind::Busy,
            Some(ErrorCode::CannotOpen) => StoreErrorKind::Open,
            _ => StoreErrorKind::Io,
        };
        StoreError::new(kind, path, format!("{doing}: {error}"))
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What failed, without the path and the advice.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let advice = match self.kind {
            StoreErrorKind::Open => "check that the directory exists and that rampart may read and write it",
            StoreErrorKind::Corrupt => {
                "the file is not a readable SQLite database; move it aside (rampart starts a new store) and keep it for inspection"
            }
            StoreErrorKind::NotAStore => "point the incident store at its own file, not at another program's database",
            StoreErrorKind::NewerSchema => {
                "it was written by a newer rampart; run that version, or point the store at a new file"
            }
            StoreErrorKind::DiskFull => "free disk space, or lower the store's size limit so that pruning keeps it smaller",
            StoreErrorKind::Busy => "another process held the store locked; try again, and stop any long-running query on it",
            StoreErrorKind::Io => "check the disk and the file's permissions",
            StoreErrorKind::NoSuchIncident => "list the incidents to find the right id",
            StoreErrorKind::Thread => "the system could not start a thread; check its memory and process limits",
        };
        write!(
            f,
            "incident store {}: {}. {}.",
            self.path.display(),
            self.detail,
            capitalise(advice)
        )
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl std::error::Error for StoreError {}

/// Which events to list. Every filter is optional; times are inclusive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventQuery {
    /// Only this site's events.
    pub site: Option<String>,
    /// Only this kind (see [`EventKind::name`]: `waf_block`, `traffic`, ...).
    pub kind: Option<String>,
    /// Only this client's events.
    pub client: Option<IpAddr>,
    /// Only events at or after this time.
    pub since: Option<Millis>,
    /// Only events at or before this time.
    pub until: Option<Millis>,
    /// Only this kind or these kinds (`waf_block`, `waf_match`), when set.
    pub kinds: Vec<String>,
    /// Only the event with this id.
    pub id: Option<i64>,
    /// At most this many, oldest first (from `since`), or newest first
    /// (from `until`) when `newest_first`.
    pub limit: usize,
    pub newest_first: bool,
}

impl Default for EventQuery {
    fn default() -> EventQuery {
        // A thousand rows fill several terminal screens and answer in
        // milliseconds; larger listings should narrow by time or site.
        EventQuery {
            site: None,
            kind: None,
            client: None,
            since: None,
            until: None,
            kinds: Vec::new(),
            id: None,
            limit: 1000,
            newest_first: false,
        }
    }
}

/// One bucket of a site's traffic, summed from its `Traffic` events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TimelinePoint {
    /// The bucket's start.
    pub at: Millis,
    /// Requests that arrived.
    pub requests: u64,
    /// Requests denied.
    pub blocked: u64,
    /// Requests challenged.
    pub challenged: u64,
    /// Requests limited.
    pub limited: u64,
    /// Upstream failures.
    pub upstream_errors: u64,
}

/// How much history the store keeps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Events older than this are deleted; 0 keeps them whatever their age.
    /// Default 30 days: the ICO and the NCSC ask their questions in the weeks
    /// after a report, and a month of history also shows what "normal" looked
    /// like before an incident.
    pub max_age_ms: Millis,
    /// When the store's live pages exceed this, the oldest events are deleted
    /// until they fit; 0 means no size limit. Default 1 GiB: about five
    /// million events (some 200 bytes each with their indexes, as
    /// `bench/incidents-writer.sh` prints), a month of a busy small site,
    /// and a modest share of a small server's disk. The WAL file comes on
    /// top (see `WAL_AUTOCHECKPOINT_PAGES`). Incidents and decisions are
    /// never deleted.
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            max_age_ms: 30 * 24 * 3600 * 1000,
            max_bytes: 1 << 30,
        }
    }
}

/// The event store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the store for reading and writing, creating the file and its
    /// schema if missing. Switches the file to WAL mode.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        // The file holds client addresses and what they did: it is created
        // readable by its owner only (SQLite gives its WAL and shared-memory
        // files the same mode), and a symbolic link planted at its path is
        // refused, not followed.
        {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(path)
                .map_err(|e| StoreError::new(StoreErrorKind::Open, path, format!("could not create the file (a symbolic link at this path is refused): {e}")))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::sqlite(path, "could not open the file", e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        store.check_schema(true)?;
        let mode: String = store
            .conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| store.fail("could not switch to WAL mode", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::new(
                StoreErrorKind::Io,
                path,
                format!("the file system refused WAL mode (journal mode is {mode})"),
            ));
        }
        for (name, value) in [
            ("synchronous", Value::Text("NORMAL".into())),
            ("journal_size_limit", Value::Integer(JOURNAL_SIZE_LIMIT)),
            (
                "wal_autocheckpoint",
                Value::Integer(WAL_AUTOCHECKPOINT_PAGES),
            ),
        ] {
            store
                .conn
                .pragma_update(None, name, value)
                .map_err(|e| store.fail("could not configure the file", e))?;
        }
        Ok(store)
    }

    /// Opens an existing store read-only, for listing and reporting while the
    /// gateway writes to it (WAL mode lets readers and one writer work at once).
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::new(
                StoreErrorKind::Open,
                path,
                "no such file (the gateway creates it when it starts recording)",
            ));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::sqlite(path, "could not open the file", e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.configure()?;
        store.check_schema(false)?;
        Ok(store)
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, doing: &str, error: rusqlite::Error) -> StoreError {
        StoreError::sqlite(&self.path, doing, error)
    }

    fn configure(&self) -> Result<(), StoreError> {
        self.conn
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| self.fail("could not set the busy timeout", e))?;
        for (name, value) in [("cache_size", -CACHE_KIB), ("mmap_size", MMAP_BYTES)] {
            self.conn
                .pragma_update(None, name, value)
                .map_err(|e| self.fail("could not configure the file", e))?;
        }
        Ok(())
    }

    /// Reads `user_version` and creates the schema in an empty file.
    fn check_schema(&self, writable: bool) -> Result<(), StoreError> {
        let reading = |e| self.fail("could not read the schema", e);
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(reading)?;
        match version {
            SCHEMA_VERSION => return Ok(()),
            v if v > SCHEMA_VERSION => {
                return Err(StoreError::new(
                    StoreErrorKind::NewerSchema,
                    &self.path,
                    format!("schema version {v}, this rampart knows up to {SCHEMA_VERSION}"),
                ))
            }
            0 => {}
            v => {
                return Err(StoreError::new(
                    StoreErrorKind::Corrupt,
                    &self.path,
                    format!("schema version {v} is invalid"),
                ))
            }
        }
        let foreign: Vec<String> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                     AND name NOT IN ('events', 'incidents', 'decisions') ORDER BY name LIMIT 5",
                )
                .map_err(reading)?;
            let rows = stmt.query_map([], |row| row.get(0)).map_err(reading)?;
            rows.collect::<Result<_, _>>().map_err(reading)?
        };
        if !foreign.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::NotAStore,
                &self.path,
                format!("it holds other tables ({})", foreign.join(", ")),
            ));
        }
        if !writable {
            return Err(StoreError::new(
                StoreErrorKind::NotAStore,
                &self.path,
                "it has no incident schema yet (the gateway creates it when it starts recording)",
            ));
        }
        let script =
            format!("BEGIN IMMEDIATE;{SCHEMA}PRAGMA user_version = {SCHEMA_VERSION};COMMIT;");
        self.conn.execute_batch(&script).map_err(|e| {
            let _ = self.conn.execute_batch("ROLLBACK");
            self.fail("could not create the schema", e)
        })
    }

    /// Checks the whole file (`PRAGMA integrity_check`). Reads every page:
    /// seconds for a large store, so it is for the command line and tests,
    /// not for every start.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let reading = |e| self.fail("could not check the file", e);
        let mut stmt = self
            .conn
            .prepare("PRAGMA integrity_check(10)")
            .map_err(reading)?;
        let problems: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .map_err(reading)?
            .collect::<Result<_, _>>()
            .map_err(reading)?;
        if problems.len() == 1 && problems[0] == "ok" {
            Ok(())
        } else {
            Err(StoreError::new(
                StoreErrorKind::Corrupt,
                &self.path,
                format!("integrity check: {}", problems.join("; ")),
            ))
        }
    }

    /// Stores events in one transaction and returns their ids, in order.
    pub fn insert_batch(&mut self, events: &[Event]) -> Result<Vec<i64>, StoreError> {
        let path = &self.path;
        let writing = |e| StoreError::sqlite(path, "could not store events", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(writing)?;
        let mut ids = Vec::with_capacity(events.len());
        {
            let mut stmt = tx.prepare_cached(INSERT_EVENT).map_err(writing)?;
            let mut detail = Vec::with_capacity(256);
            let mut client = String::with_capacity(40);
            for event in events {
                detail.clear();
                serde_json::to_writer(&mut detail, &event.kind).map_err(|e| {
                    StoreError::new(
                        StoreErrorKind::Io,
                        path,
                        format!("could not encode an event: {e}"),
                    )
                })?;
                let detail = std::str::from_utf8(&detail).expect("serde_json writes UTF-8");
                let client = event.client.map(|c| {
                    use std::fmt::Write;
                    client.clear();
                    let _ = write!(client, "{c}");
                    client.as_str()
                });
                stmt.execute(params![
                    event.at,
                    event.site,
                    client,
                    event.kind.name(),
                    event.route,
                    detail
                ])
                .map_err(writing)?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit().map_err(writing)?;
        Ok(ids)
    }

    /// Lists events matching `query`, oldest first, with their ids.
    pub fn events(&self, query: &EventQuery) -> Result<Vec<(i64, Event)>, StoreError> {
        let reading = |e| self.fail("could not read events", e);
        let mut sql =
            String::from("SELECT id, at, site, client, route, detail FROM events WHERE 1 = 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(site) = &query.site {
            sql.push_str(" AND site = ?");
            args.push(Value::Text(site.clone()));
        }
        if let Some(kind) = &query.kind {
            sql.push_str(" AND kind = ?");
            args.push(Value::Text(kind.clone()));
        }
        if !query.kinds.is_empty() {
            sql.push_str(" AND kind IN (");
            for (i, kind) in query.kinds.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(Value::Text(kind.clone()));
            }
            sql.push(')');
        }
        if let Some(id) = query.id {
            sql.push_str(" AND id = ?");
            args.push(Value::Integer(id));
        }
        if let Some(client) = query.client {
            sql.push_str(" AND client = ?");
            args.push(Value::Text(client.to_string()));
        }
        if let Some(since) = query.since {
            sql.push_str(" AND at >= ?");
            args.push(Value::Integer(since));
        }
        if let Some(until) = query.until {
            sql.push_str(" AND at <= ?");
            args.push(Value::Integer(until));
        }
        sql.push_str(if query.newest_first {
            " ORDER BY at DESC, id DESC LIMIT ?"
        } else {
            " ORDER BY at, id LIMIT ?"
        });
        args.push(Value::Integer(
            i64::try_from(query.limit).unwrap_or(i64::MAX),
        ));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(reading)?;
        let mut rows = stmt
            .query(rusqlite::params_from_iter(args))
            .map_err(reading)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(reading)? {
            let id: i64 = row.get(0).map_err(reading)?;
            let client: Option<String> = row.get(3).map_err(reading)?;
            let client = match client {
                None => None,
                Some(text) => Some(
                    text.parse()
                        .map_err(|_| self.bad_row("event", id, "a bad client address"))?,
                ),
            };
            let detail: String = row.get(5).map_err(reading)?;
            let kind: EventKind = serde_json::from_str(&detail)
                .map_err(|e| self.bad_row("event", id, &format!("bad details ({e})")))?;
            let event = Event {
                at: row.get(1).map_err(reading)?,
                site: row.get(2).map_err(reading)?,
                client,
                route: row.get(4).map_err(reading)?,
                kind,
            };
            out.push((id, event));
        }
        Ok(out)
    }

    fn bad_row(&self, table: &str, id: i64, what: &str) -> StoreError {
        StoreError::new(
            StoreErrorKind::Corrupt,
            &self.path,
            format!("{table} {id} has {what}"),
        )
    }

    /// Saves an incident: inserts it and sets its id when the id is 0, else
    /// rewrites it. Decisions already in the decisions table (an operator's)
    /// are not copied into the body, so a merged incident can be saved back.
    /// The operator's awareness time ([`Store::set_aware_at`]) is kept.
    pub fn save_incident(&mut self, incident: &mut Incident) -> Result<(), StoreError> {
        let path = &self.path;
        let writing = |e| StoreError::sqlite(path, "could not save the incident", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(writing)?;
        let status = incident.status.to_string();
        if incident.id == 0 {
            let body = encode_incident(path, incident)?;
            tx.prepare_cached(
                "INSERT INTO incidents(site, status, first_event, last_event, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut stmt| stmt.execute(params![incident.site, status, incident.first_event, incident.last_event, body]))
            .map_err(writing)?;
            incident.id = tx.last_insert_rowid();
        } else {
            let operator = load_decisions(&tx, Some(incident.id))
                .map_err(writing)?
                .remove(&incident.id)
                .unwrap_or_default();
            let body = if operator.is_empty() {
                encode_incident(path, incident)?
            } else {
                let all = std::mem::take(&mut incident.decisions);
                incident.decisions = all
                    .iter()
                    .filter(|d| !operator.contains(d))
                    .cloned()
                    .collect();
                let body = encode_incident(path, incident);
                incident.decisions = all;
                body?
            };
            let updated = tx
                .prepare_cached(
                    "UPDATE incidents SET site = ?1, status = ?2, first_event = ?3, last_event = ?4, body = ?5 WHERE id = ?6",
                )
                .and_then(|mut stmt| {
                    stmt.execute(params![incident.site, status, incident.first_event, incident.last_event, body, incident.id])
                })
                .map_err(writing)?;
            if updated == 0 {
                // Known to the caller but not to this file (the file was
                // replaced): keep the id the alerts already announced.
                tx.execute(
                    "INSERT INTO incidents(id, site, status, first_event, last_event, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![incident.id, incident.site, status, incident.first_event, incident.last_event, body],
                )
                .map_err(writing)?;
            }
        }
        tx.commit().map_err(writing)
    }

    /// One incident, with operators' decisions merged in time order.
    pub fn incident(&self, id: i64) -> Result<Option<Incident>, StoreError> {
        let reading = |e| self.fail("could not read the incident", e);
        let row: Option<(String, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT body, aware_override FROM incidents WHERE id = ?1",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .map_err(reading)?;
        let Some((body, aware)) = row else {
            return Ok(None);
        };
        let mut decisions = load_decisions(&self.conn, Some(id)).map_err(reading)?;
        self.decode_incident(id, &body, aware, decisions.remove(&id))
            .map(Some)
    }

    /// Every incident, newest (by last event) first.
    pub fn incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.list_incidents("")
    }

    /// The open incidents, newest (by last event) first.
    pub fn open_incidents(&self) -> Result<Vec<Incident>, StoreError> {
        self.list_incidents("WHERE status = 'open'")
    }

    fn list_incidents(&self, filter: &str) -> Result<Vec<Incident>, StoreError> {
        let reading = |e| self.fail("could not read incidents", e);
        let mut decisions = load_decisions(&self.conn, None).map_err(reading)?;
        let sql = format!("SELECT id, body, aware_override FROM incidents {filter} ORDER BY last_event DESC, id DESC");
        let mut stmt = self.conn.prepare(&sql).map_err(reading)?;
        let mut rows = stmt.query([]).map_err(reading)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(reading)? {
            let id: i64 = row.get(0).map_err(reading)?;
            let body: String = row.get(1).map_err(reading)?;
            let aware: Option<i64> = row.get(2).map_err(reading)?;
            out.push(self.decode_incident(id, &body, aware, decisions.remove(&id))?);
        }
        Ok(out)
    }

    fn decode_incident(
        &self,
        id: i64,
        body: &str,
        aware: Option<Millis>,
        decisions: Option<Vec<Decision>>,
    ) -> Result<Incident, StoreError> {
        let mut incident: Incident = serde_json::from_str(body)
            .map_err(|e| self.bad_row("incident", id, &format!("a bad body ({e})")))?;
        incident.id = id;
        if let Some(aware) = aware {
            incident.aware_at = aware;
            incident.deadline = aware.saturating_add(ICO_WINDOW_MS);
        }
        if let Some(decisions) = decisions {
            for decision in decisions {
                if !incident.decisions.contains(&decision) {
                    incident.decisions.push(decision);
                }
            }
            incident.decisions.sort_by_key(|d| d.at);
        }
        Ok(incident)
    }

    /// Adds a decision to an incident's log. Safe while the gateway writes the
    /// same incident: decisions are kept apart from the body it rewrites.
    pub fn add_decision(&mut self, id: i64, decision: &Decision) -> Result<(), StoreError> {
        let path = &self.path;
        let writing = |e| StoreError::sqlite(path, "could not add the decision", e);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(writing)?;
        let exists: Option<i64> = tx
            .query_row("SELECT id FROM incidents WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .optional()
            .map_err(writing)?;
        if exists.is_none() {
            return Err(no_such_incident(path, id));
        }
        tx.execute(
            "INSERT INTO decisions(incident_id, at, by_whom, text, told) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, decision.at, decision.by, decision.text, decision.told],
        )
        .map_err(writing)?;
        tx.commit().map_err(writing)
    }

    /// Records when the organisation became aware of the incident, when an
    /// operator knew before rampart opened it (or corrects it). The deadline
    /// becomes `at` plus [`ICO_WINDOW_MS`]. Kept apart from the body, like
    /// decisions, so the writer cannot undo it.
    pub fn set_aware_at(&mut self, id: i64, at: Millis) -> Result<(), StoreError> {
        let changed = self
            .conn
            .execute(
                "UPDATE incidents SET aware_override = ?1 WHERE id = ?2",
                params![at, id],
            )
            .map_err(|e| self.fail("could not set the awareness time", e))?;
        if changed == 0 {
            return Err(no_such_incident(&self.path, id));
        }
        Ok(())
    }

    /// A site's traffic from `from` (inclusive) to `to` (exclusive) in
    /// `buckets` equal buckets, summed from its `Traffic` events by their time.
    /// Buckets without events are zero. Empty when `buckets` is 0 or `to <= from`.
    pub fn timeline(
        &self,
        site: &str,
        from: Millis,
        to: Millis,
        buckets: usize,
    ) -> Result<Vec<TimelinePoint>, StoreError> {
        if buckets == 0 || to <= from {
            return Ok(Vec::new());
        }
        let n = i64::try_from(buckets).unwrap_or(i64::MAX);
        let span = to - from;
        let width = (span / n + i64::from(span % n != 0)).max(1);
        let mut points: Vec<TimelinePoint> = (0..n)
            .map(|i| TimelinePoint {
                at: from + i * width,
                requests: 0,
                blocked: 0,
                challenged: 0,
                limited: 0,
                upstream_errors: 0,
            })
            .collect();
        let reading = |e| self.fail("could not read the timeline", e);
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT (at - ?1) / ?2 AS bucket, \
                 SUM(json_extract(detail, '$.requests')), SUM(json_extract(detail, '$.blocked')), \
                 SUM(json_extract(detail, '$.challenged')), SUM(json_extract(detail, '$.limited')), \
                 SUM(json_extract(detail, '$.upstream_errors')) \
                 FROM events WHERE site = ?3 AND at >= ?1 AND at < ?4 AND kind = 'traffic' GROUP BY bucket",
            )
            .map_err(reading)?;
        let mut rows = stmt
            .query(params![from, width, site, to])
            .map_err(reading)?;
        while let Some(row) = rows.next().map_err(reading)? {
            let bucket: i64 = row.get(0).map_err(reading)?;
            let Some(point) = usize::try_from(bucket).ok().and_then(|b| points.get_mut(b)) else {
                continue;
            };
            let sum = |i: usize| -> Result<u64, StoreError> {
                let value: Option<i64> = row.get(i).map_err(reading)?;
                Ok(value.unwrap_or(0).max(0) as u64)
            };
            point.requests = sum(1)?;
            point.blocked = sum(2)?;
            point.challenged = sum(3)?;
            point.limited = sum(4)?;
            point.upstream_errors = sum(5)?;
        }
        Ok(points)
    }

    /// The bytes the store's live pages take: `page_count * page_size` minus
    /// the free list. The WAL file is not counted.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let reading = |e| self.fail("could not read the store's size", e);
        let pragma = |name: &str| -> Result<i64, StoreError> {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
                .map_err(reading)
        };
        let pages = pragma("page_count")? - pragma("freelist_count")?;
        Ok((pages.max(0) as u64) * (pragma("page_size")?.max(0) as u64))
    }

    /// Deletes events older than `retention.max_age_ms` before `now`, then,
    /// while the live pages exceed `retention.max_bytes`, the oldest events in
    /// chunks. Incidents and decisions are kept. Returns how many events went.
    ///
    /// The file does not shrink: freed pages go on a free list and the next
    /// inserts reuse them, so a store at its limit stays at about that size
    /// without the I/O of moving pages (`incremental_vacuum`) only to grow
    /// again. After lowering the limit, `VACUUM` the file offline to shrink it.
    pub fn prune(&mut self, retention: &Retention, now: Millis) -> Result<u64, StoreError> {
        let path = &self.path;
        let deleting = |e| StoreError::sqlite(path, "could not delete old events", e);
        let mut deleted = 0u64;
        if retention.max_age_ms > 0 {
            let cutoff = now.saturating_sub(retention.max_age_ms);
            deleted += self
                .conn
                .execute("DELETE FROM events WHERE at < ?1", [cutoff])
                .map_err(deleting)? as u64;
        }
        if retention.max_bytes > 0 {
            while self.used_bytes()? > retention.max_bytes {
                let n = self
                    .conn
                    .execute(
                        "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY at, id LIMIT ?1)",
                        [PRUNE_CHUNK],
                    )
                    .map_err(deleting)?;
                if n == 0 {
                    break;
                }
                deleted += n as u64;
            }
        }
        Ok(deleted)
    }
}

fn encode_incident(path: &Path, incident: &Incident) -> Result<String, StoreError> {
    serde_json::to_string(incident).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Io,
            path,
            format!("could not encode incident {}: {e}", incident.id),
        )
    })
}

fn no_such_incident(path: &Path, id: i64) -> StoreError {
    StoreError::new(
        StoreErrorKind::NoSuchIncident,
        path,
        format!("there is no incident INC-{id}"),
    )
}

/// Operators' decisions by incident id, in time order.
fn load_decisions(
    conn: &Connection,
    id: Option<i64>,
) -> rusqlite::Result<HashMap<i64, Vec<Decision>>> {
    let mut out: HashMap<i64, Vec<Decision>> = HashMap::new();
    let mut stmt = match id {
        Some(_) => conn.prepare_cached(
            "SELECT incident_id, at, by_whom, text, told FROM decisions WHERE incident_id = ?1 ORDER BY at, id",
        )?,
        None => conn.prepare_cached(
            "SELECT incident_id, at, by_whom, text, told FROM decisions WHERE ?1 IS NULL ORDER BY incident_id, at, id",
        )?,
    };
    let mut rows = stmt.query([id])?;
    while let Some(row) = rows.next()? {
        let decision = Decision {
            at: row.get(1)?,
            by: row.get(2)?,
            text: row.get(3)?,
            told: row.get(4)?,
        };
        out.entry(row.get(0)?).or_default().push(decision);
    }
    Ok(out)
}
