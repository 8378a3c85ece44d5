"""Loopback stand-in for AWS AppFlow and AWS Data Exchange, with an S3 emulator.

Speaks the restJson1 wire protocol of the operations cdp uses, as the AWS API
references and the SDK models define them:

  AppFlow        POST  /describe-flow                     DescribeFlow
                 POST  /start-flow                        StartFlow
                 POST  /describe-flow-execution-records   DescribeFlowExecutionRecords
  Data Exchange  GET   /v1/data-sets/{id}/revisions       ListDataSetRevisions
                 POST  /v1/jobs                           CreateJob
                 PATCH /v1/jobs/{id}                      StartJob
                 GET   /v1/jobs/{id}                      GetJob

plus GET /_calls (how many times each operation was called). Errors carry the
`x-amzn-ErrorType` header and a JSON body, as the services send them.

A scenario file (JSON) drives it; see tests/standin/README.md. Files a flow execution
or an export job writes go into moto's S3 server, started in this process. Both
listen on 127.0.0.1 on free ports, printed as one JSON line on stdout:
{"s3": URL, "api": PORT}. Usage: standin.py SCENARIO.json [BASE_DIR]
With CDP_STANDIN_S3=URL it writes into that S3 emulator instead of starting moto.
"""

import base64
import json
import os
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import boto3
from moto.server import ThreadedMotoServer

LOCK = threading.Lock()
DATAEXCHANGE_OPS = {"ListDataSetRevisions", "CreateJob", "StartJob", "GetJob"}
FIREHOSE_OPS = {"PutRecordBatch"}
CALLS = {}


def content(value, base):
    """A file's bytes: inline text, or {"from": path relative to BASE_DIR}."""
    if isinstance(value, dict):
        with open(os.path.join(base, value["from"]), "rb") as f:
            return f.read()
    return value.encode()


class World:
    def __init__(self, scenario, base, s3):
        self.sc = scenario
        self.base = base
        self.s3 = s3
        self.page_size = scenario.get("page_size", 100)
        self.throttle = dict(scenario.get("throttle", {}))
        self.deny = set(scenario.get("deny", []))
        self.flows = scenario.get("flows", {})
        self.data_sets = scenario.get("data_sets", {})
        self.jobs = {}
        # Firehose: records accepted (decoded), and how many entries were refused.
        self.firehose = scenario.get("firehose", {})
        self.delivered = []
        self.refused = 0
        self.seen = set()
        for name, flow in self.flows.items():
            flow["name"] = name
            self.ensure_bucket(flow["bucket"])
            flow.setdefault("executions", [])
            for ex in flow["executions"]:
                ex.setdefault("polls", 0)
                if ex["polls"] == 0 and ex.get("status", "Successful") == "Successful":
                    self.write_execution(flow, ex)
        for ds in self.data_sets.values():
            for rev in ds.get("revisions", []):
                rev.setdefault("finalized", True)

    def ensure_bucket(self, bucket):
        try:
            self.s3.create_bucket(Bucket=bucket)
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass

    def write_execution(self, flow, ex):
        ex["written"] = True
        # "date_path" stands for a flow's prefix config: dated folders before the id.
        parts = [flow.get("prefix", ""), flow["name"], flow.get("date_path", ""), ex["id"]]
        prefix = "/".join(p for p in parts if p)
        for name, value in ex.get("files", {}).items():
            self.s3.put_object(Bucket=flow["bucket"], Key=f"{prefix}/{name}", Body=content(value, self.base))

    # --- AppFlow -------------------------------------------------------------

    def flow(self, name):
        flow = self.flows.get(name)
        if flow is None:
            raise ApiError(404, "ResourceNotFoundException", f"Flow {name} does not exist")
        return flow

    def describe_flow(self, body):
        flow = self.flow(body.get("flowName"))
        s3 = {"bucketName": flow["bucket"], "s3OutputFormatConfig": {"fileType": flow.get("file_type", "CSV")}}
        if flow.get("prefix"):
            s3["bucketPrefix"] = flow["prefix"]
        return 200, {
            "flowArn": f"arn:aws:appflow:us-east-1:123456789012:flow/{flow['name']}",
            "flowName": flow["name"],
            "flowStatus": "Active",
            "sourceFlowConfig": {"connectorType": "Salesforce", "sourceConnectorProperties": {"Salesforce": {"object": "Contact"}}},
            "destinationFlowConfigList": [
                {"connectorType": "S3", "destinationConnectorProperties": {"S3": s3}}
            ],
            "triggerConfig": {"triggerType": "OnDemand"},
            "tasks": [],
        }

    def start_flow(self, body):
        flow = self.flow(body.get("flowName"))
        runs = flow.get("runs", [])
        if not runs:
            raise ApiError(409, "ConflictException", "the scenario has no more runs for this flow")
        run = runs.pop(0)
        started = max([e["started_at"] for e in flow["executions"]] + [1700000000]) + 60
        ex = dict(run, id=run.get("id", str(uuid.uuid4())), started_at=started)
        ex.setdefault("polls", 0)
        ex.setdefault("status", "Successful")
        flow["executions"].append(ex)
        if ex["polls"] == 0 and ex["status"] == "Successful":
            self.write_execution(flow, ex)
        return 200, {"flowArn": f"arn:aws:appflow:us-east-1:123456789012:flow/{flow['name']}",
                     "flowStatus": "Active", "executionId": ex["id"]}

    def execution_records(self, body):
        flow = self.flow(body.get("flowName"))
        records = []
        for ex in sorted(flow["executions"], key=lambda e: -e["started_at"]):
            # "polls": how many more answers say InProgress before the final status.
            status = ex.get("status", "Successful")
            if ex["polls"] > 0:
                ex["polls"] -= 1
                status = "InProgress"
            elif status == "Successful" and not ex.get("written"):
                self.write_execution(flow, ex)
            # "records": what the execution reports transferring; by default the data
            # lines of its files.
            transferred = ex.get("records", sum(max(content(v, self.base).count(b"\n") - 1, 0)
                                                for v in ex.get("files", {}).values()))
            record = {"executionId": ex["id"], "executionStatus": status,
                      "startedAt": ex["started_at"], "lastUpdatedAt": ex["started_at"] + 30,
                      "executionResult": {"recordsProcessed": transferred, "bytesProcessed": 0, "bytesWritten": 0}}
            # "data_pull_start": where an incremental flow's pull began (epoch seconds).
            if "data_pull_start" in ex:
                record["dataPullStartTime"] = ex["data_pull_start"]
            if status == "Error":
                record["executionResult"]["errorInfo"] = {"putFailuresCount": 0, "executionMessage": ex.get("message", "")}
            records.append(record)
        return 200, self.page(records, "flowExecutions", "nextToken", body.get("nextToken"))

    def page(self, items, key, token_key, token):
        start = int(token or 0)
        out = {key: items[start:start + self.page_size]}
        if start + self.page_size < len(items):
            out[token_key] = str(start + self.page_size)
        return out

    # --- Data Exchange -------------------------------------------------------

    def put_record_batch(self, body):
        """Firehose PutRecordBatch (awsJson1_1). With `fail_every: N`, every Nth entry
        of a call whose data was never refused before is refused once (FailedPutCount,
        an ErrorCode per entry), as Firehose does under load; the rest are accepted."""
        every = self.firehose.get("fail_every", 0)
        stream = body.get("DeliveryStreamName", "")
        if stream not in self.firehose.get("streams", [stream]):
            raise ApiError(400, "ResourceNotFoundException", f"Firehose {stream} not found.")
        responses, failed = [], 0
        for i, record in enumerate(body.get("Records", [])):
            data = base64.b64decode(record["Data"])
            if every and i % every == 0 and data not in self.seen:
                self.seen.add(data)
                failed += 1
                self.refused += 1
                responses.append({"ErrorCode": "ServiceUnavailableException",
                                  "ErrorMessage": "Slow down."})
                continue
            self.delivered.append(data.decode())
            responses.append({"RecordId": str(uuid.uuid4())})
        return 200, {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": responses}

    def data_set(self, ds_id):
        ds = self.data_sets.get(ds_id)
        if ds is None:
            raise ApiError(404, "ResourceNotFoundException", f"Data set {ds_id} not found")
        return ds

    def list_revisions(self, ds_id, query):
        ds = self.data_set(ds_id)
        revs = []
        for r in sorted(ds.get("revisions", []), key=lambda r: r["created_at"], reverse=True):
            revs.append({"Arn": f"arn:aws:dataexchange:us-east-1::data-sets/{ds_id}/revisions/{r['id']}",
                         "Id": r["id"], "DataSetId": ds_id, "CreatedAt": r["created_at"],
                         "UpdatedAt": r["created_at"], "Finalized": r["finalized"],
                         "Revoked": r.get("revoked", False)})
        return 200, self.page(revs, "Revisions", "NextToken", query.get("nextToken", [None])[0])

    def job_body(self, job):
        return {"Arn": f"arn:aws:dataexchange:us-east-1:123456789012:jobs/{job['id']}",
                "Id": job["id"], "Type": "EXPORT_REVISIONS_TO_S3", "State": job["state"],
                "CreatedAt": "2025-01-01T00:00:00Z", "UpdatedAt": "2025-01-01T00:00:00Z",
                "Details": {"ExportRevisionsToS3": job["details"]},
                "Errors": job.get("errors", [])}

    def create_job(self, body):
        if body.get("Type") != "EXPORT_REVISIONS_TO_S3":
            raise ApiError(400, "ValidationException", "the stand-in knows EXPORT_REVISIONS_TO_S3 only")
        details = body["Details"]["ExportRevisionsToS3"]
        ds = self.data_set(details["DataSetId"])
        dests = details["RevisionDestinations"]
        revs = {r["id"]: r for r in ds.get("revisions", [])}
        for d in dests:
            if d["RevisionId"] not in revs:
                raise ApiError(404, "ResourceNotFoundException", f"Revision {d['RevisionId']} not found")
        rev = revs[dests[0]["RevisionId"]]
        job = {"id": uuid.uuid4().hex, "state": "WAITING", "details": details,
               "polls": rev.get("polls", 0), "outcome": rev.get("state", "COMPLETED"),
               "message": rev.get("message", ""), "revs": revs}
        self.jobs[job["id"]] = job
        return 201, self.job_body(job)

    def job(self, job_id):
        job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, "ResourceNotFoundException", f"Job {job_id} not found")
        return job

    def start_job(self, job_id):
        job = self.job(job_id)
        job["state"] = "IN_PROGRESS"
        return 202, {}

    def get_job(self, job_id):
        job = self.job(job_id)
        if job["state"] == "IN_PROGRESS":
            if job["polls"] > 0:
                job["polls"] -= 1
            else:
                job["state"] = job["outcome"]
                if job["state"] == "COMPLETED":
                    self.export(job)
                else:
                    job["errors"] = [{"Code": "INTERNAL_ERROR", "Message": job["message"]}]
        return 200, self.job_body(job)

    def export(self, job):
        ds_id = job["details"]["DataSetId"]
        for d in job["details"]["RevisionDestinations"]:
            rev = job["revs"][d["RevisionId"]]
            self.ensure_bucket(d["Bucket"])
            pattern = d.get("KeyPattern", "${Revision.CreatedAt}/${Asset.Name}")
            for name, value in rev.get("assets", {}).items():
                key = (pattern.replace("${Asset.Name}", name).replace("${Revision.Id}", rev["id"])
                       .replace("${DataSet.Id}", ds_id).replace("${Revision.CreatedAt}", rev["created_at"]))
                self.s3.put_object(Bucket=d["Bucket"], Key=key, Body=content(value, self.base))


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def handler_for(world):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def route(self, method):
            url = urlparse(self.path)
            parts = [p for p in url.path.split("/") if p]
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else {}
            query = parse_qs(url.query)
            if method == "POST" and parts == ["describe-flow"]:
                return "DescribeFlow", lambda: world.describe_flow(body)
            if method == "POST" and parts == ["start-flow"]:
                return "StartFlow", lambda: world.start_flow(body)
            if method == "POST" and parts == ["describe-flow-execution-records"]:
                return "DescribeFlowExecutionRecords", lambda: world.execution_records(body)
            if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "data-sets"] and parts[3] == "revisions":
                return "ListDataSetRevisions", lambda: world.list_revisions(parts[2], query)
            if method == "POST" and parts == ["v1", "jobs"]:
                return "CreateJob", lambda: world.create_job(body)
            if method == "PATCH" and len(parts) == 3 and parts[:2] == ["v1", "jobs"]:
                return "StartJob", lambda: world.start_job(parts[2])
            if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "jobs"]:
                return "GetJob", lambda: world.get_job(parts[2])
            target = self.headers.get("X-Amz-Target", "")
            if method == "POST" and parts == [] and target == "Firehose_20150804.PutRecordBatch":
                return "PutRecordBatch", lambda: world.put_record_batch(body)
            if method == "GET" and parts == ["_firehose"]:
                return None, lambda: (200, {"delivered": world.delivered, "refused": world.refused})
            if method == "GET" and parts == ["_calls"]:
                return None, lambda: (200, dict(CALLS))
            return None, lambda: (404, {"message": f"stand-in: no route {method} {url.path}"})

        def answer(self, status, body, error_type=None):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            if error_type:
                self.send_header("x-amzn-ErrorType", error_type)
            self.end_headers()
            self.wfile.write(data)

        def signed_for(self, op):
            """Whether the request carries a SigV4 signature scoped to the op's service."""
            service = ("dataexchange" if op in DATAEXCHANGE_OPS
                       else "firehose" if op in FIREHOSE_OPS else "appflow")
            auth = self.headers.get("Authorization", "")
            return auth.startswith("AWS4-HMAC-SHA256 ") and f"/{service}/aws4_request" in auth

        def handle_method(self, method):
            op, run = self.route(method)
            with LOCK:
                if op:
                    CALLS[op] = CALLS.get(op, 0) + 1
                    if not self.signed_for(op):
                        return self.answer(403, {"message": "Request not signed for this service"}, "InvalidSignatureException")
                    if world.throttle.get(op, 0) > 0:
                        world.throttle[op] -= 1
                        status = world.sc.get("throttle_status", 400)
                        return self.answer(status, {"message": "Rate exceeded"}, "ThrottlingException")
                    if op in world.deny:
                        return self.answer(403, {"message": f"User is not authorized to perform: {op}"}, "AccessDeniedException")
                try:
                    status, body = run()
                except ApiError as e:
                    return self.answer(e.status, {"message": e.message, "Message": e.message}, e.code)
            self.answer(status, body)

        def do_GET(self):
            self.handle_method("GET")

        def do_POST(self):
            self.handle_method("POST")

        def do_PATCH(self):
            self.handle_method("PATCH")

    return Handler


def main():
    scenario_path = sys.argv[1]
    base = sys.argv[2] if len(sys.argv) > 2 else os.getcwd()
    with open(scenario_path) as f:
        scenario = json.load(f)
    # CDP_STANDIN_S3 (an S3 emulator already running on 127.0.0.1, e.g. the lake's)
    # replaces the in-process moto server.
    s3_url = os.environ.get("CDP_STANDIN_S3")
    if not s3_url:
        moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        moto_server.start()
        s3_url = f"http://127.0.0.1:{moto_server._server.server_port}"
    s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1",
                      aws_access_key_id="standin", aws_secret_access_key="standin")
    world = World(scenario, base, s3)
    api = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(world))
    print(json.dumps({"s3": s3_url, "api": api.server_address[1]}), flush=True)
    api.serve_forever()


if __name__ == "__main__":
    main()
