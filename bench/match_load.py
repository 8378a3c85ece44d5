"""Load generator for bench/match.sh.

queries SAMPLE OUT: writes lookup records (JSON lines) from a JSON array of clean rows.
load ADDR QUERIES SECONDS CONNECTIONS PERSONS LOAD_SECONDS RSS_MIB: POSTs the records to
http://ADDR/match from CONNECTIONS processes, each on one keep-alive connection, for
SECONDS, and prints lookups/s, p50, p99 and the figures given as JSON.
"""
import http.client
import json
import multiprocessing
import random
import sys
import time

def queries(sample, out):
    rows = json.load(open(sample))
    rng = random.Random(42)
    with open(out, "w") as f:
        for row in rows:
            record = {k: v for k, v in row.items() if v not in (None, "")}
            # A share without identifiers, so that scoring answers, not only the rules.
            if rng.random() < 0.3:
                record.pop("email_key", None)
                record.pop("phone", None)
            f.write(json.dumps(record, default=str) + "\n")


def worker(args):
    addr, lines, seconds, seed = args
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    rng = random.Random(seed)
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        body = lines[rng.randrange(len(lines))]
        t = time.perf_counter()
        conn.request("POST", "/match", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        latencies.append(time.perf_counter() - t)
        if response.status != 200:
            raise SystemExit(f"status {response.status}")
    return latencies


def load(addr, path, seconds, connections, persons, load_seconds, rss_mib):
    lines = open(path).read().splitlines()
    started = time.perf_counter()
    with multiprocessing.Pool(connections) as pool:
        results = pool.map(worker, [(addr, lines, seconds, i) for i in range(connections)])
    elapsed = time.perf_counter() - started
    latencies = sorted(x for r in results for x in r)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000
    print(json.dumps({
        "persons": persons,
        "connections": connections,
        "lookups": len(latencies),
        "lookups_per_second": round(len(latencies) / elapsed),
        "p50_ms": round(pick(0.50), 3),
        "p99_ms": round(pick(0.99), 3),
        "index_load_seconds": load_seconds,
        "server_rss_mib": rss_mib,
    }, indent=2))


if __name__ == "__main__":
    if sys.argv[1] == "queries":
        queries(sys.argv[2], sys.argv[3])
    else:
        load(sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5]),
             int(sys.argv[6]), float(sys.argv[7]), int(sys.argv[8]))
