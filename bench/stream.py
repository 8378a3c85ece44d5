"""bench/stream.py ENDPOINT STREAM EVENTS: creates a Kinesis stream with 2 shards on the
emulator at ENDPOINT and puts EVENTS person events into it (PutRecords, 500 a call): a
tenth carry the e-mail and first name of a known person from the sample data, a
hundredth are bad (not JSON), the rest are new people. Prints seconds spent putting."""
import json
import sys
import time

import boto3

endpoint, stream, events = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="bench", aws_secret_access_key="bench")
client.create_stream(StreamName=stream, ShardCount=2)
while client.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
    time.sleep(0.1)
known = []
with open("sample-data/shop/customers.jsonl") as f:
    for line in f:
        row = json.loads(line)
        if row.get("email") and row.get("first_name"):
            known.append((row["email"], row["first_name"]))
started = time.perf_counter()
batch = []
for i in range(events):
    if i % 100 == 99:
        data = b"not json"
    elif i % 10 == 0:
        email, first = known[i % len(known)]
        data = json.dumps({"record_id": f"e{i}", "email": email, "first_name": first}).encode()
    else:
        data = json.dumps({"record_id": f"e{i}", "email": f"new{i}@example.org", "first_name": "Alex",
                           "last_name": "Doe", "phone": "(415) 555-0132", "postcode": "94103"}).encode()
    batch.append({"Data": data, "PartitionKey": f"k{i}"})
    if len(batch) == 500 or i == events - 1:
        client.put_records(StreamName=stream, Records=batch)
        batch = []
print(json.dumps({"put_seconds": time.perf_counter() - started}))
