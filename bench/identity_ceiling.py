"""How much pairwise F1 the records allow: an estimate, for bench/identity.sh.

usage: identity_ceiling.py CLEAN_PARQUET TRUTH_CSV

A record's linking evidence is the values (formal first name, last name, birth date,
email key, phone, street, postcode) that another record of its own true person also
carries: nothing else can tie it to that person. When another true person holds every
one of those values too, and does not hold a different first name or birth date
instead, the record fits two people and the data alone cannot say which. Prints the
pairwise figures of a resolver that is perfect on every other record and either leaves
those records alone or places each with the candidate holding the most records.

A record without a first name takes the one its mailbox spells beside its last name,
as `cdp resolve` reads it with `[identity.first_name_from_email]` (the same shapes, a
name at least two records hold, or the formal name behind a nickname).

It is an estimate, not a bound. Near-misses (typos, similar streets) and household
evidence (a family mailbox held by a relative at the address of the person a record
names, as `cdp resolve` reads it with `[identity.households]`) are not counted as
evidence, so a resolver may pass it. Only the first 200 other persons sharing a record's
rarest value are examined (so there ambiguity is, if anything, under-counted and the
ceiling over-stated).
"""

import os
import re
import sys
import tempfile

import duckdb

parquet, truth = sys.argv[1], sys.argv[2]
spill = tempfile.TemporaryDirectory(prefix="cdp-ceiling-")
con = duckdb.connect()
con.execute("set threads=2")
con.execute(f"set temp_directory = '{spill.name}'")
con.execute(f"create table t as select * from read_csv('{truth}', all_varchar=true)")
con.execute(f"""
create table joined as
select row_number() over () rid, t.person_id tp, c.*
from '{parquet}' c join t on t.source = c.source and t.record_id = c.record_id::varchar
""")
con.execute("""
create table r as
select rid, tp, lower(first_name_formal) fn, lower(last_name) ln, birth_date::varchar dob,
       email_key em, phone ph, home_phone hp, street st, postcode pc
from joined
""")
con.execute("create table mail as select rid, email_key email, last_name surname from joined")


def nicknames():
    """Nickname -> formal name, for nicknames of one formal name only (data/nicknames.csv)."""
    path = os.path.join(os.path.dirname(__file__), "..", "data", "nicknames.csv")
    formals = {}
    with open(path) as f:
        next(f)
        for line in f:
            formal, _, nicks = line.strip().partition(",")
            for nick in filter(None, nicks.split("|")):
                formals.setdefault(nick.lower(), set()).add(formal)
    return {n: next(iter(f)) for n, f in formals.items() if len(f) == 1}


def letters(text):
    return "".join(c for c in text.lower() if c.isalpha())


def name_in_email(email, last):
    """The first name a mailbox spells beside `last` ("jane.doe84", "janedoe", "doe.jane")."""
    last = letters(last)
    if len(last) < 2:
        return None
    local = email.split("@")[0].lower().rstrip("0123456789")
    parts = [p for p in re.split(r"[._-]", local) if p]
    if len(parts) >= 2 and parts[-1] == last:
        first = parts[0]
    elif len(parts) == 2 and parts[0] == last:
        first = parts[1]
    elif len(parts) == 1:
        first = parts[0][: -len(last)] if parts[0].endswith(last) else parts[0]
    else:
        return None
    ok = len(first) >= 2 and first != last and first.isascii() and first.isalpha()
    return first if ok else None


known = {
    letters(name): name
    for (name,) in con.execute("select fn from r where fn is not null group by fn having count(*) >= 2").fetchall()
}
nick = nicknames()
filled = []
for rid, email, last in con.execute(
    "select rid, email, surname from r join mail using (rid) where fn is null and email is not null and surname is not null"
).fetchall():
    spelled = name_in_email(email, last)
    if spelled is None:
        continue
    name = known.get(spelled) or known.get(letters(nick.get(spelled, "")))
    if name:
        filled.append((rid, name))
con.execute("create table filled (rid bigint, fn varchar)")
con.executemany("insert into filled values (?, ?)", filled)
con.execute("update r set fn = filled.fn from filled where r.rid = filled.rid")

con.execute("""
create table fv as
select rid, tp, 'fn' f, fn v from r where fn is not null union all
select rid, tp, 'ln', ln from r where ln is not null union all
select rid, tp, 'dob', dob from r where dob is not null union all
select rid, tp, 'em', em from r where em is not null union all
select rid, tp, 'ph', ph from r where ph is not null union all
select rid, tp, 'ph', hp from r where hp is not null union all
select rid, tp, 'st', st from r where st is not null union all
select rid, tp, 'pc', pc from r where pc is not null
""")
# Linking evidence: values another record of the same person carries.
con.execute("""
create table own as
select distinct a.rid, a.tp, a.f, a.v
from fv a join fv b on a.f = b.f and a.v = b.v and a.tp = b.tp and a.rid <> b.rid
""")
con.execute("create table holder as select distinct f, v, tp from fv")
con.execute("create table held as select f, v, count(*) k from holder group by all")
con.execute("create table evidence as select rid, count(*) n from own group by rid")
# Candidates: namesakes when both name parts are evidence, else holders of the
# rarest evidence value (at most 200, drawn by hash).
con.execute("create table named as select distinct tp, fn, ln from r where fn is not null and ln is not null")
con.execute("""
create table by_name as
select rid from own group by rid
having count(*) filter (where f = 'fn') > 0 and count(*) filter (where f = 'ln') > 0
""")
con.execute("""
create table rarest as
select rid, arg_min(f, k) f, arg_min(v, k) v
from own join held using (f, v) where rid not in (select rid from by_name) group by rid
""")
con.execute("""
create table few_holders as
select f, v, tp from (
  select f, v, tp, row_number() over (partition by f, v order by hash(tp)) i from holder
) where i <= 201
""")
con.execute("""
create table cand as
select r.rid, n.tp from by_name join r using (rid)
  join named n on n.fn = r.fn and n.ln = r.ln where n.tp <> r.tp
union all
select rarest.rid, h.tp from rarest join few_holders h using (f, v) join r on r.rid = rarest.rid
where h.tp <> r.tp
""")
# A candidate fits when it holds every evidence value; in slices of records, so
# that the candidate-by-value rows stay small at a million records.
con.execute("create table fits (rid bigint, tp varchar)")
SLICES = 16
for s in range(SLICES):
    con.execute(f"""
    create or replace table needs as
    select cand.rid, cand.tp, own.f, own.v
    from cand join own on own.rid = cand.rid where cand.rid % {SLICES} = {s}
    """)
    con.execute("""
    insert into fits
    select needs.rid, needs.tp
    from needs join holder h on h.f = needs.f and h.v = needs.v and h.tp = needs.tp
      join evidence e on e.rid = needs.rid
    group by needs.rid, needs.tp, e.n having count(*) = e.n
    """)
# A first name or birth date the other person holds, but not this one, rules it out.
for col in ("fn", "dob"):
    con.execute(f"create or replace table held_by as select distinct tp, {col} v from r where {col} is not null")
    con.execute(f"""
    delete from fits where exists (
      select 1 from r where r.rid = fits.rid and r.{col} is not null
        and exists (select 1 from held_by where held_by.tp = fits.tp)
        and not exists (select 1 from held_by where held_by.tp = fits.tp and held_by.v = r.{col}))
    """)
con.execute("create table multi as select tp from r group by tp having count(*) > 1")
con.execute("create table unlinked as select rid from r where tp in (select tp from multi) and rid not in (select rid from own)")
con.execute("create table open_ as select distinct rid from fits union select rid from unlinked")


def figures(person):
    con.execute(f"create or replace table placed as select r.tp, {person} p from r left join open_ using (rid) left join pick using (rid)")
    both = con.execute("select sum(n * (n - 1) / 2) from (select count(*) n from placed group by tp, p)").fetchone()[0]
    predicted = con.execute("select sum(n * (n - 1) / 2) from (select count(*) n from placed group by p)").fetchone()[0]
    true = con.execute("select sum(n * (n - 1) / 2) from (select count(*) n from placed group by tp)").fetchone()[0]
    p, r = both / predicted, both / true
    return f"{p:.4f} | {r:.4f} | {2 * p * r / (p + r):.4f}"


con.execute("create table size as select tp, count(*) n from r group by tp")
con.execute("""
create table pick as
select rid, arg_max(tp, n * 1e6 + hash(tp) % 1000) tp
from (select rid, tp from fits union select rid, r.tp from fits join r using (rid))
  join size using (tp) group by rid
""")
records = con.execute("select count(*) from r").fetchone()[0]
fitting = con.execute("select count(distinct rid) from fits").fetchone()[0]
unlinked = con.execute("select count(*) from unlinked").fetchone()[0]
alone = figures("case when open_.rid is not null then 'x' || r.rid else r.tp end")
placed = figures("case when pick.rid is not null then pick.tp when open_.rid is not null then 'x' || r.rid else r.tp end")
print(f"{records}\t{fitting}\t{unlinked}\t{alone}\t{placed}")
