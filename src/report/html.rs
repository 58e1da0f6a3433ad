//! The report as one HTML file: the data as JSON in the page, uPlot (vendored, MIT) and the
//! page's own script and style inlined, the host graph drawn here as SVG. Nothing is fetched:
//! the file opens offline, from disk or a mail attachment.

use super::ReportData;
use crate::config::units::format_bytes_decimal;
use std::fmt::Write;

const UPLOT_JS: &str = include_str!("vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("vendor/uPlot.min.css");
const PAGE_JS: &str = include_str!("page.js");
const PAGE_CSS: &str = include_str!("page.css");
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];
const OTHER: &str = "#7f7f7f";

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn color(group: Option<usize>) -> &'static str {
    group.map_or(OTHER, |g| PALETTE[g % PALETTE.len()])
}

/// The graph as SVG: edges under nodes, a `<title>` on each for hover, labels on the larger
/// nodes.
fn svg(d: &ReportData) -> String {
    let g = &d.graph;
    let mut s = String::from(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000 1000" role="img" aria-label="host conversation graph">"#,
    );
    for e in &g.edges {
        let (a, b) = (&g.nodes[e.a], &g.nodes[e.b]);
        let _ = write!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="{:.2}"><title>{} - {}: {}{}</title></line>"#,
            a.x,
            a.y,
            b.x,
            b.y,
            color(e.group),
            e.width,
            escape(&a.label),
            escape(&b.label),
            format_bytes_decimal(e.bytes),
            e.group
                .and_then(|i| d.groups.get(i))
                .map(|n| format!(", mostly {}", escape(n)))
                .unwrap_or_default()
        );
    }
    for n in &g.nodes {
        let _ = write!(
            s,
            r#"<circle cx="{:.1}" cy="{:.1}" r="{:.1}" fill="{}"{}><title>{}{}: {}{}</title></circle>"#,
            n.x,
            n.y,
            n.r,
            color(n.group),
            if n.lan { r#" class="lan""# } else { "" },
            escape(&n.label),
            if n.lan { " (LAN)" } else { "" },
            format_bytes_decimal(n.bytes),
            n.group
                .and_then(|i| d.groups.get(i))
                .map(|g| format!(", mostly {}", escape(g)))
                .unwrap_or_default()
        );
    }
    for n in g.nodes.iter().filter(|n| n.r >= 10.0) {
        // Right of the node, or left of it near the right edge.
        let (x, anchor) = if n.x > 820.0 {
            (n.x - n.r - 3.0, "end")
        } else {
            (n.x + n.r + 3.0, "start")
        };
        let _ = write!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="{anchor}">{}</text>"#,
            n.y + 4.0,
            escape(&n.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// The whole page.
pub fn render(d: &ReportData) -> String {
    // JSON inside a script element: only `</` could end it early.
    let json = serde_json::to_string(d)
        .unwrap_or_else(|_| "{}".into())
        .replace("</", "<\\/");
    let mut groups = String::new();
    for (i, name) in d.groups.iter().enumerate() {
        let _ = write!(
            groups,
            r#"<span><i class="legend-chip" style="background:{}"></i>{}</span>"#,
            PALETTE[i % PALETTE.len()],
            escape(name)
        );
    }
    let _ = write!(
        groups,
        r#"<span><i class="legend-chip" style="background:{OTHER}"></i>other</span>"#
    );
    let merged = if d.graph.merged_hosts > 0 {
        format!(
            " The {} busiest hosts are drawn; {} others are the one grey node.",
            d.graph.nodes.len() - 1,
            d.graph.merged_hosts
        )
    } else {
        String::new()
    };
    let title = format!(
        "weir report: {}{}",
        d.capture,
        d.config
            .as_deref()
            .map(|c| format!(" through {c}"))
            .unwrap_or_default()
    );
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="weir {version}">
<title>{title}</title>
<style>{uplot_css}</style>
<style>{page_css}</style>
</head><body>
<header><h1>weir report</h1><p>{subtitle}</p></header>
<nav><a href="#summary">Summary</a><a href="#rates">Rates</a><a href="#delay">Delay</a><a href="#drops">Drops</a><a href="#apps">Applications</a><a href="#talkers">Top talkers</a><a href="#flows">Top flows</a><a href="#graph">Who talks to whom</a></nav>
<section id="summary"><h2>Summary</h2><div id="summary-body"></div></section>
<section id="rates"><h2>Rate over time</h2>
<p class="note">Bits per second of frame bytes in each interval of capture time: offered (dashed: what arrived, before shaping) and forwarded (solid: what left). Drag across a chart to zoom in, double-click to zoom out; click a legend entry to hide or show it.</p>
<div id="rates-body" class="charts"></div></section>
<section id="delay"><h2>Queueing delay</h2>
<p class="note">The time frames waited in weir's queues: p99 (solid) and median (dashed) of the frames that left in each interval, then each class's distribution over the whole capture.</p>
<div id="delay-body" class="charts"></div></section>
<section id="drops"><h2>Drops</h2><div id="drops-body" class="charts"></div></section>
<section id="apps"><h2>Applications and protocols</h2>
<p class="note">Over the flows the flow table held at the end: the protocol told from payload, else the port table's name. Click a column to sort.</p>
<div id="apps-body"></div></section>
<section id="talkers"><h2>Top talkers</h2><p class="note">Every IP frame, by address; the busiest {top_hosts} hosts.</p><div id="talkers-body"></div></section>
<section id="flows"><h2>Top flows</h2><p class="note">The largest {top_flows} flows of those held at the end.</p><div id="flows-body"></div></section>
<section id="graph"><h2>Who talks to whom</h2>
<p class="note">Hosts by the bytes they sent and received (area), conversations by bytes (width), coloured by the {groups_by} that carried most of them; LAN hosts ringed. Hover for details, scroll to zoom, drag to move, double-click to reset.{merged}</p>
<p class="groups">{groups}</p>
<div id="graph-box">{svg}</div></section>
<pre id="selftest" hidden></pre>
<script type="application/json" id="weir-data">{json}</script>
<script>{uplot_js}</script>
<script>{page_js}</script>
</body></html>
"##,
        version = env!("CARGO_PKG_VERSION"),
        title = escape(&title),
        subtitle = escape(&title["weir report: ".len()..]),
        uplot_css = UPLOT_CSS,
        page_css = PAGE_CSS,
        top_hosts = d.hosts.len(),
        top_flows = d.flows.len(),
        groups_by = d.groups_by,
        merged = merged,
        groups = groups,
        svg = svg(d),
        json = json,
        uplot_js = UPLOT_JS,
        page_js = PAGE_JS,
    )
}
