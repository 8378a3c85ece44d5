//! The difference between what a sync would send now and what the destination last
//! accepted (the snapshot): rows added, changed (their mapped fields' hash differs)
//! and removed. Pure: keys and hashes in, row indexes out, in key order so that
//! batches (and their idempotency keys) come out the same on a re-run.

use std::collections::HashMap;

use super::SyncError;

#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// Indexes into the current rows, in key order.
    pub added: Vec<usize>,
    pub changed: Vec<usize>,
    /// Indexes into the snapshot, in key order.
    pub removed: Vec<usize>,
    pub unchanged: usize,
}

/// Compares the current rows (`keys` and their `hashes`, any order; keys must be
/// unique) with the snapshot's. One hash table over the current keys, one pass over
/// the snapshot; only the changes are sorted.
pub fn diff(
    sync: &str,
    keys: &[&str],
    hashes: &[u64],
    snapshot_keys: &[&str],
    snapshot_hashes: &[u64],
) -> Result<Diff, SyncError> {
    let mut at: HashMap<&str, usize, foldhash::fast::FixedState> =
        HashMap::with_capacity_and_hasher(keys.len(), Default::default());
    let mut duplicates: Vec<&str> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if at.insert(k, i).is_some() {
            duplicates.push(k);
        }
    }
    if let Some(key) = duplicates.iter().min() {
        return Err(SyncError::DuplicateKey {
            sync: sync.into(),
            key: (*key).to_string(),
        });
    }
    let mut out = Diff::default();
    let mut seen = vec![false; keys.len()];
    for (s, (k, h)) in snapshot_keys.iter().zip(snapshot_hashes).enumerate() {
        match at.get(k) {
            None => out.removed.push(s),
            Some(&i) => {
                seen[i] = true;
                if hashes[i] == *h {
                    out.unchanged += 1;
                } else {
                    out.changed.push(i);
                }
            }
        }
    }
    drop(at);
    out.added = (0..keys.len()).filter(|&i| !seen[i]).collect();
    out.added.sort_unstable_by(|&a, &b| keys[a].cmp(keys[b]));
    out.changed.sort_unstable_by(|&a, &b| keys[a].cmp(keys[b]));
    out.removed
        .sort_unstable_by(|&a, &b| snapshot_keys[a].cmp(snapshot_keys[b]));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(current: &[(&str, u64)], snapshot: &[(&str, u64)]) -> Result<Diff, SyncError> {
        let k: Vec<&str> = current.iter().map(|r| r.0).collect();
        let h: Vec<u64> = current.iter().map(|r| r.1).collect();
        let sk: Vec<&str> = snapshot.iter().map(|r| r.0).collect();
        let sh: Vec<u64> = snapshot.iter().map(|r| r.1).collect();
        diff("s", &k, &h, &sk, &sh)
    }

    #[test]
    fn rows_are_added_changed_removed_or_unchanged() {
        let snapshot = [("a", 1), ("b", 2), ("c", 3)];
        let current = [("d", 4), ("b", 22), ("a", 1)];
        let d = run(&current, &snapshot).expect("diff");
        assert_eq!(d.added, [0]);
        assert_eq!(d.changed, [1]);
        assert_eq!(d.removed, [2]);
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn a_key_twice_is_an_error_naming_it() {
        let err = run(&[("k1", 1), ("k1", 2)], &[]).unwrap_err();
        assert!(err.to_string().contains("\"k1\""), "{err}");
    }

    proptest! {
        /// Applying the diff to the snapshot gives exactly the current rows, and each
        /// kind of change comes out in key order.
        #[test]
        fn applying_the_diff_gives_the_current_rows(
            before in proptest::collection::btree_map("[a-e]{1,2}", 0u64..4, 0..20),
            after in proptest::collection::btree_map("[a-e]{1,2}", 0u64..4, 0..20),
        ) {
            let snapshot: Vec<(&str, u64)> = before.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let current: Vec<(&str, u64)> = after.iter().rev().map(|(k, v)| (k.as_str(), *v)).collect();
            let d = run(&current, &snapshot).expect("diff");
            let mut state: std::collections::BTreeMap<&str, u64> = snapshot.iter().copied().collect();
            for &s in &d.removed { state.remove(snapshot[s].0); }
            for &i in d.added.iter().chain(&d.changed) { state.insert(current[i].0, current[i].1); }
            let want: std::collections::BTreeMap<&str, u64> = current.iter().copied().collect();
            prop_assert_eq!(state, want);
            prop_assert_eq!(d.added.len() + d.changed.len() + d.unchanged, current.len());
            for w in d.added.windows(2) { prop_assert!(current[w[0]].0 < current[w[1]].0); }
            for w in d.removed.windows(2) { prop_assert!(snapshot[w[0]].0 < snapshot[w[1]].0); }
        }
    }
}
