//! Overlay graph measurements over the active views (HyParView paper §5.3, Table 1).

use std::collections::BTreeMap;

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
    // Views by node index (empty for nodes not in `views`): one indexed read per edge where a
    // map lookup per edge was most of a 100,000-node measurement.
    let by_index = index_views(views);
    let mut in_degree = vec![0u64; by_index.len()];
    let mut edges = 0u64;
    let mut symmetric = 0u64;
    for (a, b) in present_edges(&by_index) {
        edges += 1;
        in_degree[b as usize] += 1;
        if by_index[b as usize].is_some_and(|back| back.contains(&a)) {
            symmetric += 1;
        }
    }
    let undirected = undirected_indexed(&by_index);
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
    let mut search = Bfs::new(undirected.len());
    for _ in 0..sample_count {
        let source = nodes[rng.index(n)];
        search.run(&undirected, source, |_, dist| {
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

/// `views` by node index, `None` for indices it does not hold.
fn index_views(views: &BTreeMap<NodeIndex, Vec<NodeIndex>>) -> Vec<Option<&[NodeIndex]>> {
    let len = views.keys().next_back().map_or(0, |m| *m as usize + 1);
    let mut by_index = vec![None; len];
    for (a, view) in views {
        by_index[*a as usize] = Some(view.as_slice());
    }
    by_index
}

/// Every directed edge (a, b) of the indexed views whose far end is present, in ascending
/// order of `a` then view order (the order of iterating the map of views).
fn present_edges<'a>(
    by_index: &'a [Option<&'a [NodeIndex]>],
) -> impl Iterator<Item = (NodeIndex, NodeIndex)> + 'a {
    let present = |b: &&NodeIndex| by_index.get(**b as usize).is_some_and(Option::is_some);
    by_index
        .iter()
        .enumerate()
        .filter_map(|(a, view)| view.map(|v| (a as NodeIndex, v)))
        .flat_map(move |(a, view)| view.iter().filter(present).map(move |b| (a, *b)))
}

/// An undirected graph over node indices in compressed form: the neighbours of `v` are
/// `targets[offsets[v]..offsets[v + 1]]`, sorted and deduplicated. One allocation for all
/// the lists, which a breadth-first search over 100,000 nodes reads in order instead of
/// chasing 100,000 separate vectors.
pub(crate) struct Adjacency {
    offsets: Vec<usize>,
    targets: Vec<NodeIndex>,
}

impl Adjacency {
    /// Number of node indices (present or not).
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The neighbours of `v`, ascending.
    pub(crate) fn neighbours(&self, v: NodeIndex) -> &[NodeIndex] {
        &self.targets[self.offsets[v as usize]..self.offsets[v as usize + 1]]
    }
}

/// Undirected adjacency of the overlay between the nodes present in `views` (links to nodes
/// not in it — crashed, not yet detected — are left out), indexed by node, sorted, deduplicated.
pub(crate) fn undirected(views: &BTreeMap<NodeIndex, Vec<NodeIndex>>) -> Adjacency {
    undirected_indexed(&index_views(views))
}

/// [`undirected`] of views already indexed by node.
fn undirected_indexed(by_index: &[Option<&[NodeIndex]>]) -> Adjacency {
    let len = by_index.len();
    // Both directions of every link, duplicates included, counted then placed.
    let mut degree = vec![0usize; len];
    for (a, b) in present_edges(by_index) {
        degree[a as usize] += 1;
        degree[b as usize] += 1;
    }
    let mut offsets = Vec::with_capacity(len + 1);
    offsets.push(0);
    for d in &degree {
        offsets.push(offsets.last().copied().unwrap_or(0) + d);
    }
    let mut fill = offsets[..len].to_vec();
    let mut targets = vec![0; offsets[len]];
    for (a, b) in present_edges(by_index) {
        targets[fill[a as usize]] = b;
        fill[a as usize] += 1;
        targets[fill[b as usize]] = a;
        fill[b as usize] += 1;
    }
    // Sort and deduplicate each list, compacting them towards the front.
    let mut write = 0;
    for v in 0..len {
        let (start, end) = (offsets[v], offsets[v + 1]);
        targets[start..end].sort_unstable();
        offsets[v] = write;
        let mut last = None;
        for i in start..end {
            let t = targets[i];
            if last != Some(t) {
                targets[write] = t;
                write += 1;
                last = Some(t);
            }
        }
    }
    offsets[len] = write;
    targets.truncate(write);
    Adjacency { offsets, targets }
}

/// Connected components over `nodes`: the component label of every index (`u32::MAX` for
/// indices not in `nodes`) and the size of each component. O(nodes + edges): one label array
/// for the whole labelling.
pub(crate) fn components(adjacency: &Adjacency, nodes: &[NodeIndex]) -> (Vec<u32>, Vec<u64>) {
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
            for w in adjacency.neighbours(v) {
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

/// Breadth-first search with its distance array and queue kept between runs.
struct Bfs {
    dist: Vec<u32>,
    queue: Vec<NodeIndex>,
}

impl Bfs {
    fn new(len: usize) -> Self {
        Self { dist: vec![u32::MAX; len], queue: Vec::new() }
    }

    /// Visits every node reachable from `start` with its distance.
    fn run(&mut self, adj: &Adjacency, start: NodeIndex, mut visit: impl FnMut(NodeIndex, u32)) {
        // Reset only what the previous run touched.
        for v in self.queue.drain(..) {
            self.dist[v as usize] = u32::MAX;
        }
        self.dist[start as usize] = 0;
        self.queue.push(start);
        let mut head = 0;
        while let Some(v) = self.queue.get(head).copied() {
            head += 1;
            let d = self.dist[v as usize];
            visit(v, d);
            for w in adj.neighbours(v) {
                if self.dist[*w as usize] == u32::MAX {
                    self.dist[*w as usize] = d + 1;
                    self.queue.push(*w);
                }
            }
        }
    }
}

fn local_clustering(adj: &Adjacency, v: NodeIndex) -> f64 {
    let neighbours = adj.neighbours(v);
    let k = neighbours.len();
    if k < 2 {
        return 0.0;
    }
    let mut links = 0u64;
    for (i, a) in neighbours.iter().enumerate() {
        for b in &neighbours[i + 1..] {
            if adj.neighbours(*a).binary_search(b).is_ok() {
                links += 1;
            }
        }
    }
    links as f64 / (k * (k - 1) / 2) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn views(list: &[(NodeIndex, &[NodeIndex])]) -> BTreeMap<NodeIndex, Vec<NodeIndex>> {
        list.iter().map(|(a, v)| (*a, v.to_vec())).collect()
    }

    #[test]
    fn undirected_is_symmetric_sorted_deduplicated_and_skips_absent_nodes() {
        // 9 is not a node (crashed); 2 lists 1 twice; 5 has no links.
        let g = undirected(&views(&[(0, &[2, 1, 9]), (1, &[0]), (2, &[1, 1]), (5, &[])]));
        assert_eq!(g.len(), 6);
        assert_eq!(g.neighbours(0), &[1, 2]);
        assert_eq!(g.neighbours(1), &[0, 2]);
        assert_eq!(g.neighbours(2), &[0, 1]);
        for absent_or_alone in [3, 4, 5] {
            assert!(g.neighbours(absent_or_alone).is_empty());
        }
    }

    #[test]
    fn components_label_each_island() {
        let g =
            undirected(&views(&[(0, &[1]), (1, &[2]), (2, &[0]), (3, &[4]), (4, &[]), (6, &[])]));
        let (label, sizes) = components(&g, &[0, 1, 2, 3, 4, 6]);
        assert_eq!(sizes, vec![3, 2, 1]);
        assert_eq!(&label[..5], &[0, 0, 0, 1, 1]);
        assert_eq!((label[5], label[6]), (u32::MAX, 2));
    }

    #[test]
    fn a_ring_measures_as_a_ring() {
        // Six nodes, each with its two ring neighbours: from any source the distances are
        // 1, 1, 2, 2, 3, so the sampled mean shortest path is 9 / 5 whatever is sampled.
        let ring: Vec<(NodeIndex, Vec<NodeIndex>)> =
            (0..6).map(|i| (i, vec![(i + 5) % 6, (i + 1) % 6])).collect();
        let ring: BTreeMap<_, _> = ring.into_iter().collect();
        let stats = measure(&ring, 2, 4, &mut Rng::from_seed(1));
        assert_eq!(stats.nodes, 6);
        assert_eq!(stats.in_degree_histogram, vec![0, 0, 6]);
        assert!((stats.in_degree_at_active_size_fraction - 1.0).abs() < 1e-12);
        assert!((stats.symmetric_fraction - 1.0).abs() < 1e-12);
        assert!(stats.connected);
        assert_eq!(stats.largest_component, 6);
        assert!(stats.clustering.abs() < 1e-12);
        assert!((stats.mean_shortest_path - 1.8).abs() < 1e-12);
    }
}
