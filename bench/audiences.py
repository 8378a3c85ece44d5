"""The audience benchmark (bench/audiences.sh): fills a DuckDB warehouse with
customer_360, identity_graph and orders for PERSONS persons, then, in this one DuckDB
process, runs each of bench/audiences.toml's 20 audiences twice: as cdp compiles it
(`cdp audience preview --sql`, as of a fixed instant) and as written by hand below, each
materialised with CREATE TABLE AS; the two must select the same persons. Prints one JSON
object with the timings (median of REPEATS runs each, seconds)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import duckdb

AS_OF = "2026-12-01 00:00:00"
REPEATS = 3


def fill(con: duckdb.DuckDBPyConnection, persons: int) -> dict:
    """Persons with the sample's attribute shapes; about 70% have a shop record and
    those have 1-4 orders over eight years."""
    con.execute(f"""
    CREATE OR REPLACE TABLE customer_360 AS
    SELECT 'P' || lpad(CAST(i AS VARCHAR), 10, '0') AS person_id,
           ['James','Mary','John','Linda','Maria','Wei','Ana','Omar'][1 + CAST(hash(i, 1) % 8 AS BIGINT)] AS first_name,
           ['Smith','Garcia','Lee','Nguyen','Brown','Okafor','Rossi','Kim'][1 + CAST(hash(i, 2) % 8 AS BIGINT)] AS last_name,
           CASE WHEN CAST(hash(i, 3) % 10 AS BIGINT) < 2 THEN NULL
                ELSE 'p' || CAST(i AS VARCHAR) || ['@gmail.com','@yahoo.com','@aol.com','@example.com'][1 + CAST(hash(i, 4) % 4 AS BIGINT)] END AS email,
           ['CA','NY','TX','FL','IL','WA','AZ','OH','GA','NC'][1 + CAST(hash(i, 5) % 10 AS BIGINT)] AS state,
           'City ' || CAST(CAST(hash(i, 6) % 500 AS BIGINT) AS VARCHAR) AS city,
           CASE WHEN CAST(hash(i, 7) % 10 AS BIGINT) = 0 THEN NULL ELSE DATE '1940-01-01' + CAST(CAST(hash(i, 8) % 25000 AS BIGINT) AS INTEGER) END AS birth_date,
           CAST(1 + CAST(hash(i, 9) % 6 AS BIGINT) AS BIGINT) AS household_size,
           ['<25K','25-50K','50-75K','75-100K','100-150K'][1 + CAST(hash(i, 10) % 5 AS BIGINT)] AS income_band,
           CAST(1 + CAST(hash(i, 11) % 3 AS BIGINT) AS UINTEGER) AS record_count,
           'r0' AS first_seen_run
    FROM range({persons}) t(i)
    """)
    con.execute(f"""
    CREATE OR REPLACE TABLE identity_graph AS
    SELECT 'shop_customers' AS source, CAST(100000000 + i AS VARCHAR) AS record_id,
           'P' || lpad(CAST(i AS VARCHAR), 10, '0') AS person_id, 'rule' AS rule
    FROM range({persons}) t(i) WHERE CAST(hash(i, 12) % 10 AS BIGINT) < 7
    """)
    con.execute("""
    CREATE OR REPLACE TABLE orders AS
    SELECT CAST(row_number() OVER () AS BIGINT) AS order_id,
           CAST(g.record_id AS BIGINT) AS customer_id,
           TIMESTAMP '2019-01-01 00:00:00' + to_seconds(CAST(CAST(hash(g.record_id, k, 13) % 250000000 AS BIGINT) AS BIGINT)) AS ordered_at,
           CASE WHEN CAST(hash(g.record_id, k, 14) % 40 AS BIGINT) = 0 THEN 'CAD' ELSE 'USD' END AS currency,
           round(10 + (CAST(hash(g.record_id, k, 15) % 39000 AS BIGINT)) / 100.0, 2) AS total_price,
           'shop_orders' AS source
    FROM identity_graph g, range(4) r(k)
    WHERE k < 1 + CAST(hash(g.record_id, 16) % 4 AS BIGINT)
    """)
    return {
        "persons": con.execute("SELECT count(*) FROM customer_360").fetchone()[0],
        "orders": con.execute("SELECT count(*) FROM orders").fetchone()[0],
    }


def ts(days_back: int, months: int = 0) -> str:
    expr = f"TIMESTAMP '{AS_OF}' - INTERVAL {days_back} DAY"
    if months:
        expr = f"TIMESTAMP '{AS_OF}' - INTERVAL {months} MONTH"
    return expr


LINK = "g.source = 'shop_customers' AND g.record_id = CAST(o.customer_id AS VARCHAR)"
NOW = f"TIMESTAMP '{AS_OF}'"


def window(days: int | None = None, months: int | None = None) -> str:
    start = ts(days or 0, months or 0)
    return f"o.ordered_at >= {start} AND o.ordered_at < {NOW}"


def per_person(select: str, where: str = "TRUE", having: str = "TRUE") -> str:
    return f"SELECT g.person_id FROM orders o JOIN identity_graph g ON {LINK} WHERE {where} GROUP BY g.person_id HAVING {having}"


LTV = "SELECT g.person_id, sum(o.total_price) AS ltv, count(*) AS n, max(o.ordered_at) AS last_at FROM orders o JOIN identity_graph g ON " + LINK + " GROUP BY g.person_id"
LAPSED = f"""SELECT c.person_id FROM customer_360 c
  WHERE c.person_id IN (SELECT g.person_id FROM orders o JOIN identity_graph g ON {LINK})
    AND c.person_id NOT IN ({per_person('', window(days=180))})"""

# The same 20 audiences, written by hand as an analyst would.
HAND = {
    "ca_ny": "SELECT person_id FROM customer_360 WHERE state IN ('CA', 'NY')",
    "over_65": f"SELECT person_id FROM customer_360 WHERE birth_date < CAST({ts(0, 65 * 12)} AS DATE)",
    "gmail": "SELECT person_id FROM customer_360 WHERE email LIKE '%@gmail.%'",
    "big_households": "SELECT person_id FROM customer_360 WHERE household_size >= 4",
    "no_email": "SELECT person_id FROM customer_360 WHERE email IS NULL",
    "recent_buyers": f"SELECT DISTINCT g.person_id FROM orders o JOIN identity_graph g ON {LINK} WHERE {window(days=30)}",
    "high_value_recent": per_person("", f"o.total_price > 50 AND {window(days=90)}", "count(*) >= 2"),
    "lapsed": LAPSED,
    "big_spenders_year": per_person("", window(months=12), "sum(o.total_price) >= 500"),
    "max_order_300": per_person("", "TRUE", "max(o.total_price) > 300"),
    "avg_order_100": per_person("", "TRUE", "avg(o.total_price) >= 100"),
    "ltv_1000": per_person("", "TRUE", "sum(o.total_price) >= 1000"),
    "frequent": per_person("", "TRUE", "count(*) BETWEEN 3 AND 10"),
    "recent_last_order": per_person("", "TRUE", f"max(o.ordered_at) >= {ts(60)} AND max(o.ordered_at) < {NOW}"),
    "cad_buyers": f"SELECT DISTINCT g.person_id FROM orders o JOIN identity_graph g ON {LINK} WHERE o.currency = 'CAD'",
    "ca_high_value": f"SELECT c.person_id FROM customer_360 c WHERE c.state = 'CA' AND c.person_id IN ({per_person('', f'o.total_price > 50 AND {window(days=90)}', 'count(*) >= 2')})",
    "lapsed_not_big": f"SELECT person_id FROM ({LAPSED}) l WHERE person_id NOT IN ({per_person('', 'TRUE', 'sum(o.total_price) >= 1000')})",
    "winback_split": f"SELECT person_id FROM ({LAPSED}) l WHERE person_id IN ({per_person('', 'TRUE', 'sum(o.total_price) >= 300')})",
    "young_recent": f"""SELECT c.person_id FROM customer_360 c
        WHERE c.birth_date >= CAST({ts(0, 30 * 12)} AS DATE) AND c.birth_date < DATE '2026-12-01'
          AND c.person_id IN (SELECT g.person_id FROM orders o JOIN identity_graph g ON {LINK} WHERE {window(days=90)})""",
    "mixed": f"""SELECT c.person_id FROM customer_360 c
        WHERE (c.state = 'TX' OR (c.household_size >= 3 AND NOT coalesce(c.email LIKE '%yahoo%', false)))
          AND c.person_id IN (SELECT g.person_id FROM orders o JOIN identity_graph g ON {LINK})""",
}


def compiled(name: str) -> str:
    out = subprocess.run(
        [CDP, "audience", "preview", PIPELINE, name, "--sql", "--interval-end", AS_OF.replace(" ", "T") + "Z"],
        check=True, capture_output=True, text=True,
    ).stdout
    return out.strip().rstrip(";")


def timed(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, int]:
    started = time.perf_counter()
    con.execute(f"CREATE OR REPLACE TEMP TABLE bench_members AS {sql}")
    took = time.perf_counter() - started
    n = con.execute("SELECT count(*) FROM bench_members").fetchone()[0]
    return took, n


def main() -> None:
    con = duckdb.connect(WAREHOUSE)
    started = time.perf_counter()
    sizes = fill(con, PERSONS)
    sizes["fill_seconds"] = round(time.perf_counter() - started, 2)
    con.close()
    # cdp builds all 20 (work tables, guard, one publishing transaction), end to end.
    started = time.perf_counter()
    subprocess.run(
        [CDP, "-q", "audience", "build", PIPELINE, "--interval-start", "2026-11-01", "--interval-end", "2026-12-01"],
        check=True, stdout=subprocess.DEVNULL,
    )
    build_seconds = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(
        [CDP, "audience", "preview", PIPELINE, "winback_split", "--interval-end", "2026-12-01", "--by", "state"],
        check=True, stdout=subprocess.DEVNULL,
    )
    preview_seconds = time.perf_counter() - started
    con = duckdb.connect(WAREHOUSE)
    rows = []
    for name, hand in HAND.items():
        sql = compiled(name)
        cdp_times, hand_times = [], []
        for _ in range(REPEATS):
            t, n_cdp = timed(con, sql)
            cdp_times.append(t)
            t, n_hand = timed(con, hand)
            hand_times.append(t)
        if n_cdp != n_hand:
            raise SystemExit(f"{name}: cdp selects {n_cdp} persons, the hand-written SQL {n_hand}")
        rows.append({
            "audience": name,
            "members": n_cdp,
            "cdp_seconds": round(statistics.median(cdp_times), 4),
            "hand_seconds": round(statistics.median(hand_times), 4),
        })
    total_cdp = sum(r["cdp_seconds"] for r in rows)
    total_hand = sum(r["hand_seconds"] for r in rows)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(json.dumps({
        **sizes,
        "load_average": load,
        "duckdb": duckdb.__version__,
        "build_all_seconds": round(build_seconds, 2),
        "preview_seconds": round(preview_seconds, 2),
        "audiences": rows,
        "total_cdp_seconds": round(total_cdp, 3),
        "total_hand_seconds": round(total_hand, 3),
    }, indent=2))


if __name__ == "__main__":
    CDP, PIPELINE, WAREHOUSE, PERSONS = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    main()
