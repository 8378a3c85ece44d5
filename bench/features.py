"""bench/features.py: the data and the DuckDB baseline of bench/features.sh.

  features.py fill WAREHOUSE PERSONS   customer_360, identity_graph and orders as the
                                       audience benchmark makes them (bench/audiences.py)
  features.py hand WAREHOUSE OUT       the features of `cdp features --as-of AS_OF`
                                       written by hand in DuckDB SQL, materialised and
                                       written to OUT as Parquet, median of 3; then
                                       checks them against cdp's person_features.
                                       Twice: the 18 columns the baseline has always
                                       had, and those with bench/audiences.toml's three
                                       traits (21 columns, as cdp writes them), the
                                       traits written as a hand-writer would: as more
                                       aggregates of the one pass over the orders
"""
import json
import statistics
import sys
import time

import duckdb

from audiences import fill

AS_OF = "2026-12-01 00:00:00"


def hand_sql(traits: bool = False) -> str:
    cut = f"TIMESTAMP '{AS_OF}'"
    windows = []
    for days in (30, 90, 365):
        since = f"{cut} - INTERVAL {days} DAY"
        windows.append(
            f"count(*) FILTER (WHERE r.ordered_at >= {since}) AS orders_{days}d, "
            f"coalesce(sum(r.total_price) FILTER (WHERE r.ordered_at >= {since}), 0) AS value_{days}d"
        )
    trait_aggregates = trait_columns = ""
    if traits:
        trait_aggregates = (", sum(r.total_price) AS lifetime_value, count(*) AS order_count, "
                            "max(r.ordered_at) AS last_order_at")
        trait_columns = (", coalesce(o.lifetime_value, 0) AS trait_lifetime_value, "
                         "coalesce(o.order_count, 0) AS trait_order_count, o.last_order_at AS trait_last_order_at")
    return f"""
    CREATE OR REPLACE TABLE hand_features AS
    WITH o AS (
      SELECT g.person_id, count(*) AS n, sum(r.total_price) AS m, max(r.ordered_at) AS last_at,
             min(r.ordered_at) AS first_at, {', '.join(windows)},
             avg(CASE WHEN r.currency = 'CAD' THEN 1.0 ELSE 0.0 END) AS share_currency_cad,
             avg(CASE WHEN r.currency = 'USD' THEN 1.0 ELSE 0.0 END) AS share_currency_usd{trait_aggregates}
      FROM orders r JOIN identity_graph g
        ON g.source = 'shop_customers' AND g.record_id = CAST(r.customer_id AS VARCHAR)
      WHERE r.ordered_at < {cut} GROUP BY g.person_id),
    s AS (SELECT person_id, count(DISTINCT source) AS sources_seen FROM identity_graph GROUP BY person_id)
    SELECT c.person_id, date_diff('day', o.last_at, {cut}) AS recency_days,
           coalesce(o.n, 0) AS frequency, coalesce(o.m, 0) AS monetary,
           CASE WHEN o.person_id IS NOT NULL THEN ntile(5) OVER (PARTITION BY o.person_id IS NULL ORDER BY o.last_at) END AS r_score,
           CASE WHEN o.person_id IS NOT NULL THEN ntile(5) OVER (PARTITION BY o.person_id IS NULL ORDER BY o.n) END AS f_score,
           CASE WHEN o.person_id IS NOT NULL THEN ntile(5) OVER (PARTITION BY o.person_id IS NULL ORDER BY o.m) END AS m_score,
           date_diff('day', o.first_at, {cut}) AS tenure_days,
           coalesce(o.orders_30d, 0) AS orders_30d, coalesce(o.value_30d, 0) AS value_30d,
           coalesce(o.orders_90d, 0) AS orders_90d, coalesce(o.value_90d, 0) AS value_90d,
           coalesce(o.orders_365d, 0) AS orders_365d, coalesce(o.value_365d, 0) AS value_365d,
           o.share_currency_cad, o.share_currency_usd,
           coalesce(s.sources_seen, 0) AS sources_seen, c.email IS NOT NULL AS has_email{trait_columns}
    FROM customer_360 c LEFT JOIN o ON c.person_id = o.person_id LEFT JOIN s ON c.person_id = s.person_id
    ORDER BY c.person_id"""


def timed(con, sql: str, out: str) -> list[float]:
    """Seconds of each of 3 runs of `sql` materialised and written to `out`."""
    times = []
    for _ in range(3):
        t = time.perf_counter()
        con.execute(sql)
        con.execute(f"COPY hand_features TO '{out}' (FORMAT parquet)")
        times.append(time.perf_counter() - t)
    return times


def check(con, compared: list[str]) -> None:
    """Exits unless hand_features and cdp's person_features agree on every person."""
    differ = " OR ".join(
        f"round(CAST(a.{c} AS DOUBLE), 6) IS DISTINCT FROM round(CAST(b.{c} AS DOUBLE), 6)"
        if c != "trait_last_order_at" else f"a.{c} IS DISTINCT FROM b.{c}"
        for c in compared
    )
    bad = con.execute(
        f"SELECT count(*) FROM hand_features a FULL JOIN person_features b USING (person_id) WHERE {differ}"
    ).fetchone()[0]
    if bad:
        raise SystemExit(f"{bad} persons' features differ between cdp and the hand-written SQL")


def hand(warehouse: str, out: str) -> None:
    con = duckdb.connect(warehouse)
    compared = ["recency_days", "frequency", "monetary", "tenure_days", "orders_30d", "value_30d",
                "orders_90d", "value_90d", "orders_365d", "value_365d", "share_currency_cad",
                "share_currency_usd", "sources_seen", "has_email"]
    times = timed(con, hand_sql(), out)
    check(con, compared)
    with_traits = timed(con, hand_sql(traits=True), out)
    check(con, compared + ["trait_lifetime_value", "trait_order_count", "trait_last_order_at"])
    persons = con.execute("SELECT count(*) FROM person_features").fetchone()[0]
    print(json.dumps({"seconds": statistics.median(times), "runs": times,
                      "traits_seconds": statistics.median(with_traits), "traits_runs": with_traits,
                      "persons": persons, "duckdb": duckdb.__version__}))


if __name__ == "__main__":
    if sys.argv[1] == "fill":
        con = duckdb.connect(sys.argv[2])
        print(json.dumps(fill(con, int(sys.argv[3]))))
    else:
        hand(sys.argv[2], sys.argv[3])
