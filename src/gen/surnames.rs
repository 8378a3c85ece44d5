//! Surnames drawn with the frequencies of a real population.
//!
//! The 2010 US census counted 6.3 million surnames: Smith alone is 0.83% of
//! people, the 25 commonest cover 8.7% and the 239 commonest 25%, and most of
//! the population carries a name from a long tail. Drawing only from the
//! embedded list would put every person on one of a few hundred names and make
//! namesakes about twenty times commoner than they are. So ranks follow the
//! skew `1 / (rank + 12)` over 1.2 million names: the embedded list (in US rank
//! order) supplies the first ranks and the rest are composed from name parts.
//! With these constants Smith is 0.72%, the top 25 cover 10.0% and the top 239
//! 26.7%: namesakes are, if anything, a little commoner than in the census.

use super::data::{SURNAMES, SURNAME_ENDS, SURNAME_JOINS, SURNAME_PARTICLES, SURNAME_STARTS};
use super::rng::{Rng, Skewed};

/// How many surname ranks the population draws from.
const RANKS: usize = 1_200_000;
/// The skew's offset: larger flattens the head (see [`Skewed`]).
const OFFSET: u64 = 12;

/// Where surnames come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SurnamePool {
    /// Census-shaped: the embedded names as the head of a 1.2-million-name tail.
    Census,
    /// Only the embedded names, skewed within themselves: a namesake-dense
    /// population for stress tests (what `cdp gen` drew before the tail).
    Embedded,
}

/// Draws surnames from a [`SurnamePool`].
pub struct Surnames {
    ranks: Skewed,
}

impl Surnames {
    pub fn new(pool: SurnamePool) -> Self {
        let ranks = match pool {
            SurnamePool::Census => Skewed::new(RANKS, OFFSET),
            SurnamePool::Embedded => Skewed::new(SURNAMES.len(), 6),
        };
        Surnames { ranks }
    }

    /// One person's surname.
    pub fn sample(&self, rng: &mut Rng) -> String {
        name_at(self.ranks.sample(rng))
    }
}

/// The surname at `rank`: an embedded name, or one composed from parts. The
/// rank is scrambled first so neighbouring ranks do not look alike. Like real
/// names, 3% carry a particle ("O'", "Van ") and 1% join two names with a hyphen.
fn name_at(rank: usize) -> String {
    if let Some(name) = SURNAMES.get(rank) {
        return (*name).to_string();
    }
    let mut h = (rank as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    let mut composed = || {
        let mut part = |parts: &[&'static str]| {
            let p = parts[(h % parts.len() as u64) as usize];
            h /= parts.len() as u64;
            p
        };
        let (start, join, end) = (
            part(SURNAME_STARTS),
            part(SURNAME_JOINS),
            part(SURNAME_ENDS),
        );
        format!("{start}{join}{end}")
    };
    let name = composed();
    match rank % 100 {
        0..=2 => {
            let particle = SURNAME_PARTICLES[rank / 100 % SURNAME_PARTICLES.len()];
            format!("{particle}{name}")
        }
        3 => format!("{name}-{}", composed()),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn shares(pool: SurnamePool, draws: usize) -> (Vec<f64>, f64) {
        let surnames = Surnames::new(pool);
        let mut rng = Rng::new(7);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for _ in 0..draws {
            *counts.entry(surnames.sample(&mut rng)).or_default() += 1;
        }
        let mut by_count: Vec<usize> = counts.values().copied().collect();
        by_count.sort_unstable_by(|a, b| b.cmp(a));
        let top = |k: usize| by_count.iter().take(k).sum::<usize>() as f64 / draws as f64;
        let same_name = by_count
            .iter()
            .map(|&c| (c as f64 / draws as f64).powi(2))
            .sum();
        (vec![top(1), top(25), top(239)], same_name)
    }

    #[test]
    fn census_pool_matches_the_published_2010_shares_from_above() {
        let (top, same_name) = shares(SurnamePool::Census, 400_000);
        // Census: Smith 0.83%, top 25 8.7%, top 239 25%.
        assert!((0.006..0.009).contains(&top[0]), "top name {}", top[0]);
        assert!((0.087..0.11).contains(&top[1]), "top 25 {}", top[1]);
        assert!((0.25..0.29).contains(&top[2]), "top 239 {}", top[2]);
        // Two random people share a surname about 1 time in 1,500, not 1 in 100.
        assert!(same_name < 0.001, "collision rate {same_name}");
        let (_, dense) = shares(SurnamePool::Embedded, 400_000);
        assert!(dense > 0.01, "embedded collision rate {dense}");
    }

    #[test]
    fn composed_names_are_capitalised_letters_and_mostly_distinct() {
        let names: Vec<String> = (SURNAMES.len()..SURNAMES.len() + 20_000)
            .map(name_at)
            .collect();
        for n in &names {
            let letters = n.chars().filter(char::is_ascii_alphabetic).count();
            assert!(
                letters >= 4
                    && n.chars()
                        .all(|c| c.is_ascii_alphabetic() || "' -".contains(c)),
                "{n}"
            );
            assert!(n.starts_with(|c: char| c.is_ascii_uppercase()), "{n}");
        }
        let count = |f: &dyn Fn(&String) -> bool| names.iter().filter(|n| f(n)).count();
        assert_eq!(count(&|n| n.contains('-')), 200, "double-barrelled");
        assert_eq!(
            count(&|n| n.contains(['\'', ' ']) || n.starts_with("Mc")),
            600,
            "particles"
        );
        let distinct: std::collections::HashSet<&String> = names.iter().collect();
        assert!(distinct.len() > 18_000, "{} distinct", distinct.len());
        assert_eq!(name_at(0), "Smith");
    }
}
