//! `rampart incidents` and `rampart report`: reading the event store.
//!
//! These open the store read-only (SQLite's WAL mode lets them read while a
//! running gateway writes), except `note` and `aware`, which add to an
//! incident's decision log.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use rampart_incidents::export::Format;
use rampart_incidents::report::ReportInput;
use rampart_incidents::store::Store;
use rampart_incidents::{Decision, Incident};

use crate::Switch;

/// `rampart incidents`: the list, or one of its subcommands.
#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Incidents {
    #[command(subcommand)]
    action: Option<Action>,
    #[command(flatten)]
    store: StoreArgs,
    /// Print the list as JSON
    #[arg(long, value_name = "on|off", hide_possible_values = true)]
    json: Option<Switch>,
}

#[derive(Subcommand)]
enum Action {
    /// The incident's report, as Markdown, on the terminal
    Show {
        /// The incident, e.g. INC-3 (or 3)
        #[arg(value_parser = incident_id)]
        id: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Add to the incident's decision log
    Note {
        /// The incident, e.g. INC-3 (or 3)
        #[arg(value_parser = incident_id)]
        id: i64,
        /// The note, e.g. "Reported to the NCSC"
        #[arg(required_unless_present = "told")]
        text: Option<String>,
        /// Whom you told about the incident, e.g. NCSC or ICO
        #[arg(long, value_name = "PARTY")]
        told: Option<String>,
        /// Who decided (default: $USER)
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set when you became aware of the incident; the ICO deadline moves with it
    Aware {
        /// The incident, e.g. INC-3 (or 3)
        #[arg(value_parser = incident_id)]
        id: i64,
        /// A UTC time, e.g. 2026-11-29T10:15Z
        #[arg(long, value_name = "TIME", value_parser = utc_time)]
        at: i64,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `rampart report`: one incident's report or export.
#[derive(Args)]
pub struct Report {
    /// The incident, e.g. INC-3 (or 3)
    #[arg(value_parser = incident_id)]
    id: i64,
    /// The format: md (or markdown), html, json, stix or misp
    #[arg(long, value_name = "md|html|json|stix|misp", default_value = "md")]
    format: Format,
    /// Write the report to FILE instead of standard output
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
    /// The organisation named in the report (default: from the configuration)
    #[arg(long, value_name = "NAME")]
    organisation: Option<String>,
    /// Its contact (default: from the configuration)
    #[arg(long, value_name = "TEXT")]
    contact: Option<String>,
    /// Its sector (default: from the configuration)
    #[arg(long, value_name = "TEXT")]
    sector: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
}

/// Which event store to read.
#[derive(Args)]
struct StoreArgs {
    /// The event store (default: the one the configuration records to, else
    /// the one a gateway without a configuration uses)
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    store: Option<PathBuf>,
    /// The gateway's configuration: its event store and organisation
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

/// The store named by `--store`, or the one the configuration (`--config`)
/// records to, or the one a gateway without a configuration uses.
fn store_path(flags: &StoreArgs) -> Result<(PathBuf, Option<rampart_gateway::Config>)> {
    match (&flags.store, &flags.config) {
        (Some(path), _) => Ok((path.clone(), None)),
        (None, Some(path)) => {
            let config = rampart_gateway::Config::load(path).map_err(|e| anyhow!("{e}"))?;
            Ok((
                rampart_gateway::incidents::store_path(&config),
                Some(config),
            ))
        }
        (None, None) => Ok((rampart_gateway::incidents::default_store_path(), None)),
    }
}

fn open(flags: &StoreArgs, write: bool) -> Result<(Store, Option<rampart_gateway::Config>)> {
    let (path, config) = store_path(flags)?;
    if !path.exists() {
        bail!("no event store at {}; start the gateway first, or point at one with --store FILE or --config FILE", path.display());
    }
    let store = if write {
        Store::open(&path)
    } else {
        Store::open_read_only(&path)
    };
    Ok((store.map_err(|e| anyhow!("{e}"))?, config))
}

/// Accepts `INC-12` or `12`.
fn incident_id(text: &str) -> Result<i64> {
    text.trim_start_matches("INC-")
        .trim_start_matches("inc-")
        .parse()
        .map_err(|_| {
            anyhow!(
                "`{text}` is not an incident id; use the id from `rampart incidents`, e.g. INC-3"
            )
        })
}

fn find(store: &Store, id: i64) -> Result<Incident> {
    store
        .incident(id)
        .map_err(|e| anyhow!("{e}"))?
        .ok_or_else(|| anyhow!("there is no incident INC-{id}; `rampart incidents` lists them"))
}

/// A UTC time such as 2026-11-29T10:15Z, in milliseconds.
fn utc_time(text: &str) -> Result<i64> {
    rampart_incidents::report::parse_time(text)
        .ok_or_else(|| anyhow!("use a UTC time like 2026-11-29T10:15Z"))
}

pub fn incidents(args: Incidents) -> Result<ExitCode> {
    match args.action {
        None => list(&args.store, args.json == Some(Switch::On)),
        Some(Action::Show { id, store }) => show_one(id, &store),
        Some(Action::Note {
            id,
            text,
            told,
            by,
            store,
        }) => add_note(id, text, told, by, &store),
        Some(Action::Aware { id, at, store }) => set_aware(id, at, &store),
    }
}

fn list(flags: &StoreArgs, json: bool) -> Result<ExitCode> {
    let (store, _) = open(flags, false)?;
    let incidents = store.incidents().map_err(|e| anyhow!("{e}"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&incidents)?);
        return Ok(ExitCode::SUCCESS);
    }
    if incidents.is_empty() {
        println!("no incidents recorded");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8} {:<7} {:<9} {:<17} {:<17} {:>9} {:>9}  title",
        "id", "status", "severity", "first event (UTC)", "last event (UTC)", "requests", "blocked"
    );
    for i in &incidents {
        println!(
            "{:<8} {:<7} {:<9} {:<17} {:<17} {:>9} {:>9}  {}",
            i.reference(),
            i.status.to_string(),
            i.severity.to_string(),
            rampart_incidents::report::human_time(i.first_event),
            rampart_incidents::report::human_time(i.last_event),
            i.requests,
            i.blocked,
            i.title
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show_one(id: i64, flags: &StoreArgs) -> Result<ExitCode> {
    let (store, config) = open(flags, false)?;
    let incident = find(&store, id)?;
    let organisation =
        rampart_gateway::incidents::organisation(config.as_ref().map(|c| &c.incidents));
    let timeline =
        rampart_gateway::incidents::timeline(&store, &incident).map_err(|e| anyhow!("{e}"))?;
    let input = ReportInput {
        incident: &incident,
        timeline: &timeline,
        organisation: &organisation,
        generated_at: rampart_gateway::incidents::now_ms(),
    };
    print!("{}", rampart_incidents::report::markdown(&input));
    Ok(ExitCode::SUCCESS)
}

/// The incident's traffic over time, in at most 60 buckets of at least one
/// second each (the gateway samples traffic once a second, so a finer
/// bucket would show every other one empty).
fn add_note(
    id: i64,
    text: Option<String>,
    told: Option<String>,
    by: Option<String>,
    flags: &StoreArgs,
) -> Result<ExitCode> {
    // clap asks for the text unless --told is given, so one of them is here.
    let text = text.unwrap_or_else(|| {
        format!(
            "{} told about the incident",
            told.as_deref().unwrap_or_default()
        )
    });
    let (mut store, _) = open(flags, true)?;
    find(&store, id)?;
    let by = by
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let decision = Decision {
        at: rampart_gateway::incidents::now_ms(),
        by,
        text,
        told,
    };
    store
        .add_decision(id, &decision)
        .map_err(|e| anyhow!("{e}"))?;
    println!("noted on INC-{id}");
    Ok(ExitCode::SUCCESS)
}

fn set_aware(id: i64, millis: i64, flags: &StoreArgs) -> Result<ExitCode> {
    let (mut store, _) = open(flags, true)?;
    find(&store, id)?;
    store.set_aware_at(id, millis).map_err(|e| anyhow!("{e}"))?;
    println!(
        "INC-{id}: aware from {}; the ICO deadline moves with it",
        rampart_incidents::report::human_time(millis)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn report(flags: Report) -> Result<ExitCode> {
    let id = flags.id;
    let (store, config) = open(&flags.store, false)?;
    let incident = find(&store, id)?;
    let mut organisation =
        rampart_gateway::incidents::organisation(config.as_ref().map(|c| &c.incidents));
    if let Some(name) = flags.organisation {
        organisation.name = name;
    }
    if let Some(contact) = flags.contact {
        organisation.contact = contact;
    }
    if let Some(sector) = flags.sector {
        organisation.sector = sector;
    }
    let timeline =
        rampart_gateway::incidents::timeline(&store, &incident).map_err(|e| anyhow!("{e}"))?;
    let input = ReportInput {
        incident: &incident,
        timeline: &timeline,
        organisation: &organisation,
        generated_at: rampart_gateway::incidents::now_ms(),
    };
    let text = rampart_incidents::export::render(&input, flags.format);
    match flags.out {
        Some(path) => {
            std::fs::write(&path, &text).with_context(|| format!("cannot write {path}"))?;
            eprintln!("rampart: wrote {} ({} bytes)", path, text.len());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
