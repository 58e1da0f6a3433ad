//! Validation of budgets: a class's `budget`, the top-level `budgets` of rules, and
//! `budget_store` (crate::budget).

use super::plan::{ClassSource, ErrAt, PortPlan};
use super::units;
use super::{BudgetFile, ConfigError, ConfigFile, PerPort, ThenFile};
use crate::budget::{BudgetPlan, Period, Target, Then, MAX_BUDGETS};
use crate::classify::rule::{NameSets, Rule};
use crate::port::Side;
use crate::time::Nanos;
use std::path::{Path, PathBuf};

const DEFAULT_FLUSH: Nanos = 5_000_000_000;
const FLUSH_RANGE: std::ops::RangeInclusive<Nanos> = 100_000_000..=600_000_000_000;

/// Where the counts are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetStorePlan {
    pub path: PathBuf,
    /// Counts are written this often when they changed.
    pub flush: Nanos,
}

/// The budgets of a config: plans in order (class budgets first, in the file's order, then
/// the rules'), and the rules of the rule budgets with their index.
pub(super) struct Built {
    pub budgets: Vec<BudgetPlan>,
    pub rules: Vec<(u8, Rule)>,
    pub store: BudgetStorePlan,
}

pub(super) fn build(
    file: &ConfigFile,
    ports: &mut [&mut PortPlan; 2],
    sets: &NameSets,
    folder: &Path,
    at: &ErrAt,
) -> Result<Built, ConfigError> {
    let mut budgets: Vec<BudgetPlan> = Vec::new();
    let links = [ports[0].spec.rate_bps, ports[1].spec.rate_bps];
    for side in Side::BOTH {
        let port = &mut *ports[side.index()];
        let list = match port.source {
            ClassSource::Shared => file.classes.as_ref(),
            ClassSource::Port => match side {
                Side::Lan => file.ports.lan.classes.as_ref(),
                Side::Wan => file.ports.wan.classes.as_ref(),
            },
        };
        for (i, c) in list.into_iter().flatten().enumerate() {
            let Some(b) = &c.budget else { continue };
            let path = |f: &str| {
                let class = port.source.path(side, i, "");
                if f.is_empty() {
                    format!("{class}.budget")
                } else {
                    format!("{class}.budget.{f}")
                }
            };
            let index = match budgets.iter().position(|x| x.name == c.name) {
                // The shared list, seen again from the other port.
                Some(k) if port.source == ClassSource::Shared => k,
                Some(_) => {
                    return Err(at(
                        &path(""),
                        0,
                        format!("class `{}` has a budget on both ports", c.name),
                        Some("a class's budget counts both ports: write the class once in the top-level `classes`, or give the traffic a rule budget (`budgets: [...]`)".into()),
                    ))
                }
                None => {
                    let plan = budget(
                        &c.name,
                        Target::Class(c.name.clone()),
                        b,
                        links,
                        &path,
                        at,
                    )?;
                    budgets.push(plan);
                    budgets.len() - 1
                }
            };
            if let Some(cp) = port.classes.iter_mut().find(|cp| cp.name == c.name) {
                cp.budget = Some(index as u8);
            }
        }
    }
    let names: Vec<String> = sets.iter().map(|(n, _)| n.clone()).collect();
    let mut rules = Vec::new();
    for (i, rb) in file.budgets.iter().enumerate() {
        let path = |f: &str| {
            if f.is_empty() {
                format!("budgets[{i}]")
            } else {
                format!("budgets[{i}].{f}")
            }
        };
        if rb.name.is_empty() || rb.name.len() > 64 || rb.name.chars().any(char::is_control) {
            return Err(at(
                &path("name"),
                1,
                format!("budget name \"{}\" is not usable", rb.name),
                Some("1 to 64 characters".into()),
            ));
        }
        if budgets.iter().any(|b| b.name == rb.name) {
            return Err(at(
                &path("name"),
                1,
                format!("two budgets are named `{}`", rb.name),
                Some(
                    "a class's budget takes the class's name; give each budget its own name".into(),
                ),
            ));
        }
        let rule = match &rb.rule {
            None => None,
            Some(text) => {
                let rule = Rule::parse_with_sets(text, &names).map_err(|e| {
                    at(
                        &path("match"),
                        e.column,
                        format!("budget `{}`: {}", rb.name, e.message),
                        e.hint.clone(),
                    )
                })?;
                if rule.is_default() || rule.never_matches() {
                    return Err(at(
                        &path("match"),
                        1,
                        format!(
                            "budget `{}`: the rule \"{text}\" {}",
                            rb.name,
                            if rule.is_default() {
                                "is `default`, which only a class can be"
                            } else {
                                "can never match"
                            }
                        ),
                        Some("name what the budget counts, e.g. \"host 192.168.1.23\"; leave `match` out to count every frame".into()),
                    ));
                }
                Some(rule)
            }
        };
        let file_budget = BudgetFile {
            bytes: rb.bytes.clone(),
            per: rb.per,
            starts: rb.starts.clone(),
            then: match &rb.then {
                ThenFile::Drop => ThenFile::Drop,
                ThenFile::Ceil { ceil } => ThenFile::Ceil { ceil: ceil.clone() },
            },
        };
        let target = match &rb.rule {
            Some(text) => Target::Rule(text.clone()),
            None => Target::All,
        };
        let plan = budget(&rb.name, target, &file_budget, links, &path, at)?;
        budgets.push(plan);
        if let Some(rule) = rule {
            rules.push(((budgets.len() - 1) as u8, rule));
        }
    }
    if budgets.len() > MAX_BUDGETS {
        return Err(at(
            "budgets",
            0,
            format!(
                "{} budgets, more than {MAX_BUDGETS} in one config",
                budgets.len()
            ),
            Some("merge budgets with one rule (`host A or host B`)".into()),
        ));
    }
    let path = match &file.budget_store.path {
        Some(p) => folder.join(p),
        None => PathBuf::from(crate::budget::store::DEFAULT_PATH),
    };
    let flush = match &file.budget_store.flush {
        None => DEFAULT_FLUSH,
        Some(s) => {
            let d = units::parse_duration(s).map_err(|e| {
                at(
                    "budget_store.flush",
                    e.column,
                    format!("flush: {}", e.message),
                    e.hint,
                )
            })?;
            if !FLUSH_RANGE.contains(&d) {
                return Err(at(
                    "budget_store.flush",
                    1,
                    format!("flush every {s} is out of range"),
                    Some(
                        "from \"100 ms\" to \"600 s\": what a crash may lose of the counting"
                            .into(),
                    ),
                ));
            }
            d
        }
    };
    Ok(Built {
        budgets,
        rules,
        store: BudgetStorePlan { path, flush },
    })
}

fn budget(
    name: &str,
    target: Target,
    b: &BudgetFile,
    links: [u64; 2],
    path: &dyn Fn(&str) -> String,
    at: &ErrAt,
) -> Result<BudgetPlan, ConfigError> {
    let bytes = units::parse_size(&b.bytes).map_err(|e| {
        at(
            &path("bytes"),
            e.column,
            format!("budget `{name}`: bytes: {}", e.message),
            e.hint,
        )
    })?;
    if bytes == 0 {
        return Err(at(
            &path("bytes"),
            1,
            format!("budget `{name}` of 0 bytes"),
            Some("a budget is so many bytes per period, e.g. \"400 GB\"; to stop some traffic once its allowance is gone, use `then: drop`".into()),
        ));
    }
    let period = Period::parse(b.per, b.starts.as_deref()).map_err(|message| {
        at(
            &path("starts"),
            1,
            format!("budget `{name}`: {message}"),
            Some("month: \"1st 00:00\" (1st to 31st), week: \"Mon 00:00\", day: \"06:00\"".into()),
        )
    })?;
    let then = match &b.then {
        ThenFile::Drop => Then::Drop,
        ThenFile::Ceil { ceil } => {
            let mut bps = [0u64; 2];
            for side in Side::BOTH {
                let written = match ceil {
                    PerPort::Both(v) => Some(v),
                    PerPort::Each { .. } => ceil.get(side),
                };
                let link = links[side.index()];
                bps[side.index()] = match written {
                    // A pair that leaves a port out: that port is not capped.
                    None => link,
                    Some(v) => {
                        let r = units::parse_rate(v)
                            .map_err(|e| {
                                at(
                                    &path("then.ceil"),
                                    e.column,
                                    format!("budget `{name}`: then ceil: {}", e.message),
                                    e.hint,
                                )
                            })?
                            .resolve(units::BitRate(link));
                        if r.0 == 0 || r.0 > link {
                            return Err(at(
                                &path("then.ceil"),
                                1,
                                format!("budget `{name}`: then ceil {r} on port {} is not between 0 and the link ({})", side.name(), units::BitRate(link)),
                                Some("a small rate such as \"64 kbit\", or `then: drop`".into()),
                            ));
                        }
                        r.0
                    }
                };
            }
            Then::Ceil(bps)
        }
    };
    Ok(BudgetPlan {
        name: name.to_string(),
        target,
        bytes,
        period,
        then,
    })
}
