//! Union-find over record indices: path halving and union by size, so a million
//! records cluster in well under a second. [`merge_guarded`] feeds it edges strongest
//! first and lets a guard, which sees both whole clusters, refuse a merge: so a chain of
//! weak or shared-identifier links cannot fuse people the direct evidence keeps apart.

use std::sync::Arc;

use rayon::prelude::*;

use super::guards::{Guard, Refusal};

pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    pub fn find(&mut self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            let grand = self.parent[self.parent[x as usize] as usize];
            self.parent[x as usize] = grand;
            x = grand;
        }
        x
    }

    /// Joins the sets of `a` and `b`; false when they were already one.
    pub fn union(&mut self, a: u32, b: u32) -> bool {
        let (mut ra, mut rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        if self.size[ra as usize] < self.size[rb as usize] {
            std::mem::swap(&mut ra, &mut rb);
        }
        self.parent[rb as usize] = ra;
        self.size[ra as usize] += self.size[rb as usize];
        true
    }

    /// The sets, each sorted, ordered by their smallest member.
    pub fn clusters(&mut self) -> Vec<Vec<u32>> {
        let n = self.parent.len();
        // Members are visited in order, so a set's position is fixed by its smallest.
        let mut position = vec![u32::MAX; n];
        let mut out: Vec<Vec<u32>> = Vec::new();
        for i in 0..n as u32 {
            let r = self.find(i) as usize;
            if position[r] == u32::MAX {
                position[r] = out.len() as u32;
                out.push(Vec::with_capacity(self.size[r] as usize));
            }
            out[position[r] as usize].push(i);
        }
        out
    }
}

/// What happened to an edge that joined two different clusters when it came up.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Merged,
    /// The guard's reason: shared, since one refusal between two clusters often
    /// stands for many of their edges.
    Refused(Arc<Refusal>),
}

/// A lone record whose edges reach two persons that may not become one is ambiguous
/// (a shop account with only a surname and the family address): it joins neither
/// unless one edge beats the other by more than `margin` (log2 odds). Stronger edges
/// were decided first, so only weaker ones compete.
pub struct Ambiguity<'a> {
    pub neighbours: &'a Neighbours,
    pub margin: f64,
}

/// Each record's edges, as (other record, weight) in edge order, all in one list.
pub struct Neighbours {
    starts: Vec<u32>,
    list: Vec<(u32, f64)>,
}

impl Neighbours {
    pub fn new(n: usize, edges: &[(u32, u32, f64)]) -> Self {
        let (starts, list) = super::blocking::by_key(
            n,
            edges
                .iter()
                .flat_map(|&(a, b, w)| [(a, (b, w)), (b, (a, w))]),
        );
        Neighbours { starts, list }
    }

    pub fn of(&self, record: u32) -> &[(u32, f64)] {
        let r = record as usize;
        &self.list[self.starts[r] as usize..self.starts[r + 1] as usize]
    }
}

/// Takes weighted `edges` (record, record, weight) strongest first, merging the two
/// clusters of each unless a guard (given both clusters' members) names a reason or
/// the edge is ambiguous. `different_people` tells two clusters that can never be
/// one person; `too_weak`, that the evidence between them is thin. Edges inside one
/// cluster are skipped. Returns the union-find and, per deciding edge, its index and
/// decision, in edge order (a refusal between two clusters once, at its strongest edge).
///
/// `different_people` must be monotone (a cluster that grows stays refused, as size,
/// distinct-value and disagreement guards are), so its answer is kept per pair of
/// clusters: the many edges between two households are judged, and recorded, once.
///
/// A decision only ever looks at records its edge's connected component holds (both
/// clusters, and for ambiguity the lone record's neighbours), so the components are
/// clustered side by side, each in edge order: the same decisions as one pass.
pub fn merge_guarded(
    n: usize,
    edges: &[(u32, u32, f64)],
    ambiguity: Option<Ambiguity>,
    different_people: impl Fn(&[u32], &[u32]) -> Option<Refusal> + Sync,
    too_weak: impl Fn(&[u32], &[u32]) -> Option<Refusal> + Sync,
) -> (UnionFind, Vec<(usize, Decision)>) {
    let mut linked = UnionFind::new(n);
    for &(a, b, _) in edges {
        linked.union(a, b);
    }
    // Components numbered in order of their first edge; each one's edges (ascending)
    // and records in flat lists (a counting sort, not a vector per component).
    let mut component_of_root = vec![u32::MAX; n];
    let mut count = 0u32;
    let mut component = |root: u32| {
        let c = &mut component_of_root[root as usize];
        if *c == u32::MAX {
            *c = count;
            count += 1;
        }
        *c
    };
    let edge_component: Vec<u32> = edges
        .iter()
        .map(|&(a, _, _)| component(linked.find(a)))
        .collect();
    let record_component: Vec<u32> = (0..n as u32)
        .map(|r| component_of_root[linked.find(r) as usize])
        .collect();
    let count = count as usize;
    let (edge_starts, edge_list) = super::blocking::by_key(
        count,
        edge_component
            .iter()
            .enumerate()
            .map(|(e, &c)| (c, e as u32)),
    );
    let (node_starts, node_list) = super::blocking::by_key(
        count,
        record_component
            .iter()
            .enumerate()
            .filter(|(_, &c)| c != u32::MAX)
            .map(|(r, &c)| (c, r as u32)),
    );
    let span = |starts: &[u32], c: usize| starts[c] as usize..starts[c + 1] as usize;
    // `local` numbers a record within its component.
    let mut local = vec![u32::MAX; n];
    for c in 0..count {
        for (i, &r) in node_list[span(&node_starts, c)].iter().enumerate() {
            local[r as usize] = i as u32;
        }
    }
    // Biggest first, so one large component does not run alone at the end.
    let mut order: Vec<usize> = (0..count).collect();
    order.sort_unstable_by_key(|&c| std::cmp::Reverse(span(&edge_starts, c).len()));
    tracing::debug!(
        components = count,
        largest_edges = order.first().map_or(0, |&c| span(&edge_starts, c).len()),
        largest_records = order.first().map_or(0, |&c| span(&node_starts, c).len()),
        "clustering"
    );
    let mut decisions: Vec<(usize, Decision)> = order
        .par_iter()
        .flat_map_iter(|&c| {
            merge_component(
                &node_list[span(&node_starts, c)],
                &local,
                edge_list[span(&edge_starts, c)]
                    .iter()
                    .map(|&e| (e as usize, edges[e as usize])),
                ambiguity.as_ref(),
                &different_people,
                &too_weak,
            )
        })
        .collect();
    decisions.par_sort_unstable_by_key(|(e, _)| *e);
    let mut uf = UnionFind::new(n);
    for (e, decision) in &decisions {
        if *decision == Decision::Merged {
            uf.union(edges[*e].0, edges[*e].1);
        }
    }
    (uf, decisions)
}

/// [`merge_guarded`] over one connected component: `nodes` are its records and
/// `local[r]` is record r's position among them.
fn merge_component(
    nodes: &[u32],
    local: &[u32],
    edges: impl Iterator<Item = (usize, (u32, u32, f64))>,
    ambiguity: Option<&Ambiguity>,
    different_people: impl Fn(&[u32], &[u32]) -> Option<Refusal>,
    too_weak: impl Fn(&[u32], &[u32]) -> Option<Refusal>,
) -> Vec<(usize, Decision)> {
    // Union-find and members by local position; members hold record numbers.
    let mut uf = UnionFind::new(nodes.len());
    let mut members: Vec<Vec<u32>> = nodes.iter().map(|&r| vec![r]).collect();
    let mut decisions = Vec::new();
    // Keyed by the two roots; a root that is absorbed is never looked up again.
    type Apart = foldhash::HashMap<(u32, u32), Arc<Refusal>>;
    let mut apart = Apart::default();
    let different = |apart: &mut Apart, members: &[Vec<u32>], x: u32, y: u32| {
        let key = (x.min(y), x.max(y));
        if let Some(why) = apart.get(&key) {
            return Some(why.clone());
        }
        let why: Arc<Refusal> =
            different_people(&members[x as usize], &members[y as usize])?.into();
        apart.insert(key, why.clone());
        Some(why)
    };
    // Lone records found ambiguous stay alone: their weaker edges are refused too.
    let mut ambiguous = vec![false; if ambiguity.is_some() { nodes.len() } else { 0 }];
    let at = |r: u32| local[r as usize];
    for (e, (a, b, weight)) in edges {
        let (ra, rb) = (uf.find(at(a)), uf.find(at(b)));
        if ra == rb {
            continue;
        }
        // Two clusters already refused: their strongest edge's refusal stands for this
        // weaker one, so it is not recorded again.
        let refused_before = apart.contains_key(&(ra.min(rb), ra.max(rb)));
        let mut reason = different(&mut apart, &members, ra, rb)
            .or_else(|| too_weak(&members[ra as usize], &members[rb as usize]).map(Arc::new));
        if let (None, Some(amb)) = (&reason, &ambiguity) {
            for (lone, other) in [(a, rb), (b, ra)] {
                let lone_root = uf.find(at(lone));
                if members[lone_root as usize].len() != 1 {
                    continue;
                }
                if ambiguous[at(lone) as usize] {
                    reason = Some(Arc::new(Refusal::new(
                        Guard::Ambiguous,
                        format!("record {lone} matches people who may not be one"),
                    )));
                    break;
                }
                for &(c, w) in amb.neighbours.of(lone) {
                    let rc = uf.find(at(c));
                    if w < weight - amb.margin || w > weight || rc == other || rc == lone_root {
                        continue;
                    }
                    if let Some(why) = different(&mut apart, &members, other, rc) {
                        ambiguous[at(lone) as usize] = true;
                        reason = Some(Arc::new(Refusal::new(
                            Guard::Ambiguous,
                            format!("record {lone} matches record {c} nearly as well (weight {w:.2} vs {weight:.2}) and that person may not join this one ({why})"),
                        )));
                        break;
                    }
                }
                if reason.is_some() {
                    break;
                }
            }
        }
        if let Some(reason) = reason {
            if !refused_before {
                decisions.push((e, Decision::Refused(reason)));
            }
            continue;
        }
        uf.union(ra, rb);
        let root = uf.find(ra);
        let other = if root == ra { rb } else { ra };
        let moved = std::mem::take(&mut members[other as usize]);
        members[root as usize].extend(moved);
        decisions.push((e, Decision::Merged));
    }
    decisions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guard that refuses exactly the merges that would put `x` and `y` together.
    fn keep_apart(
        x: u32,
        y: u32,
        why: &str,
    ) -> impl Fn(&[u32], &[u32]) -> Option<Refusal> + Sync + '_ {
        move |a, b| {
            let across = (a.contains(&x) && b.contains(&y)) || (a.contains(&y) && b.contains(&x));
            across.then(|| Refusal::new(Guard::NeverDisagree, why))
        }
    }

    fn refused(why: &str) -> Decision {
        Decision::Refused(Arc::new(Refusal::new(Guard::NeverDisagree, why)))
    }

    #[test]
    fn a_guard_sees_whole_clusters_and_later_edges_cannot_bypass_it() {
        // 0-1 and 2-3 merge; 1-2 would put 0 and 3 together, which the guard forbids.
        let edges = [
            (0, 1, 9.0),
            (2, 3, 8.0),
            (1, 2, 7.0),
            (0, 3, 6.0),
            (3, 4, 5.0),
        ];
        let refuse = keep_apart(0, 3, "0 and 3 disagree");
        let (mut uf, decisions) = merge_guarded(5, &edges, None, refuse, |_, _| None);
        assert_eq!(uf.clusters(), vec![vec![0, 1], vec![2, 3, 4]]);
        // 0-3 is refused too, but the refusal between those clusters is 1-2's.
        assert_eq!(
            decisions,
            vec![
                (0, Decision::Merged),
                (1, Decision::Merged),
                (2, refused("0 and 3 disagree")),
                (4, Decision::Merged),
            ]
        );
    }

    #[test]
    fn a_lone_record_between_two_incompatible_persons_joins_neither() {
        // 0 and 1 may never be one person; 2 matches both about equally, 3 matches 0 far better.
        let edges = [(3, 0, 9.0), (2, 0, 5.0), (2, 1, 4.5), (3, 1, 2.0)];
        let neighbours = Neighbours::new(4, &edges);
        assert_eq!(neighbours.of(2), &[(0, 5.0), (1, 4.5)]);
        let ambiguity = Ambiguity {
            neighbours: &neighbours,
            margin: 3.0,
        };
        let refuse = keep_apart(0, 1, "0 and 1 differ");
        let (mut uf, decisions) = merge_guarded(4, &edges, Some(ambiguity), refuse, |_, _| None);
        assert_eq!(uf.clusters(), vec![vec![0, 3], vec![1], vec![2]]);
        assert!(matches!(&decisions[1].1, Decision::Refused(r) if r.guard == Guard::Ambiguous));
        assert!(matches!(&decisions[2].1, Decision::Refused(r) if r.guard == Guard::Ambiguous));
    }

    #[test]
    fn components_clustered_apart_give_one_pass_decisions_in_edge_order() {
        // Two components, their edges interleaved: {0,1,2} (0 and 2 may not meet) and
        // {3,4,5} (no guard), plus record 6 alone.
        let edges = [
            (0, 1, 9.0),
            (3, 4, 8.5),
            (1, 2, 8.0),
            (4, 5, 7.5),
            (0, 2, 7.0),
            (3, 5, 6.5),
        ];
        let refuse = keep_apart(0, 2, "0 and 2 differ");
        let (mut uf, decisions) = merge_guarded(7, &edges, None, refuse, |_, _| None);
        assert_eq!(
            uf.clusters(),
            vec![vec![0, 1], vec![2], vec![3, 4, 5], vec![6]]
        );
        assert_eq!(
            decisions,
            vec![
                (0, Decision::Merged),
                (1, Decision::Merged),
                (2, refused("0 and 2 differ")),
                (3, Decision::Merged),
            ]
        );
    }

    #[test]
    fn transitive_links_form_one_cluster() {
        let mut uf = UnionFind::new(5);
        assert!(uf.union(0, 1));
        assert!(uf.union(3, 1));
        assert!(!uf.union(0, 3));
        assert_eq!(uf.clusters(), vec![vec![0, 1, 3], vec![2], vec![4]]);
    }
}
