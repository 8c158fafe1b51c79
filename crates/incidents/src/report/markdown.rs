//! The report as Markdown.

use super::document::{document, Block, Inline, Line, HANDLING};
use super::sections_of;
use super::{ReportInput, TimelinePoint};
use crate::scrub::scrubbed;
use crate::time::human_time;
use crate::words::count;
use std::fmt::Write as _;

fn md_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' | '`' | '*' | '<' | '>' | '[' | ']' | '|' | '#' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            _ => out.push(c),
        }
    }
}

fn md_line(line: &Line, out: &mut String) {
    for inline in &line.0 {
        match inline {
            Inline::Text(s) => md_escape(s, out),
            Inline::Code(s) => {
                out.push('`');
                out.push_str(&s.replace('`', "'"));
                out.push('`');
            }
            Inline::Strong(s) => {
                out.push_str("**");
                md_escape(s, out);
                out.push_str("**");
            }
        }
    }
}

/// At most this many rows of traffic in the Markdown report: an hour at one
/// a minute; longer timelines are summed into wider buckets.
const MARKDOWN_TIMELINE_ROWS: usize = 60;

/// The timeline in time order, consecutive points summed so that at most
/// `max_rows` remain (each row starts at its first point's time).
fn condensed(timeline: &[TimelinePoint], max_rows: usize) -> Vec<TimelinePoint> {
    let mut points = timeline.to_vec();
    points.sort_by_key(|p| p.at);
    let group = points.len().div_ceil(max_rows.max(1)).max(1);
    points
        .chunks(group)
        .map(|chunk| TimelinePoint {
            at: chunk[0].at,
            requests: chunk.iter().map(|p| p.requests).sum(),
            blocked: chunk.iter().map(|p| p.blocked).sum(),
            challenged: chunk.iter().map(|p| p.challenged).sum(),
            limited: chunk.iter().map(|p| p.limited).sum(),
            upstream_errors: chunk.iter().map(|p| p.upstream_errors).sum(),
        })
        .collect()
}

/// The report as Markdown (CommonMark with pipe tables). The timeline chart
/// is in the HTML report only; the Markdown has the same points as a table.
pub fn markdown(input: &ReportInput) -> String {
    let incident = scrubbed(input.incident);
    let s = sections_of(&incident, input);
    let mut out = String::new();
    for block in document(&incident, input, &s) {
        match block {
            Block::Title(t) => {
                out.push_str("# ");
                md_escape(&t, &mut out);
                out.push_str("\n\n");
            }
            Block::Heading(t) => {
                out.push_str("## ");
                md_escape(&t, &mut out);
                out.push_str("\n\n");
            }
            Block::Subheading(t) => {
                out.push_str("### ");
                md_escape(&t, &mut out);
                out.push_str("\n\n");
            }
            Block::Para(line) => {
                md_line(&line, &mut out);
                out.push_str("\n\n");
            }
            Block::List(items) => {
                for item in &items {
                    out.push_str("- ");
                    md_line(item, &mut out);
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Table { head, rows } => {
                out.push('|');
                for h in &head {
                    out.push(' ');
                    md_escape(h, &mut out);
                    out.push_str(" |");
                }
                out.push_str("\n|");
                for _ in &head {
                    out.push_str(" --- |");
                }
                out.push('\n');
                for row in &rows {
                    out.push('|');
                    for cell in row {
                        out.push(' ');
                        md_escape(cell, &mut out);
                        out.push_str(" |");
                    }
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Handling => {
                let _ = writeln!(out, "Handling: **TLP:AMBER** ({HANDLING}).\n");
            }
            Block::Chart => {
                if !input.timeline.is_empty() {
                    let points = condensed(input.timeline, MARKDOWN_TIMELINE_ROWS);
                    out.push_str("Traffic over time (the HTML report draws this as a chart):\n\n");
                    out.push_str("| Time (UTC) | Requests | Blocked | Challenged | Limited | Upstream errors |\n");
                    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
                    for p in &points {
                        let _ = writeln!(
                            out,
                            "| {} | {} | {} | {} | {} | {} |",
                            human_time(p.at),
                            count(p.requests),
                            count(p.blocked),
                            count(p.challenged),
                            count(p.limited),
                            count(p.upstream_errors)
                        );
                    }
                    out.push('\n');
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_timelines_are_summed_for_markdown() {
        let points: Vec<TimelinePoint> = (0..150)
            .map(|i| TimelinePoint {
                at: i * 1000,
                requests: 1,
                blocked: 0,
                challenged: 0,
                limited: 0,
                upstream_errors: 0,
            })
            .collect();
        let rows = condensed(&points, 60);
        assert!(rows.len() <= 60);
        assert_eq!(rows.iter().map(|p| p.requests).sum::<u64>(), 150);
        assert_eq!(condensed(&points[..10], 60).len(), 10);
    }
}
