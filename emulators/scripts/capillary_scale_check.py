"""Acceptance check: the Capillary emulator serves 1M generated transactions page by page
with its resident memory under 500 MB.

Runs the emulator in a child process (so RSS is the emulator's own), discovers every customer
through entity search (20 per page), reads each customer's transactions through the v2 API
(up to 1000 per page), checks the total against the emulator's counts, and samples the
child's RSS throughout.

    python scripts/capillary_scale_check.py [--customers 10200] [--transactions-per-customer 100]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time

import psutil
import requests

from emulators.capillary import CapillaryConfig
from emulators.launch import start_capillary

RSS_LIMIT_MB = 500


def serve(config: CapillaryConfig, port_queue: multiprocessing.Queue) -> None:
    started = time.perf_counter()
    server = start_capillary(config)
    port_queue.put((server.port, time.perf_counter() - started))
    while True:
        time.sleep(3600)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_200)
    parser.add_argument("--transactions-per-customer", type=int, default=100)
    parser.add_argument("--db-path", default=None, help="reuse a generated SQLite file between runs")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="capillary-scale-")  # the killed child cannot clean up
    config = CapillaryConfig(
        customers=args.customers,
        transactions_per_customer=args.transactions_per_customer,
        anchor_time="2025-06-01T00:00:00+00:00",
        token_ttl_seconds=3600,
        db_path=args.db_path or f"{scratch.name}/org.sqlite",
        # Every customer active, so every generated transaction is reachable through the API.
        merged_customer_rate=0.0,
        deleted_customer_rate=0.0,
    )
    queue: multiprocessing.Queue = multiprocessing.Queue()
    child = multiprocessing.Process(target=serve, args=(config, queue), daemon=True)
    child.start()
    emulator = psutil.Process(child.pid)
    peak_rss = 0

    def sample() -> None:
        nonlocal peak_rss
        peak_rss = max(peak_rss, emulator.memory_info().rss)

    try:
        port, generation_seconds = queue.get(timeout=3600)
        sample()
        base = f"http://127.0.0.1:{port}"
        counts = requests.get(f"{base}/_emulator/counts", timeout=30).json()
        session = requests.Session()
        token = session.post(
            f"{base}/v3/oauth/token/generate", json={"key": "emulator-key", "secret": "emulator-secret"}, timeout=30
        ).json()["data"]["accessToken"]
        session.headers["X-CAP-API-OAUTH-TOKEN"] = token
        started = time.perf_counter()
        requests_made, transactions_seen, offset = 0, 0, 0
        condition = {"fieldId": "lastUpdatedOn", "operator": "RANGE", "values": [0, 4_102_444_800_000]}
        while True:
            page = session.post(
                f"{base}/v2/search/entity",
                json={"entityType": "CUSTOMER", "searchConditions": [condition], "limit": 20, "offset": offset},
                timeout=60,
            ).json()
            requests_made += 1
            details = page["data"][0]["customerSearchDetails"] if page["data"] else []
            for customer in details:
                txn_offset = 0
                while True:
                    response = session.get(
                        f"{base}/v2/customers/{customer['entityId']}/transactions",
                        params={"limit": 1000, "offset": txn_offset},
                        timeout=60,
                    )
                    requests_made += 1
                    response.raise_for_status()
                    body = response.json()
                    transactions_seen += len(body["data"])
                    txn_offset += 1000
                    if txn_offset >= body["pagination"]["total"]:
                        break
            if requests_made % 200 < 21:
                sample()
            if len(details) < 20:
                break
            offset += 20
        sample()
        paging_seconds = time.perf_counter() - started
        report = {
            "counts": counts,
            "generation_seconds": round(generation_seconds, 1),
            "paging_seconds": round(paging_seconds, 1),
            "requests": requests_made,
            "transactions_served": transactions_seen,
            "peak_rss_mb": round(peak_rss / 2**20, 1),
            "rss_limit_mb": RSS_LIMIT_MB,
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return 0 if transactions_seen == counts["transactions"] and peak_rss < RSS_LIMIT_MB * 2**20 else 1
    finally:
        child.kill()
        child.join()
        scratch.cleanup()


if __name__ == "__main__":
    sys.exit(main())
