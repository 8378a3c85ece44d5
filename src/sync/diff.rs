//! The difference between what a sync would send now and what the destination last
//! accepted (the snapshot): rows added, changed (their mapped fields' hash differs)
//! and removed. Pure: rows in, row indexes out, in key order so that batches (and
//! their idempotency keys) come out the same on a re-run.

use std::collections::HashMap;

use super::SyncError;

/// One row as the sync would send it: its key, its mapped values and their hash.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    pub hash: u64,
    /// The mapped fields' values, in the sync's field order, as JSON text of an array.
    pub values: String,
}

#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    /// Indexes into the current rows, in key order.
    pub added: Vec<usize>,
    pub changed: Vec<usize>,
    /// Indexes into the snapshot, in key order.
    pub removed: Vec<usize>,
    pub unchanged: usize,
}

/// Compares `current` (any order; keys must be unique) with `snapshot`.
pub fn diff(sync: &str, current: &[Row], snapshot: &[Row]) -> Result<Diff, SyncError> {
    let mut order: Vec<usize> = (0..current.len()).collect();
    order.sort_unstable_by(|&a, &b| current[a].key.cmp(&current[b].key));
    if let Some(w) = order
        .windows(2)
        .find(|w| current[w[0]].key == current[w[1]].key)
    {
        return Err(SyncError::DuplicateKey {
            sync: sync.into(),
            key: current[w[0]].key.clone(),
        });
    }
    let before: HashMap<&str, usize> = snapshot
        .iter()
        .enumerate()
        .map(|(i, r)| (r.key.as_str(), i))
        .collect();
    let mut out = Diff::default();
    let mut seen = vec![false; snapshot.len()];
    for i in order {
        match before.get(current[i].key.as_str()) {
            None => out.added.push(i),
            Some(&s) => {
                seen[s] = true;
                if snapshot[s].hash == current[i].hash {
                    out.unchanged += 1;
                } else {
                    out.changed.push(i);
                }
            }
        }
    }
    out.removed = (0..snapshot.len()).filter(|&s| !seen[s]).collect();
    out.removed
        .sort_unstable_by(|&a, &b| snapshot[a].key.cmp(&snapshot[b].key));
    Ok(out)
}

/// A stable 64-bit hash (FNV-1a) of a row's mapped values.
pub fn hash(values: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in values.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(key: &str, values: &str) -> Row {
        Row {
            key: key.into(),
            hash: hash(values),
            values: values.into(),
        }
    }

    #[test]
    fn rows_are_added_changed_removed_or_unchanged() {
        let snapshot = [row("a", "[1]"), row("b", "[2]"), row("c", "[3]")];
        let current = [row("d", "[4]"), row("b", "[22]"), row("a", "[1]")];
        let d = diff("s", &current, &snapshot).expect("diff");
        assert_eq!(d.added, [0]);
        assert_eq!(d.changed, [1]);
        assert_eq!(d.removed, [2]);
        assert_eq!(d.unchanged, 1);
    }

    #[test]
    fn a_key_twice_is_an_error_naming_it() {
        let err = diff("s", &[row("k1", "[1]"), row("k1", "[2]")], &[]).unwrap_err();
        assert!(err.to_string().contains("\"k1\""), "{err}");
    }

    proptest! {
        /// Applying the diff to the snapshot gives exactly the current rows.
        #[test]
        fn applying_the_diff_gives_the_current_rows(
            before in proptest::collection::btree_map("[a-e]{1,2}", 0u8..4, 0..20),
            after in proptest::collection::btree_map("[a-e]{1,2}", 0u8..4, 0..20),
        ) {
            let snapshot: Vec<Row> = before.iter().map(|(k, v)| row(k, &format!("[{v}]"))).collect();
            let current: Vec<Row> = after.iter().rev().map(|(k, v)| row(k, &format!("[{v}]"))).collect();
            let d = diff("s", &current, &snapshot).expect("diff");
            let mut state: std::collections::BTreeMap<String, u64> =
                snapshot.iter().map(|r| (r.key.clone(), r.hash)).collect();
            for &s in &d.removed { state.remove(&snapshot[s].key); }
            for &i in d.added.iter().chain(&d.changed) { state.insert(current[i].key.clone(), current[i].hash); }
            let want: std::collections::BTreeMap<String, u64> =
                current.iter().map(|r| (r.key.clone(), r.hash)).collect();
            prop_assert_eq!(state, want);
            prop_assert_eq!(d.added.len() + d.changed.len() + d.unchanged, current.len());
        }
    }
}
