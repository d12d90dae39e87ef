//! Overlay graph measurements over the active views (HyParView paper §5.3, Table 1).

use std::collections::{BTreeMap, VecDeque};

use super::network::NodeIndex;
use crate::rng::Rng;

/// Shape of the overlay formed by the active views of live nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct OverlayStats {
    /// Live nodes measured.
    pub nodes: usize,
    /// In-degree histogram: index = in-degree, value = node count.
    pub in_degree_histogram: Vec<u64>,
    /// Fraction of live nodes whose in-degree equals `active_size`.
    pub in_degree_at_active_size_fraction: f64,
    /// Fraction of directed active-view edges whose reverse edge exists.
    pub symmetric_fraction: f64,
    /// Whether every live node is reachable from every other over active links.
    pub connected: bool,
    /// Size of the largest connected component (undirected).
    pub largest_component: usize,
    /// Mean local clustering coefficient (sampled).
    pub clustering: f64,
    /// Mean shortest path length (BFS from sampled sources, undirected).
    pub mean_shortest_path: f64,
}

/// Measures the overlay. `samples` bounds the BFS sources and clustering samples so the cost
/// stays O(samples · N).
pub(crate) fn measure(
    views: &BTreeMap<NodeIndex, Vec<NodeIndex>>,
    active_size: usize,
    samples: usize,
    rng: &mut Rng,
) -> OverlayStats {
    let nodes: Vec<NodeIndex> = views.keys().copied().collect();
    let n = nodes.len();
    let max_index = nodes.last().map_or(0, |m| *m as usize + 1);
    let mut in_degree = vec![0u64; max_index];
    let mut edges = 0u64;
    let mut symmetric = 0u64;
    for (a, view) in views {
        for b in view.iter().filter(|b| views.contains_key(b)) {
            edges += 1;
            in_degree[*b as usize] += 1;
            if views[b].contains(a) {
                symmetric += 1;
            }
        }
    }
    let undirected = undirected(views);
    let mut histogram = Vec::new();
    let mut at_size = 0u64;
    for i in &nodes {
        let d = in_degree[*i as usize] as usize;
        if histogram.len() <= d {
            histogram.resize(d + 1, 0);
        }
        histogram[d] += 1;
        if d == active_size {
            at_size += 1;
        }
    }
    let (_, sizes) = components(&undirected, &nodes);
    let largest = sizes.iter().copied().max().unwrap_or(0) as usize;
    // Sampled mean shortest path and clustering.
    let mut path_sum = 0u64;
    let mut path_count = 0u64;
    let mut clustering_sum = 0.0;
    let sample_count = samples.min(n);
    for _ in 0..sample_count {
        let source = nodes[rng.index(n)];
        bfs(&undirected, source, |_, dist| {
            if dist > 0 {
                path_sum += u64::from(dist);
                path_count += 1;
            }
        });
        clustering_sum += local_clustering(&undirected, source);
    }
    OverlayStats {
        nodes: n,
        in_degree_histogram: histogram,
        in_degree_at_active_size_fraction: if n == 0 { 0.0 } else { at_size as f64 / n as f64 },
        symmetric_fraction: if edges == 0 { 1.0 } else { symmetric as f64 / edges as f64 },
        connected: sizes.len() <= 1,
        largest_component: largest,
        clustering: if sample_count == 0 { 0.0 } else { clustering_sum / sample_count as f64 },
        mean_shortest_path: if path_count == 0 { 0.0 } else { path_sum as f64 / path_count as f64 },
    }
}

/// Undirected adjacency of the overlay between the nodes present in `views` (links to nodes
/// not in it — crashed, not yet detected — are left out), indexed by node, sorted, deduplicated.
pub(crate) fn undirected(views: &BTreeMap<NodeIndex, Vec<NodeIndex>>) -> Vec<Vec<NodeIndex>> {
    let len = views.keys().next_back().map_or(0, |m| *m as usize + 1);
    let mut adjacency: Vec<Vec<NodeIndex>> = vec![Vec::new(); len];
    for (a, view) in views {
        for b in view.iter().filter(|b| views.contains_key(b)) {
            adjacency[*a as usize].push(*b);
            adjacency[*b as usize].push(*a);
        }
    }
    for adj in &mut adjacency {
        adj.sort_unstable();
        adj.dedup();
    }
    adjacency
}

/// Connected components over `nodes`: the component label of every index (`u32::MAX` for
/// indices not in `nodes`) and the size of each component. O(nodes + edges): one label array
/// for the whole labelling.
pub(crate) fn components(
    adjacency: &[Vec<NodeIndex>],
    nodes: &[NodeIndex],
) -> (Vec<u32>, Vec<u64>) {
    let mut label = vec![u32::MAX; adjacency.len()];
    let mut sizes: Vec<u64> = Vec::new();
    let mut stack = Vec::new();
    for start in nodes {
        if label[*start as usize] != u32::MAX {
            continue;
        }
        let id = u32::try_from(sizes.len()).expect("fewer than 2^32 components");
        label[*start as usize] = id;
        stack.push(*start);
        let mut count = 0u64;
        while let Some(v) = stack.pop() {
            count += 1;
            for w in &adjacency[v as usize] {
                if label[*w as usize] == u32::MAX {
                    label[*w as usize] = id;
                    stack.push(*w);
                }
            }
        }
        sizes.push(count);
    }
    (label, sizes)
}

fn bfs(adj: &[Vec<NodeIndex>], start: NodeIndex, mut visit: impl FnMut(NodeIndex, u32)) -> usize {
    let mut dist = vec![u32::MAX; adj.len()];
    let mut queue = VecDeque::new();
    dist[start as usize] = 0;
    queue.push_back(start);
    let mut count = 0;
    while let Some(v) = queue.pop_front() {
        count += 1;
        visit(v, dist[v as usize]);
        for w in &adj[v as usize] {
            if dist[*w as usize] == u32::MAX {
                dist[*w as usize] = dist[v as usize] + 1;
                queue.push_back(*w);
            }
        }
    }
    count
}

fn local_clustering(adj: &[Vec<NodeIndex>], v: NodeIndex) -> f64 {
    let neighbours = &adj[v as usize];
    let k = neighbours.len();
    if k < 2 {
        return 0.0;
    }
    let mut links = 0u64;
    for (i, a) in neighbours.iter().enumerate() {
        for b in &neighbours[i + 1..] {
            if adj[*a as usize].binary_search(b).is_ok() {
                links += 1;
            }
        }
    }
    links as f64 / (k * (k - 1) / 2) as f64
}
