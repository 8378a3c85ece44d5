//! Text columns as identity resolution reads them: each distinct value is stored once
//! and every record holds a value id, so rules, blocking, comparisons and guards
//! share one interning of a column instead of hashing a million strings each.

use std::collections::HashMap;

/// The columns resolution reads, by name.
pub type Values = HashMap<String, TextColumn>;

/// One column: a value id per record (0: no value; an empty string is no value) and
/// each id's text.
#[derive(Debug, Clone, Default)]
pub struct TextColumn {
    ids: Vec<u32>,
    /// Id -> text; id 0 is "".
    texts: Vec<Box<str>>,
}

impl TextColumn {
    pub fn from_values<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let mut index: foldhash::HashMap<&str, u32> = Default::default();
        let mut texts: Vec<Box<str>> = vec!["".into()];
        let ids = values
            .into_iter()
            .map(|v| match v.filter(|v| !v.is_empty()) {
                None => 0,
                Some(v) => *index.entry(v).or_insert_with(|| {
                    texts.push(v.into());
                    (texts.len() - 1) as u32
                }),
            })
            .collect();
        TextColumn { ids, texts }
    }

    /// Records `rows` of this column and then one more with value `last`, as a column
    /// of their own. The same as [`TextColumn::from_values`] over their values, but it
    /// renumbers the value ids instead of hashing the texts: a lookup gathers its few
    /// local records from columns of millions this way, per request.
    pub fn gather(&self, rows: &[u32], last: Option<&str>) -> Self {
        let mut local: foldhash::HashMap<u32, u32> = Default::default();
        let mut texts: Vec<Box<str>> = vec!["".into()];
        let mut ids: Vec<u32> = Vec::with_capacity(rows.len() + 1);
        for &row in rows {
            let id = self.ids[row as usize];
            ids.push(match id {
                0 => 0,
                id => *local.entry(id).or_insert_with(|| {
                    texts.push(self.texts[id as usize].clone());
                    (texts.len() - 1) as u32
                }),
            });
        }
        // Each text is held once, so the last value is one of the gathered texts or
        // a new one.
        ids.push(match last.filter(|v| !v.is_empty()) {
            None => 0,
            Some(v) => match texts.iter().position(|t| **t == *v) {
                Some(id) => id as u32,
                None => {
                    texts.push(v.into());
                    (texts.len() - 1) as u32
                }
            },
        });
        TextColumn { ids, texts }
    }

    /// Record `row`'s value.
    pub fn get(&self, row: usize) -> Option<&str> {
        match self.ids[row] {
            0 => None,
            id => Some(&self.texts[id as usize]),
        }
    }

    /// Every record's value id (0: none); equal ids mean equal values.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Gives record `row` value `id`, one the column already holds.
    pub fn set(&mut self, row: usize, id: u32) {
        assert!(
            (id as usize) < self.texts.len(),
            "value id {id} out of range"
        );
        self.ids[row] = id;
    }

    /// The text of value `id`.
    pub fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    /// Distinct values, plus one for "none".
    pub fn id_count(&self) -> usize {
        self.texts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gathering_rows_keeps_which_values_are_equal() {
        let column = TextColumn::from_values(["ann", "", "bob", "ann", "cy"].into_iter().map(Some));
        for last in [Some("bob"), Some("dee"), Some(""), None] {
            let rows = [3u32, 1, 0, 2];
            let gathered = column.gather(&rows, last);
            let values: Vec<Option<&str>> = rows
                .iter()
                .map(|&r| column.get(r as usize))
                .chain([last])
                .collect();
            let direct = TextColumn::from_values(values.clone());
            for (i, v) in values.iter().enumerate() {
                assert_eq!(gathered.get(i), v.filter(|v| !v.is_empty()), "row {i}");
                for j in 0..values.len() {
                    assert_eq!(
                        gathered.ids()[i] == gathered.ids()[j],
                        direct.ids()[i] == direct.ids()[j],
                        "rows {i} and {j} with {last:?}"
                    );
                }
            }
            assert_eq!(gathered.id_count(), direct.id_count());
        }
    }

    #[test]
    fn equal_values_share_an_id_and_empty_is_none() {
        let c = TextColumn::from_values([Some("a"), None, Some(""), Some("b"), Some("a")]);
        assert_eq!(c.ids(), &[1, 0, 0, 2, 1]);
        assert_eq!((c.get(0), c.get(1), c.get(2)), (Some("a"), None, None));
        assert_eq!((c.text(2), c.id_count()), ("b", 3));
    }
}
