"""Loopback stand-in for the HTTP destinations of `cdp sync`, for tests only.

Serves on 127.0.0.1 (a free port, printed as JSON on stdout's first line):

  webhook       POST /hook                                     batches of rows
  Salesforce    POST /services/oauth2/token                    refresh an access token
                POST /services/data/v60.0/jobs/ingest          create an ingest job
                PUT  /services/data/v60.0/jobs/ingest/ID/batches   upload CSV
                PATCH /services/data/v60.0/jobs/ingest/ID      UploadComplete
                GET  /services/data/v60.0/jobs/ingest/ID       job state
                GET  /services/data/v60.0/jobs/ingest/ID/failedResults/
                GET  /services/data/v60.0/jobs/ingest/ID/successfulResults/
  ad audience   POST|DELETE /v1/AUDIENCE/users                 add / remove members
  test only     GET  /_state                                   what was applied

Driven by a scenario file (JSON), all keys optional:
  {"webhook": {"auth": "Bearer x", "fail_first": 2, "retry_after": 0,
               "reject_keys": ["k1"], "down": false, "delay_ms": 0},
   "salesforce": {"token": "t", "refresh_token": "r", "expire_after": 1,
                  "fail_ids": ["p1"], "fail_job": false, "polls": 1},
   "ads": {"token": "t", "invalid": ["<sha256>"], "fail_first": 0}}
Idempotency: a request whose Idempotency-Key was answered before gets the same
answer and is not applied again.
"""
import csv
import io
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SCENARIO = json.load(open(sys.argv[1])) if len(sys.argv) > 1 else {}
LOCK = threading.Lock()
STATE = {
    "webhook": {"rows": {}, "requests": 0, "applied_batches": 0, "applications": {},
                "idempotent_replays": 0, "auth_failures": 0},
    "salesforce": {"records": {}, "jobs": {}, "refreshes": 0, "unauthorized": 0,
                   "applications": {}},
    "ads": {"members": [], "requests": 0, "unhashed": 0, "applications": {}},
    "calls": {},
}
ANSWERED = {}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SF_TOKEN = {"value": SCENARIO.get("salesforce", {}).get("token", "sf-token"), "calls": 0}
FAILURES = {"webhook": 0, "ads": 0}


def count(name):
    STATE["calls"][name] = STATE["calls"].get(name, 0) + 1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        sys.stderr.write("%s %s\n" % (self.command, self.path))

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def answer(self, status, body=b"", ctype="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def route(self):
        url = urlparse(self.path)
        path = url.path
        data = self.body()
        with LOCK:
            if path == "/_state":
                return self.answer(200, STATE)
            if path == "/hook":
                return self.webhook(data)
            if path == "/services/oauth2/token":
                return self.sf_token(data)
            if path.startswith("/services/data/v60.0/jobs/ingest"):
                return self.salesforce(path, data)
            m = re.match(r"^/v1/([^/]+)/users$", path)
            if m:
                return self.ads(m.group(1), data)
        return self.answer(404, {"error": "no route " + path})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = route

    # --------------------------------------------------------------- webhook
    def webhook(self, data):
        s = SCENARIO.get("webhook", {})
        count("webhook")
        STATE["webhook"]["requests"] += 1
        if s.get("delay_ms"):
            time.sleep(s["delay_ms"] / 1000)
        if s.get("down"):
            return self.answer(503, {"error": "down"}, headers={"Retry-After": "0"})
        if FAILURES["webhook"] < s.get("fail_first", 0):
            FAILURES["webhook"] += 1
            status = 429 if FAILURES["webhook"] % 2 else 503
            return self.answer(status, {"error": "busy"},
                               headers={"Retry-After": str(s.get("retry_after", 0))})
        if "auth" in s and self.headers.get(s.get("auth_header", "Authorization")) != s["auth"]:
            STATE["webhook"]["auth_failures"] += 1
            return self.answer(401, {"error": "unauthorized"})
        key = self.headers.get("Idempotency-Key")
        if key and key in ANSWERED:
            STATE["webhook"]["idempotent_replays"] += 1
            return self.answer(200, ANSWERED[key])
        batch = json.loads(data)
        rejected = []
        for row in batch["rows"]:
            if row["key"] in s.get("reject_keys", []):
                rejected.append({"key": row["key"], "reason": "invalid email for this tool"})
                continue
            apps = STATE["webhook"]["applications"]
            apps[row["key"]] = apps.get(row["key"], 0) + 1
            if batch["op"] == "remove":
                STATE["webhook"]["rows"].pop(row["key"], None)
            else:
                STATE["webhook"]["rows"][row["key"]] = row["values"]
        STATE["webhook"]["applied_batches"] += 1
        answer = {"rejected": rejected}
        if key:
            ANSWERED[key] = answer
        return self.answer(200, answer)

    # ------------------------------------------------------------ salesforce
    def sf_authorized(self):
        s = SCENARIO.get("salesforce", {})
        SF_TOKEN["calls"] += 1
        if self.headers.get("Authorization") != "Bearer " + SF_TOKEN["value"]:
            STATE["salesforce"]["unauthorized"] += 1
            return False
        expire = s.get("expire_after")
        if expire is not None and SF_TOKEN["calls"] > expire and SF_TOKEN["value"] == s.get("token", "sf-token"):
            STATE["salesforce"]["unauthorized"] += 1
            return False
        return True

    def sf_token(self, data):
        s = SCENARIO.get("salesforce", {})
        count("sf_token")
        form = parse_qs(data.decode())
        if form.get("grant_type") != ["refresh_token"] or form.get("refresh_token") != [s.get("refresh_token")]:
            return self.answer(400, {"error": "invalid_grant"})
        STATE["salesforce"]["refreshes"] += 1
        SF_TOKEN["value"] = "refreshed-%d" % STATE["salesforce"]["refreshes"]
        return self.answer(200, {"access_token": SF_TOKEN["value"], "token_type": "Bearer"})

    def salesforce(self, path, data):
        s = SCENARIO.get("salesforce", {})
        if not self.sf_authorized():
            return self.answer(401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])
        jobs = STATE["salesforce"]["jobs"]
        parts = path.split("/")[6:]  # after /services/data/v60.0/jobs/ingest
        if not parts and self.command == "POST":
            count("sf_create")
            spec = json.loads(data)
            job_id = "750%06d" % (len(jobs) + 1)
            jobs[job_id] = {"spec": spec, "state": "Open", "csv": "", "polls": 0,
                            "failed": [], "ok": []}
            return self.answer(200, {"id": job_id, "state": "Open", "object": spec["object"]})
        job = jobs.get(parts[0]) if parts else None
        if job is None:
            return self.answer(404, [{"errorCode": "NOT_FOUND"}])
        if parts[1:] == ["batches"] and self.command == "PUT":
            count("sf_upload")
            job["csv"] += data.decode()
            return self.answer(201, "")
        if parts[1:] == [] and self.command == "PATCH":
            count("sf_close")
            job["state"] = "UploadComplete"
            self.sf_process(job, s)
            return self.answer(200, {"id": parts[0], "state": job["state"]})
        if parts[1:] == [] and self.command == "GET":
            count("sf_poll")
            job["polls"] += 1
            if job["state"] == "UploadComplete" and job["polls"] >= s.get("polls", 1):
                job["state"] = "Failed" if s.get("fail_job") else "JobComplete"
            info = {"id": parts[0], "state": job["state"]}
            if job["state"] == "Failed":
                info["errorMessage"] = "InvalidBatch : Field name not found : Bogus__c"
            return self.answer(200, info)
        if parts[1:] in (["failedResults", ""], ["failedResults"]):
            count("sf_failed")
            return self.answer(200, job["failed_csv"], ctype="text/csv")
        if parts[1:] in (["successfulResults", ""], ["successfulResults"]):
            return self.answer(200, job["ok_csv"], ctype="text/csv")
        return self.answer(404, [{"errorCode": "NOT_FOUND"}])

    def sf_process(self, job, s):
        spec = job["spec"]
        ext = spec.get("externalIdFieldName")
        rows = list(csv.DictReader(io.StringIO(job["csv"])))
        fields = rows[0].keys() if rows else []
        failed = io.StringIO()
        ok = io.StringIO()
        fw = csv.writer(failed, lineterminator="\n")
        ow = csv.writer(ok, lineterminator="\n")
        fw.writerow(["sf__Id", "sf__Error"] + list(fields))
        ow.writerow(["sf__Id", "sf__Created"] + list(fields))
        if s.get("fail_job"):
            job["failed_csv"], job["ok_csv"] = failed.getvalue(), ok.getvalue()
            return
        records = STATE["salesforce"]["records"]
        for row in rows:
            ident = row.get(ext) if ext else None
            if ident in s.get("fail_ids", []):
                fw.writerow(["", "INVALID_EMAIL_ADDRESS:Email: invalid email address:--"] + list(row.values()))
                continue
            if spec["operation"] == "insert":
                ident = "ins-%d" % len(records)
            created = ident not in records
            records[ident] = row
            apps = STATE["salesforce"]["applications"]
            apps[ident] = apps.get(ident, 0) + 1
            ow.writerow(["003%012d" % len(records), str(created).lower()] + list(row.values()))
        job["failed_csv"], job["ok_csv"] = failed.getvalue(), ok.getvalue()

    # ------------------------------------------------------------------- ads
    def ads(self, audience, data):
        s = SCENARIO.get("ads", {})
        count("ads_" + self.command.lower())
        STATE["ads"]["requests"] += 1
        if self.headers.get("Authorization") != "Bearer " + s.get("token", "ads-token"):
            return self.answer(401, {"error": {"message": "Invalid OAuth access token"}})
        if FAILURES["ads"] < s.get("fail_first", 0):
            FAILURES["ads"] += 1
            return self.answer(429, {"error": {"message": "rate limited"}}, headers={"Retry-After": "0"})
        key = self.headers.get("Idempotency-Key")
        if key and key in ANSWERED:
            return self.answer(200, ANSWERED[key])
        payload = json.loads(data)["payload"]
        members = set(STATE["ads"]["members"])
        invalid = {}
        for entry in payload["data"]:
            for v in entry:
                if v and not HEX64.match(v):
                    STATE["ads"]["unhashed"] += 1
            ident = "|".join(entry)
            if any(v in s.get("invalid", []) for v in entry):
                for v in entry:
                    if v in s.get("invalid", []):
                        invalid[v] = "invalid hashed value"
                continue
            apps = STATE["ads"]["applications"]
            apps[ident] = apps.get(ident, 0) + 1
            if self.command == "DELETE":
                members.discard(ident)
            else:
                members.add(ident)
        STATE["ads"]["members"] = sorted(members)
        answer = {"audience_id": audience, "num_received": len(payload["data"]),
                  "num_invalid_entries": len(invalid), "invalid_entry_samples": invalid}
        if key:
            ANSWERED[key] = answer
        return self.answer(200, answer)


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
