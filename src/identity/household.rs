//! Households, after clustering: a lone record that carries a household's shared
//! identifier (a family mailbox, a landline) and exactly the name of one member of that
//! household joins that member. The identifier ties the record to the household: the
//! person holding it, often a relative, was kept apart by the guards. The name picks
//! the member among the persons at that person's address. A record joins only when
//! exactly one person qualifies, and the hard guards still have the last word.

use rayon::prelude::*;

use super::blocking;
use super::cluster::UnionFind;
#[cfg(test)]
use super::guards::Guard;
use super::guards::Refusal;
use super::text::{TextColumn, Values};
use crate::config::Households;

/// One lone record's household link.
#[derive(Debug, Clone, PartialEq)]
pub struct Joined {
    pub record: u32,
    /// A record of the person it joins, holding its name.
    pub named: u32,
    /// A record of the other person of the household, holding its identifier.
    pub via: u32,
    /// Why a guard refused the link; `None` when the record joined.
    pub refused: Option<Refusal>,
}

/// The columns the pass reads.
struct Columns<'a> {
    identifiers: Vec<&'a TextColumn>,
    address: Vec<&'a TextColumn>,
    name: Vec<&'a TextColumn>,
}

impl<'a> Columns<'a> {
    fn identifiers(&self, r: u32) -> impl Iterator<Item = &'a str> + '_ {
        self.identifiers
            .iter()
            .filter_map(move |c| c.get(r as usize))
    }

    fn name(&self, r: u32) -> Option<u128> {
        pack(&self.name, r)
    }

    fn address(&self, r: u32) -> Option<u128> {
        pack(&self.address, r)
    }
}

/// A record's value ids in `columns` (at most four) packed in one key, when it has
/// them all.
fn pack(columns: &[&TextColumn], r: u32) -> Option<u128> {
    let mut key = 0u128;
    for c in columns {
        let id = c.ids()[r as usize];
        if id == 0 {
            return None;
        }
        key = key << 32 | u128::from(id);
    }
    (!columns.is_empty()).then_some(key)
}

/// The records holding each of some values: found in one parallel pass over every
/// record, grouped by a counting sort (each value's holders in record order).
struct Holders<K> {
    index: foldhash::HashMap<K, u32>,
    starts: Vec<u32>,
    list: Vec<u32>,
}

impl<K: std::hash::Hash + Eq + Copy + Send + Sync> Holders<K> {
    /// The holders of `wanted` among records `0..n`, record `r` holding `keys(r)`.
    fn find<I>(
        wanted: impl IntoIterator<Item = K>,
        n: usize,
        keys: impl Fn(u32) -> I + Sync,
    ) -> Self
    where
        I: Iterator<Item = K>,
    {
        let mut index: foldhash::HashMap<K, u32> = Default::default();
        for k in wanted {
            let next = index.len() as u32;
            index.entry(k).or_insert(next);
        }
        let held: Vec<(u32, u32)> = (0..n as u32)
            .into_par_iter()
            .flat_map_iter(|r| {
                let mut found: Vec<u32> = keys(r).filter_map(|k| index.get(&k).copied()).collect();
                // One record holding a value in two columns holds it once.
                found.sort_unstable();
                found.dedup();
                found.into_iter().map(move |i| (i, r))
            })
            .collect();
        let (starts, list) = blocking::by_key(index.len(), held.into_iter());
        Holders {
            index,
            starts,
            list,
        }
    }

    fn get(&self, key: &K) -> &[u32] {
        self.index.get(key).map_or(&[], |&i| {
            &self.list[self.starts[i as usize] as usize..self.starts[i as usize + 1] as usize]
        })
    }
}

/// Joins lone records of `uf` to the household member whose name they hold; returns
/// every link made or refused, in record order. Households and names are judged on
/// the clustering as it stands; `refuse` (the hard guards: lone record, the person's
/// records) sees the records joined so far. An identifier or address more than
/// `max_key_group` records hold ties no one to a household.
pub fn join(
    uf: &mut UnionFind,
    values: &Values,
    n: usize,
    config: &Households,
    max_key_group: usize,
    refuse: impl Fn(&[u32], &[u32]) -> Option<Refusal>,
) -> Vec<Joined> {
    let pick = |names: &[String]| -> Vec<&TextColumn> {
        names.iter().filter_map(|c| values.get(c)).collect()
    };
    let columns = Columns {
        identifiers: pick(&config.identifiers),
        address: pick(&config.address),
        name: pick(&config.name),
    };
    if columns.name.len() != config.name.len()
        || columns.address.len() != config.address.len()
        || columns.identifiers.is_empty()
    {
        return Vec::new();
    }
    let home: Vec<u32> = (0..n as u32).map(|r| uf.find(r)).collect();
    let (starts, list) = blocking::by_key(n, home.iter().enumerate().map(|(r, &h)| (h, r as u32)));
    let members = |h: u32| &list[starts[h as usize] as usize..starts[h as usize + 1] as usize];

    // The persons of `holders` other than record `r`'s, each once, with its first
    // record among them.
    let others = |r: u32, holders: &mut dyn Iterator<Item = &u32>| -> Vec<(u32, u32)> {
        let mut persons: Vec<(u32, u32)> = holders
            .map(|&h| (home[h as usize], h))
            .filter(|&(p, _)| p != home[r as usize])
            .collect();
        persons.sort_unstable();
        persons.dedup_by_key(|v| v.0);
        persons
    };

    // Lone records with a name, and the other persons holding one of their
    // identifiers, each with the record that does.
    let lone: Vec<u32> = (0..n as u32)
        .filter(|&r| members(home[r as usize]).len() == 1 && columns.name(r).is_some())
        .filter(|&r| columns.identifiers(r).next().is_some())
        .collect();
    let by_identifier = Holders::find(lone.iter().flat_map(|&r| columns.identifiers(r)), n, |r| {
        columns.identifiers(r)
    });
    let tied: Vec<(u32, Vec<(u32, u32)>)> = lone
        .into_par_iter()
        .filter_map(|r| {
            let mut holders = columns
                .identifiers(r)
                .map(|t| by_identifier.get(&t))
                .filter(|holders| holders.len() <= max_key_group)
                .flatten();
            let via = others(r, &mut holders);
            (!via.is_empty()).then_some((r, via))
        })
        .collect();
    drop(by_identifier);

    // Who holds each such record's name, and who lives where the persons reached
    // live: a person at one of their addresses is of their household.
    let by_name = Holders::find(tied.iter().filter_map(|&(r, _)| columns.name(r)), n, |r| {
        columns.name(r).into_iter()
    });
    let reached = || {
        tied.iter()
            .flat_map(|(_, via)| via)
            .flat_map(|&(j, _)| members(j))
    };
    let by_address = Holders::find(reached().filter_map(|&m| columns.address(m)), n, |r| {
        columns.address(r).into_iter()
    });
    let household = |j: u32| -> Vec<u32> {
        let mut persons: Vec<u32> = members(j)
            .iter()
            .filter_map(|&m| columns.address(m))
            .map(|a| by_address.get(&a))
            .filter(|holders| holders.len() <= max_key_group)
            .flatten()
            .map(|&h| home[h as usize])
            .filter(|&p| p != j)
            .collect();
        persons.sort_unstable();
        persons.dedup();
        persons
    };

    // Per tied record, the one person of a reached household holding its name (the
    // record of that person holding it, and the record it is reached through).
    let chosen: Vec<Option<(u32, u32, u32)>> = tied
        .par_iter()
        .map(|(r, via)| {
            let name = columns.name(*r).expect("lone records have names");
            let named = others(*r, &mut by_name.get(&name).iter());
            if named.is_empty() {
                return None;
            }
            let households: Vec<(u32, Vec<u32>)> =
                via.iter().map(|&(j, h)| (h, household(j))).collect();
            let mut found = named.into_iter().filter_map(|(p, holder)| {
                households
                    .iter()
                    .find(|(_, persons)| persons.binary_search(&p).is_ok())
                    .map(|&(through, _)| (p, holder, through))
            });
            match (found.next(), found.next()) {
                (Some(one), None) => Some(one),
                _ => None,
            }
        })
        .collect();

    let mut joined_to: foldhash::HashMap<u32, Vec<u32>> = Default::default();
    let mut joined = Vec::new();
    for ((r, _), chosen) in tied.iter().zip(chosen) {
        let Some((p, named, via)) = chosen else {
            continue;
        };
        if joined_to.contains_key(&home[*r as usize]) {
            continue; // another lone record joined this one
        }
        let mut person = members(p).to_vec();
        person.extend(joined_to.get(&p).into_iter().flatten());
        let refused = refuse(&[*r], &person);
        if refused.is_none() {
            uf.union(*r, named);
            joined_to.entry(p).or_default().push(*r);
        }
        joined.push(Joined {
            record: *r,
            named,
            via,
            refused,
        });
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(values: &[&str]) -> TextColumn {
        TextColumn::from_values(values.iter().map(|v| Some(*v)))
    }

    /// Records 0 and 1: Jane and John Doe at one address, John with the family
    /// mailbox; 2: Jane Doe elsewhere; 3: a lone record, Jane Doe with the family
    /// mailbox; 4: a lone Jim Roe with the same mailbox (no such member).
    fn household() -> (Values, Households) {
        let mut values = Values::new();
        values.insert(
            "email".into(),
            column(&["jane@x", "does@x", "jd@y", "does@x", "does@x"]),
        );
        values.insert(
            "street".into(),
            column(&["1 Elm St", "1 Elm St", "9 Oak Av", "", ""]),
        );
        values.insert(
            "first".into(),
            column(&["jane", "john", "jane", "jane", "jim"]),
        );
        values.insert("last".into(), column(&["doe", "doe", "doe", "doe", "roe"]));
        let config = Households {
            identifiers: vec!["email".into()],
            address: vec!["street".into()],
            name: vec!["first".into(), "last".into()],
        };
        (values, config)
    }

    #[test]
    fn a_lone_record_with_the_family_mailbox_joins_the_member_it_names() {
        let (values, config) = household();
        let mut uf = UnionFind::new(5);
        let joined = join(&mut uf, &values, 5, &config, 20, |_, _| None);
        assert_eq!(
            joined,
            vec![Joined {
                record: 3,
                named: 0,
                via: 1,
                refused: None
            }]
        );
        assert_eq!(uf.find(3), uf.find(0));
        // The namesake elsewhere and the stranger with the mailbox stay apart.
        assert_ne!(uf.find(2), uf.find(0));
        assert_ne!(uf.find(4), uf.find(0));
        assert_ne!(uf.find(4), uf.find(1));
    }

    #[test]
    fn two_members_with_the_name_or_a_guard_keep_the_record_alone() {
        let (mut values, config) = household();
        // Record 2 is a second Jane Doe at 1 Elm St (mother and daughter): two members
        // hold the name.
        values.insert(
            "street".into(),
            column(&["1 Elm St", "1 Elm St", "1 Elm St", "", ""]),
        );
        let mut uf = UnionFind::new(5);
        let joined = join(&mut uf, &values, 5, &config, 20, |_, _| None);
        assert!(joined.is_empty(), "{joined:?}");
        assert_ne!(uf.find(3), uf.find(0));
        assert_ne!(uf.find(3), uf.find(2));

        let (values, config) = household();
        let mut uf = UnionFind::new(5);
        let no = Refusal::new(Guard::MaxClusterSize, "no");
        let joined = join(&mut uf, &values, 5, &config, 20, |_, _| Some(no.clone()));
        assert_eq!(joined.len(), 1);
        assert_eq!(joined[0].refused.as_ref(), Some(&no));
        assert_ne!(uf.find(3), uf.find(0));
    }

    #[test]
    fn a_crowded_identifier_ties_no_one_to_a_household() {
        let (values, config) = household();
        let mut uf = UnionFind::new(5);
        assert!(join(&mut uf, &values, 5, &config, 2, |_, _| None).is_empty());
    }
}
