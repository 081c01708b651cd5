"""Benchmark: `minidistil serve` under concurrent clients vs the in-process pipeline, same texts.

    python tools/bench/bench_serve.py                      # MiniLM, 512 SST-2 sentences, 32 clients, 2 threads
    python tools/bench/bench_serve.py --texts 256 --rounds 1 --duration 10     # quicker

1. In-process: `pipeline("sentence-embedding")` on all texts with batch_size=32 (the pipeline
   sorts them by length first: the least padding there is), and on chunks of 32 texts in their
   given order (what a client batching its own stream gets).
2. Server: `minidistil serve` in its own process with the same backend and threads; 32 client
   threads send one text per request (POST /embed) until every text is embedded. Throughput is
   texts per second; the ratio is server / in-process.
3. Latency at a fixed rate: requests of one text sent open-loop at --rate per second (default:
   half the measured server throughput) for --duration seconds; p50 and p99 from the moment each
   request was due (so that a client falling behind counts as latency).

Rounds alternate in-process and server runs (the best of each is kept), so a disturbance on a
shared machine hits both. Clients use http.client (lean, keep-alive) in this process, which
shares the machine with the server, as a colocated client would. Records the CPU model and flags.
Results: stdout (a markdown table) and --out (JSON).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import queue
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SST2 = ROOT.parent / "shared" / "data" / "sst2" / "dev.tsv"
LISTENING = re.compile(r"listening on http://([\d.]+):(\d+)")


def cpu():
    """(model name, instruction-set flags) from /proc/cpuinfo."""
    model, flags = None, []
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model is None:
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    except OSError:
        pass
    return model or platform.processor() or platform.machine(), flags


def load_texts(path, n):
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t")[0].strip() for line in lines[1:] if line.strip()] if path.suffix == ".tsv" else lines
    texts = [t for t in texts if t]
    if len(texts) < n:
        raise SystemExit(f"{path} has {len(texts)} texts, fewer than --texts {n}")
    return texts[:n]


def in_process(pipe, texts):
    """Texts per second: all texts at batch_size=32 (sorted by length), and chunks of 32 in order."""
    start = time.perf_counter()
    pipe(texts, batch_size=32)
    sorted_rate = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, len(texts), 32):
        pipe(texts[i : i + 32], batch_size=32)
    return sorted_rate, len(texts) / (time.perf_counter() - start)


class Client:
    """One keep-alive connection (opened again when the server has closed an idle one); post() returns
    (status, seconds)."""

    def __init__(self, host, port):
        self.connection = http.client.HTTPConnection(host, port, timeout=120)

    def _exchange(self, path, payload):
        self.connection.request("POST", path, payload, {"Content-Type": "application/json"})
        response = self.connection.getresponse()
        return response, response.read()

    def post(self, path, body):
        payload = json.dumps(body).encode()
        start = time.perf_counter()
        try:
            response, data = self._exchange(path, payload)
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self.connection.close()
            response, data = self._exchange(path, payload)
        elapsed = time.perf_counter() - start
        if response.status == 200:
            json.loads(data)
        return response.status, elapsed


def server_throughput(host, port, texts, clients):
    """Texts per second with `clients` threads sending one text per request until all are done."""
    todo = queue.SimpleQueue()
    for text in texts:
        todo.put(text)
    errors = []

    def work():
        client = Client(host, port)
        while True:
            try:
                text = todo.get_nowait()
            except queue.Empty:
                return
            status, _ = client.post("/embed", {"inputs": text})
            if status != 200:
                errors.append(status)

    start = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise SystemExit(f"{len(errors)} requests failed: {sorted(set(errors))}")
    return len(texts) / elapsed


def latency_at_rate(host, port, texts, rate, duration, senders=64):
    """(p50 ms, p99 ms, achieved rate) of one-text requests due every 1/rate s, open loop."""
    count = max(int(rate * duration), 1)
    local = threading.local()
    start = time.perf_counter() + 0.1

    def send(k):
        due = start + k / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        if not hasattr(local, "client"):
            local.client = Client(host, port)
        status, _ = local.client.post("/embed", {"inputs": texts[k % len(texts)]})
        return status, time.perf_counter() - due

    with ThreadPoolExecutor(senders) as pool:
        results = list(pool.map(send, range(count)))
    elapsed = time.perf_counter() - start
    failed = [s for s, _ in results if s != 200]
    if failed:
        raise SystemExit(f"{len(failed)} requests failed at {rate:.1f}/s: {sorted(set(failed))}")
    latencies = np.array([t for _, t in results]) * 1e3
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99)), count / elapsed


def drain(stream):
    """Read the server's log as it comes, so that its pipe never fills up."""
    for _ in stream:
        pass


def start_server(args):
    command = [sys.executable, "-m", "minidistil.cli", "serve", "--port", "0", "--backend", args.backend]
    command += ["--threads", str(args.server_threads)] if args.server_threads else []
    command += ["--model", args.model] if args.model else []
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    for line in process.stderr:
        match = LISTENING.search(line)
        if match:
            threading.Thread(target=drain, args=(process.stderr,), daemon=True).start()
            return process, match.group(1), int(match.group(2))
    raise SystemExit(f"the server did not start: {' '.join(command)}")


def get(host, port, path):
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", path)
    return connection.getresponse().read().decode()


def server_metric(host, port, name):
    text = get(host, port, "/metrics")
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model directory (default: the installed all-MiniLM-L6-v2)")
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of the in-process pipeline "
                                                                           "(default: every core, its default)")
    parser.add_argument("--server-threads", type=int, help="--threads of the server (default: its own default)")
    parser.add_argument("--texts", type=int, default=512, help="how many texts (default 512)")
    parser.add_argument("--text-file", type=Path, default=SST2, help=f"one text per line, or a TSV (default {SST2})")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, help="requests per second for the latency run (default: half the "
                                                   "measured server throughput)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of the latency run (default 20)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "bench_serve.json")
    args = parser.parse_args(argv)

    from minidistil import pipeline

    texts = load_texts(args.text_file, args.texts)
    pipe = pipeline("sentence-embedding", model=args.model, backend=args.backend, threads=args.threads)
    tokens = [len(pipe.tokenizer(t)["input_ids"]) for t in texts]
    pipe(texts[:64])  # compile and warm up
    process, host, port = start_server(args)
    try:
        while True:  # the server answers /health once warmed up
            try:
                connection = http.client.HTTPConnection(host, port, timeout=5)
                connection.request("GET", "/health")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        server_threads = json.loads(get(host, port, "/info"))["threads"]
        server_throughput(host, port, texts[:64], args.clients)  # warm the request paths up
        runs = {"sorted": [], "chunks": [], "server": []}
        for _ in range(args.rounds):
            sorted_rate, chunk_rate = in_process(pipe, texts)
            runs["sorted"].append(sorted_rate)
            runs["chunks"].append(chunk_rate)
            rows, passes = server_metric(host, port, "te_batch_next_size_sum"), server_metric(
                host, port, "te_batch_next_size_count")
            runs["server"].append(server_throughput(host, port, texts, args.clients))
            rows_per_pass = (server_metric(host, port, "te_batch_next_size_sum") - rows) / max(
                server_metric(host, port, "te_batch_next_size_count") - passes, 1)
        best = {k: max(v) for k, v in runs.items()}
        rate = args.rate or best["server"] / 2
        p50, p99, achieved = latency_at_rate(host, port, texts, rate, args.duration)
    finally:
        process.terminate()
        process.wait(60)

    model, flags = cpu()
    simd = [f for f in flags if re.match(r"(sse4_2|avx|avx2|fma|avx512\w*|amx\w*)$", f)]
    result = {
        "date": date.today().isoformat(),
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": flags,
        "threads": args.threads,
        "server_threads": server_threads,
        "backend": args.backend,
        "texts": len(texts),
        "mean_tokens": float(np.mean(tokens)),
        "clients": args.clients,
        "runs_texts_per_s": runs,
        "best_texts_per_s": best,
        "server_vs_sorted": best["server"] / best["sorted"],
        "server_vs_chunks": best["server"] / best["chunks"],
        "rows_per_forward_pass": rows_per_pass,
        "latency": {"rate_per_s": rate, "achieved_per_s": achieved, "p50_ms": p50, "p99_ms": p99,
                    "duration_s": args.duration},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['date']}, {model}, {os.cpu_count()} cores ({' '.join(simd)}), {args.backend}, "
          f"{args.threads} threads in-process, {server_threads} in the server; {len(texts)} texts, "
          f"{result['mean_tokens']:.1f} tokens on average")
    print("| run | texts/s | vs in-process sorted |\n|---|---|---|")
    print(f"| in-process, batch 32, sorted by length | {best['sorted']:.1f} | 1.00 |")
    print(f"| in-process, chunks of 32 in order | {best['chunks']:.1f} | {best['chunks'] / best['sorted']:.2f} |")
    print(f"| server, {args.clients} clients, one text per request | {best['server']:.1f} | "
          f"{result['server_vs_sorted']:.2f} |")
    print(f"\nlatency at {rate:.1f} requests/s (achieved {achieved:.1f}/s, {args.duration:.0f} s): "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms; {rows_per_pass:.1f} rows per forward pass under load")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
