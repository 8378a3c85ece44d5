"""Baseline for `make bench`: the sample pipeline's cleaning done directly in DuckDB SQL.

Reads the same generated files, applies the same normalisation as far as SQL reaches
(trim/lower emails, digits-only phones to +1 E.164, names in title case, dates and
timestamps parsed with the same formats), runs the same row checks, and writes clean
and quarantined rows to Parquet. Usage: baseline_clean.py DATA_DIR OUT_DIR
"""
import sys
import time

import duckdb

data, out = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute("SET preserve_insertion_order = false")

NAME = "upper(left(trim({c}), 1)) || lower(substr(trim({c}), 2))"
PHONE = """CASE
  WHEN length(regexp_replace({c}, '[^0-9]', '', 'g')) = 10 THEN '+1' || regexp_replace({c}, '[^0-9]', '', 'g')
  WHEN length(regexp_replace({c}, '[^0-9]', '', 'g')) = 11 AND regexp_replace({c}, '[^0-9]', '', 'g') LIKE '1%'
    THEN '+' || regexp_replace({c}, '[^0-9]', '', 'g')
  END"""
EMAIL = "CASE WHEN regexp_matches(lower(trim({c})), '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$') THEN lower(trim({c})) END"


def person_select(src, cols, dob_fmt=None, ts=None):
    """cols: canonical -> source column (or None)."""
    parts = [f"'{src}' AS source", f"CAST({cols['record_id']} AS VARCHAR) AS record_id"]
    for c in ("first_name", "last_name"):
        parts.append(f"{NAME.format(c=cols[c])} AS {c}" if cols.get(c) else f"NULL AS {c}")
    parts.append(f"{EMAIL.format(c=cols['email'])} AS email" if cols.get("email") else "NULL AS email")
    parts.append(f"{PHONE.format(c=cols['phone'])} AS phone" if cols.get("phone") else "NULL AS phone")
    parts.append(f"upper(trim({cols['postcode']}))[1:5] AS postcode" if cols.get("postcode") else "NULL AS postcode")
    if dob_fmt:
        parts.append(f"try_strptime(trim({cols['birth_date']}), {dob_fmt})::DATE AS birth_date")
        parts.append(f"{cols['birth_date']} AS birth_date_raw")
    else:
        parts.append("NULL::DATE AS birth_date")
        parts.append("NULL AS birth_date_raw")
    parts.append(f"try_cast({ts} AS TIMESTAMPTZ) AS updated_at" if ts else "NULL::TIMESTAMPTZ AS updated_at")
    return ", ".join(parts)


start = time.time()
crm = f"read_csv('{data}/crm/contacts_*.csv', all_varchar=true, header=true)"
shop = f"read_json('{data}/shop/customers.jsonl', format='newline_delimited', columns={{customer_id: 'VARCHAR', email: 'VARCHAR', first_name: 'VARCHAR', last_name: 'VARCHAR', phone: 'VARCHAR', zip: 'VARCHAR', created_at: 'VARCHAR'}})"
support = f"read_csv('{data}/support/users.csv', all_varchar=true, header=true)"
enrich = f"read_csv('{data}/enrichment/consumers.csv', all_varchar=true, header=true)"
person = f"""
CREATE TABLE person AS
SELECT {person_select('crm_contacts', dict(record_id='Id', first_name='FirstName', last_name='LastName', email='Email', phone='MobilePhone', postcode='MailingPostalCode', birth_date='Birthdate'), "['%Y-%m-%d']", 'LastModifiedDate')} FROM {crm}
UNION ALL
SELECT {person_select('shop_customers', dict(record_id='customer_id', first_name='first_name', last_name='last_name', email='email', phone='phone', postcode='zip'), None, 'created_at')} FROM {shop}
UNION ALL
SELECT {person_select('support_users', dict(record_id='id', first_name="split_part(trim(name), ' ', 1)", last_name="split_part(trim(name), ' ', -1)", email='email', phone='phone'), None, 'updated_at')} FROM {support}
UNION ALL
SELECT {person_select('enrichment', dict(record_id='match_key', first_name='first_nm', last_name='last_nm', email='email_addr', phone='phone_number', postcode='zip5', birth_date='dob'), "['%m/%d/%Y']", None)} FROM {enrich}
"""
con.execute(person)
orders = f"""
CREATE TABLE orders AS
SELECT try_cast(order_id AS BIGINT) AS order_id, try_cast(customer_id AS BIGINT) AS customer_id,
       try_cast(ordered_at AS TIMESTAMPTZ) AS ordered_at, upper(trim(currency)) AS currency,
       try_cast(total_price AS DOUBLE) AS total_price
FROM read_csv('{data}/shop/orders.csv', all_varchar=true, header=true)
"""
con.execute(orders)
# Checks: not_null and unique on the key, a date that did not parse, referential and
# expression checks on orders; failing rows are quarantined, the rest written out.
con.execute("""
CREATE TABLE person_flagged AS
SELECT *, CASE
  WHEN record_id IS NULL THEN 'not_null(record_id)'
  WHEN birth_date_raw IS NOT NULL AND birth_date IS NULL THEN 'invalid_date'
  WHEN count(*) OVER (PARTITION BY source, record_id) > 1 THEN 'unique(source, record_id)'
END AS reason FROM person
""")
con.execute(f"COPY (SELECT * EXCLUDE (reason) FROM person_flagged WHERE reason IS NULL) TO '{out}/person.parquet' (FORMAT parquet, COMPRESSION zstd)")
con.execute(f"COPY (SELECT * FROM person_flagged WHERE reason IS NOT NULL) TO '{out}/person_quarantine.parquet' (FORMAT parquet)")
con.execute(f"""
COPY (SELECT o.* FROM orders o WHERE o.order_id IS NOT NULL AND o.total_price >= 0
      AND o.customer_id::VARCHAR IN (SELECT record_id FROM person_flagged WHERE reason IS NULL))
TO '{out}/orders.parquet' (FORMAT parquet, COMPRESSION zstd)
""")
rows = con.execute("SELECT (SELECT count(*) FROM person) + (SELECT count(*) FROM orders)").fetchone()[0]
print(f"baseline rows={rows} seconds={time.time() - start:.2f}")
