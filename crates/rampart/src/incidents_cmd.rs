//! `rampart incidents` and `rampart report`: reading the event store.
//!
//! These open the store read-only (SQLite's WAL mode lets them read while a
//! running gateway writes), except `note` and `aware`, which add to an
//! incident's decision log.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use rampart_incidents::report::{Organisation, ReportInput};
use rampart_incidents::store::Store;
use rampart_incidents::{Decision, Incident};

use crate::Flags;

/// The store named by `--store`, or the one the configuration (`--config`)
/// records to, or the one a gateway without a configuration uses.
fn store_path(flags: &Flags) -> Result<(PathBuf, Option<rampart_gateway::Config>)> {
    match (flags.get("--store"), flags.get("--config")) {
        (Some(_), Some(_)) => bail!("give either --store or --config, not both"),
        (Some(path), None) => Ok((PathBuf::from(path), None)),
        (None, Some(path)) => {
            let config =
                rampart_gateway::Config::load(&PathBuf::from(path)).map_err(|e| anyhow!("{e}"))?;
            Ok((
                rampart_gateway::incidents::store_path(&config),
                Some(config),
            ))
        }
        (None, None) => Ok((rampart_gateway::incidents::default_store_path(), None)),
    }
}

fn open(flags: &Flags, write: bool) -> Result<(Store, Option<rampart_gateway::Config>)> {
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

pub fn incidents(args: &[String]) -> Result<ExitCode> {
    let positional: Vec<&String> = args.iter().take_while(|a| !a.starts_with("--")).collect();
    let rest = &args[positional.len()..];
    match positional.as_slice() {
        [] => list(&Flags::parse(rest, &["--store", "--config", "--json"])?),
        [show, id] if show.as_str() == "show" => show_one(incident_id(id)?, &Flags::parse(rest, &["--store", "--config"])?),
        [note, id, text] if note.as_str() == "note" => add_note(incident_id(id)?, Some(text.as_str()), &Flags::parse(rest, &["--store", "--config", "--told", "--by"])?),
        [note, id] if note.as_str() == "note" => add_note(incident_id(id)?, None, &Flags::parse(rest, &["--store", "--config", "--told", "--by"])?),
        [aware, id] if aware.as_str() == "aware" => set_aware(incident_id(id)?, &Flags::parse(rest, &["--store", "--config", "--at"])?),
        _ => bail!(
            "use `rampart incidents` (list), `rampart incidents show ID`, `rampart incidents note ID \"TEXT\" [--told PARTY] [--by NAME]` or `rampart incidents aware ID --at 2026-11-29T10:15Z`"
        ),
    }
}

fn list(flags: &Flags) -> Result<ExitCode> {
    let (store, _) = open(flags, false)?;
    let incidents = store.incidents().map_err(|e| anyhow!("{e}"))?;
    if flags
        .get("--json")
        .is_some_and(|v| v == "on" || v == "true")
    {
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
            format!("{:?}", i.status).to_lowercase(),
            format!("{:?}", i.severity).to_lowercase(),
            rampart_incidents::report::human_time(i.first_event),
            rampart_incidents::report::human_time(i.last_event),
            i.requests,
            i.blocked,
            i.title
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show_one(id: i64, flags: &Flags) -> Result<ExitCode> {
    let (store, config) = open(flags, false)?;
    let incident = find(&store, id)?;
    let organisation = organisation(config.as_ref());
    let timeline = timeline(&store, &incident)?;
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
fn timeline(
    store: &Store,
    incident: &Incident,
) -> Result<Vec<rampart_incidents::store::TimelinePoint>> {
    let from = incident.first_event - incident.first_event.rem_euclid(1000);
    let to = incident.last_event.max(from) + 1000 - incident.last_event.rem_euclid(1000);
    let buckets = ((to - from) / 1000).clamp(1, 60) as usize;
    store
        .timeline(&incident.site, from, to, buckets)
        .map_err(|e| anyhow!("{e}"))
}

fn add_note(id: i64, text: Option<&str>, flags: &Flags) -> Result<ExitCode> {
    let told = flags.get("--told");
    let text = match (text, told) {
        (Some(t), _) => t.to_string(),
        (None, Some(party)) => format!("{party} told about the incident"),
        (None, None) => bail!("give the note's text, or --told PARTY, e.g. `rampart incidents note INC-3 \"Reported to the NCSC\" --told NCSC`"),
    };
    let (mut store, _) = open(flags, true)?;
    find(&store, id)?;
    let by = flags
        .get("--by")
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into());
    let decision = Decision {
        at: rampart_gateway::incidents::now_ms(),
        by,
        text,
        told: told.map(str::to_string),
    };
    store
        .add_decision(id, &decision)
        .map_err(|e| anyhow!("{e}"))?;
    println!("noted on INC-{id}");
    Ok(ExitCode::SUCCESS)
}

fn set_aware(id: i64, flags: &Flags) -> Result<ExitCode> {
    let at = flags
        .get("--at")
        .ok_or_else(|| anyhow!("give --at TIME (UTC), e.g. --at 2026-11-29T10:15Z"))?;
    let millis = rampart_incidents::report::parse_time(at)
        .ok_or_else(|| anyhow!("--at `{at}`: use a UTC time like 2026-11-29T10:15Z"))?;
    let (mut store, _) = open(flags, true)?;
    find(&store, id)?;
    store.set_aware_at(id, millis).map_err(|e| anyhow!("{e}"))?;
    println!(
        "INC-{id}: aware from {}; the ICO deadline moves with it",
        rampart_incidents::report::human_time(millis)
    );
    Ok(ExitCode::SUCCESS)
}

fn organisation(config: Option<&rampart_gateway::Config>) -> Organisation {
    let mut organisation = Organisation::default();
    if let Some(settings) = config.map(|c| &c.incidents) {
        if !settings.organisation.is_empty() {
            organisation.name = settings.organisation.clone();
        }
        if !settings.contact.is_empty() {
            organisation.contact = settings.contact.clone();
        }
        if !settings.sector.is_empty() {
            organisation.sector = settings.sector.clone();
        }
    }
    organisation
}

pub fn report(args: &[String]) -> Result<ExitCode> {
    let positional: Vec<&String> = args.iter().take_while(|a| !a.starts_with("--")).collect();
    let [id] = positional.as_slice() else {
        bail!("use `rampart report ID --format md|html|json|stix|misp [--out FILE]`");
    };
    let id = incident_id(id)?;
    let flags = Flags::parse(
        &args[positional.len()..],
        &[
            "--store",
            "--config",
            "--format",
            "--out",
            "--organisation",
            "--contact",
            "--sector",
        ],
    )?;
    let format: rampart_incidents::export::Format =
        flags
            .get("--format")
            .unwrap_or("md")
            .parse()
            .map_err(|e: rampart_incidents::export::UnknownFormat| anyhow!("--format: {e}"))?;
    let (store, config) = open(&flags, false)?;
    let incident = find(&store, id)?;
    let mut organisation = organisation(config.as_ref());
    if let Some(name) = flags.get("--organisation") {
        organisation.name = name.to_string();
    }
    if let Some(contact) = flags.get("--contact") {
        organisation.contact = contact.to_string();
    }
    if let Some(sector) = flags.get("--sector") {
        organisation.sector = sector.to_string();
    }
    let timeline = timeline(&store, &incident)?;
    let input = ReportInput {
        incident: &incident,
        timeline: &timeline,
        organisation: &organisation,
        generated_at: rampart_gateway::incidents::now_ms(),
    };
    let text = rampart_incidents::export::render(&input, format);
    match flags.get("--out") {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("cannot write {path}"))?;
            eprintln!("rampart: wrote {} ({} bytes)", path, text.len());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
