"""Load on `serve`: N requests from C concurrent clients on localhost; latency, throughput, errors and the
server's resident memory before and after.

    python benchmarks/serve_load.py --requests 500 --clients 8 --model_type normal
"""
import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--model_type", default="normal")
    parser.add_argument("--photo", type=Path, default=ROOT / "examples" / "astronaut.jpg")
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(ROOT / "src" / "main.py"), "serve", "--model_type", args.model_type,
                               "--port", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        data = args.photo.read_bytes()
        client = httpx.Client(timeout=120, limits=httpx.Limits(max_connections=args.clients))

        def one(_):
            started = time.perf_counter()
            response = client.post(url + "/analyze", files={"image": (args.photo.name, data)})
            return time.perf_counter() - started, response.status_code

        for _ in range(5):
            one(0)  # warm-up
        before = resident_mb(server.pid)
        started = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            results = list(pool.map(one, range(args.requests)))
        wall = time.perf_counter() - started
        after = resident_mb(server.pid)
        latency = np.array([r[0] for r in results]) * 1000
        errors = sum(r[1] != 200 for r in results)
        print(f"{args.requests} requests, {args.clients} clients, {args.model_type} model, {args.photo.name}: "
              f"{args.requests / wall:.1f} requests/s, latency p50 {np.percentile(latency, 50):.0f} ms, "
              f"p95 {np.percentile(latency, 95):.0f} ms, errors {errors}, "
              f"server memory {before:.0f} MB before, {after:.0f} MB after")
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
