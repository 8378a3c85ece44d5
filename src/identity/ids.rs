//! Person ids that stay put. The previous run's assignment (record -> person id, and
//! the run each id was first minted in) is the state; a new clustering inherits it:
//! a cluster keeps the oldest id any of its records had, a merge of two persons keeps
//! the older id and reports the absorbed one, and a cluster with no previous id (or
//! one split off from a person whose id another part kept) gets a new id derived from
//! its records, so the same input always gives the same ids.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// A record's identity in the graph: (source, record id).
pub type RecordKey = (String, String);

#[derive(Debug, Clone, PartialEq)]
pub struct Assigned {
    pub person_id: String,
    /// Run in which this person id was first minted.
    pub first_seen: String,
}

/// What changed against the previous assignment.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct IdChanges {
    pub kept: u64,
    pub minted: u64,
    /// (kept id, absorbed id) for each merge of previously distinct persons.
    pub merges: Vec<(String, String)>,
}

/// Assigns a person id to every cluster (clusters hold indices into `keys`). `had`
/// is each record's previous assignment; `previous` is the whole previous assignment,
/// whose ids a new one must not reuse.
pub fn assign(
    clusters: &[Vec<u32>],
    keys: &[RecordKey],
    had: &[Option<&Assigned>],
    previous: &[Assigned],
    run_id: &str,
) -> (Vec<Assigned>, IdChanges) {
    // Larger clusters choose first so that, in a split, the bigger part keeps the id.
    let mut order: Vec<usize> = (0..clusters.len()).collect();
    order.sort_by(|&a, &b| clusters[b].len().cmp(&clusters[a].len()).then(a.cmp(&b)));
    let mut taken: foldhash::HashSet<String> = Default::default();
    // Only a new id needs every old one (it must not reuse one): gathered then.
    let known: std::cell::OnceCell<foldhash::HashSet<&str>> = std::cell::OnceCell::new();
    let known = || known.get_or_init(|| previous.iter().map(|a| a.person_id.as_str()).collect());
    let mut result: Vec<Option<Assigned>> = vec![None; clusters.len()];
    let mut changes = IdChanges::default();
    let mut to_mint = Vec::new();
    for c in order {
        let mut candidates: Vec<&Assigned> = clusters[c]
            .iter()
            .filter_map(|&i| had[i as usize])
            .collect();
        candidates
            .sort_by(|a, b| (&a.first_seen, &a.person_id).cmp(&(&b.first_seen, &b.person_id)));
        candidates.dedup_by(|a, b| a.person_id == b.person_id);
        let chosen = candidates
            .iter()
            .find(|a| !taken.contains(&a.person_id))
            .map(|a| (*a).clone());
        match chosen {
            Some(a) => {
                changes.kept += 1;
                for other in candidates.iter().filter(|o| o.person_id != a.person_id) {
                    changes
                        .merges
                        .push((a.person_id.clone(), other.person_id.clone()));
                }
                taken.insert(a.person_id.clone());
                result[c] = Some(a);
            }
            None => to_mint.push(c),
        }
    }
    // A new id never equals an old one, so kept ids do not depend on new ones: new
    // ids are derived side by side, then checked in order (a clash takes a salt).
    let seed = |c: usize| {
        clusters[c]
            .iter()
            .map(|&i| &keys[i as usize])
            .min()
            .cloned()
            .unwrap_or_default()
    };
    let first_tries: Vec<String> = to_mint
        .par_iter()
        .map(|&c| {
            minted_id(clusters[c].iter().map(|&i| &keys[i as usize]))
                .unwrap_or_else(|| id_of(&RecordKey::default(), 0))
        })
        .collect();
    for (c, first_try) in to_mint.into_iter().zip(first_tries) {
        changes.minted += 1;
        let in_use = |id: &str| taken.contains(id) || known().contains(id);
        let person_id = if in_use(&first_try) {
            mint(&seed(c), in_use)
        } else {
            first_try
        };
        taken.insert(person_id.clone());
        result[c] = Some(Assigned {
            person_id,
            first_seen: run_id.to_string(),
        });
    }
    (result.into_iter().flatten().collect(), changes)
}

/// A person id a merge retired: the person it became, and the resolve run that
/// merged it. Kept across runs (in the lake's identity state), so that anything that
/// names an old id (a stream event matched before the merge) finds the person now.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Retired {
    pub retired_id: String,
    pub person_id: String,
    pub run_id: String,
}

/// The history with a run's merges (kept id, absorbed id) added. An id retired again
/// (its earlier entry written by a run that crashed before publishing) keeps the
/// latest entry only.
pub fn with_merges(
    history: Vec<Retired>,
    merges: &[(String, String)],
    run_id: &str,
) -> Vec<Retired> {
    let mut history: Vec<Retired> = history
        .into_iter()
        .filter(|r| !merges.iter().any(|(_, absorbed)| *absorbed == r.retired_id))
        .collect();
    history.extend(merges.iter().map(|(kept, absorbed)| Retired {
        retired_id: absorbed.clone(),
        person_id: kept.clone(),
        run_id: run_id.to_string(),
    }));
    history
}

/// Each retired id that leads to a live one, with that live id (merges followed to
/// the end: A into B, then B into C gives A -> C). An id live again (minted anew for
/// another cluster) is current, so it is left out; so is a chain that ends at an id
/// no longer live, or loops.
pub fn current_ids(history: &[Retired], live: impl Fn(&str) -> bool) -> Vec<(&str, &str)> {
    let next: foldhash::HashMap<&str, &str> = history
        .iter()
        .map(|r| (r.retired_id.as_str(), r.person_id.as_str()))
        .collect();
    let mut out: Vec<(&str, &str)> = next
        .keys()
        .filter(|id| !live(id))
        .filter_map(|&id| {
            let mut at = id;
            for _ in 0..=next.len() {
                if live(at) {
                    return Some((id, at));
                }
                at = next.get(at)?;
            }
            None
        })
        .collect();
    out.sort_unstable();
    out
}

/// A new id from the cluster's smallest record key; salted until it is free.
fn mint(seed: &RecordKey, in_use: impl Fn(&str) -> bool) -> String {
    (0u32..)
        .map(|salt| id_of(seed, salt))
        .find(|id| !in_use(id))
        .expect("u32 salts exhausted")
}

/// The id a resolve mints for a new person made of these records (on a first resolve,
/// or for records no earlier person had): the one derived from the smallest record
/// key, barring the rare clash with an id in use. `None` without records. `cdp gen`
/// uses it to know which persons an audience's holdout will draw.
pub fn minted_id<'a>(keys: impl IntoIterator<Item = &'a RecordKey>) -> Option<String> {
    keys.into_iter().min().map(|seed| id_of(seed, 0))
}

/// The id a record key gives with `salt`.
fn id_of(seed: &RecordKey, salt: u32) -> String {
    let mut h = Sha256::new();
    h.update(seed.0.as_bytes());
    h.update([0]);
    h.update(seed.1.as_bytes());
    h.update(salt.to_le_bytes());
    format!("P{}", crate::lake::hex(&h.finalize()[..6]).to_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<RecordKey> {
        (0..n).map(|i| ("s".to_string(), i.to_string())).collect()
    }

    /// `assign` given each record's previous assignment (indexed like `keys`).
    fn assign_after(
        clusters: &[Vec<u32>],
        keys: &[RecordKey],
        before: &[Assigned],
        run_id: &str,
    ) -> (Vec<Assigned>, IdChanges) {
        let had: Vec<Option<&Assigned>> = before.iter().map(Some).collect();
        assign(clusters, keys, &had, before, run_id)
    }

    fn retired(id: &str, into: &str, run: &str) -> Retired {
        Retired {
            retired_id: id.into(),
            person_id: into.into(),
            run_id: run.into(),
        }
    }

    #[test]
    fn retired_ids_lead_through_later_merges_to_the_live_id() {
        let history = with_merges(Vec::new(), &[("PB".into(), "PA".into())], "r1");
        let history = with_merges(history, &[("PC".into(), "PB".into())], "r2");
        // A crashed run's merge written again: one entry.
        let history = with_merges(history, &[("PC".into(), "PB".into())], "r2");
        assert_eq!(history.len(), 2);
        let live = |id: &str| id == "PC";
        assert_eq!(
            current_ids(&history, live),
            vec![("PA", "PC"), ("PB", "PC")]
        );
        // PA minted anew for another person: current, not retired.
        let live = |id: &str| id == "PC" || id == "PA";
        assert_eq!(current_ids(&history, live), vec![("PB", "PC")]);
        // A loop (ids reused) or a chain ending at no live id leads nowhere.
        let looped = [retired("PX", "PY", "r1"), retired("PY", "PX", "r2")];
        assert!(current_ids(&looped, |_| false).is_empty());
    }

    #[test]
    fn a_new_id_that_is_taken_is_salted() {
        let seed = ("s".to_string(), "1".to_string());
        let first = id_of(&seed, 0);
        assert_eq!(mint(&seed, |_| false), first);
        assert_eq!(mint(&seed, |id| id == first), id_of(&seed, 1));
        assert_ne!(id_of(&seed, 1), first);
    }

    #[test]
    fn a_first_resolve_gives_each_person_the_minted_id_of_its_records() {
        let k = keys(5);
        let clusters = vec![vec![3, 1], vec![0, 4, 2]];
        let (ids, _) = assign(&clusters, &k, &[None; 5], &[], "r1");
        for (c, a) in clusters.iter().zip(&ids) {
            let records: Vec<&RecordKey> = c.iter().map(|&i| &k[i as usize]).collect();
            assert_eq!(minted_id(records).as_deref(), Some(a.person_id.as_str()));
        }
        assert_eq!(minted_id(&[]), None);
    }

    #[test]
    fn unchanged_input_keeps_every_id() {
        let k = keys(4);
        let clusters = vec![vec![0, 1], vec![2], vec![3]];
        let (first, _) = assign(&clusters, &k, &[None; 4], &[], "r1");
        let mut before = vec![first[0].clone(); 4];
        for (c, a) in clusters.iter().zip(&first) {
            for &i in c {
                before[i as usize] = a.clone();
            }
        }
        let (second, changes) = assign_after(&clusters, &k, &before, "r2");
        assert_eq!(first, second);
        assert_eq!(changes.minted, 0);
    }

    #[test]
    fn a_merge_keeps_the_older_id_and_a_split_mints_a_new_one() {
        let k = keys(3);
        let old = |id: &str, run: &str| Assigned {
            person_id: id.into(),
            first_seen: run.into(),
        };
        let before = [old("PA", "r1"), old("PB", "r2"), old("PA", "r1")];
        // 0 and 1 merge; 2 splits away from PA.
        let (ids, changes) = assign_after(&[vec![0, 1], vec![2]], &k, &before, "r3");
        assert_eq!(ids[0].person_id, "PA");
        assert_ne!(ids[1].person_id, "PA");
        assert_eq!(ids[1].first_seen, "r3");
        assert_eq!(changes.merges, vec![("PA".to_string(), "PB".to_string())]);
    }
}
