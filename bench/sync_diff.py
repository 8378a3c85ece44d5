"""bench/sync_diff.py: the data and the DuckDB baseline of bench/sync_diff.sh.

  sync_diff.py gen DIR ROWS      writes DIR/before.parquet (ROWS rows) and
                                 DIR/after.parquet: 1% of rows changed, 0.5% removed,
                                 0.5% added (deterministic)
  sync_diff.py baseline DIR      the same diff in DuckDB SQL on the same Parquet
                                 (anti-joins for added and removed, a join comparing
                                 every mapped field for changed); prints JSON with the
                                 counts and the seconds (median of 3, in one process,
                                 results materialised with CREATE TABLE AS)
"""
import json
import statistics
import sys
import time

import duckdb

COLUMNS = "id, email, first_name, phone, score, consent"


def gen(out, rows):
    con = duckdb.connect()
    base = f"""
        select 'k' || lpad(i::varchar, 10, '0') as id,
               'Person' || i || '@Example.com' as email,
               'Name' || (i % 5003) as first_name,
               '+1415' || lpad((i % 10000000)::varchar, 7, '0') as phone,
               ((i * 7919) % 100000)::double / 100 as score,
               (i % 50) <> 7 as consent
        from range({rows}) t(i)"""
    con.execute(f"copy ({base}) to '{out}/before.parquet' (format parquet)")
    # after: i % 200 = 1 removed (0.5%), i % 100 = 3 changed (1%), 0.5% new keys.
    added = rows // 200
    con.execute(
        f"""copy (
          select id, email, first_name, phone,
                 case when try_cast(substr(id, 2) as bigint) % 100 = 3 then score + 1 else score end as score,
                 consent
          from read_parquet('{out}/before.parquet')
          where try_cast(substr(id, 2) as bigint) % 200 <> 1
          union all
          select 'k' || lpad(i::varchar, 10, '0'), 'Person' || i || '@Example.com',
                 'Name' || (i % 5003), '+1415' || lpad((i % 10000000)::varchar, 7, '0'),
                 ((i * 7919) % 100000)::double / 100, true
          from range({rows}, {rows + added}) t(i)
        ) to '{out}/after.parquet' (format parquet)"""
    )


def baseline(out):
    con = duckdb.connect()
    # What a sync sends: consenting rows, email trimmed and lower-cased.
    mapped = lambda f: f"""(select id, lower(trim(email)) as email, first_name, phone, score
                           from read_parquet('{out}/{f}') where consent)"""
    before, after = mapped("before.parquet"), mapped("after.parquet")
    sql = [
        f"create or replace table added as select a.* from {after} a anti join {before} b using (id)",
        f"create or replace table removed as select b.* from {before} b anti join {after} a using (id)",
        f"""create or replace table changed as select a.* from {after} a join {before} b using (id)
            where (a.email, a.first_name, a.phone, a.score) is distinct from
                  (b.email, b.first_name, b.phone, b.score)""",
    ]
    times = []
    for _ in range(3):
        t = time.perf_counter()
        for s in sql:
            con.execute(s)
        times.append(time.perf_counter() - t)
    counts = {n: con.execute(f"select count(*) from {n}").fetchone()[0] for n in ("added", "changed", "removed")}
    print(json.dumps({"seconds": statistics.median(times), "runs": times, **counts, "duckdb": duckdb.__version__}))


if __name__ == "__main__":
    if sys.argv[1] == "gen":
        gen(sys.argv[2], int(sys.argv[3]))
    else:
        baseline(sys.argv[2])
