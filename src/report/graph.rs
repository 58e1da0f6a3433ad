//! The host conversation graph: hosts as nodes (area by bytes), conversations as edges (width
//! by bytes), each coloured by the group (class or application) that carried most of its
//! bytes, laid out by a force-directed placement (Fruchterman and Reingold's) computed here,
//! so the page only draws it. The busiest [`max_hosts`](super::Options::max_hosts) hosts are
//! nodes of their own; the others are one `other` node, their edges merged into it.
//! Deterministic: the same capture gives the same picture.

use super::{Pair, MAX_GROUPS};
use serde::Serialize;
use std::collections::HashMap;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// Hosts merged into the `other` node (0: none).
    pub merged_hosts: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Node {
    pub label: String,
    pub bytes: u64,
    /// Inside `lan_networks`.
    pub lan: bool,
    /// Index into the report's groups; `None`: other.
    pub group: Option<usize>,
    /// Position in a 1000 x 1000 box, and radius.
    pub x: f64,
    pub y: f64,
    pub r: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Edge {
    pub a: usize,
    pub b: usize,
    pub bytes: u64,
    pub group: Option<usize>,
    pub width: f64,
}

/// An address as text.
pub fn address(addr: u128, v6: bool) -> String {
    if v6 {
        std::net::Ipv6Addr::from(addr).to_string()
    } else {
        std::net::Ipv4Addr::from(addr as u32).to_string()
    }
}

fn dominant(groups: &[u64; MAX_GROUPS + 1]) -> Option<usize> {
    let (i, &b) = groups
        .iter()
        .enumerate()
        .max_by_key(|&(i, &b)| (b, usize::MAX - i))?;
    (b > 0 && i < MAX_GROUPS).then_some(i)
}

pub(super) fn build(
    pairs: &HashMap<(u128, u128, bool), Pair>,
    max_hosts: usize,
    is_lan: impl Fn(u128, bool) -> bool,
) -> Graph {
    // Bytes and groups per host.
    let mut hosts: HashMap<(u128, bool), (u64, [u64; MAX_GROUPS + 1])> = HashMap::new();
    for (&(a, b, v6), p) in pairs {
        for h in [(a, v6), (b, v6)] {
            let e = hosts.entry(h).or_insert((0, [0; MAX_GROUPS + 1]));
            e.0 += p.bytes;
            for (g, n) in e.1.iter_mut().zip(p.groups) {
                *g += n;
            }
        }
    }
    let mut order: Vec<((u128, bool), u64)> = hosts.iter().map(|(k, v)| (*k, v.0)).collect();
    order.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let kept = order.len().min(max_hosts);
    let mut id: HashMap<(u128, bool), usize> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    for (k, bytes) in order.iter().take(kept) {
        id.insert(*k, nodes.len());
        nodes.push(Node {
            label: address(k.0, k.1),
            bytes: *bytes,
            lan: is_lan(k.0, k.1),
            group: dominant(&hosts[k].1),
            x: 0.0,
            y: 0.0,
            r: 0.0,
        });
    }
    let merged = order.len() - kept;
    let other = (merged > 0).then(|| {
        nodes.push(Node {
            label: format!("{merged} other hosts"),
            bytes: order.iter().skip(kept).map(|(_, b)| b).sum(),
            lan: false,
            group: None,
            x: 0.0,
            y: 0.0,
            r: 0.0,
        });
        nodes.len() - 1
    });
    let mut edges: HashMap<(usize, usize), (u64, [u64; MAX_GROUPS + 1])> = HashMap::new();
    for (&(a, b, v6), p) in pairs {
        let (Some(x), Some(y)) = (
            id.get(&(a, v6)).copied().or(other),
            id.get(&(b, v6)).copied().or(other),
        ) else {
            continue;
        };
        if x == y {
            continue;
        }
        let e = edges
            .entry((x.min(y), x.max(y)))
            .or_insert((0, [0; MAX_GROUPS + 1]));
        e.0 += p.bytes;
        for (g, n) in e.1.iter_mut().zip(p.groups) {
            *g += n;
        }
    }
    let mut edges: Vec<Edge> = edges
        .into_iter()
        .map(|((a, b), (bytes, groups))| Edge {
            a,
            b,
            bytes,
            group: dominant(&groups),
            width: 0.0,
        })
        .collect();
    edges.sort_by_key(|e| (e.a, e.b));
    size(&mut nodes, &mut edges);
    layout(&mut nodes, &edges);
    Graph {
        nodes,
        edges,
        merged_hosts: merged as u64,
    }
}

/// Node areas and edge widths by bytes, on a square-root scale.
fn size(nodes: &mut [Node], edges: &mut [Edge]) {
    let most = nodes.iter().map(|n| n.bytes).max().unwrap_or(1).max(1) as f64;
    for n in nodes.iter_mut() {
        n.r = 4.0 + 26.0 * (n.bytes as f64 / most).sqrt();
    }
    let most = edges.iter().map(|e| e.bytes).max().unwrap_or(1).max(1) as f64;
    for e in edges.iter_mut() {
        e.width = 0.5 + 7.5 * (e.bytes as f64 / most).sqrt();
    }
}

/// Fruchterman-Reingold in a 1000 x 1000 box: nodes start on a circle (by rank), repel each
/// other, and edges pull their ends together; the step cools from 100 to 1 over 300 rounds.
/// O(n^2) per round: at most a few hundred nodes.
fn layout(nodes: &mut [Node], edges: &[Edge]) {
    let n = nodes.len();
    if n == 0 {
        return;
    }
    const SIZE: f64 = 1000.0;
    let k = (SIZE * SIZE / n as f64).sqrt() * 0.6;
    for (i, node) in nodes.iter_mut().enumerate() {
        let a = i as f64 * std::f64::consts::TAU / n as f64;
        // Busier hosts nearer the middle.
        let radius = 100.0 + 350.0 * (i as f64 / n as f64);
        node.x = SIZE / 2.0 + radius * a.cos();
        node.y = SIZE / 2.0 + radius * a.sin();
    }
    let rounds = 300;
    let mut shift = vec![(0.0f64, 0.0f64); n];
    for round in 0..rounds {
        let t = 100.0 * (1.0 - round as f64 / rounds as f64) + 1.0;
        shift.iter_mut().for_each(|s| *s = (0.0, 0.0));
        for i in 0..n {
            for j in i + 1..n {
                let (dx, dy) = (nodes[i].x - nodes[j].x, nodes[i].y - nodes[j].y);
                let d = (dx * dx + dy * dy).sqrt().max(0.01);
                let f = k * k / d;
                let (fx, fy) = (dx / d * f, dy / d * f);
                shift[i].0 += fx;
                shift[i].1 += fy;
                shift[j].0 -= fx;
                shift[j].1 -= fy;
            }
        }
        for e in edges {
            let (dx, dy) = (nodes[e.a].x - nodes[e.b].x, nodes[e.a].y - nodes[e.b].y);
            let d = (dx * dx + dy * dy).sqrt().max(0.01);
            let f = d * d / k;
            let (fx, fy) = (dx / d * f, dy / d * f);
            shift[e.a].0 -= fx;
            shift[e.a].1 -= fy;
            shift[e.b].0 += fx;
            shift[e.b].1 += fy;
        }
        // A pull to the middle, growing with the distance, keeps separate conversations
        // from drifting to the edges.
        for (node, s) in nodes.iter().zip(shift.iter_mut()) {
            let (dx, dy) = (node.x - SIZE / 2.0, node.y - SIZE / 2.0);
            let d = (dx * dx + dy * dy).sqrt().max(0.01);
            let f = 0.35 * d * d / k;
            s.0 -= dx / d * f;
            s.1 -= dy / d * f;
        }
        for (node, (sx, sy)) in nodes.iter_mut().zip(&shift) {
            let len = (sx * sx + sy * sy).sqrt().max(0.01);
            let step = len.min(t);
            node.x = (node.x + sx / len * step).clamp(40.0, SIZE - 40.0);
            node.y = (node.y + sy / len * step).clamp(40.0, SIZE - 40.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_hosts_are_nodes_and_the_rest_one_other_node() {
        let mut pairs = HashMap::new();
        for i in 1..=10u128 {
            let mut p = Pair {
                bytes: i as u64 * 100,
                ..Pair::default()
            };
            p.groups[0] = p.bytes;
            pairs.insert((0, i, false), p);
        }
        let g = build(&pairs, 5, |a, _| a == 0);
        assert_eq!(g.nodes.len(), 6);
        assert_eq!(g.merged_hosts, 6);
        assert_eq!(g.nodes[0].label, "0.0.0.0");
        assert!(g.nodes[0].lan && g.nodes[0].r > g.nodes[1].r);
        assert_eq!(g.nodes[5].label, "6 other hosts");
        // Hub to 4 kept hosts, and to `other` (its 6 pairs merged).
        assert_eq!(g.edges.len(), 5);
        let to_other = g.edges.iter().find(|e| e.b == 5).unwrap();
        assert_eq!(to_other.bytes, 100 + 200 + 300 + 400 + 500 + 600);
        assert!(g
            .nodes
            .iter()
            .all(|n| (40.0..=960.0).contains(&n.x) && (40.0..=960.0).contains(&n.y)));
        let again = build(&pairs, 5, |a, _| a == 0);
        assert_eq!(
            format!("{:?}", g.nodes),
            format!("{:?}", again.nodes),
            "deterministic"
        );
    }
}
