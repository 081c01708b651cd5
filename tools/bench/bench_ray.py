"""Rows per second of `minidistil embed --output`: one process vs `--ray local`, and each process's memory.

    python tools/bench/bench_ray.py                     # 2000 SQuAD dev texts, MiniLM, 2 interleaved rounds
    python tools/bench/bench_ray.py --texts 600 --rounds 1   # a smoke run

Each run is the real command in a fresh subprocess writing a fresh output directory; runs of the
modes alternate, round after round, so that a load from elsewhere on the machine falls on all of
them. Reported per mode (median over rounds):
  rows/s (job)  the command's own figure: rows / seconds from the start of the work (after Ray has
                started, including loading the model in every worker) to the last part written
  rows/s (wall) rows / wall-clock seconds of the whole command (Python start, Ray start, all)
  CPU s         user + system CPU seconds per 1000 rows of the processes doing the work (and of all of
                them): on a shared machine, the cost that does not depend on how much CPU others leave
  peak RSS      VmHWM of the process doing the work: the one process, or each Ray Data actor
                ("ray::MapWorker"); "all processes" adds Ray's own (raylet, GCS, ...) at their peaks
Texts: SQuAD v1.1 dev questions and contexts, alternating (contexts are ~150 words, so they cost most).
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
             "amx_tile")
SAMPLE_INTERVAL_S = 0.2


def cpu():
    """CPU model, core count and the instruction-set flags that matter for BLAS and Numba."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.+)$", text, re.M).group(1).split())
    except (OSError, AttributeError):
        pass
    return {"model": model, "cores": os.cpu_count(), "flags": [f for f in ISA_FLAGS if f in flags]}


def squad_texts(path, n):
    """n texts: SQuAD questions and (unique) contexts, alternating, in file order."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    paragraphs = [p for article in data for p in article["paragraphs"]]
    contexts = list(dict.fromkeys(" ".join(p["context"].split()) for p in paragraphs))
    questions = [" ".join(q["question"].split()) for p in paragraphs for q in p["qas"]]
    texts = [t for pair in zip(questions, contexts) for t in pair]
    if len(texts) < n:
        raise SystemExit(f"{path} has only {len(texts)} question/context texts")
    return texts[:n]


def _status(pid):
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""


def _tree(root):
    """Pids of `root` and all its descendants."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            match = re.search(r"^PPid:\s*(\d+)", _status(entry.name), re.M)
            if match:
                children.setdefault(int(match.group(1)), []).append(int(entry.name))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def _peak_kib(pid):
    match = re.search(r"^VmHWM:\s*(\d+) kB", _status(pid), re.M)
    return int(match.group(1)) if match else 0


def _cpu_s(pid):
    """User + system CPU seconds the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _title(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def run(argv):
    """Run the command, sampling its process tree.

    Returns (wall s, job rows/s, {pid: (title, peak KiB, CPU s)}); a process's last sample is at most
    SAMPLE_INTERVAL_S before it ended, so its CPU seconds are a slight undercount.
    """
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = {}
    while process.poll() is None:
        for pid in _tree(process.pid):
            title, kib, cpu_s = _title(pid), _peak_kib(pid), _cpu_s(pid)
            if kib:
                last = seen.get(pid, ("?", 0, 0.0))
                seen[pid] = (title or last[0], max(kib, last[1]), max(cpu_s, last[2]))
        time.sleep(SAMPLE_INTERVAL_S)
    wall = time.perf_counter() - started
    err = process.stderr.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{err}")
    rate = float(re.search(r"\(([\d.]+) rows/s this run\)", err).group(1))
    return wall, rate, seen


def summarise(rows, runs, is_worker):
    walls, rates = [w for w, _, _ in runs], [r for _, r, _ in runs]
    workers = [kib for _, _, seen in runs for title, kib, _ in seen.values() if is_worker(title)]
    everything = [sum(kib for _, kib, _ in seen.values()) for _, _, seen in runs]
    worker_cpu = [sum(cpu for title, _, cpu in seen.values() if is_worker(title)) for _, _, seen in runs]
    all_cpu = [sum(cpu for _, _, cpu in seen.values()) for _, _, seen in runs]
    return {"rows_per_s_job": statistics.median(rates), "rows_per_s_wall": rows / statistics.median(walls),
            "wall_s": statistics.median(walls), "worker_peak_rss_mib": max(workers) / 1024,
            "all_processes_peak_rss_mib": max(everything) / 1024,
            "worker_cpu_s_per_1000_rows": statistics.median(worker_cpu) * 1000 / rows,
            "all_cpu_s_per_1000_rows": statistics.median(all_cpu) * 1000 / rows,
            "runs": [[w, r] for w, r, _ in runs]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--shard-rows", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", help="default: the installed all-MiniLM-L6-v2")
    parser.add_argument("--squad", default=str(SQUAD))
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        corpus = scratch / "corpus.txt"
        corpus.write_text("\n".join(squad_texts(args.squad, args.texts)) + "\n", encoding="utf-8")
        base = [sys.executable, "-m", "minidistil.cli", "embed", "--input", str(corpus),
                "--shard-rows", str(args.shard_rows), "--batch-size", str(args.batch_size)]
        base += ["--model", args.model] if args.model else []
        cores = os.cpu_count()
        modes = {f"one process, {cores} threads": [],
                 f"--ray local --workers 1 (1 actor x {cores} CPUs)": ["--ray", "local", "--workers", "1"],
                 f"--ray local --workers 2 (2 actors x {cores // 2} CPU)": ["--ray", "local", "--workers", "2"]}
        runs = {mode: [] for mode in modes}
        load = [os.getloadavg()[0]]
        for round_ in range(args.rounds):
            for mode, extra in modes.items():
                out = scratch / f"out-{len(runs[mode])}-{abs(hash(mode))}"
                runs[mode].append(run(base + ["--output", str(out)] + extra))
                shutil.rmtree(out)
                print(f"round {round_ + 1} {mode}: {runs[mode][-1][0]:.1f} s", file=sys.stderr)
                load.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    one_process = next(iter(runs))
    results = {mode: summarise(args.texts, mode_runs,
                               (lambda title: True) if mode == one_process
                               else (lambda title: title.startswith("ray::MapWorker")))
               for mode, mode_runs in runs.items()}
    import numba
    import numpy
    import ray

    meta = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu(), "texts": args.texts, "rounds": args.rounds,
            "shard_rows": args.shard_rows, "batch_size": args.batch_size, "model": args.model or "all-MiniLM-L6-v2",
            "load_average_1min": [round(x, 2) for x in load],
            "versions": {"ray": ray.__version__, "numpy": numpy.__version__, "numba": numba.__version__},
            "command": "python tools/bench/bench_ray.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(f"{meta['cpu']['model']}, {meta['cpu']['cores']} cores, flags {' '.join(meta['cpu']['flags'])}; "
          f"{args.texts} SQuAD dev texts, {meta['model']}; load average during the runs "
          f"{min(load):.1f}-{max(load):.1f}; {meta['date']}; `{meta['command']}`\n")
    print("| mode | rows/s (job) | rows/s (wall) | ÷ one process (job) | CPU s / 1000 rows: workers (all) "
          "| peak RSS per worker | all processes |")
    print("|---|---|---|---|---|---|---|")
    reference = results[one_process]["rows_per_s_job"]
    for mode, r in results.items():
        print(f"| {mode} | {r['rows_per_s_job']:.1f} | {r['rows_per_s_wall']:.1f} | "
              f"{r['rows_per_s_job'] / reference:.2f} | {r['worker_cpu_s_per_1000_rows']:.0f} "
              f"({r['all_cpu_s_per_1000_rows']:.0f}) | {r['worker_peak_rss_mib']:.0f} MiB | "
              f"{r['all_processes_peak_rss_mib']:.0f} MiB |")
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
