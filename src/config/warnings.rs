//! What `weir check` says about a config that is valid but likely not what was meant. Warnings
//! never stop a config from loading; each points at a place in the file, as errors do.
//!
//! - **Memory reserved up front.** Queues are allocated at start-up for their packet limits,
//!   whatever the traffic: a port whose limits reserve more than [`RESERVED_BYTES_WARNING`] is
//!   named, with the classes that reserve most.
//! - **Rule order.** Per top-level `or` term of each class's rule: a term that can never match,
//!   one whose every frame earlier classes take, and one that a broad port rule of an earlier
//!   class partly takes (the analysis and what it proves: [`crate::classify::rule::overlap`]).

use super::locate::{Locator, Position};
use super::plan::ClassSource;
use super::units::format_size_approx;
use super::{show_at, Plan, PortPlan};
use crate::classify::rule::overlap::{self, Taken, Term};
use crate::classify::rule::Rule;
use crate::port::Side;
use crate::sched::memory;
use std::fmt;
use std::path::{Path, PathBuf};

/// A port whose queue limits reserve more than this before any traffic is warned about. A fixed
/// figure rather than a share of this machine's memory: `weir check` often runs elsewhere than
/// `weir run` (a laptop, CI), and its verdict should not depend on where. The defaults reserve
/// about 2 KiB per queued frame and 328 KB per class for its flow queues, 10 MiB per port for
/// four classes of 1000 packets; this is 25 times that, and for both ports half of a small
/// router's memory.
pub const RESERVED_BYTES_WARNING: u64 = 256 << 20;

/// Classes named in the memory warning's hint, largest first: at most this many, each with at
/// least a tenth of the port's total (the largest always).
const NAMED_CLASSES: usize = 3;

/// A full-size Ethernet frame, to show what a byte limit holds.
const FULL_FRAME: u64 = 1514;

/// Something `weir check` warns about, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub file: PathBuf,
    pub position: Option<Position>,
    pub message: String,
    pub hint: Option<String>,
    /// The source line the position is on, for display.
    pub line_text: Option<String>,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        show_at(
            f,
            &self.file,
            self.position,
            &self.message,
            self.line_text.as_deref(),
            self.hint.as_deref(),
        )
    }
}

/// The warnings for `plan`, which was built from `src` (read from `path`, used in messages).
/// `frame_store_bytes` is what the caller holds per queue position beyond the scheduler's own
/// descriptor (for `weir run`, `runtime::frames::bytes_per_queue_slot`). Ports in the order
/// `weir check` prints them; a warning about classes written once for both ports comes once.
pub fn warnings(plan: &Plan, src: &str, path: &Path, frame_store_bytes: u64) -> Vec<ConfigWarning> {
    let file = File {
        src,
        path,
        locator: Locator::scan(src),
    };
    let mut out: Vec<ConfigWarning> = Vec::new();
    for side in [Side::Wan, Side::Lan] {
        let port = plan.port(side);
        out.extend(memory_warning(&file, port, frame_store_bytes));
        for w in order_warnings(&file, port) {
            if !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out.extend(owner_warnings(&file, plan));
    out
}

/// Owner tests (`user`, `cmd`, ...) look at sockets in `processes.netns`: a namespace file that
/// is not on this host means `weir run` here will not start.
fn owner_warnings(file: &File, plan: &Plan) -> Vec<ConfigWarning> {
    if !plan.reads_owners {
        return Vec::new();
    }
    plan.owner_netns
        .iter()
        .enumerate()
        .filter(|(_, ns)| !ns.exists())
        .map(|(i, ns)| {
            file.warn(
                &format!("processes.netns[{i}]"),
                1,
                format!(
                    "network namespace {} does not exist on this host: weir run here would not start",
                    ns.display()
                ),
                "name the namespace that holds the clients' sockets (/run/netns/NAME or \
                 /proc/PID/ns/net); owner tests (user, cmd, ...) never match in weir replay"
                    .into(),
            )
        })
        .collect()
}

/// The config's text, for positions.
struct File<'a> {
    src: &'a str,
    path: &'a Path,
    locator: Locator,
}

impl File<'_> {
    /// A warning at the value of `field_path`, `column` characters into it.
    fn warn(
        &self,
        field_path: &str,
        column: usize,
        message: String,
        hint: String,
    ) -> ConfigWarning {
        let position = self.locator.find(field_path).map(|p| Position {
            line: p.line,
            column: p.column + column,
        });
        ConfigWarning {
            file: self.path.to_path_buf(),
            position,
            message,
            hint: Some(hint),
            line_text: position
                .and_then(|p| self.src.lines().nth(p.line.saturating_sub(1)))
                .map(str::to_string),
        }
    }

    /// Spaces between the opening quote of the string at `field_path` and its first character
    /// (the rule's text is kept trimmed; its columns count from the first character).
    fn lead(&self, field_path: &str) -> usize {
        let Some(p) = self.locator.find(field_path) else {
            return 0;
        };
        self.src
            .lines()
            .nth(p.line.saturating_sub(1))
            .map_or(0, |line| {
                line.chars()
                    .skip(p.column)
                    .take_while(|c| c.is_whitespace())
                    .count()
            })
    }
}

fn memory_warning(file: &File, port: &PortPlan, frame_store_bytes: u64) -> Option<ConfigWarning> {
    let spec = &port.spec;
    let frames: u64 = spec
        .classes
        .iter()
        .map(|c| u64::from(c.limit_packets))
        .sum();
    let per_frame = memory::bytes_per_queued_frame().saturating_add(frame_store_bytes);
    let total =
        memory::reserved_bytes(spec).saturating_add(frames.saturating_mul(frame_store_bytes));
    if total <= RESERVED_BYTES_WARNING {
        return None;
    }
    let for_frames = frames.saturating_mul(per_frame);
    // The rest does not depend on the limits: each class's state and its flow queue tables.
    let for_classes = total.saturating_sub(for_frames);
    let side = port.side;
    let message = format!(
        "port {} reserves about {} before any traffic: {} for queue limits of {frames} frames \
         (about {} each in `weir run`, with its buffer) and {} for {} classes and their flow \
         queues",
        side.name(),
        format_size_approx(total),
        format_size_approx(for_frames),
        format_size_approx(per_frame),
        format_size_approx(for_classes),
        spec.classes.len(),
    );
    if for_classes > for_frames {
        return Some(
            file.warn(
                &port.source.list_path(side),
                0,
                message,
                "most of it is the classes' tables of flow queues, whatever their limits: fewer \
             classes, or `fairness: none` for a class that needs no fairness inside it (one \
             queue)"
                    .to_string(),
            ),
        );
    }
    let per_class = |i: usize| {
        let c = &spec.classes[i];
        memory::class_reserved_bytes(c)
            .saturating_add(u64::from(c.limit_packets).saturating_mul(frame_store_bytes))
    };
    let mut largest: Vec<usize> = (0..spec.classes.len()).collect();
    largest.sort_by_key(|&i| std::cmp::Reverse(per_class(i)));
    largest.truncate(NAMED_CLASSES);
    let first = *largest.first()?;
    largest.retain(|&i| i == first || per_class(i) >= total / 10);
    let named: Vec<String> = largest
        .iter()
        .map(|&i| {
            format!(
                "`{}` {} for {} packets",
                spec.classes[i].name,
                format_size_approx(per_class(i)),
                spec.classes[i].limit_packets
            )
        })
        .collect();
    let top = &spec.classes[first];
    // The control class (0) is not in the file: point at the port then.
    let at = match first {
        0 => format!("ports.{}", side.name()),
        i => port.source.path(side, i - 1, "queue.packets"),
    };
    Some(file.warn(
        &at,
        0,
        message,
        format!(
            "lower queue.packets where it reserves most: {}; `{}`'s queue.bytes ({}) holds {} \
             full-size frames",
            named.join(", "),
            top.name,
            format_size_approx(top.limit_bytes),
            top.limit_bytes / FULL_FRAME,
        ),
    ))
}

fn order_warnings(file: &File, port: &PortPlan) -> Vec<ConfigWarning> {
    let rules: Vec<Option<&Rule>> = port.classes.iter().map(|c| c.rule.as_ref()).collect();
    let side = port.side;
    // Class 0 is the implicit control class, not in the file.
    let match_path = |class: usize| port.source.path(side, class.saturating_sub(1), "match");
    let who = |class: usize| match port.source {
        ClassSource::Shared => format!("class `{}`", port.classes[class].name),
        ClassSource::Port => format!("port {}, class `{}`", side.name(), port.classes[class].name),
    };
    // The ports a term tests, unless its text already says just that.
    let quoted = |t: &Term| match &t.ports {
        Some(ports) if *ports != t.text => format!("`{}` ({ports})", t.text),
        _ => format!("`{}`", t.text),
    };
    let inside = |t: &Term| match &t.ports {
        Some(ports) if *ports != t.text => format!("`{}`: {ports}", t.text),
        _ => format!("`{}`", t.text),
    };
    overlap::order_findings(&rules)
        .into_iter()
        .map(|f| {
            let name = &port.classes[f.class].name;
            let path = match_path(f.class);
            let column = file.lead(&path) + f.term.column;
            let (message, hint) = match &f.taken {
                Taken::Never => (
                    format!("{}: {} can never match", who(f.class), quoted(&f.term)),
                    "it contradicts itself; remove it from the rule".to_string(),
                ),
                Taken::Entirely { by } => (
                    format!(
                        "{}: {} never gets a frame: {} takes all of them",
                        who(f.class),
                        quoted(&f.term),
                        match by {
                            Some(k) => format!("earlier class `{}`", port.classes[*k].name),
                            None => "the classes before it".to_string(),
                        }
                    ),
                    format!(
                        "classes are tried in order: move `{name}` up, or drop this part of its \
                         rule"
                    ),
                ),
                Taken::Partly {
                    by,
                    earlier,
                    example,
                } => {
                    let other = &port.classes[*by].name;
                    let except = format!("{} and not {}", earlier.text, paren(&f.term.text));
                    (
                        format!(
                            "{}: {} is partly taken by earlier class `{other}` ({}), e.g. \
                             {example}",
                            who(f.class),
                            quoted(&f.term),
                            inside(earlier),
                        ),
                        format!(
                            "classes are tried in order and a port rule matches either port of \
                             a flow: put `{name}` before `{other}`, or narrow the rule of \
                             `{other}` (`{except}`)"
                        ),
                    )
                }
            };
            file.warn(&path, column, message, hint)
        })
        .collect()
}

/// `text` as one operand of `not`: a single `app NAME` as is, anything else in parentheses.
fn paren(text: &str) -> String {
    let single_app = text
        .strip_prefix("app ")
        .is_some_and(|name| !name.trim().contains(char::is_whitespace));
    if single_app {
        text.to_string()
    } else {
        format!("({text})")
    }
}
