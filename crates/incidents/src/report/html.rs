//! The report as a standalone HTML page, with its timeline chart.

use super::document::{document, Block, Inline, Line, HANDLING};
use super::sections_of;
use super::{ReportInput, TimelinePoint};
use crate::model::{Incident, Millis};
use crate::scrub::scrubbed;
use crate::time::{civil, date, human_time};
use crate::words::{count, rate};
use rampart_escape::push_html;
use std::fmt::Write as _;

fn html_line(line: &Line, out: &mut String) {
    for inline in &line.0 {
        match inline {
            Inline::Text(s) => push_html(s, out),
            Inline::Code(s) => {
                out.push_str("<code>");
                push_html(s, out);
                out.push_str("</code>");
            }
            Inline::Strong(s) => {
                out.push_str("<strong>");
                push_html(s, out);
                out.push_str("</strong>");
            }
        }
    }
}

const CSS: &str = "body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;color:#1f2328;background:#fff;margin:0}\
main{max-width:60rem;margin:0 auto;padding:1.5rem}\
h1{font-size:1.6rem;margin:0 0 .5rem}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}\
h3{font-size:1.05rem;margin-bottom:.3rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem;width:100%}th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td:first-child{white-space:nowrap}code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;background:#f6f8fa;padding:.1rem .3rem;border-radius:4px}\
.tlp{display:inline-block;background:#000;color:#ffc000;font-weight:600;padding:.1rem .5rem;border-radius:3px}\
svg{max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;fill:#57606a}\
@media print{main{max-width:none}h2{break-after:avoid}table,svg{break-inside:avoid}}";

/// The report as one standalone HTML page: inline CSS, no scripts, no
/// external assets (a Content-Security-Policy says so too), and the timeline
/// drawn as inline SVG.
pub fn html(input: &ReportInput) -> String {
    let incident = scrubbed(input.incident);
    let s = sections_of(&incident, input);
    let mut out = String::with_capacity(32 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    out.push_str(
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
    );
    push_html(
        &format!(
            "{} {} — incident report",
            incident.reference(),
            incident.title
        ),
        &mut out,
    );
    out.push_str("</title>\n<style>");
    out.push_str(CSS);
    out.push_str("</style>\n</head>\n<body>\n<main>\n");
    for block in document(&incident, input, &s) {
        match block {
            Block::Title(t) => {
                out.push_str("<h1>");
                push_html(&t, &mut out);
                out.push_str("</h1>\n");
            }
            Block::Heading(t) => {
                out.push_str("<h2>");
                push_html(&t, &mut out);
                out.push_str("</h2>\n");
            }
            Block::Subheading(t) => {
                out.push_str("<h3>");
                push_html(&t, &mut out);
                out.push_str("</h3>\n");
            }
            Block::Para(line) => {
                out.push_str("<p>");
                html_line(&line, &mut out);
                out.push_str("</p>\n");
            }
            Block::Handling => {
                let _ = writeln!(
                    out,
                    "<p>Handling: <span class=\"tlp\">TLP:AMBER</span> ({HANDLING}).</p>"
                );
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in &items {
                    out.push_str("<li>");
                    html_line(item, &mut out);
                    out.push_str("</li>\n");
                }
                out.push_str("</ul>\n");
            }
            Block::Table { head, rows } => {
                out.push_str("<table>\n<thead><tr>");
                for h in &head {
                    out.push_str("<th>");
                    push_html(h, &mut out);
                    out.push_str("</th>");
                }
                out.push_str("</tr></thead>\n<tbody>\n");
                for row in &rows {
                    out.push_str("<tr>");
                    for cell in row {
                        out.push_str("<td>");
                        push_html(cell, &mut out);
                        out.push_str("</td>");
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</tbody>\n</table>\n");
            }
            Block::Chart => chart_svg(&incident, input.timeline, &mut out),
        }
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// `10 s`, `1 min`: the bucket size, from the smallest gap between points.
fn bucket_words(timeline: &[TimelinePoint]) -> Option<String> {
    let gap = timeline
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .filter(|&g| g > 0)
        .min()?;
    Some(if gap % 60_000 == 0 {
        format!("{} min", gap / 60_000)
    } else {
        format!("{} s", (gap + 999) / 1000)
    })
}

/// Tick times for a span: multiples of a round step (1 minute to 1 day),
/// at most seven of them; the start alone for a span under a minute.
fn time_ticks(t0: Millis, t1: Millis) -> Vec<Millis> {
    const STEPS_MIN: [i64; 12] = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];
    let span = t1 - t0;
    if span < 60_000 {
        return vec![t0];
    }
    let step = STEPS_MIN
        .iter()
        .map(|m| m * 60_000)
        .find(|&s| span / s <= 6)
        .unwrap_or(1440 * 60_000 * (span / (1440 * 60_000 * 6) + 1));
    let first = t0 + (step - t0.rem_euclid(step)) % step;
    (0..)
        .map(|i| first + i * step)
        .take_while(|&t| t <= t1)
        .collect()
}

/// A round axis maximum at or above `max`, and its tick step: 1, 2 or 5 times
/// a power of ten, four or five ticks.
fn nice_axis(max: u64) -> (u64, u64) {
    let max = max.max(1);
    let raw = max.div_ceil(4);
    let mut magnitude = 1u64;
    while magnitude.saturating_mul(10) <= raw {
        magnitude *= 10;
    }
    let step = [1, 2, 5, 10]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw)
        .unwrap_or(10 * magnitude);
    (step * max.div_ceil(step), step)
}

fn chart_svg(incident: &Incident, timeline: &[TimelinePoint], out: &mut String) {
    if timeline.is_empty() {
        out.push_str("<p>No traffic samples were recorded for this incident's time span, so there is no chart.</p>\n");
        return;
    }
    const W: f64 = 760.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 64.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 34.0;
    const BOTTOM: f64 = 48.0;
    let mut points: Vec<&TimelinePoint> = timeline.iter().collect();
    points.sort_by_key(|p| p.at);
    let t0 = points[0].at;
    let t1 = points[points.len() - 1].at.max(t0 + 1);
    let series_max = points
        .iter()
        .map(|p| {
            p.requests
                .max(p.blocked)
                .max(p.challenged + p.limited)
                .max(p.upstream_errors)
        })
        .max()
        .unwrap_or(0);
    let (y_max, y_step) = nice_axis(series_max);
    let x = |at: Millis| LEFT + (at - t0) as f64 / (t1 - t0) as f64 * (W - LEFT - RIGHT);
    let y = |v: u64| TOP + (1.0 - v as f64 / y_max as f64) * (H - TOP - BOTTOM);
    let bucket = bucket_words(timeline).unwrap_or_else(|| "sample".into());

    let _ = write!(
        out,
        "<figure>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-labelledby=\"chart-title\">\n<title id=\"chart-title\">"
    );
    push_html(
        &format!(
            "Requests, blocked and challenged or limited per {bucket} for {}, times in UTC",
            incident.reference()
        ),
        out,
    );
    out.push_str("</title>\n");
    // Grid and y axis.
    let mut v = 0;
    while v <= y_max {
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#eaeef2\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            y(v),
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            count(v)
        );
        v += y_step;
    }
    let _ = writeln!(
        out,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">requests per {bucket}</text>",
        TOP + (H - TOP - BOTTOM) / 2.0,
        TOP + (H - TOP - BOTTOM) / 2.0
    );
    // X axis: ticks on round UTC times, with the date when the span crosses days.
    let multi_day = date(t0) != date(t1);
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#8c959f\"/>",
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    for at in time_ticks(t0, t1) {
        let label = civil(at).strftime(if multi_day { "%m-%d %H:%M" } else { "%H:%M" });
        let _ = writeln!(
            out,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#8c959f\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            x(at),
            x(at),
            H - BOTTOM,
            H - BOTTOM + 4.0,
            x(at),
            H - BOTTOM + 16.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">time (UTC){}</text>",
        LEFT + (W - LEFT - RIGHT) / 2.0,
        H - 8.0,
        if multi_day {
            String::new()
        } else {
            format!(", {}", date(t0))
        }
    );
    // Series.
    let show_upstream = points.iter().any(|p| p.upstream_errors > 0);
    type Series = (&'static str, &'static str, fn(&TimelinePoint) -> u64);
    let mut series: Vec<Series> = vec![
        ("requests", "#0969da", |p| p.requests),
        ("blocked", "#cf222e", |p| p.blocked),
        ("challenged or limited", "#bf8700", |p| {
            p.challenged + p.limited
        }),
    ];
    if show_upstream {
        series.push(("upstream errors", "#8250df", |p| p.upstream_errors));
    }
    let mut legend_x = LEFT;
    for (name, colour, value) in &series {
        out.push_str("<polyline fill=\"none\" stroke=\"");
        out.push_str(colour);
        out.push_str("\" stroke-width=\"2\" stroke-linejoin=\"round\" points=\"");
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{:.1},{:.1}", x(p.at), y(value(p)));
        }
        out.push_str("\"/>\n");
        let _ = writeln!(
            out,
            "<rect x=\"{legend_x:.1}\" y=\"10\" width=\"12\" height=\"4\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"16\">{name}</text>",
            legend_x + 16.0
        );
        legend_x += 28.0 + 6.0 * name.len() as f64;
    }
    // The peak: the incident's peak time when it falls in the chart, else the
    // busiest point.
    let busiest = points
        .iter()
        .max_by_key(|p| p.requests)
        .map(|p| p.at)
        .unwrap_or(t0);
    let peak_at = if incident.peak_rps > 0.0 && (t0..=t1).contains(&incident.peak_at) {
        incident.peak_at
    } else {
        busiest
    };
    let peak_point = points
        .iter()
        .min_by_key(|p| (p.at - peak_at).abs())
        .map_or(0, |p| p.requests);
    let label = if incident.peak_rps > 0.0 {
        format!(
            "peak {} req/s, {}",
            rate(incident.peak_rps),
            human_time(peak_at)
        )
    } else {
        format!("busiest, {}", human_time(peak_at))
    };
    let px = x(peak_at);
    let anchor = if px > W * 0.7 { "end" } else { "start" };
    let dx = if anchor == "end" { -4.0 } else { 4.0 };
    let _ = writeln!(
        out,
        "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#1f2328\" stroke-dasharray=\"4 3\"/><circle cx=\"{px:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#1f2328\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\" style=\"fill:#1f2328\">{}</text>",
        H - BOTTOM,
        y(peak_point),
        px + dx,
        TOP + 12.0,
        label
    );
    out.push_str("</svg>\n<figcaption>");
    push_html(
        &format!("Traffic per {bucket} in UTC; the dashed line marks the peak."),
        out,
    );
    out.push_str("</figcaption>\n</figure>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_are_round() {
        assert_eq!(nice_axis(0), (1, 1));
        let (max, step) = nice_axis(950);
        assert!(
            max >= 950 && max % step == 0 && max / step <= 5,
            "{max} {step}"
        );
        let (max, step) = nice_axis(7);
        assert!(max >= 7 && max / step <= 5, "{max} {step}");
    }

    #[test]
    fn time_ticks_fall_on_round_minutes() {
        let t0 = 1_795_910_400_000 + (9 * 60 + 58) * 60_000; // 09:58
        let ticks = time_ticks(t0, t0 + 42 * 60_000); // to 10:40
        let labels: Vec<String> = ticks
            .iter()
            .map(|&t| human_time(t)[11..16].to_string())
            .collect();
        assert_eq!(labels, ["10:00", "10:10", "10:20", "10:30", "10:40"]);
        assert_eq!(time_ticks(t0, t0 + 5_000), vec![t0]);
        assert!(time_ticks(t0, t0 + 30 * 86_400_000).len() <= 7);
    }
}
