//! Conditions to SQL. An audience compiles to one `SELECT person_id` over
//! `customer_360`: each related condition and trait is a common table expression of
//! one value per person (an aggregate of the records the identity graph links to that
//! person), joined by `person_id`; another audience is its own expression, tested by
//! `IN`. Relative dates are resolved here against the run's `as_of` (its data interval
//! end) into literal bounds, so the warehouse never reads its own clock.
//!
//! Semantics, the same on every back end and in the tests' evaluator: a comparison
//! with a missing value is false, and `not` of a condition is true exactly when the
//! condition is not (so `not` of a comparison with a missing value is true). Only
//! under `not` does that differ from SQL's NULL logic, so only there is a condition
//! wrapped (`NOT COALESCE(c, FALSE)`); elsewhere the plain predicate keeps the plans
//! a hand-written query would get.

use chrono::NaiveDateTime;

use super::sql::{bucket_of_hex, ceil_date, Dialect};
use crate::config::{
    Aggregate, AudienceConfig, Condition, Op, Operand, Pipeline, RelatedAggregate, Value,
    ValueType, CUSTOMER_360_TABLE, IDENTITY_GRAPH_TABLE,
};

/// What compilation needs besides the pipeline.
#[derive(Debug, Clone, Copy)]
pub struct Env {
    pub dialect: Dialect,
    /// The instant relative dates count back from (UTC).
    pub as_of: NaiveDateTime,
}

/// Builds the WITH list and the joins of one query.
struct Compiler<'p> {
    p: &'p Pipeline,
    env: Env,
    /// Named common table expressions, in dependency order.
    ctes: Vec<(String, String)>,
    next: usize,
    /// When set, a related aggregate reads only the records whose column of this name
    /// is before `env.as_of` (a trait as of a cut-off).
    before: Option<&'p str>,
}

/// The query of an audience's members: one `person_id` column, one row per member.
pub fn members_sql(p: &Pipeline, audience: &str, env: Env) -> Option<String> {
    let mut c = Compiler::new(p, env);
    let cte = c.audience(audience)?;
    Some(c.finish(&format!("SELECT person_id FROM {cte}")))
}

/// The query of an audience's members with their holdout flag and split group:
/// columns `person_id`, `holdout` (boolean) and `split` (text, null for the held-out
/// or when there are no splits). The group comes from a bucket in [0, 10000) hashed
/// from the person id and the audience's salt, so it is stable across runs; with
/// `stratify`, the members of each value of that column are ranked by their bucket and
/// spread evenly, so every value gets the percentages exactly.
pub fn assignment_sql(p: &Pipeline, a: &AudienceConfig, env: Env) -> Option<String> {
    let mut c = Compiler::new(p, env);
    let cte = c.audience(&a.name)?;
    let d = env.dialect;
    if a.splits.is_empty() && a.holdout_bps == 0 {
        return Some(c.finish(&format!(
            "SELECT person_id, FALSE AS holdout, CAST(NULL AS VARCHAR) AS split FROM {cte}"
        )));
    }
    let key = format!("m.person_id || {}", d.text(&format!(":{}", a.salt)));
    let (stratum, join) = match &a.stratify {
        None => (None, String::new()),
        Some(operand) => {
            let mut joins = Vec::new();
            let expr = c.operand(operand, &mut joins);
            let profile = format!(
                " JOIN {} AS c ON c.{} = m.person_id",
                d.ident(CUSTOMER_360_TABLE),
                d.ident("person_id")
            );
            (Some(expr), format!("{profile}{}", joins.join("")))
        }
    };
    let hashed = c.name("hashed");
    let (inner, outer) = match &stratum {
        Some(expr) => (format!(", {expr} AS stratum"), ", stratum"),
        None => (String::new(), ""),
    };
    c.ctes.push((
        hashed.clone(),
        format!(
            "SELECT person_id, {} AS bucket{outer} FROM (SELECT m.person_id, {} AS h{inner} FROM {cte} AS m{join}) AS x",
            bucket_of_hex("h"),
            d.sha256_hex(&key),
        ),
    ));
    let bucket = if stratum.is_some() {
        "CAST(FLOOR(10000 * (ROW_NUMBER() OVER (PARTITION BY stratum ORDER BY bucket, person_id) - 1) / COUNT(*) OVER (PARTITION BY stratum)) AS BIGINT)".to_string()
    } else {
        "bucket".to_string()
    };
    let assigned = c.name("assigned");
    c.ctes.push((
        assigned.clone(),
        format!("SELECT person_id, {bucket} AS b FROM {hashed}"),
    ));
    let h = a.holdout_bps;
    let split = if a.splits.is_empty() {
        "CAST(NULL AS VARCHAR)".to_string()
    } else {
        let mut cum = 0u32;
        let mut arms = Vec::new();
        for (i, s) in a.splits.iter().enumerate() {
            cum += s.bps;
            let name = d.text(&s.name);
            if i + 1 == a.splits.len() {
                arms.push(format!("ELSE {name}"));
            } else {
                arms.push(format!(
                    "WHEN (b - {h}) * 10000 < {cum} * {} THEN {name}",
                    10_000 - h
                ));
            }
        }
        format!("CASE WHEN b < {h} THEN NULL {} END", arms.join(" "))
    };
    Some(c.finish(&format!(
        "SELECT person_id, b < {h} AS holdout, {split} AS split FROM {assigned}"
    )))
}

/// The query of one trait for every person: `person_id` and `value`.
pub fn trait_sql(p: &Pipeline, name: &str, env: Env) -> Option<String> {
    trait_query(Compiler::new(p, env), name)
}

/// The query of one trait for every person as it stood at `env.as_of`: the same
/// aggregate as [`trait_sql`], over only the records whose `at` column (a date or
/// timestamp of the trait's entity) is before that instant.
pub fn trait_sql_before(p: &Pipeline, name: &str, env: Env, at: &str) -> Option<String> {
    let mut c = Compiler::new(p, env);
    c.before = Some(at);
    trait_query(c, name)
}

fn trait_query(mut c: Compiler<'_>, name: &str) -> Option<String> {
    let (p, env) = (c.p, c.env);
    let t = p.traits.iter().find(|t| t.name == name)?;
    let cte = c.related(&t.agg);
    let d = env.dialect;
    Some(c.finish(&format!(
        "SELECT c.{pid} AS person_id, {} AS value FROM {} AS c LEFT JOIN {cte} ON {cte}.person_id = c.{pid}",
        value_of(&t.agg, &cte),
        d.ident(CUSTOMER_360_TABLE),
        pid = d.ident("person_id"),
    )))
}

/// The value a related aggregate gives a person from its joined expression: a count
/// or sum over no records is 0, any other aggregate null.
fn value_of(agg: &RelatedAggregate, cte: &str) -> String {
    or_none_value(agg, &format!("{cte}.v"))
}

/// `joined`, a related aggregate's value left-joined to the persons, with the value of
/// a person without records: 0 for a count or a sum, else null.
pub fn or_none_value(agg: &RelatedAggregate, joined: &str) -> String {
    match agg.aggregate {
        Aggregate::Count | Aggregate::Sum => format!("COALESCE({joined}, 0)"),
        _ => joined.to_string(),
    }
}

/// The SQL aggregate of a related aggregate computed by a `GROUP BY` over the records
/// (alias `r`): count, sum, min, max or average; none for first and last, which rank
/// the records instead, or an aggregate that lacks its column.
pub fn grouped_aggregate(agg: &RelatedAggregate, d: Dialect) -> Option<String> {
    let of = agg.of.as_ref().map(|o| format!("r.{}", d.ident(o.name())));
    Some(match (agg.aggregate, &of) {
        (Aggregate::Count, None) => "COUNT(*)".to_string(),
        (Aggregate::Count, Some(o)) => format!("COUNT({o})"),
        (Aggregate::Sum, Some(o)) => format!("SUM({o})"),
        (Aggregate::Min, Some(o)) => format!("MIN({o})"),
        (Aggregate::Max, Some(o)) => format!("MAX({o})"),
        (Aggregate::Avg, Some(o)) => format!("AVG({o})"),
        _ => return None,
    })
}

impl<'p> Compiler<'p> {
    fn new(p: &'p Pipeline, env: Env) -> Self {
        Self {
            p,
            env,
            ctes: Vec::new(),
            next: 0,
            before: None,
        }
    }

    fn name(&mut self, stem: &str) -> String {
        self.next += 1;
        format!("{stem}_{}", self.next)
    }

    fn finish(self, select: &str) -> String {
        if self.ctes.is_empty() {
            return select.to_string();
        }
        let with: Vec<String> = self
            .ctes
            .iter()
            .map(|(name, body)| format!("{name} AS (\n  {body}\n)"))
            .collect();
        format!("WITH {}\n{select}", with.join(",\n"))
    }

    /// Registers the audience (and the audiences it refers to) as expressions; returns
    /// the name of its own.
    fn audience(&mut self, name: &str) -> Option<String> {
        let cte = format!("aud_{name}");
        if self.ctes.iter().any(|(n, _)| *n == cte) {
            return Some(cte);
        }
        let a = self.p.audiences.iter().find(|a| a.name == name)?;
        let d = self.env.dialect;
        // A top-level condition that is the existence of related records ("an order in
        // the last 30 days", "order_count at least 1") is a semi-join on those records,
        // with no aggregate. One that no person without related records meets (at
        // least 2 orders, a lifetime value over 500) joins its aggregate with an inner
        // join. The rest join theirs left. When every top-level condition is of the
        // first two kinds, the members come from the records alone (every person of
        // the identity graph is a person of customer_360): the plan a hand-written
        // query gets.
        let conjuncts: Vec<&Condition> = match &a.condition {
            Condition::All(cs) => cs.iter().collect(),
            c => vec![c],
        };
        let mut exists = Vec::new();
        let mut required = Vec::new();
        let mut rest = Vec::new();
        // Events carry the person id of their own time, which a later resolve may
        // have retired: members from events are always persons of customer_360.
        let events = conjuncts.iter().any(|c| self.reads_events(c));
        for c in conjuncts {
            if let Some((sub, true)) = self.exists(c) {
                exists.push(sub);
            } else if let Some(r) = self.required(c) {
                required.push(r);
            } else {
                rest.push(c);
            }
        }
        let pid = d.ident("person_id");
        let body = if rest.is_empty() && !events && !(exists.is_empty() && required.is_empty()) {
            let (from, key) = match required.first() {
                Some((first, _)) => {
                    let mut from = first.clone();
                    for (cte, _) in &required[1..] {
                        if *cte != *first && !from.contains(&format!(" JOIN {cte} ON")) {
                            from.push_str(&format!(
                                " JOIN {cte} ON {cte}.person_id = {first}.person_id"
                            ));
                        }
                    }
                    (from, format!("{first}.person_id"))
                }
                None => (
                    format!(
                        "(SELECT DISTINCT person_id FROM ({}) AS e)",
                        exists.remove(0)
                    ),
                    "x.person_id".to_string(),
                ),
            };
            let from = if required.is_empty() {
                format!("{from} AS x")
            } else {
                from
            };
            let mut parts = vec![format!("{key} IS NOT NULL")];
            parts.extend(required.into_iter().map(|(_, p)| p));
            parts.extend(exists.iter().map(|sub| format!("{key} IN ({sub})")));
            format!(
                "SELECT {key} AS person_id FROM {from} WHERE {}",
                parts.join(" AND ")
            )
        } else {
            // A required aggregate is a semi-join on the persons it keeps: the set to
            // look up is the few that pass, not every person with records.
            let mut joins = Vec::new();
            let mut parts = Vec::new();
            for (cte, predicate) in required {
                parts.push(format!(
                    "c.{pid} IN (SELECT {cte}.person_id FROM {cte} WHERE {predicate})"
                ));
            }
            parts.extend(exists.iter().map(|sub| format!("c.{pid} IN ({sub})")));
            for c in rest {
                parts.push(self.condition(c, &mut joins)?);
            }
            let cond = if parts.len() == 1 {
                parts.remove(0)
            } else {
                format!("({})", parts.join(" AND "))
            };
            format!(
                "SELECT c.{pid} AS person_id FROM {} AS c{} WHERE {cond}",
                d.ident(CUSTOMER_360_TABLE),
                joins.join("")
            )
        };
        self.ctes.push((cte.clone(), body));
        Some(cte)
    }

    /// Whether a top-level condition reads a stream's events.
    fn reads_events(&self, c: &Condition) -> bool {
        match c {
            Condition::Sequence { .. } => true,
            Condition::Related { agg, .. } => agg.stream.is_some(),
            Condition::Compare {
                operand: Operand::Trait { name, .. },
                ..
            } => self
                .p
                .traits
                .iter()
                .any(|t| t.name == *name && t.agg.stream.is_some()),
            _ => false,
        }
    }

    /// For a condition that only asks whether a person has related records (a count
    /// of at least one, or of none): the query of the persons who have them, and true
    /// when the condition holds for those persons (false: for the others). No
    /// aggregate is needed, only a semi-join.
    fn exists(&self, c: &Condition) -> Option<(String, bool)> {
        if matches!(c, Condition::Sequence { .. }) {
            return Some((self.sequence(c)?, true));
        }
        let (agg, op) = match c {
            Condition::Related { agg, op } => (agg, op),
            Condition::Compare {
                operand: Operand::Trait { name, .. },
                op,
            } => (&self.p.traits.iter().find(|t| t.name == *name)?.agg, op),
            _ => return None,
        };
        if agg.aggregate != Aggregate::Count {
            return None;
        }
        let holds = count_test(op)?;
        let d = self.env.dialect;
        let (from, person) = records_from(self.p, agg, d)?;
        let mut filters = Vec::new();
        if let Some(f) = &agg.filter {
            filters.push(self.record_condition(f, "r")?);
        }
        if let Some(o) = &agg.of {
            filters.push(format!("r.{} IS NOT NULL", d.ident(o.name())));
        }
        if !holds {
            // NOT IN over a NULL is never true: the records of no person are left out.
            filters.push(format!("{person} IS NOT NULL"));
        }
        Some((
            format!(
                "SELECT {person} AS person_id {from}{}",
                where_clause(&filters)
            ),
            holds,
        ))
    }

    /// The persons with an event of one kind followed by one of another within the
    /// span: a self-join of the stream's events on the person.
    fn sequence(&self, c: &Condition) -> Option<String> {
        let Condition::Sequence {
            stream,
            first,
            then,
            within,
            by,
        } = c
        else {
            return None;
        };
        let d = self.env.dialect;
        let pid = d.ident("person_id");
        let t = d.ident(by.name());
        let mut filters = vec![format!("a.{pid} IS NOT NULL")];
        if let Some(f) = first {
            filters.push(self.record_condition(f, "a")?);
        }
        filters.push(self.record_condition(then, "b")?);
        let table = d.ident(&crate::stream::link::view_of(stream));
        Some(format!(
            "SELECT a.{pid} AS person_id FROM {table} AS a JOIN {table} AS b ON b.{pid} = a.{pid} AND b.{t} > a.{t} AND b.{t} <= {} WHERE {}",
            d.add_span(&format!("a.{t}"), *within),
            filters.join(" AND ")
        ))
    }

    /// For a related condition (or a trait comparison) that a person without related
    /// records never meets: its aggregate's expression and the predicate on it.
    fn required(&mut self, c: &Condition) -> Option<(String, String)> {
        let (agg, op) = match c {
            Condition::Related { agg, op } => (agg.clone(), op),
            Condition::Compare {
                operand: Operand::Trait { name, .. },
                op,
            } => (
                self.p.traits.iter().find(|t| t.name == *name)?.agg.clone(),
                op,
            ),
            _ => return None,
        };
        if holds_without_records(&agg, op) {
            return None;
        }
        let cte = self.related(&agg);
        let predicate = self.op(&value_of(&agg, &cte), agg.ty, op);
        Some((cte, predicate))
    }

    fn condition(&mut self, c: &Condition, joins: &mut Vec<String>) -> Option<String> {
        Some(match c {
            Condition::All(cs) | Condition::Any(cs) => {
                let glue = if matches!(c, Condition::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts: Option<Vec<String>> =
                    cs.iter().map(|c| self.condition(c, joins)).collect();
                let parts = parts?;
                if parts.len() == 1 {
                    parts.into_iter().next()?
                } else {
                    format!("({})", parts.join(glue))
                }
            }
            Condition::Not(inner) => {
                format!("NOT COALESCE({}, FALSE)", self.condition(inner, joins)?)
            }
            Condition::Related { .. } | Condition::Compare { .. } | Condition::Sequence { .. }
                if self.exists(c).is_some() =>
            {
                let (sub, holds) = self.exists(c)?;
                let d = self.env.dialect;
                let not = if holds { "" } else { "NOT " };
                format!("c.{} {not}IN ({sub})", d.ident("person_id"))
            }
            Condition::Compare { operand, op } => {
                let expr = self.operand(operand, joins);
                self.op(&expr, operand.ty(), op)
            }
            Condition::Related { agg, op } => {
                let cte = self.related(agg);
                let d = self.env.dialect;
                // The same aggregate twice (or a trait's own) is one join.
                push_join(joins, &cte, d);
                self.op(&value_of(agg, &cte), agg.ty, op)
            }
            // Not compiled (a filter that is not on records): nothing to run.
            Condition::Sequence { .. } => return None,
            Condition::MemberOf { audience, negated } => {
                let cte = self.audience(audience)?;
                let d = self.env.dialect;
                let test = format!(
                    "c.{} IN (SELECT person_id FROM {cte})",
                    d.ident("person_id")
                );
                if *negated {
                    format!("NOT {test}")
                } else {
                    test
                }
            }
        })
    }

    /// The expression of a profile value; a trait adds its join.
    fn operand(&mut self, o: &Operand, joins: &mut Vec<String>) -> String {
        let d = self.env.dialect;
        match o {
            Operand::Column { name, .. } => format!("c.{}", d.ident(name)),
            Operand::Trait { name, .. } => {
                let Some(t) = self.p.traits.iter().find(|t| t.name == *name) else {
                    return "NULL".into();
                };
                let cte = self.related(&t.agg);
                push_join(joins, &cte, d);
                value_of(&t.agg, &cte)
            }
        }
    }

    /// One value per person from the records the identity graph links to them.
    fn related(&mut self, agg: &RelatedAggregate) -> String {
        let d = self.env.dialect;
        if self.p.entity(&agg.entity).is_none() {
            return "missing".into();
        }
        let (from, person) = records_from(self.p, agg, d).unwrap_or_default();
        let id = |c: &str| d.ident(c);
        let mut filters = Vec::new();
        if let Some(f) = &agg.filter {
            if let Some(sql) = self.record_condition(f, "r") {
                filters.push(sql);
            }
        }
        if let Some(at) = self.before {
            filters.push(format!(
                "r.{} < {}",
                id(at),
                d.literal(&Value::Timestamp(self.env.as_of))
            ));
        }
        let of_text = agg
            .of
            .as_ref()
            .map(|o| format!("r.{}", id(o.name())))
            .unwrap_or_default();
        let body = match agg.aggregate {
            Aggregate::First | Aggregate::Last => {
                let ob = agg
                    .order_by
                    .as_ref()
                    .map(|o| format!("r.{}", id(o.name())))
                    .unwrap_or_default();
                filters.push(format!("{ob} IS NOT NULL AND {of_text} IS NOT NULL"));
                let dir = if agg.aggregate == Aggregate::First {
                    "ASC"
                } else {
                    "DESC"
                };
                format!(
                    "SELECT person_id, v FROM (SELECT {person} AS person_id, {of_text} AS v, ROW_NUMBER() OVER (PARTITION BY {person} ORDER BY {ob} {dir}, {of_text} {dir}) AS rn {from}{}) AS ranked WHERE rn = 1",
                    where_clause(&filters),
                )
            }
            _ => {
                let value = grouped_aggregate(agg, d).unwrap_or_else(|| "NULL".into());
                format!(
                    "SELECT {person} AS person_id, {value} AS v {from}{} GROUP BY {person}",
                    where_clause(&filters),
                )
            }
        };
        // One expression per distinct aggregate: a trait used twice is read once.
        if let Some((name, _)) = self.ctes.iter().find(|(_, b)| *b == body) {
            return name.clone();
        }
        let name = self.name("rel");
        self.ctes.push((name.clone(), body));
        name
    }

    /// A condition on a related entity's records (alias `r`).
    fn record_condition(&self, c: &Condition, alias: &str) -> Option<String> {
        let d = self.env.dialect;
        Some(match c {
            Condition::All(cs) | Condition::Any(cs) => {
                let glue = if matches!(c, Condition::All(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts: Option<Vec<String>> =
                    cs.iter().map(|c| self.record_condition(c, alias)).collect();
                format!("({})", parts?.join(glue))
            }
            Condition::Not(inner) => {
                format!(
                    "NOT COALESCE({}, FALSE)",
                    self.record_condition(inner, alias)?
                )
            }
            Condition::Compare { operand, op } => {
                let expr = format!("{alias}.{}", d.ident(operand.name()));
                self.op(&expr, operand.ty(), op)
            }
            _ => return None,
        })
    }

    /// `expr` against an operator.
    fn op(&self, expr: &str, ty: ValueType, op: &Op) -> String {
        let d = self.env.dialect;
        let lit = |v: &Value| d.literal(&coerce(v, ty));
        let list = |vs: &[Value]| vs.iter().map(lit).collect::<Vec<_>>().join(", ");
        match op {
            Op::Equals(v) => format!("{expr} = {}", lit(v)),
            Op::NotEquals(v) => format!("{expr} <> {}", lit(v)),
            Op::In(vs) => format!("{expr} IN ({})", list(vs)),
            Op::NotIn(vs) => format!("{expr} NOT IN ({})", list(vs)),
            Op::Compare(cmp, v) => format!("{expr} {} {}", cmp.sql(), lit(v)),
            Op::Between(lo, hi) => format!("{expr} BETWEEN {} AND {}", lit(lo), lit(hi)),
            Op::Contains(s) => d.contains(expr, s),
            Op::StartsWith(s) => d.starts_with(expr, s),
            Op::IsNull => format!("{expr} IS NULL"),
            Op::IsNotNull => format!("{expr} IS NOT NULL"),
            Op::WithinLast(span) => {
                let (from, to) = (
                    self.bound(ty, span.before(self.env.as_of)),
                    self.bound(ty, self.env.as_of),
                );
                format!("({expr} >= {from} AND {expr} < {to})")
            }
            Op::MoreThanAgo(span) => {
                format!("{expr} < {}", self.bound(ty, span.before(self.env.as_of)))
            }
        }
    }

    /// An instant as a bound for a date column (the first day at or after it: a day
    /// counts from its midnight) or a timestamp column.
    fn bound(&self, ty: ValueType, t: NaiveDateTime) -> String {
        let d = self.env.dialect;
        if ty == ValueType::Date {
            d.literal(&Value::Date(ceil_date(t)))
        } else {
            d.literal(&Value::Timestamp(t))
        }
    }
}

/// The `FROM` of an aggregate's records (alias `r`) and the expression of the person
/// each belongs to: an entity's records through the identity graph, or a stream's
/// events, which carry their person id.
fn records_from(p: &Pipeline, agg: &RelatedAggregate, d: Dialect) -> Option<(String, String)> {
    match &agg.stream {
        Some(stream) => Some((
            format!(
                "FROM {} AS r",
                d.ident(&crate::stream::link::view_of(stream))
            ),
            format!("r.{}", d.ident("person_id")),
        )),
        None => Some((
            related_from(p, &agg.entity, d)?,
            format!("g.{}", d.ident("person_id")),
        )),
    }
}

/// Joins an aggregate's expression left, unless it is joined already (left, or inner
/// for a required condition: every row then has it).
/// `FROM entity AS r JOIN identity_graph AS g ON ...`: an entity's records (alias `r`)
/// with the person each belongs to (`g.person_id`), through its `belongs_to` link or,
/// for the person entity itself, its own records. `None` for an unknown entity.
pub fn related_from(p: &Pipeline, entity: &str, d: Dialect) -> Option<String> {
    let e = p.entity(entity)?;
    let id = |c: &str| d.ident(c);
    let link = match &e.belongs_to {
        Some(l) => {
            let col = format!("r.{}", id(&l.column));
            let key = if l.numeric { d.cast_text(&col) } else { col };
            format!(
                "g.{} = {} AND g.{} = {key}",
                id("source"),
                d.text(l.source.as_deref().unwrap_or_default()),
                id("record_id")
            )
        }
        None => {
            let key_numeric = e
                .column(&e.key)
                .is_some_and(|c| ValueType::of_kind(c.kind) == ValueType::Integer);
            let col = format!("r.{}", id(&e.key));
            let key = if key_numeric { d.cast_text(&col) } else { col };
            format!(
                "g.{} = r.{} AND g.{} = {key}",
                id("source"),
                id("source"),
                id("record_id")
            )
        }
    };
    let from = format!(
        "FROM {} AS r JOIN {} AS g ON {link}",
        id(entity),
        id(IDENTITY_GRAPH_TABLE)
    );
    Some(from)
}

fn push_join(joins: &mut Vec<String>, cte: &str, d: Dialect) {
    let on = format!(" {cte} ON {cte}.person_id = c.{}", d.ident("person_id"));
    if !joins.iter().any(|j| j.ends_with(&on)) {
        joins.push(format!(" LEFT JOIN{on}"));
    }
}

/// Whether a person with no related records meets `op` on the aggregate: a count or
/// sum is then 0, any other aggregate missing. When unsure, yes (the left join stays).
fn holds_without_records(agg: &RelatedAggregate, op: &Op) -> bool {
    use std::cmp::Ordering;
    let zero = match agg.aggregate {
        Aggregate::Count | Aggregate::Sum => Value::Int(0),
        _ => return matches!(op, Op::IsNull),
    };
    let cmp = |v: &Value| crate::config::value_order(&zero, v);
    match op {
        Op::IsNull => false,
        Op::IsNotNull => true,
        Op::Equals(v) => cmp(v) != Some(Ordering::Greater) && cmp(v) != Some(Ordering::Less),
        Op::NotEquals(v) => cmp(v) != Some(Ordering::Equal),
        Op::In(vs) => vs
            .iter()
            .any(|v| cmp(v) != Some(Ordering::Greater) && cmp(v) != Some(Ordering::Less)),
        Op::NotIn(vs) => vs.iter().all(|v| cmp(v) != Some(Ordering::Equal)),
        Op::Compare(c, v) => match (c, cmp(v)) {
            (crate::config::Cmp::Lt, Some(o)) => o.is_lt(),
            (crate::config::Cmp::Le, Some(o)) => o.is_le(),
            (crate::config::Cmp::Gt, Some(o)) => o.is_gt(),
            (crate::config::Cmp::Ge, Some(o)) => o.is_ge(),
            _ => true,
        },
        Op::Between(lo, hi) => {
            cmp(lo) != Some(Ordering::Less) && cmp(hi) != Some(Ordering::Greater)
        }
        _ => true,
    }
}

/// For a count: `Some(true)` when `op` holds exactly for counts of one and more,
/// `Some(false)` when exactly for a count of zero, `None` otherwise.
fn count_test(op: &Op) -> Option<bool> {
    let n = |v: &Value| match v {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        _ => None,
    };
    use crate::config::Cmp;
    match op {
        Op::Compare(Cmp::Ge, v) if n(v).is_some_and(|x| x > 0.0 && x <= 1.0) => Some(true),
        Op::Compare(Cmp::Gt, v) if n(v).is_some_and(|x| (0.0..1.0).contains(&x)) => Some(true),
        Op::NotEquals(v) if n(v) == Some(0.0) => Some(true),
        Op::Equals(v) if n(v) == Some(0.0) => Some(false),
        Op::Compare(Cmp::Lt, v) if n(v).is_some_and(|x| x > 0.0 && x <= 1.0) => Some(false),
        Op::Compare(Cmp::Le, v) if n(v).is_some_and(|x| (0.0..1.0).contains(&x)) => Some(false),
        _ => None,
    }
}

fn where_clause(filters: &[String]) -> String {
    if filters.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filters.join(" AND "))
    }
}

/// A date compared with a timestamp column is its midnight.
fn coerce(v: &Value, ty: ValueType) -> Value {
    match (v, ty) {
        (Value::Date(d), ValueType::Timestamp) => {
            Value::Timestamp(d.and_time(chrono::NaiveTime::MIN))
        }
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use crate::warehouse::Warehouse;
    use chrono::{NaiveDate, NaiveDateTime};
    use std::path::Path;

    /// Persons with a column of each type, orders that belong to them, three traits.
    pub(crate) const PIPELINE: &str = r#"
audiences = [
  { name = "base", where = { column = "age", at_least = 40 } },
  { name = "buyers", description = "2+ orders over 50 in 90 days, not young", where = { all = [
      { related = "orders", at_least = 2, where = { all = [{ column = "total", greater_than = 50 }, { column = "at", within_last = "90 days" }] } },
      { not = { column = "birth", more_than_ago = "18 years" } },
      { any = [{ column = "name", in = ["O'Brien", "Lee"] }, { column = "name", starts_with = "Mc" }, { trait = "spent", between = [10, 1000] }] },
      { not_member_of = "base" },
  ] }, holdout = "10%", splits = { a = 50, b = 50 } },
  { name = "strat", where = { trait = "orders_n", at_least = 0 }, splits = { x = 30, y = 70 }, stratify = "name" },
  { name = "recent", where = { related = "orders", where = { column = "at", within_last = "30 days" } } },
  { name = "lapsed", where = { all = [{ trait = "orders_n", at_least = 1 }, { not = { related = "orders", where = { column = "at", within_last = "180 days" } } }] } },
  { name = "spenders", where = { all = [{ trait = "spent", at_least = 100 }, { related = "orders", aggregate = "max", of = "total", greater_than = 50 }, { trait = "orders_n", greater_than = 0 }] } },
  { name = "browsers", where = { all = [{ event = "clicks", where = { all = [{ column = "kind", equals = "view" }, { column = "at", within_last = "7 days" }] }, at_least = 3 }, { not = { event = "clicks", where = { column = "kind", equals = "buy" } } }] } },
  { name = "cart_then_buy", where = { event = "clicks", where = { column = "kind", equals = "cart" }, then = { column = "kind", equals = "buy" }, within = "3 days", by = "at" } },
]
[pipeline]
name = "t"
[lake]
url = "file://lake"
[warehouse]
url = "duckdb://w.duckdb"
[[sources]]
name = "crm"
kind = "files"
path = "p/*.csv"
entity = "person"
columns = { Id = "record_id", Name = "name", Age = "age", Score = "score", Birth = "birth", Seen = "seen" }
[[sources]]
name = "shop"
kind = "files"
path = "o/*.csv"
entity = "orders"
columns = { Id = "order_id", Customer = "customer_id", Total = "total", At = "at" }
[entities.person]
key = "record_id"
columns = { name = "text", age = "integer", score = "float", birth = { kind = "date" }, seen = "timestamp" }
[entities.orders]
key = "order_id"
columns = { order_id = "integer", customer_id = "integer", total = "float", at = "timestamp" }
belongs_to = { source = "crm", column = "customer_id" }
[entities.click]
key = "click_id"
columns = { click_id = "text", kind = "text", at = "timestamp", value = "float" }
[[streams]]
name = "clicks"
kind = "kinesis"
entity = "click"
stream_name = "clicks"
region = "us-east-1"
[identity]
entity = "person"
rules = [{ name = "n", match = ["name"] }]
attributes = ["name", "age", "score", "birth", "seen"]
[[traits]]
name = "spent"
related = "orders"
aggregate = "sum"
of = "total"
[[traits]]
name = "orders_n"
related = "orders"
aggregate = "count"
[[traits]]
name = "first_total"
related = "orders"
aggregate = "first"
of = "total"
order_by = "at"
"#;

    pub(crate) fn pipeline() -> Pipeline {
        Pipeline::from_str(PIPELINE, Path::new("t.toml"), &Overrides::default()).expect("valid")
    }

    fn as_of() -> NaiveDateTime {
        NaiveDateTime::parse_from_str("2026-03-01 12:00:00", "%Y-%m-%d %H:%M:%S").expect("t")
    }

    #[test]
    fn generated_sql_for_both_dialects() {
        let p = pipeline();
        let buyers = p
            .audiences
            .iter()
            .find(|a| a.name == "buyers")
            .expect("buyers");
        let strat = p
            .audiences
            .iter()
            .find(|a| a.name == "strat")
            .expect("strat");
        for (name, dialect) in [
            ("duckdb", Dialect::DuckDb),
            ("snowflake", Dialect::Snowflake),
        ] {
            let env = Env {
                dialect,
                as_of: as_of(),
            };
            let sql = [
                members_sql(&p, "buyers", env).expect("members"),
                assignment_sql(&p, buyers, env).expect("assignment"),
                assignment_sql(&p, strat, env).expect("stratified"),
                trait_sql(&p, "first_total", env).expect("trait"),
                members_sql(&p, "recent", env).expect("existence alone"),
                members_sql(&p, "lapsed", env).expect("existence and absence"),
                members_sql(&p, "spenders", env).expect("aggregates alone"),
                members_sql(&p, "browsers", env).expect("event counts"),
                members_sql(&p, "cart_then_buy", env).expect("a sequence of events"),
            ]
            .join(";\n\n");
            insta::assert_snapshot!(format!("audience_sql_{name}"), sql);
        }
    }

    /// Event conditions are checked like the others: every problem, with its key.
    #[test]
    fn bad_event_conditions_are_refused_naming_the_key() {
        let bad = [
            r#"{ name = "e1", where = { event = "clickz" } }"#,
            r#"{ name = "e2", where = { event = "clicks", then = { column = "kind", equals = "buy" }, by = "at" } }"#,
            r#"{ name = "e3", where = { event = "clicks", then = { column = "kind", equals = "buy" }, within = "3 days", by = "kind" } }"#,
            r#"{ name = "e4", where = { related = "orders", within = "3 days" } }"#,
            r#"{ name = "e5", where = { event = "clicks", then = { column = "kind", equals = "buy" }, within = "soon", by = "at", at_least = 2 } }"#,
            r#"{ name = "e6", where = { event = "clicks", where = { column = "colour", equals = "red" } } }"#,
        ];
        let text = PIPELINE.replacen(
            "audiences = [",
            &format!("audiences = [\n  {},", bad.join(",\n  ")),
            1,
        );
        let err = Pipeline::from_str(&text, Path::new("t.toml"), &Overrides::default())
            .expect_err("bad events")
            .to_string();
        for expected in [
            "audiences[0].where.event: unknown stream \"clickz\"; did you mean \"clicks\"?",
            "audiences[1].where.within: a sequence needs `within`",
            "audiences[2].where.by: \"kind\" is text; `by` needs a date or timestamp column",
            "audiences[3].where.within: `within` applies only to an event condition",
            "audiences[4].where.at_least: `at_least` applies only to an event condition without `then`",
            "audiences[5].where.where.column: unknown column of entity \"click\": \"colour\"",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
        }
    }

    /// Every compiled query runs on DuckDB.
    #[test]
    fn compiled_queries_run_on_duckdb() {
        let p = pipeline();
        let mut db = crate::warehouse::duckdb::DuckDb::open_in_memory().expect("db");
        let data = Data::sample();
        data.load(&mut db);
        let env = Env {
            dialect: Dialect::DuckDb,
            as_of: as_of(),
        };
        for a in &p.audiences {
            let sql = assignment_sql(&p, a, env).expect("sql");
            let rows = db
                .query(&sql)
                .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", a.name));
            assert_eq!(rows.columns, ["person_id", "holdout", "split"]);
        }
        let members = |name: &str, db: &mut crate::warehouse::duckdb::DuckDb| -> Vec<String> {
            let sql = members_sql(&p, name, env).expect("sql");
            let mut ids: Vec<String> = db
                .query(&sql)
                .expect("members")
                .rows
                .iter()
                .map(|r| r[0].as_str().unwrap_or_default().to_string())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(members("base", &mut db), data.eval(&p, "base", as_of()));
        assert_eq!(members("buyers", &mut db), data.eval(&p, "buyers", as_of()));
    }

    mod property {
        use super::*;
        use crate::config::{
            AudienceConfig, Cmp, Condition, Op, Operand, RelatedAggregate, SizeGuard, Span,
            ValueType,
        };
        use proptest::prelude::*;

        fn instants() -> Vec<NaiveDateTime> {
            let base = as_of();
            let mut out = Vec::new();
            for days in [-800i64, -400, -365, -200, -91, -90, -89, -30, -1, 0, 1] {
                for hours in [0i64, 12] {
                    out.push(
                        base + chrono::TimeDelta::days(days) - chrono::TimeDelta::hours(hours),
                    );
                }
            }
            out
        }

        fn instant() -> impl Strategy<Value = NaiveDateTime> {
            proptest::sample::select(instants())
        }

        fn name() -> impl Strategy<Value = String> {
            proptest::sample::select(vec!["", "a", "ab", "b", "ba", "O'B"]).prop_map(String::from)
        }

        fn quarter() -> impl Strategy<Value = f64> {
            (-8i32..400).prop_map(|q| f64::from(q) / 4.0)
        }

        fn span() -> impl Strategy<Value = Span> {
            prop_oneof![
                Just(Span::Days(30)),
                Just(Span::Days(90)),
                Just(Span::Months(12)),
                Just(Span::Hours(12)),
            ]
        }

        fn col(name: &str, ty: ValueType) -> Operand {
            Operand::Column {
                name: name.into(),
                ty,
            }
        }

        fn cmp() -> impl Strategy<Value = Cmp> {
            prop_oneof![Just(Cmp::Lt), Just(Cmp::Le), Just(Cmp::Gt), Just(Cmp::Ge)]
        }

        fn number_op() -> impl Strategy<Value = Op> {
            let num = prop_oneof![
                (-2i64..6).prop_map(Value::Int),
                quarter().prop_map(Value::Float)
            ];
            prop_oneof![
                num.clone().prop_map(Op::Equals),
                num.clone().prop_map(Op::NotEquals),
                (cmp(), num.clone()).prop_map(|(c, v)| Op::Compare(c, v)),
                ((-2i64..3), (0i64..5))
                    .prop_map(|(a, b)| Op::Between(Value::Int(a), Value::Int(a + b))),
                proptest::collection::vec(-2i64..6, 1..3)
                    .prop_map(|v| Op::In(v.into_iter().map(Value::Int).collect())),
                proptest::collection::vec(-2i64..6, 1..3)
                    .prop_map(|v| Op::NotIn(v.into_iter().map(Value::Int).collect())),
                Just(Op::IsNull),
                Just(Op::IsNotNull),
            ]
        }

        fn time_op(date: bool) -> impl Strategy<Value = Op> {
            let v = move |t: NaiveDateTime| {
                if date {
                    Value::Date(t.date())
                } else {
                    Value::Timestamp(t)
                }
            };
            prop_oneof![
                span().prop_map(Op::WithinLast),
                span().prop_map(Op::MoreThanAgo),
                (cmp(), instant()).prop_map(move |(c, t)| Op::Compare(c, v(t))),
                instant().prop_map(move |t| Op::Equals(v(t))),
                Just(Op::IsNull),
            ]
        }

        fn text_op() -> impl Strategy<Value = Op> {
            prop_oneof![
                name().prop_map(|n| Op::Equals(Value::Text(n))),
                name().prop_map(|n| Op::NotEquals(Value::Text(n))),
                proptest::collection::vec(name(), 1..3)
                    .prop_map(|v| Op::In(v.into_iter().map(Value::Text).collect())),
                proptest::collection::vec(name(), 1..3)
                    .prop_map(|v| Op::NotIn(v.into_iter().map(Value::Text).collect())),
                (cmp(), name()).prop_map(|(c, n)| Op::Compare(c, Value::Text(n))),
                name().prop_map(Op::Contains),
                name().prop_map(Op::StartsWith),
                Just(Op::IsNull),
                Just(Op::IsNotNull),
            ]
        }

        fn record_filter() -> impl Strategy<Value = Option<Box<Condition>>> {
            let leaf = prop_oneof![
                number_op().prop_map(|op| Condition::Compare {
                    operand: col("total", ValueType::Float),
                    op
                }),
                time_op(false).prop_map(|op| Condition::Compare {
                    operand: col("at", ValueType::Timestamp),
                    op
                }),
            ];
            let tree = leaf.prop_recursive(2, 6, 2, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 1..3).prop_map(Condition::All),
                    proptest::collection::vec(inner.clone(), 1..3).prop_map(Condition::Any),
                    inner.prop_map(|c| Condition::Not(Box::new(c))),
                ]
            });
            proptest::option::of(tree.prop_map(Box::new))
        }

        fn related() -> impl Strategy<Value = Condition> {
            let aggregate = prop_oneof![
                Just((Aggregate::Count, false, ValueType::Integer)),
                Just((Aggregate::Count, true, ValueType::Integer)),
                Just((Aggregate::Sum, true, ValueType::Float)),
                Just((Aggregate::Min, true, ValueType::Float)),
                Just((Aggregate::Max, true, ValueType::Float)),
                Just((Aggregate::Avg, true, ValueType::Float)),
                Just((Aggregate::First, true, ValueType::Float)),
                Just((Aggregate::Last, true, ValueType::Float)),
            ];
            (aggregate, record_filter(), number_op()).prop_map(
                |((aggregate, of, ty), filter, op)| {
                    let first_last = matches!(aggregate, Aggregate::First | Aggregate::Last);
                    Condition::Related {
                        agg: RelatedAggregate {
                            entity: "orders".into(),
                            stream: None,
                            aggregate,
                            of: of.then(|| col("total", ValueType::Float)),
                            order_by: first_last.then(|| col("at", ValueType::Timestamp)),
                            filter,
                            ty,
                        },
                        op,
                    }
                },
            )
        }

        fn kind() -> impl Strategy<Value = String> {
            proptest::sample::select(vec!["view", "cart", "buy"]).prop_map(String::from)
        }

        /// A filter on the events of stream `clicks`.
        fn event_filter() -> impl Strategy<Value = Condition> {
            let leaf = prop_oneof![
                kind().prop_map(|k| Condition::Compare {
                    operand: col("kind", ValueType::Text),
                    op: Op::Equals(Value::Text(k))
                }),
                proptest::collection::vec(kind(), 1..3).prop_map(|ks| Condition::Compare {
                    operand: col("kind", ValueType::Text),
                    op: Op::NotIn(ks.into_iter().map(Value::Text).collect())
                }),
                number_op().prop_map(|op| Condition::Compare {
                    operand: col("value", ValueType::Float),
                    op
                }),
                time_op(false).prop_map(|op| Condition::Compare {
                    operand: col("at", ValueType::Timestamp),
                    op
                }),
            ];
            leaf.prop_recursive(2, 4, 2, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 1..3).prop_map(Condition::All),
                    inner.prop_map(|c| Condition::Not(Box::new(c))),
                ]
            })
        }

        /// Counts and sums of a person's events, and sequences of two.
        fn event() -> impl Strategy<Value = Condition> {
            let aggregate = prop_oneof![
                Just((Aggregate::Count, false, ValueType::Integer)),
                Just((Aggregate::Count, true, ValueType::Integer)),
                Just((Aggregate::Sum, true, ValueType::Float)),
                Just((Aggregate::Max, true, ValueType::Float)),
            ];
            prop_oneof![
                (aggregate, proptest::option::of(event_filter()), number_op()).prop_map(
                    |((aggregate, of, ty), filter, op)| Condition::Related {
                        agg: RelatedAggregate {
                            entity: "click".into(),
                            stream: Some("clicks".into()),
                            aggregate,
                            of: of.then(|| col("value", ValueType::Float)),
                            order_by: None,
                            filter: filter.map(Box::new),
                            ty,
                        },
                        op,
                    }
                ),
                (proptest::option::of(event_filter()), event_filter(), span()).prop_map(
                    |(first, then, within)| Condition::Sequence {
                        stream: "clicks".into(),
                        first: first.map(Box::new),
                        then: Box::new(then),
                        within,
                        by: col("at", ValueType::Timestamp),
                    }
                ),
            ]
        }

        fn condition() -> impl Strategy<Value = Condition> {
            let leaf = prop_oneof![
                event(),
                text_op().prop_map(|op| Condition::Compare {
                    operand: col("name", ValueType::Text),
                    op
                }),
                number_op().prop_map(|op| Condition::Compare {
                    operand: col("age", ValueType::Integer),
                    op
                }),
                number_op().prop_map(|op| Condition::Compare {
                    operand: col("score", ValueType::Float),
                    op
                }),
                time_op(true).prop_map(|op| Condition::Compare {
                    operand: col("birth", ValueType::Date),
                    op
                }),
                time_op(false).prop_map(|op| Condition::Compare {
                    operand: col("seen", ValueType::Timestamp),
                    op
                }),
                related(),
                (
                    proptest::sample::select(vec![
                        ("spent", ValueType::Float),
                        ("orders_n", ValueType::Integer),
                        ("first_total", ValueType::Float)
                    ]),
                    number_op()
                )
                    .prop_map(|((n, ty), op)| Condition::Compare {
                        operand: Operand::Trait { name: n.into(), ty },
                        op
                    }),
                any::<bool>().prop_map(|negated| Condition::MemberOf {
                    audience: "base".into(),
                    negated
                }),
            ];
            leaf.prop_recursive(3, 16, 3, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 1..4).prop_map(Condition::All),
                    proptest::collection::vec(inner.clone(), 1..4).prop_map(Condition::Any),
                    inner.prop_map(|c| Condition::Not(Box::new(c))),
                ]
            })
        }

        fn data() -> impl Strategy<Value = Data> {
            let person = (
                proptest::option::of(name()),
                proptest::option::of(-2i64..6),
                proptest::option::of(quarter()),
                proptest::option::of(
                    instant().prop_map(|t| (t - chrono::TimeDelta::days(365 * 18)).date()),
                ),
                proptest::option::of(instant()),
            );
            let order = (
                0i64..8,
                proptest::option::of(quarter()),
                proptest::option::of(instant()),
            );
            (
                proptest::collection::vec(person, 0..8),
                proptest::collection::vec(order, 0..14),
                proptest::collection::vec(0usize..8, 0..7),
                proptest::collection::vec(
                    (
                        proptest::option::of(0usize..8),
                        proptest::option::of(kind()),
                        proptest::option::of(quarter()),
                        proptest::option::of(instant()),
                    ),
                    0..12,
                ),
            )
                .prop_map(|(persons, orders, records, events)| {
                    let persons: Vec<Person> = persons
                        .into_iter()
                        .enumerate()
                        .map(|(i, (name, age, score, birth, seen))| Person {
                            id: format!("p{i}"),
                            name,
                            age,
                            score,
                            birth,
                            seen,
                        })
                        .collect();
                    let n = persons.len();
                    let events = events
                        .into_iter()
                        .enumerate()
                        .map(
                            |(id, (person, kind, value, at)): (usize, (Option<usize>, _, _, _))| {
                                Event {
                                    id,
                                    person: person.filter(|_| n > 0).map(|i| i % n.max(1)),
                                    kind,
                                    value,
                                    at,
                                }
                            },
                        )
                        .collect();
                    Data {
                        events,
                        records: if n == 0 {
                            Vec::new()
                        } else {
                            records.into_iter().map(|r| r % n).collect()
                        },
                        orders: orders
                            .into_iter()
                            .enumerate()
                            .map(|(i, (c, t, at))| (i as i64, c, t, at))
                            .collect(),
                        persons,
                    }
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
            #[test]
            fn compiled_sql_and_the_evaluator_pick_the_same_members(cond in condition(), data in data()) {
                let mut p = pipeline();
                p.audiences.retain(|a| a.name == "base");
                p.audiences.push(AudienceConfig {
                    name: "random".into(),
                    description: String::new(),
                    owner: String::new(),
                    condition: cond,
                    splits: Vec::new(),
                    holdout_bps: 0,
                    salt: "random".into(),
                    stratify: None,
                    guard: SizeGuard::default(),
                    file: None,
                });
                let mut db = crate::warehouse::duckdb::DuckDb::open_in_memory().expect("db");
                data.load(&mut db);
                let env = Env { dialect: Dialect::DuckDb, as_of: as_of() };
                let sql = members_sql(&p, "random", env).expect("sql");
                let rows = db.query(&sql).map_err(|e| TestCaseError::fail(format!("{e}\n{sql}")))?;
                let mut got: Vec<String> = rows.rows.iter().map(|r| r[0].as_str().unwrap_or_default().to_string()).collect();
                got.sort();
                prop_assert_eq!(got, data.eval(&p, "random", as_of()), "{}", sql);
            }
        }
    }

    /// Splits and holdouts follow the documented rule: a bucket from the first six hex
    /// digits of SHA-256(person id ":" salt), modulo 10,000; with `stratify`, each
    /// value's members spread evenly by rank.
    #[test]
    fn splits_and_holdouts_follow_the_hash_and_stratify_exactly() {
        use sha2::{Digest, Sha256};
        let p = pipeline();
        let mut data = Data::sample();
        data.persons = (0..300)
            .map(|i| Person {
                id: format!("x{i}"),
                name: Some(if i % 3 == 0 { "a" } else { "b" }.into()),
                age: Some(50),
                score: None,
                birth: None,
                seen: None,
            })
            .collect();
        data.records.clear();
        data.orders.clear();
        let mut db = crate::warehouse::duckdb::DuckDb::open_in_memory().expect("db");
        data.load(&mut db);
        let env = Env {
            dialect: Dialect::DuckDb,
            as_of: as_of(),
        };
        let bucket = |id: &str, salt: &str| -> u32 {
            let hex = crate::lake::hex(&Sha256::digest(format!("{id}:{salt}").as_bytes()));
            let b = u32::from_str_radix(&hex[..6], 16).expect("hex") % 10_000;
            // The rule outside the warehouse is the same rule.
            assert_eq!(super::super::sql::bucket(id, salt), b, "{id}");
            b
        };
        // Unstratified, with a holdout: "buyers" has none of these persons, so check
        // the rule on a plain audience of everyone instead.
        let mut everyone = p
            .audiences
            .iter()
            .find(|a| a.name == "buyers")
            .expect("a")
            .clone();
        everyone.name = "everyone".into();
        everyone.salt = "s1".into();
        everyone.condition = Condition::Compare {
            operand: Operand::Column {
                name: "age".into(),
                ty: ValueType::Integer,
            },
            op: Op::IsNotNull,
        };
        let mut p2 = p.clone();
        p2.audiences.push(everyone.clone());
        let rows = db
            .query(&assignment_sql(&p2, &everyone, env).expect("sql"))
            .expect("run");
        for r in &rows.rows {
            let id = r[0].as_str().expect("id");
            let b = bucket(id, "s1");
            let want_holdout = b < 1000;
            assert_eq!(r[1].as_bool(), Some(want_holdout), "{id}");
            let want_split = if want_holdout {
                None
            } else if (b - 1000) * 10_000 < 5000 * 9000 {
                Some("a")
            } else {
                Some("b")
            };
            assert_eq!(r[2].as_str(), want_split, "{id} bucket {b}");
        }
        // Stratified 30/70 by name: each name gets exactly floor-rank shares.
        let strat = p
            .audiences
            .iter()
            .find(|a| a.name == "strat")
            .expect("strat");
        let rows = db
            .query(&assignment_sql(&p, strat, env).expect("sql"))
            .expect("run");
        for (name, n) in [("a", 100usize), ("b", 200usize)] {
            let members: Vec<&Vec<serde_json::Value>> = rows
                .rows
                .iter()
                .filter(|r| {
                    let i: usize = r[0].as_str().unwrap_or("x0")[1..].parse().unwrap_or(0);
                    (i % 3 == 0) == (name == "a")
                })
                .collect();
            assert_eq!(members.len(), n);
            let x = members
                .iter()
                .filter(|r| r[2].as_str() == Some("x"))
                .count();
            // Rank r of n goes to x while 10000 * r / n < 3000.
            let want = (0..n).filter(|r| 10_000 * r / n < 3000).count();
            assert_eq!(x, want, "stratum {name}");
        }
    }

    /// Small data the SQL and the evaluator both read.
    #[derive(Debug, Clone)]
    pub(crate) struct Data {
        pub persons: Vec<Person>,
        /// (order id, shop record id, total, at)
        pub orders: Vec<(i64, i64, Option<f64>, Option<NaiveDateTime>)>,
        /// shop record id -> person index
        pub records: Vec<usize>,
        /// The events of stream `clicks`.
        pub events: Vec<Event>,
    }

    /// One event of stream `clicks`; `person` is None when it matched nobody.
    #[derive(Debug, Clone)]
    pub(crate) struct Event {
        pub id: usize,
        pub person: Option<usize>,
        pub kind: Option<String>,
        pub value: Option<f64>,
        pub at: Option<NaiveDateTime>,
    }

    #[derive(Debug, Clone)]
    pub(crate) struct Person {
        pub id: String,
        pub name: Option<String>,
        pub age: Option<i64>,
        pub score: Option<f64>,
        pub birth: Option<NaiveDate>,
        pub seen: Option<NaiveDateTime>,
    }

    fn ts(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").expect("ts")
    }

    impl Data {
        fn sample() -> Self {
            let person = |id: &str, name: Option<&str>, age, birth: Option<&str>| Person {
                id: id.into(),
                name: name.map(String::from),
                age,
                score: Some(1.5),
                birth: birth.map(|b| NaiveDate::parse_from_str(b, "%Y-%m-%d").expect("d")),
                seen: Some(ts("2026-01-01 00:00:00")),
            };
            Self {
                persons: vec![
                    person("p1", Some("O'Brien"), Some(30), Some("2010-05-01")),
                    person("p2", Some("McKay"), Some(50), Some("2012-01-01")),
                    person("p3", None, None, None),
                    person("p4", Some("Lee"), Some(20), Some("1990-01-01")),
                ],
                orders: vec![
                    (1, 0, Some(60.0), Some(ts("2026-02-01 10:00:00"))),
                    (2, 0, Some(70.0), Some(ts("2026-02-20 10:00:00"))),
                    (3, 1, Some(80.0), Some(ts("2026-02-20 10:00:00"))),
                    (4, 2, Some(90.0), Some(ts("2026-02-20 10:00:00"))),
                    (5, 3, Some(90.0), Some(ts("2026-02-21 10:00:00"))),
                    (6, 3, Some(95.0), Some(ts("2026-02-22 10:00:00"))),
                ],
                records: vec![0, 1, 1, 3],
                events: Vec::new(),
            }
        }

        /// Creates customer_360, identity_graph and orders.
        pub(crate) fn load(&self, db: &mut crate::warehouse::duckdb::DuckDb) {
            let d = Dialect::DuckDb;
            let opt = |v: Option<Value>| v.map_or("NULL".to_string(), |v| d.literal(&v));
            let mut stmts = vec![
                "CREATE OR REPLACE TABLE customer_360 (person_id VARCHAR, name VARCHAR, age BIGINT, score DOUBLE, birth DATE, seen TIMESTAMP)".to_string(),
                "CREATE OR REPLACE TABLE identity_graph (source VARCHAR, record_id VARCHAR, person_id VARCHAR)".to_string(),
                r#"CREATE OR REPLACE TABLE orders (order_id BIGINT, customer_id BIGINT, total DOUBLE, "at" TIMESTAMP, source VARCHAR, source_file VARCHAR, source_line BIGINT, landed_run VARCHAR)"#.to_string(),
            ];
            for p in &self.persons {
                stmts.push(format!(
                    "INSERT INTO customer_360 VALUES ({}, {}, {}, {}, {}, {})",
                    d.text(&p.id),
                    opt(p.name.clone().map(Value::Text)),
                    opt(p.age.map(Value::Int)),
                    opt(p.score.map(Value::Float)),
                    opt(p.birth.map(Value::Date)),
                    opt(p.seen.map(Value::Timestamp)),
                ));
            }
            for (r, &p) in self.records.iter().enumerate() {
                stmts.push(format!(
                    "INSERT INTO identity_graph VALUES ('crm', '{r}', {})",
                    d.text(&self.persons[p].id)
                ));
            }
            stmts.push(r#"CREATE OR REPLACE TABLE stream_clicks (click_id VARCHAR, kind VARCHAR, "at" TIMESTAMP, value DOUBLE, source VARCHAR, source_file VARCHAR, source_line BIGINT, landed_run VARCHAR, person_id VARCHAR, match_rule VARCHAR)"#.to_string());
            for e in &self.events {
                stmts.push(format!(
                    "INSERT INTO stream_clicks VALUES ('c{}', {}, {}, {}, 'clicks', 'k', 1, 'r', {}, NULL)",
                    e.id,
                    opt(e.kind.clone().map(Value::Text)),
                    opt(e.at.map(Value::Timestamp)),
                    opt(e.value.map(Value::Float)),
                    opt(e.person.map(|i| Value::Text(self.persons[i].id.clone()))),
                ));
            }
            stmts.push(
                "CREATE OR REPLACE VIEW stream_clicks_persons AS SELECT * FROM stream_clicks"
                    .into(),
            );
            for (id, customer, total, at) in &self.orders {
                stmts.push(format!(
                    "INSERT INTO orders VALUES ({id}, {customer}, {}, {}, 'shop', 'f', 1, 'r')",
                    opt(total.map(Value::Float)),
                    opt(at.map(Value::Timestamp)),
                ));
            }
            db.execute(&stmts.join(";\n")).expect("load test data");
        }

        /// The members of an audience by the independent evaluator, sorted.
        pub(crate) fn eval(&self, p: &Pipeline, name: &str, as_of: NaiveDateTime) -> Vec<String> {
            let mut out: Vec<String> = (0..self.persons.len())
                .filter(|&i| super::eval::member(self, p, name, i, as_of))
                .map(|i| self.persons[i].id.clone())
                .collect();
            out.sort();
            out
        }
    }
}

/// An evaluator written from the documented semantics, independent of the SQL: the
/// property test checks the two agree.
#[cfg(test)]
pub(crate) mod eval {
    use super::tests::Data;
    use crate::config::{
        value_order, Aggregate, Cmp, Condition, Op, Operand, Pipeline, RelatedAggregate, Value,
    };
    use chrono::NaiveDateTime;
    use std::cmp::Ordering;

    pub(crate) fn member(
        d: &Data,
        p: &Pipeline,
        name: &str,
        i: usize,
        as_of: NaiveDateTime,
    ) -> bool {
        let Some(a) = p.audiences.iter().find(|a| a.name == name) else {
            return false;
        };
        holds(d, p, &a.condition, i, as_of)
    }

    fn holds(d: &Data, p: &Pipeline, c: &Condition, i: usize, as_of: NaiveDateTime) -> bool {
        match c {
            Condition::All(cs) => cs.iter().all(|c| holds(d, p, c, i, as_of)),
            Condition::Any(cs) => cs.iter().any(|c| holds(d, p, c, i, as_of)),
            Condition::Not(c) => !holds(d, p, c, i, as_of),
            Condition::Compare { operand, op } => {
                let v = match operand {
                    Operand::Column { name, .. } => column(d, i, name),
                    Operand::Trait { name, .. } => {
                        let t = p.traits.iter().find(|t| t.name == *name);
                        t.and_then(|t| aggregate(d, &t.agg, i, as_of))
                    }
                };
                test(v.as_ref(), op, as_of)
            }
            Condition::Related { agg, op } => test(aggregate(d, agg, i, as_of).as_ref(), op, as_of),
            Condition::Sequence { .. } => sequence(d, c, i, as_of),
            Condition::MemberOf { audience, negated } => {
                member(d, p, audience, i, as_of) != *negated
            }
        }
    }

    fn column(d: &Data, i: usize, name: &str) -> Option<Value> {
        let p = &d.persons[i];
        match name {
            "person_id" => Some(Value::Text(p.id.clone())),
            "name" => p.name.clone().map(Value::Text),
            "age" => p.age.map(Value::Int),
            "score" => p.score.map(Value::Float),
            "birth" => p.birth.map(Value::Date),
            "seen" => p.seen.map(Value::Timestamp),
            _ => None,
        }
    }

    /// One record or event as (column, value) pairs.
    type Row = Vec<(&'static str, Option<Value>)>;

    fn get(row: &Row, name: &str) -> Option<Value> {
        row.iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.clone())
    }

    fn order_row(o: &(i64, i64, Option<f64>, Option<NaiveDateTime>)) -> Row {
        vec![
            ("order_id", Some(Value::Int(o.0))),
            ("customer_id", Some(Value::Int(o.1))),
            ("total", o.2.map(Value::Float)),
            ("at", o.3.map(Value::Timestamp)),
            ("source", Some(Value::Text("shop".into()))),
        ]
    }

    fn event_row(d: &Data, e: &super::tests::Event) -> Row {
        vec![
            ("click_id", Some(Value::Text(format!("c{}", e.id)))),
            ("kind", e.kind.clone().map(Value::Text)),
            ("at", e.at.map(Value::Timestamp)),
            ("value", e.value.map(Value::Float)),
            ("source", Some(Value::Text("clicks".into()))),
            (
                "person_id",
                e.person.map(|i| Value::Text(d.persons[i].id.clone())),
            ),
        ]
    }

    fn record_holds(o: &Row, c: &Condition, as_of: NaiveDateTime) -> bool {
        match c {
            Condition::All(cs) => cs.iter().all(|c| record_holds(o, c, as_of)),
            Condition::Any(cs) => cs.iter().any(|c| record_holds(o, c, as_of)),
            Condition::Not(c) => !record_holds(o, c, as_of),
            Condition::Compare { operand, op } => test(get(o, operand.name()).as_ref(), op, as_of),
            _ => false,
        }
    }

    /// The person's events, each as a row.
    fn events_of(d: &Data, i: usize) -> Vec<Row> {
        d.events
            .iter()
            .filter(|e| e.person == Some(i))
            .map(|e| event_row(d, e))
            .collect()
    }

    /// An event the first filter takes, then one the second takes, later by at most
    /// the span.
    fn sequence(d: &Data, c: &Condition, i: usize, as_of: NaiveDateTime) -> bool {
        let Condition::Sequence {
            first,
            then,
            within,
            by,
            ..
        } = c
        else {
            return false;
        };
        let rows = events_of(d, i);
        let at = |r: &Row| get(r, by.name()).as_ref().and_then(instant);
        rows.iter().any(|a| {
            first.as_ref().is_none_or(|f| record_holds(a, f, as_of))
                && at(a).is_some_and(|ta| {
                    rows.iter().any(|b| {
                        record_holds(b, then, as_of)
                            && at(b).is_some_and(|tb| tb > ta && tb <= within.after(ta))
                    })
                })
        })
    }

    fn aggregate(
        d: &Data,
        agg: &RelatedAggregate,
        i: usize,
        as_of: NaiveDateTime,
    ) -> Option<Value> {
        let rows: Vec<Row> = if agg.stream.is_some() {
            events_of(d, i)
        } else {
            d.orders
                .iter()
                .filter(|o| d.records.get(o.1 as usize) == Some(&i))
                .map(order_row)
                .collect()
        };
        let orders: Vec<&Row> = rows
            .iter()
            .filter(|o| {
                agg.filter
                    .as_ref()
                    .is_none_or(|f| record_holds(o, f, as_of))
            })
            .collect();
        let of = |o: &&Row| agg.of.as_ref().and_then(|c| get(o, c.name()));
        let values: Vec<Value> = orders.iter().filter_map(of).collect();
        let nums: Vec<f64> = values.iter().filter_map(Value::as_f64).collect();
        let ordered = |pick: Ordering| {
            values.iter().cloned().reduce(|a, b| {
                if value_order(&b, &a) == Some(pick) {
                    b
                } else {
                    a
                }
            })
        };
        match agg.aggregate {
            Aggregate::Count if agg.of.is_none() => Some(Value::Int(orders.len() as i64)),
            Aggregate::Count => Some(Value::Int(values.len() as i64)),
            Aggregate::Sum => Some(Value::Float(nums.iter().sum())),
            Aggregate::Avg if nums.is_empty() => None,
            Aggregate::Avg => Some(Value::Float(nums.iter().sum::<f64>() / nums.len() as f64)),
            Aggregate::Min => ordered(Ordering::Less),
            Aggregate::Max => ordered(Ordering::Greater),
            Aggregate::First | Aggregate::Last => {
                let ob = agg.order_by.as_ref()?;
                let mut pairs: Vec<(Value, Value)> = orders
                    .iter()
                    .filter_map(|o| Some((get(o, ob.name())?, of(o)?)))
                    .collect();
                pairs.sort_by(|a, b| {
                    value_order(&a.0, &b.0)
                        .unwrap_or(Ordering::Equal)
                        .then(value_order(&a.1, &b.1).unwrap_or(Ordering::Equal))
                });
                if agg.aggregate == Aggregate::First {
                    pairs.first().map(|p| p.1.clone())
                } else {
                    pairs.last().map(|p| p.1.clone())
                }
            }
        }
    }

    /// The instant a value stands for, when it is a date or timestamp.
    fn instant(v: &Value) -> Option<NaiveDateTime> {
        match v {
            Value::Date(d) => Some(d.and_time(chrono::NaiveTime::MIN)),
            Value::Timestamp(t) => Some(*t),
            _ => None,
        }
    }

    fn cmp(a: &Value, b: &Value) -> Option<Ordering> {
        match (instant(a), instant(b)) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => value_order(a, b),
        }
    }

    fn test(v: Option<&Value>, op: &Op, as_of: NaiveDateTime) -> bool {
        let Some(v) = v else {
            return matches!(op, Op::IsNull);
        };
        let eq = |x: &Value| cmp(v, x) == Some(Ordering::Equal);
        match op {
            Op::IsNull => false,
            Op::IsNotNull => true,
            Op::Equals(x) => eq(x),
            Op::NotEquals(x) => !eq(x),
            Op::In(xs) => xs.iter().any(eq),
            Op::NotIn(xs) => !xs.iter().any(eq),
            Op::Compare(c, x) => {
                let Some(o) = cmp(v, x) else { return false };
                match c {
                    Cmp::Lt => o.is_lt(),
                    Cmp::Le => o.is_le(),
                    Cmp::Gt => o.is_gt(),
                    Cmp::Ge => o.is_ge(),
                }
            }
            Op::Between(lo, hi) => {
                cmp(v, lo).is_some_and(Ordering::is_ge) && cmp(v, hi).is_some_and(Ordering::is_le)
            }
            Op::Contains(s) => matches!(v, Value::Text(t) if t.contains(s.as_str())),
            Op::StartsWith(s) => matches!(v, Value::Text(t) if t.starts_with(s.as_str())),
            Op::WithinLast(span) => {
                instant(v).is_some_and(|t| t >= span.before(as_of) && t < as_of)
            }
            Op::MoreThanAgo(span) => instant(v).is_some_and(|t| t < span.before(as_of)),
        }
    }
}
