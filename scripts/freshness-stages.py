#!/usr/bin/env python3
"""Where a write's freshness goes, stage by stage, on a running local stack.

Against `todoctl stack up --no-canary` (default ports), writes todos at a
fixed rate and, for each, takes three clocks: the 201's arrival here, the
Kafka record's create time on `todo-events` (set when the relay hands the
record to its producer), and `read_history.applied_at` (the projection's
clock inside its transaction). All on one host clock. Prints p50/p90/p99 of
201 → record created (the relay), record created → applied (broker and
projection) and 201 → applied.

Usage: python3 scripts/freshness-stages.py [writes_per_s] [writes]
Needs: pip install kafka-python; psql on PATH.
Environment: COMMAND_URL (http://127.0.0.1:8081), BROKERS (127.0.0.1:19092),
DATABASE_URL (postgres://postgres@127.0.0.1:55432/todo).
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

from kafka import KafkaConsumer

COMMAND = os.environ.get("COMMAND_URL", "http://127.0.0.1:8081")
BROKERS = os.environ.get("BROKERS", "127.0.0.1:19092")
DATABASE = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:55432/todo")


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 200
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    created = {}
    consumer = KafkaConsumer(
        "todo-events",
        bootstrap_servers=BROKERS,
        group_id="freshness-stages-" + uuid.uuid4().hex,
        auto_offset_reset="latest",
        fetch_max_wait_ms=10,
    )
    deadline = time.time() + 60
    while not consumer.assignment():
        if time.time() > deadline:
            sys.exit("the probe's consumer got no partitions in 60 s")
        consumer.poll(timeout_ms=200)
    stop = threading.Event()

    def consume():
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=100).values():
                for r in records:
                    if r.key:
                        created[r.key.decode()] = r.timestamp

    threading.Thread(target=consume, daemon=True).start()
    acked = {}
    print(f"writing {count} todos at {rate:g}/s to {COMMAND}", file=sys.stderr)
    started = time.time()
    for i in range(count):
        due = started + i / rate
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        req = urllib.request.Request(
            f"{COMMAND}/v1/todos",
            data=json.dumps({"title": f"stages {i}"}).encode(),
            headers={"content-type": "application/json", "x-user-id": "freshness-stages"},
        )
        with urllib.request.urlopen(req) as r:
            todo_id = json.load(r)["id"]
        acked[todo_id] = time.time() * 1000
    achieved = count / (time.time() - started)
    time.sleep(2)
    stop.set()
    ids = ",".join(f"'{i}'" for i in acked)
    out = subprocess.run(
        ["psql", DATABASE, "-At", "-F", " ", "-c",
         "SELECT todo_id, extract(epoch FROM applied_at) * 1000 FROM read_history "
         f"WHERE version = 1 AND todo_id IN ({ids})"],
        capture_output=True, text=True, check=True,
    )
    applied = {line.split()[0]: float(line.split()[1]) for line in out.stdout.splitlines() if line}
    relay, downstream, total = [], [], []
    for todo_id, at in acked.items():
        if todo_id in created and todo_id in applied:
            relay.append(created[todo_id] - at)
            downstream.append(applied[todo_id] - created[todo_id])
            total.append(applied[todo_id] - at)
    if not total:
        sys.exit("no write was seen on todo-events and in read_history")
    print(f"{len(total)} of {count} writes seen at every stage; achieved {achieved:.0f} writes/s")
    for name, v in [
        ("201 -> record created (relay)", relay),
        ("record created -> applied (broker, projection)", downstream),
        ("201 -> applied", total),
    ]:
        print(f"{name:48s} p50 {pct(v, .5):6.1f}  p90 {pct(v, .9):6.1f}  p99 {pct(v, .99):6.1f} ms")


if __name__ == "__main__":
    main()
