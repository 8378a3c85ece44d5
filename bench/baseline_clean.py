"""Baseline for `make bench`: the sample pipeline's cleaning done directly in DuckDB SQL.

Reads the same generated files and does, in SQL, the work `cdp clean` does with
pipelines/customer360.toml, with the same reference tables (data/*.csv):

- names: characters other than letters, white space, ' - . dropped, each word in title
  case (also after ' and -), honorifics and suffixes dropped when a full name is split
  ("SMITH, ROBERT J." and "Mr. Robert J. Smith" alike); the formal first name for
  matching from data/nicknames.csv (ambiguous nicknames map to nothing);
- emails: trimmed, lower case, the same shape checks, and the canonical mailbox for
  matching (Gmail dots and +tags, +tags of the other providers cdp lists);
- phones (mobile and home): digits to E.164 (see below);
- streets: words with the USPS abbreviations of data/street_suffixes.csv, `#5` as
  `Apt 5`, unit identifiers upper case, other words title case; cities in title case,
  states upper case; countries in any spelling to ISO alpha-2 (data/countries.csv);
  postcodes in the format of the row's country (US, CA, GB, DE/FR/ES/IT);
- dates with both formats of the column, timestamps, integers, booleans, money with
  its currency; the row's file kept as lineage;
- checks: not_null, unique (source, record_id), length, range(household_size) quarantine;
  values a typed column cannot read (date, timestamp, integer, boolean, money)
  quarantine the row as in cdp; not_null(email), accepted_values(country),
  range(birth_date) and freshness are counted; orders: not_null, unique(order_id),
  referential to clean persons, total_price >= 0, accepted currencies counted.
  Quarantined rows keep their raw values as JSON. Clean and quarantined rows are
  written to Parquet (zstd).

What it cannot do, so does not: validate phone numbers against libphonenumber's
per-country number plans (SQL has no such table; here a 10-digit NANP number with
valid area code and exchange digits, 11 digits starting with 1, or `+` and 8-15
digits passes); NFKC Unicode normalisation (DuckDB offers NFC only); file line numbers
of rows and superseding of rows by later landings (cdp reads its lake's landings; this
reads the generated files once); which duplicate is first is left to DuckDB.

Usage: baseline_clean.py DATA_DIR OUT_DIR
"""
import os
import sys
import time

import duckdb

data, out = sys.argv[1], sys.argv[2]
ref = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
con = duckdb.connect()
con.execute("SET preserve_insertion_order = false")
start = time.time()

# Reference tables as maps held in variables, looked up per word or value.
con.execute(f"""
SET VARIABLE nick = (
  WITH pairs AS (
    SELECT formal, lower(unnest(string_split(nicknames, '|'))) AS nick
    FROM read_csv('{ref}/nicknames.csv', header = true, all_varchar = true))
  SELECT map(list(nick), list(formal)) FROM (
    SELECT nick, any_value(formal) AS formal FROM pairs GROUP BY nick HAVING count(*) = 1))
""")
con.execute(f"""
SET VARIABLE suffix = (
  WITH pairs AS (
    SELECT standard, upper(standard) AS k FROM read_csv('{ref}/street_suffixes.csv', header = true, all_varchar = true)
    UNION
    SELECT standard, upper(rtrim(unnest(string_split(variants, '|')), '.')) AS k
    FROM read_csv('{ref}/street_suffixes.csv', header = true, all_varchar = true))
  SELECT map(list(k), list(standard)) FROM (SELECT k, any_value(standard) AS standard FROM pairs GROUP BY k))
""")
con.execute(f"""
SET VARIABLE country = (
  WITH c AS (SELECT * FROM read_csv('{ref}/countries.csv', header = true, all_varchar = true)),
  pairs AS (
    SELECT alpha2, alpha2 AS k FROM c UNION SELECT alpha2, alpha3 FROM c
    UNION SELECT alpha2, unnest(string_split(names, '|')) FROM c)
  SELECT map(list(k), list(alpha2)) FROM (
    SELECT upper(replace(regexp_replace(trim(k), '\\s+', ' ', 'g'), '.', '')) AS k, any_value(alpha2) AS alpha2
    FROM pairs GROUP BY 1))
""")

MACROS = r"""
CREATE MACRO blank(s) AS CASE WHEN trim(s) = '' THEN NULL ELSE s END;
CREATE MACRO squash(s) AS blank(regexp_replace(trim(s), '\s+', ' ', 'g'));
CREATE MACRO cap(p) AS upper(p[1]) || lower(p[2:]);
-- One word in title case, also after ' and -: "o'BRIEN" -> "O'Brien".
CREATE MACRO title_word(w) AS array_to_string(list_transform(string_split(w, '-'),
  p -> array_to_string(list_transform(string_split(p, ''''), q -> cap(q)), '''')), '-');
CREATE MACRO title_text(s) AS array_to_string(list_transform(string_split(squash(s), ' '), w -> title_word(w)), ' ');
CREATE MACRO person_name(s) AS blank(array_to_string(list_transform(
  list_filter(list_transform(string_split_regex(trim(regexp_replace(s, '[^\p{L}\s''.-]', '', 'g')), '\s+'),
    w -> trim(w, '.')), w -> w <> ''), w -> title_word(w)), ' '));
CREATE MACRO is_title(w) AS lower(trim(w, '.')) IN ('mr', 'mrs', 'ms', 'miss', 'mx', 'dr', 'prof', 'sir', 'madam',
  'jr', 'sr', 'ii', 'iii', 'iv', 'phd', 'md', 'esq');
CREATE MACRO name_words(s) AS list_filter(string_split_regex(trim(s), '\s+'), w -> w <> '' AND NOT is_title(w));
CREATE MACRO first_of(fn_) AS CASE WHEN contains(fn_, ',')
  THEN person_name(name_words(split_part(fn_, ',', 2))[1])
  ELSE person_name(name_words(fn_)[1]) END;
CREATE MACRO last_of(fn_) AS CASE WHEN contains(fn_, ',')
  THEN person_name(array_to_string(name_words(split_part(fn_, ',', 1)), ' '))
  WHEN len(name_words(fn_)) > 1 THEN person_name(name_words(fn_)[-1]) END;
CREATE MACRO formal(first) AS coalesce(map_extract_value(getvariable('nick'), lower(first)), first);
CREATE MACRO email(s) AS CASE WHEN regexp_full_match(lower(trim(s)), '[^@\s,;]+@[^@\s,;]+')
  AND contains(split_part(lower(trim(s)), '@', 2), '.')
  AND NOT starts_with(split_part(lower(trim(s)), '@', 2), '.')
  AND NOT ends_with(split_part(lower(trim(s)), '@', 2), '.')
  AND NOT contains(lower(trim(s)), '..') THEN lower(trim(s)) END;
CREATE MACRO email_key(e) AS CASE
  WHEN split_part(e, '@', 2) IN ('gmail.com', 'googlemail.com')
    THEN replace(split_part(split_part(e, '@', 1), '+', 1), '.', '') || '@gmail.com'
  WHEN split_part(e, '@', 2) IN ('outlook.com', 'hotmail.com', 'live.com', 'msn.com', 'icloud.com', 'me.com',
    'mac.com', 'fastmail.com', 'proton.me', 'protonmail.com')
    THEN split_part(split_part(e, '@', 1), '+', 1) || '@' || split_part(e, '@', 2)
  ELSE e END;
CREATE MACRO digits(s) AS regexp_replace(s, '[^0-9]', '', 'g');
CREATE MACRO phone(s) AS CASE
  WHEN starts_with(trim(s), '+') AND NOT starts_with(trim(s), '+1') AND length(digits(s)) BETWEEN 8 AND 15
    THEN '+' || digits(s)
  WHEN length(digits(s)) = 10 AND regexp_full_match(digits(s), '[2-9][0-9]{2}[2-9][0-9]{6}') THEN '+1' || digits(s)
  WHEN length(digits(s)) = 11 AND regexp_full_match(digits(s), '1[2-9][0-9]{2}[2-9][0-9]{6}') THEN '+' || digits(s)
  END;
CREATE MACRO street_later(w) AS CASE
  WHEN map_extract_value(getvariable('suffix'), upper(w)) IS NOT NULL THEN map_extract_value(getvariable('suffix'), upper(w))
  WHEN regexp_matches(w, '[0-9]') THEN upper(w)
  ELSE title_word(w) END;
-- The first word (house number or name) is never abbreviated.
CREATE MACRO street_mapped(ws) AS list_concat(
  [CASE WHEN regexp_matches(ws[1], '[0-9]') THEN upper(ws[1]) ELSE title_word(ws[1]) END],
  list_transform(ws[2:], w -> street_later(w)));
-- Words with "#5" as "Apt 5" unless a unit word comes before; dots and '#' trimmed.
CREATE MACRO street_words(s) AS list_filter(list_transform(string_split_regex(trim(
  regexp_replace(regexp_replace(replace(s, ',', ' '), '(^|\s)#', '\1Apt ', 'g'),
    '(?i)\b(apt|apartment|ste|suite|unit|fl|floor)\.?\s+Apt\s', '\1 ', 'g')), '\s+'),
  w -> rtrim(ltrim(w, '#'), '.')), w -> w <> '');
-- A unit's identifier keeps its letters upper case: "Apt 4B".
CREATE MACRO street(ws, m) AS blank(array_to_string(list_concat([m[1]], list_transform(
  list_zip(m[2:], ws[2:], m[:len(m) - 1]),
  p -> CASE WHEN p[3] IN ('Apt', 'Ste', 'Unit', 'Fl') THEN upper(p[2]) ELSE p[1] END)), ' '));
CREATE MACRO country(s) AS map_extract_value(getvariable('country'),
  upper(replace(regexp_replace(trim(s), '\s+', ' ', 'g'), '.', '')));
CREATE MACRO postcode(s, c) AS CASE coalesce(c, 'US')
  WHEN 'US' THEN CASE WHEN regexp_full_match(trim(s), '[0-9 -]+') AND length(digits(s)) IN (5, 9) THEN digits(s)[1:5]
                      WHEN regexp_full_match(trim(s), '[0-9 -]+') AND length(digits(s)) = 4 THEN '0' || digits(s) END
  WHEN 'CA' THEN CASE WHEN regexp_full_match(upper(regexp_replace(s, '[^A-Za-z0-9]', '', 'g')), '[A-Z][0-9][A-Z][0-9][A-Z][0-9]')
    THEN upper(regexp_replace(s, '[^A-Za-z0-9]', '', 'g'))[1:3] || ' ' || upper(regexp_replace(s, '[^A-Za-z0-9]', '', 'g'))[4:6] END
  WHEN 'GB' THEN CASE WHEN length(regexp_replace(s, '[^A-Za-z0-9]', '', 'g')) BETWEEN 5 AND 7
    THEN upper(regexp_replace(s, '[^A-Za-z0-9]', '', 'g'))[1:-4] || ' ' || upper(regexp_replace(s, '[^A-Za-z0-9]', '', 'g'))[-3:] END
  WHEN 'DE' THEN CASE WHEN regexp_full_match(regexp_replace(s, '[^A-Za-z0-9]', '', 'g'), '[0-9]{5}') THEN regexp_replace(s, '[^A-Za-z0-9]', '', 'g') END
  WHEN 'FR' THEN CASE WHEN regexp_full_match(regexp_replace(s, '[^A-Za-z0-9]', '', 'g'), '[0-9]{5}') THEN regexp_replace(s, '[^A-Za-z0-9]', '', 'g') END
  WHEN 'ES' THEN CASE WHEN regexp_full_match(regexp_replace(s, '[^A-Za-z0-9]', '', 'g'), '[0-9]{5}') THEN regexp_replace(s, '[^A-Za-z0-9]', '', 'g') END
  WHEN 'IT' THEN CASE WHEN regexp_full_match(regexp_replace(s, '[^A-Za-z0-9]', '', 'g'), '[0-9]{5}') THEN regexp_replace(s, '[^A-Za-z0-9]', '', 'g') END
  ELSE upper(squash(s)) END;
CREATE MACRO to_date(s) AS coalesce(try_strptime(trim(s), '%Y-%m-%d'), try_strptime(trim(s), '%m/%d/%Y'))::DATE;
CREATE MACRO to_bool(s) AS CASE WHEN lower(trim(s)) IN ('true', 't', 'yes', 'y', '1') THEN true
  WHEN lower(trim(s)) IN ('false', 'f', 'no', 'n', '0') THEN false END;
CREATE MACRO to_int(s) AS try_cast(replace(replace(trim(s), ',', ''), ' ', '') AS BIGINT);
CREATE MACRO money_currency(s) AS CASE
  WHEN contains(s, 'CA$') OR contains(s, 'C$') THEN 'CAD' WHEN contains(s, 'A$') THEN 'AUD'
  WHEN contains(s, '$') THEN 'USD' WHEN contains(s, '€') THEN 'EUR' WHEN contains(s, '£') THEN 'GBP'
  WHEN regexp_matches(s, '[A-Za-z]{3}') THEN upper(regexp_extract(s, '[A-Za-z]{3}')) ELSE 'USD' END;
CREATE MACRO money(s) AS CASE WHEN regexp_full_match(trim(s), '\(.*\)')
  THEN -try_cast(regexp_replace(s, '[^0-9.]', '', 'g') AS DOUBLE)
  ELSE try_cast(regexp_replace(s, '[^0-9.-]', '', 'g') AS DOUBLE) END;
"""
for stmt in MACROS.split(";\n"):
    if stmt.strip() and not stmt.strip().startswith("--") or "CREATE" in stmt:
        con.execute(stmt)

COLUMNS = ["record_id", "first_name", "last_name", "full_name", "email", "phone", "home_phone", "street",
           "city", "state", "country", "postcode", "birth_date", "updated_at", "accepts_marketing",
           "total_spent", "income_band", "household_size"]


def person_select(src, cols):
    """cols: canonical column -> source column; the rest are null."""
    raw = ", ".join(f"CAST({cols[c]} AS VARCHAR) AS _raw_{c}" if c in cols else f"NULL::VARCHAR AS _raw_{c}"
                    for c in COLUMNS)
    return f"SELECT '{src}' AS source, filename AS source_file, {raw} FROM"


crm = f"read_csv('{data}/crm/contacts_*.csv', all_varchar=true, header=true, filename=true)"
shop = (f"read_json('{data}/shop/customers.jsonl', format='newline_delimited', filename=true, columns={{"
        "customer_id: 'VARCHAR', email: 'VARCHAR', first_name: 'VARCHAR', last_name: 'VARCHAR', phone: 'VARCHAR', "
        "address1: 'VARCHAR', city: 'VARCHAR', province_code: 'VARCHAR', zip: 'VARCHAR', country_code: 'VARCHAR', "
        "created_at: 'VARCHAR', accepts_marketing: 'VARCHAR', total_spent: 'VARCHAR'})")
support = f"read_csv('{data}/support/users.csv', all_varchar=true, header=true, filename=true)"
enrich = f"read_csv('{data}/enrichment/consumers.csv', all_varchar=true, header=true, filename=true)"
con.execute(f"""
CREATE TABLE person_raw AS
{person_select('crm_contacts', dict(record_id='Id', first_name='FirstName', last_name='LastName', email='Email',
    phone='MobilePhone', home_phone='Phone', street='MailingStreet', city='MailingCity', state='MailingState',
    postcode='MailingPostalCode', country='MailingCountry', birth_date='Birthdate', updated_at='LastModifiedDate'))} {crm}
UNION ALL
{person_select('shop_customers', dict(record_id='customer_id', first_name='first_name', last_name='last_name',
    email='email', phone='phone', street='address1', city='city', state='province_code', postcode='zip',
    country='country_code', updated_at='created_at', accepts_marketing='accepts_marketing',
    total_spent='total_spent'))} {shop}
UNION ALL
{person_select('support_users', dict(record_id='id', full_name='name', email='email', phone='phone',
    updated_at='updated_at'))} {support}
UNION ALL
{person_select('enrichment', dict(record_id='match_key', first_name='first_nm', last_name='last_nm', birth_date='dob',
    street='addr_line1', city='city', state='st', postcode='zip5', phone='phone_number', email='email_addr',
    income_band='hh_income_band', household_size='hh_size'))} {enrich}
""")
# Blank text is a missing value, as in cdp's reader.
blanks = ", ".join(f"blank(_raw_{c}) AS _raw_{c}" for c in COLUMNS)
con.execute(f"""
CREATE TABLE person AS
WITH r0 AS (SELECT source, source_file, {blanks} FROM person_raw),
r1 AS (SELECT *, street_words(_raw_street) AS _street_words FROM r0),
r AS (SELECT *, street_mapped(_street_words) AS _street_mapped FROM r1),
n AS (
  SELECT *,
    squash(_raw_record_id) AS record_id,
    coalesce(person_name(_raw_first_name), first_of(_raw_full_name)) AS first_name,
    coalesce(person_name(_raw_last_name), last_of(_raw_full_name)) AS last_name,
    person_name(_raw_full_name) AS full_name,
    email(_raw_email) AS email,
    phone(_raw_phone) AS phone, _raw_phone AS phone_raw,
    phone(_raw_home_phone) AS home_phone,
    street(_street_words, _street_mapped) AS street,
    title_text(_raw_city) AS city,
    upper(squash(_raw_state)) AS state,
    country(_raw_country) AS country,
    postcode(_raw_postcode, country(_raw_country)) AS postcode,
    to_date(_raw_birth_date) AS birth_date,
    try_cast(trim(_raw_updated_at) AS TIMESTAMPTZ) AS updated_at,
    to_bool(_raw_accepts_marketing) AS accepts_marketing,
    money(_raw_total_spent) AS total_spent,
    CASE WHEN _raw_total_spent IS NOT NULL THEN money_currency(_raw_total_spent) END AS total_spent_currency,
    squash(_raw_income_band) AS income_band,
    to_int(_raw_household_size) AS household_size
  FROM r)
SELECT *, formal(first_name) AS first_name_formal, email_key(email) AS email_key,
  CASE
    WHEN record_id IS NULL THEN 'not_null(record_id)'
    WHEN _raw_birth_date IS NOT NULL AND birth_date IS NULL THEN 'invalid_date'
    WHEN _raw_updated_at IS NOT NULL AND updated_at IS NULL THEN 'invalid_timestamp'
    WHEN _raw_accepts_marketing IS NOT NULL AND accepts_marketing IS NULL THEN 'invalid_boolean'
    WHEN _raw_total_spent IS NOT NULL AND total_spent IS NULL THEN 'invalid_money'
    WHEN _raw_household_size IS NOT NULL AND household_size IS NULL THEN 'invalid_integer'
    WHEN row_number() OVER (PARTITION BY source, record_id) > 1 THEN 'unique(source, record_id)'
    WHEN length(record_id) > 64 THEN 'length(record_id)'
    WHEN household_size < 1 OR household_size > 20 THEN 'range(household_size)'
  END AS reason
FROM n
""")
checks = con.execute("""
SELECT count(*) FILTER (WHERE email IS NULL),
       count(*) FILTER (WHERE country IS NOT NULL AND country <> 'US'),
       count(*) FILTER (WHERE birth_date < DATE '1900-01-01' OR birth_date > DATE '2026-12-31'),
       epoch_ms(max(updated_at))
FROM person
""").fetchone()
raw_json = "to_json(struct_pack(" + ", ".join(f"{c} := _raw_{c}" for c in COLUMNS) + "))"
clean_cols = ", ".join(["source", "source_file", "record_id", "first_name", "first_name_formal", "last_name",
                        "full_name", "email", "email_key", "phone", "phone_raw", "home_phone", "street", "city",
                        "state", "country", "postcode", "birth_date", "updated_at", "accepts_marketing",
                        "total_spent", "total_spent_currency", "income_band", "household_size"])
con.execute(f"COPY (SELECT {clean_cols} FROM person WHERE reason IS NULL) TO '{out}/person.parquet' (FORMAT parquet, COMPRESSION zstd)")
con.execute(f"COPY (SELECT source, source_file, reason, {raw_json} AS record FROM person WHERE reason IS NOT NULL) TO '{out}/person_quarantine.parquet' (FORMAT parquet)")

con.execute(f"""
CREATE TABLE orders AS
WITH r AS (SELECT *, filename AS source_file FROM read_csv('{data}/shop/orders.csv', all_varchar=true, header=true, filename=true)),
n AS (
  SELECT source_file, order_id AS _raw_order_id, customer_id AS _raw_customer_id, ordered_at AS _raw_ordered_at,
    currency AS _raw_currency, total_price AS _raw_total_price,
    to_int(order_id) AS order_id, to_int(customer_id) AS customer_id,
    try_cast(trim(ordered_at) AS TIMESTAMPTZ) AS ordered_at, upper(squash(currency)) AS currency,
    try_cast(replace(trim(total_price), ',', '') AS DOUBLE) AS total_price
  FROM r)
SELECT *, CASE
  WHEN _raw_order_id IS NOT NULL AND order_id IS NULL THEN 'invalid_integer'
  WHEN _raw_customer_id IS NOT NULL AND customer_id IS NULL THEN 'invalid_integer'
  WHEN _raw_ordered_at IS NOT NULL AND ordered_at IS NULL THEN 'invalid_timestamp'
  WHEN _raw_total_price IS NOT NULL AND total_price IS NULL THEN 'invalid_float'
  WHEN order_id IS NULL THEN 'not_null(order_id)'
  WHEN row_number() OVER (PARTITION BY order_id) > 1 THEN 'unique(order_id)'
  WHEN customer_id IS NOT NULL AND customer_id::VARCHAR NOT IN (SELECT record_id FROM person WHERE reason IS NULL)
    THEN 'referential(customer_id)'
  WHEN total_price < 0 THEN 'expression(total_price >= 0)'
END AS reason
FROM n
""")
con.execute("SELECT count(*) FILTER (WHERE currency NOT IN ('USD', 'CAD')) FROM orders").fetchone()
con.execute(f"COPY (SELECT source_file, order_id, customer_id, ordered_at, currency, total_price FROM orders WHERE reason IS NULL) TO '{out}/orders.parquet' (FORMAT parquet, COMPRESSION zstd)")
con.execute(f"COPY (SELECT source_file, reason, to_json(struct_pack(order_id := _raw_order_id, customer_id := _raw_customer_id, ordered_at := _raw_ordered_at, currency := _raw_currency, total_price := _raw_total_price)) AS record FROM orders WHERE reason IS NOT NULL) TO '{out}/orders_quarantine.parquet' (FORMAT parquet)")
rows = con.execute("SELECT (SELECT count(*) FROM person) + (SELECT count(*) FROM orders)").fetchone()[0]
print(f"baseline rows={rows} seconds={time.time() - start:.2f}")
