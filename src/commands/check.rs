//! `weir check -c FILE`: validate and print the class tree.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use weir::config::units::BitRate;
use weir::config::{ClassKind, Plan};
use weir::port::Side;

/// Errors fail (status 1); warnings are printed on stderr and the config is still ok.
pub fn run(path: &Path) -> anyhow::Result<ExitCode> {
    let loaded = weir::config::read(path).and_then(|src| {
        let plan = weir::config::parse(&src, path)?;
        let warnings = weir::config::warnings(
            &plan,
            &src,
            path,
            weir::runtime::frames::bytes_per_queue_slot(),
        );
        Ok((plan, warnings))
    });
    let (plan, warnings) = match loaded {
        Ok(l) => l,
        Err(e) => {
            eprintln!("weir: error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    for w in &warnings {
        eprintln!("weir: warning: {w}");
    }
    let mut out = std::io::stdout().lock();
    match warnings.len() {
        0 => writeln!(out, "{}: ok", path.display())?,
        1 => writeln!(out, "{}: ok, 1 warning", path.display())?,
        n => writeln!(out, "{}: ok, {n} warnings", path.display())?,
    }
    write_tree(&mut out, &plan)?;
    Ok(ExitCode::SUCCESS)
}

pub fn write_tree(out: &mut impl Write, plan: &Plan) -> std::io::Result<()> {
    for side in [Side::Wan, Side::Lan] {
        let port = plan.port(side);
        let way = match side {
            Side::Wan => "upload: LAN -> WAN",
            Side::Lan => "download: WAN -> LAN",
        };
        writeln!(
            out,
            "port {} ({way}){}: link {}, overhead {} B/frame",
            side.name(),
            port.interface
                .as_deref()
                .map(|i| format!(" on {i}"))
                .unwrap_or_default(),
            BitRate(port.spec.rate_bps),
            port.overhead,
        )?;
        for (class, spec) in port.classes.iter().zip(&port.spec.classes) {
            let prio = class
                .user_priority
                .map_or("-".to_string(), |p| p.to_string());
            let what = match &class.kind {
                ClassKind::Control => {
                    "ARP, IPv6 ND, LLDP, STP, LACP, PPPoE control (implicit, served first)"
                        .to_string()
                }
                ClassKind::Matched(rule) => format!("match: {rule}"),
                ClassKind::Default => "default: what no rule matches".to_string(),
            };
            let mut extra = Vec::new();
            extra.push(match class.fairness {
                weir::classify::Fairness::Flow => "fair per flow".to_string(),
                weir::classify::Fairness::Host => "fair per host".to_string(),
                weir::classify::Fairness::SrcHost => "fair per source host".to_string(),
                weir::classify::Fairness::DstHost => "fair per destination host".to_string(),
                weir::classify::Fairness::Triple => "fair per host, then per flow".to_string(),
                weir::classify::Fairness::Fifo => "fifo".to_string(),
            });
            if let Some(c) = spec.codel {
                extra.push(format!(
                    "codel {}/{}{}",
                    weir::config::units::format_duration(c.target),
                    weir::config::units::format_duration(c.interval),
                    if spec.ecn { " ecn" } else { "" }
                ));
            }
            // A quantum given in place of a weight (the weight column then shows 1).
            if spec.quantum_bytes != spec.weight * weir::sched::BASE_QUANTUM {
                extra.push(format!(
                    "quantum {}",
                    weir::config::units::format_size(u64::from(spec.quantum_bytes))
                ));
            }
            if let Some((rate, _)) = spec.police {
                extra.push(format!("police {}", BitRate(rate)));
            }
            if let Some(d) = class.set_dscp {
                extra.push(format!("set dscp {d}"));
            }
            writeln!(
                out,
                "  {:<12} prio {:<2} rate {:>10}  ceil {:>10}  weight {:<3} queue {} pkt / {}  {}",
                class.name,
                prio,
                BitRate(spec.rate_bps).to_string(),
                BitRate(spec.ceil_bps).to_string(),
                spec.weight,
                spec.limit_packets,
                weir::config::units::format_size(spec.limit_bytes),
                extra.join(", "),
            )?;
            writeln!(out, "  {:<12} {what}", "")?;
            for sch in &class.schedule {
                writeln!(
                    out,
                    "  {:<12} {}: rate {} ceil {} ({})",
                    "",
                    sch.when,
                    BitRate(sch.rate_bps),
                    BitRate(sch.ceil_bps),
                    plan.timezone.iana_name().unwrap_or("local time")
                )?;
            }
        }
    }
    let names = plan.classifier().keeps_names();
    let (table, extra) = weir::classify::Classifier::memory(plan.max_flows, names);
    writeln!(
        out,
        "flow table: {} flows, {}{}",
        plan.max_flows,
        weir::config::units::format_size_approx(table),
        if names {
            format!(
                ", and {} more for names, protocols and owners (the rules read them: the names \
                 array, the DNS cache, the ClientHello pool)",
                weir::config::units::format_size_approx(extra)
            )
        } else {
            String::new()
        }
    )?;
    for g in &plan.geo {
        writeln!(
            out,
            "{}: {} address ranges outside the LAN networks, from {}",
            g.key.describe(),
            g.ranges,
            g.database.display()
        )?;
    }
    for b in &plan.budgets {
        writeln!(
            out,
            "budget {}: {} a {} ({}), of {}; then {}",
            b.name,
            super::render::budget::decimal_bytes(b.bytes),
            b.period.describe(),
            plan.timezone.iana_name().unwrap_or("local time"),
            b.describe_target(),
            b.describe_then()
        )?;
    }
    if !plan.budgets.is_empty() {
        writeln!(
            out,
            "budget counts kept in {}, written every {}",
            plan.budget_store.path.display(),
            weir::config::units::format_duration(plan.budget_store.flush)
        )?;
    }
    Ok(())
}
