"""The Snowflake test peer: fakesnow's server app, with two changes for cdp's tests.

1. JSON rowsets. snowflake-connector-rs reads only Snowflake's JSON result format,
   while fakesnow answers SELECT (and DDL) in Arrow. This bridge decodes fakesnow's
   Arrow answer and re-encodes it as a JSON rowset, with values in Snowflake's JSON
   text forms (numbers as text, DATE as days since 1970, TIMESTAMP as
   "<epoch seconds>.<nanoseconds>", BOOLEAN as "1"/"0").
   Explicit transactions are emulated here (see `transaction`). Failed statements get the `queryId` Snowflake always sends, so the connector
   reports the server's message.
2. A password. fakesnow accepts any login; with CDP_PEER_SNOWFLAKE_PASSWORD set, a
   password login with another password is refused the way Snowflake refuses it
   (code 390100), so the wrong-credentials path can be tested; a key-pair login is
   checked against a public key the test registered (see `jwt_refused`).

3. A hold, for the crash test: while the file named by CDP_PEER_HOLD_FILE exists and
   holds a regular expression, a statement matching it is not run; the request waits
   (writing "<file>.held" so the test knows) until the file is gone, then fails. The
   test kills cdp meanwhile, as a crash at that statement would.

It also points DuckDB (under fakesnow) at the S3 peer: httpfs from the PyPI package
duckdb-extension-httpfs, and a persistent S3 secret for CDP_PEER_S3_ENDPOINT, both in
this process's HOME (up.sh gives it a folder of its own). Test code only; cdp's
product code never talks to this.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import gzip
import json
import os
import pathlib
import re
import uuid

import duckdb
import duckdb_extension_httpfs
import jwt
import pyarrow as pa
import uvicorn
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import fakesnow.server as server
from fakesnow.converter import from_binding

EPOCH = dt.date(1970, 1, 1)


def setup_duckdb_s3() -> None:
    ext = next(pathlib.Path(duckdb_extension_httpfs.__file__).parent.rglob("httpfs.duckdb_extension"))
    con = duckdb.connect()
    con.execute(f"INSTALL '{ext}'")
    endpoint = os.environ.get("CDP_PEER_S3_ENDPOINT")
    if endpoint:
        con.execute(
            "CREATE OR REPLACE PERSISTENT SECRET cdp_peer_s3 (TYPE s3, KEY_ID 'cdp-test', "
            f"SECRET 'cdp-test', REGION 'us-east-1', ENDPOINT '{endpoint}', "
            "URL_STYLE 'path', USE_SSL false)"
        )
    con.close()


def json_cell(value, type_name: str) -> str | None:
    if value is None:
        return None
    t = type_name.upper()
    if isinstance(value, dict) and "epoch" in value:
        # fakesnow's Arrow form of a timestamp: {epoch, fraction[, timezone]}; a
        # null timestamp comes as a struct of nulls.
        if value["epoch"] is None:
            return None
        return f"{value['epoch']}.{value['fraction']:09d}"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        delta = value.replace(tzinfo=None) - dt.datetime(1970, 1, 1)
        return f"{int(delta.total_seconds())}.{value.microsecond * 1000:09d}"
    if isinstance(value, dt.date):
        return str((value - EPOCH).days)
    if t == "TIME" and isinstance(value, int):
        return f"{value // 1_000_000_000}.{value % 1_000_000_000:09d}"
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def to_json_rowset(data: dict) -> None:
    encoded = data.pop("rowsetBase64", "") or ""
    data["queryResultFormat"] = "json"
    rowtype = data.get("rowtype") or []
    if not encoded:
        data["rowset"] = []
        return
    table = pa.ipc.open_stream(base64.b64decode(encoded)).read_all()
    columns = [col.to_pylist() for col in table.columns]
    types = [c.get("type", "") for c in rowtype]
    data["rowset"] = [
        [json_cell(v, types[i] if i < len(types) else "") for i, v in enumerate(row)]
        for row in zip(*columns)
    ]
    data["returned"] = len(data["rowset"])


async def hold(request: Request) -> JSONResponse | None:
    hold_file = os.environ.get("CDP_PEER_HOLD_FILE")
    if not hold_file or not os.path.exists(hold_file):
        return None
    pattern = pathlib.Path(hold_file).read_text().strip()
    raw = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    sql = json.loads(raw).get("sqlText", "")
    try:
        database = server.to_conn(server.to_token(request)).database
    except Exception:
        database = ""
    # Matched against "<database>: <sql>", so a test holds only its own statements.
    if not pattern or not re.search(pattern, f"{database}: {sql}"):
        return None
    pathlib.Path(hold_file + ".held").write_text(sql)
    while os.path.exists(hold_file):
        await asyncio.sleep(0.1)
    return JSONResponse({"data": None, "code": "000000", "message": "held by the test peer", "success": False}, status_code=503)


TCL = re.compile(r"^\s*(BEGIN|START\s+TRANSACTION|COMMIT|ROLLBACK)\b", re.I)
DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE)\b", re.I)
# Open transactions: session token -> the DML statements deferred to COMMIT.
transactions: dict[str, list[tuple[str, tuple | None]]] = {}


def status_response(conn, text: str, type_id: int) -> JSONResponse:
    column = {
        "name": "status", "database": "", "schema": "", "table": "", "nullable": True,
        "type": "text", "byteLength": None, "length": None, "scale": None, "precision": None,
        "collation": None,
    }
    return JSONResponse(
        {
            "data": {
                "parameters": [],
                "rowtype": [column],
                "rowset": [[text]],
                "total": 1,
                "returned": 1,
                "queryId": str(uuid.uuid4()),
                "statementTypeId": type_id,
                "queryResultFormat": "json",
                "finalDatabaseName": conn.database,
                "finalSchemaName": conn.schema,
            },
            "success": True,
        }
    )


def error_response(message: str, code: str = "000603") -> JSONResponse:
    return JSONResponse(
        {
            "data": {"errorCode": code, "sqlState": "XX000", "queryId": str(uuid.uuid4())},
            "code": code,
            "message": message,
            "success": False,
        }
    )


async def transaction(request: Request) -> JSONResponse | None:
    """Explicit transactions. fakesnow's server cannot describe BEGIN/COMMIT, and its
    MERGE cannot run inside a DuckDB transaction (it writes fakesnow's own catalog
    too), so the bridge emulates them: after BEGIN, INSERT/UPDATE/DELETE/MERGE are
    kept, not run; COMMIT runs them in order; ROLLBACK, or a client that never sends
    COMMIT (a crash), drops them. What a crash must not leave behind, it does not."""
    raw = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    body = json.loads(raw)
    sql = body.get("sqlText", "")
    token = server.to_token(request)
    conn = server.to_conn(token)
    if m := TCL.match(sql):
        verb = m.group(1).upper()
        if verb in ("BEGIN", "START"):
            transactions[token] = []
        elif verb == "ROLLBACK":
            transactions.pop(token, None)
        else:
            for stmt, params in transactions.pop(token, []):
                try:
                    await run_in_threadpool(conn.cursor().execute, stmt, binding_params=params, server=True)
                except Exception as e:  # noqa: BLE001
                    return error_response(f"COMMIT failed running {stmt[:200]!r}: {e}")
        return status_response(conn, "Statement executed successfully.", 0x5000)
    if token in transactions and DML.match(sql):
        params = None
        if bindings := body.get("bindings"):
            params = tuple(from_binding(bindings[str(pos)]) for pos in range(1, len(bindings) + 1))
        transactions[token].append((sql, params))
        return status_response(conn, "0", 0x3000)
    return None


async def query_request(request: Request) -> JSONResponse:
    if (held := await hold(request)) is not None:
        return held
    if (done := await transaction(request)) is not None:
        return done
    response = await server.query_request(request)
    body = json.loads(response.body)
    data = body.get("data")
    if body.get("success") and isinstance(data, dict) and data.get("queryResultFormat") == "arrow":
        to_json_rowset(data)
        return JSONResponse(body, status_code=response.status_code)
    if not body.get("success") and isinstance(data, dict) and "queryId" not in data:
        # Snowflake names the failed query; the Rust connector needs the field to
        # report the error message at all.
        data["queryId"] = "00000000-0000-0000-0000-000000000000"
        return JSONResponse(body, status_code=response.status_code)
    return response


def jwt_refused(data: dict) -> bool:
    """Key-pair login: when the test registered a public key for the user (a PEM file
    named after the user in CDP_PEER_SNOWFLAKE_KEYS_DIR, as `ALTER USER ... SET
    RSA_PUBLIC_KEY` would), the JWT must be signed by its private key."""
    keys = os.environ.get("CDP_PEER_SNOWFLAKE_KEYS_DIR")
    user = str(data.get("LOGIN_NAME", "")).upper()
    key_file = pathlib.Path(keys or "/nonexistent") / f"{user}.pem"
    if not key_file.exists():
        return False
    try:
        jwt.decode(data.get("TOKEN", ""), key_file.read_text(), algorithms=["RS256"], options={"verify_aud": False})
        return False
    except jwt.PyJWTError:
        return True


async def login_request(request: Request) -> JSONResponse:
    expected = os.environ.get("CDP_PEER_SNOWFLAKE_PASSWORD")
    raw = await request.body()
    if request.headers.get("Content-Encoding") == "gzip":
        raw = gzip.decompress(raw)
    data = json.loads(raw).get("data", {})
    if data.get("AUTHENTICATOR") == "SNOWFLAKE_JWT" and jwt_refused(data):
        return JSONResponse(
            {"data": None, "code": "390144", "message": "JWT token is invalid.", "success": False}
        )
    if expected:
        if data.get("AUTHENTICATOR") in (None, "", "SNOWFLAKE") and data.get("PASSWORD") != expected:
            return JSONResponse(
                {
                    "data": {"nextAction": "RETRY_LOGIN", "authnMethod": "PASSWORD"},
                    "code": "390100",
                    "message": "Incorrect username or password was specified.",
                    "success": False,
                }
            )
    return await server.login_request(request)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    setup_duckdb_s3()
    routes = []
    for route in server.routes:
        if route.path == "/queries/v1/query-request":
            route = Route(route.path, query_request, methods=["POST"])
        elif route.path == "/session/v1/login-request":
            route = Route(route.path, login_request, methods=["POST"])
        routes.append(route)
    server.app.router.routes[:] = routes
    uvicorn.run(server.app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
