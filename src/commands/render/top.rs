//! The `weir top` screen: a pure function of a status and the view's choices, drawn with
//! ratatui (tested on its in-memory backend below).

use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table};
use ratatui::Frame;
use weir::config::units::format_rate_approx;
use weir::control::protocol::{ClassStatus, Status};

/// How the classes are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sort {
    /// As in the config (priority, then order).
    Config,
    Rate,
    Drops,
    Queue,
}

impl Sort {
    pub fn next(self) -> Sort {
        match self {
            Sort::Config => Sort::Rate,
            Sort::Rate => Sort::Drops,
            Sort::Drops => Sort::Queue,
            Sort::Queue => Sort::Config,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Sort::Config => "config",
            Sort::Rate => "rate",
            Sort::Drops => "drops",
            Sort::Queue => "queue",
        }
    }
}

/// What the user chose to look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct View {
    /// Index into the status's ports (wan first).
    pub port: usize,
    pub sort: Sort,
}

/// Eight heights of a bar, for the last minute's rates.
const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `history` as one character per second, scaled to `top`.
pub fn sparkline(history: &[u64], top: u64, width: usize) -> String {
    let top = top.max(1);
    let start = history.len().saturating_sub(width);
    let mut s: String = history[start..]
        .iter()
        .map(|&v| {
            let level = (v.min(top) as u128 * 8).div_ceil(u128::from(top)) as usize;
            LEVELS[level.min(8)]
        })
        .collect();
    while s.chars().count() < width {
        s.insert(0, ' ');
    }
    s
}

/// A bar of `width` cells: filled up to `rate` of `ceil`, with `|` where the guaranteed rate
/// is.
pub fn bar(rate: u64, guaranteed: u64, ceil: u64, width: usize) -> String {
    let ceil = ceil.max(1);
    let cells = |v: u64| ((v.min(ceil) as u128 * width as u128) / u128::from(ceil)) as usize;
    let (fill, mark) = (cells(rate), cells(guaranteed).min(width.saturating_sub(1)));
    (0..width)
        .map(|i| match (i < fill, i == mark && guaranteed < ceil) {
            (_, true) => '|',
            (true, false) => '█',
            (false, false) => '·',
        })
        .collect()
}

fn sorted(classes: &[ClassStatus], sort: Sort) -> Vec<&ClassStatus> {
    let mut v: Vec<&ClassStatus> = classes.iter().collect();
    match sort {
        Sort::Config => {}
        Sort::Rate => v.sort_by_key(|c| std::cmp::Reverse(c.rate_1s_bps)),
        Sort::Drops => v.sort_by_key(|c| std::cmp::Reverse(c.drops_1s.values().sum::<u64>())),
        Sort::Queue => v.sort_by_key(|c| std::cmp::Reverse(c.queued_bytes)),
    }
    v
}

/// Draw the screen: `status` as last read (or `None` before the first), `error` when the last
/// read failed.
pub fn draw(f: &mut Frame, status: Option<&Status>, view: View, error: Option<&str>) {
    let [head, classes_area, flows_area, keys] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(6),
        Constraint::Length(10),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let Some(s) = status else {
        f.render_widget(
            Paragraph::new(error.unwrap_or("connecting to weir...").to_string()),
            head,
        );
        return;
    };
    let port = &s.ports[view.port.min(s.ports.len().saturating_sub(1))];
    let mut lines = vec![Line::from(vec![
        Span::styled(format!("weir {}", s.weir_version), bold),
        Span::raw(format!(
            "  pid {}  up {}  config {} (generation {})  flows {} of {}",
            s.pid,
            super::status::duration(s.uptime_s),
            s.config.path,
            s.config.generation,
            s.flow_table.occupied,
            s.flow_table.capacity
        )),
    ])];
    let ports: Vec<Span> = s
        .ports
        .iter()
        .enumerate()
        .flat_map(|(i, p)| {
            let style = if i == view.port {
                bold.fg(Color::Black).bg(Color::Cyan)
            } else {
                Style::default()
            };
            [Span::styled(format!(" {} ", p.port), style), Span::raw(" ")]
        })
        .collect();
    let mut second = vec![Span::raw("port ")];
    second.extend(ports);
    second.push(Span::raw(format!(
        " {} link {}, sorted by {}{}",
        port.interface,
        format_rate_approx(port.rate_bps),
        view.sort.name(),
        error.map(|e| format!("  [{e}]")).unwrap_or_default()
    )));
    lines.push(Line::from(second));
    f.render_widget(Paragraph::new(lines), head);

    const BAR: usize = 20;
    const SPARK: usize = 30;
    let rows: Vec<Row> = sorted(&port.classes, view.sort)
        .into_iter()
        .map(|c| {
            let drops: Vec<String> = c.drops_1s.iter().map(|(k, n)| format!("{k} {n}")).collect();
            let top = c
                .ceil_bps
                .max(c.history_bps.iter().copied().max().unwrap_or(0));
            Row::new(vec![
                Cell::from(c.name.clone()),
                Cell::from(c.priority.map_or("-".into(), |p| p.to_string())),
                Cell::from(format_rate_approx(c.rate_1s_bps)),
                Cell::from(bar(c.rate_1s_bps, c.rate_bps, c.ceil_bps, BAR))
                    .style(Style::default().fg(Color::Green)),
                Cell::from(format!(
                    "{}/{}",
                    format_rate_approx(c.rate_bps),
                    format_rate_approx(c.ceil_bps)
                )),
                Cell::from(format!(
                    "{} / {}",
                    c.queued_frames,
                    super::status::bytes(c.queued_bytes)
                )),
                Cell::from(if drops.is_empty() {
                    "-".into()
                } else {
                    drops.join(" ")
                })
                .style(if drops.is_empty() {
                    Style::default()
                } else {
                    Style::default().fg(Color::Red)
                }),
                Cell::from(format!("{:.2}", c.sojourn_us.last_p99 / 1e3)),
                Cell::from(sparkline(&c.history_bps, top, SPARK))
                    .style(Style::default().fg(Color::Cyan)),
            ])
        })
        .collect();
    let header = Row::new(vec![
        "class",
        "prio",
        "now",
        "of ceil (| rate)",
        "rate/ceil",
        "queue",
        "drops/s",
        "p99 ms",
        "last minute",
    ])
    .style(bold);
    let table = Table::new(
        rows,
        [
            Constraint::Length(12),
            Constraint::Length(4),
            Constraint::Length(11),
            Constraint::Length(BAR as u16),
            Constraint::Length(21),
            Constraint::Length(16),
            Constraint::Length(22),
            Constraint::Length(7),
            Constraint::Length(SPARK as u16),
        ],
    )
    .header(header)
    .block(Block::default().borders(Borders::TOP).title(format!(
        " classes leaving by {}: received {} = forwarded {} + dropped {} + queued {} ",
        port.port,
        port.totals.received,
        port.totals.forwarded,
        port.totals.dropped,
        port.totals.queued
    )));
    f.render_widget(table, classes_area);

    let flows: Vec<Row> = s
        .top_flows
        .iter()
        .map(|fl| {
            Row::new(vec![
                fl.proto.clone(),
                fl.src.clone(),
                fl.dst.clone(),
                format!(
                    "{}/{}",
                    fl.class_up.as_deref().unwrap_or("-"),
                    fl.class_down.as_deref().unwrap_or("-")
                ),
                format_rate_approx(fl.rate_bps),
                super::status::bytes(fl.bytes_up + fl.bytes_down),
            ])
        })
        .collect();
    let flows = Table::new(
        flows,
        [
            Constraint::Length(9),
            Constraint::Length(44),
            Constraint::Length(44),
            Constraint::Length(20),
            Constraint::Length(11),
            Constraint::Length(10),
        ],
    )
    .header(
        Row::new(vec![
            "proto",
            "from",
            "to",
            "class up/down",
            "rate",
            "bytes",
        ])
        .style(bold),
    )
    .block(
        Block::default()
            .borders(Borders::TOP)
            .title(" busiest flows "),
    );
    f.render_widget(flows, flows_area);
    f.render_widget(
        Paragraph::new("p / tab: port   s: sort   q: quit   (refreshed every second)"),
        keys,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_sparklines_scale() {
        assert_eq!(bar(50, 25, 100, 10), "██|██·····");
        assert_eq!(bar(0, 100, 100, 4), "····");
        assert_eq!(bar(200, 100, 100, 4), "████");
        assert_eq!(sparkline(&[0, 50, 100], 100, 5), "   ▄█");
        assert_eq!(sparkline(&[], 100, 3), "   ");
    }
}
