"""Startup of the `minidistil` command: its first run ever (empty Numba cache), then later single calls.

    python tools/bench/bench_startup.py                 # 5 repeats of the later calls
    python tools/bench/bench_startup.py --repeats 9

Each command runs in a fresh process; reported: wall seconds and the CPU seconds of that process
(user + system, from getrusage of the children; on a machine other jobs share, CPU time is the
steadier of the two). First, with NUMBA_CACHE_DIR pointing at an empty directory:

    1. a one-shot call with the default backend (`similarity` of two sentences: numpy, by workload)
    2. a batch call with the default backend (`embed --input`: it starts compiling every kernel of
       the forward pass in a detached process, says so once, and runs on numpy meanwhile); then
       the wait for that compile (wall time from the command's start; its stamp's own seconds)
    3. the same batch call again, and 4. another command's batch path (`fill-mask --input` on the
       random DistilBERT checkpoint of bench.py): both run on numba and must load, not compile
       (checked: no notice)

then the later single calls, interleaved: `similarity` with --backend numpy, numba and the
default, and `fill-mask` with numpy and numba. Results: stdout, bench-results/startup.md, .json.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench  # tools/bench/bench.py: the checkpoint and the machine description

ROOT = bench.ROOT
CLI = [sys.executable, "-c", "import sys; from minidistil.cli import main; sys.exit(main())"]
PAIR = ["A man is eating food.", "A man is eating pasta."]
NOTICE = "compiling kernels once"


def timed(args, env, stdin=None):
    """(wall s, CPU s, stderr) of one CLI process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(CLI + args, env=env, cwd=str(ROOT), input=stdin, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"minidistil {' '.join(args)} failed: {proc.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stderr


def wait_for_stamp(cache, start, timeout=900):
    """Wait for the background compile's float32 stamp: {"wall_s": since the command started,
    "cpu_s": the compile's own time as its stamp records it (the detached process is no child of
    ours), "notice": False}."""
    while not (stamps := list(cache.rglob("minidistil-float32-*.stamp"))):
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"no compile stamp in {cache} after {timeout} s")
        time.sleep(0.2)
    time.sleep(0.5)  # the stamp is written after the compile: let the process exit
    compiled = float(stamps[0].read_text().split()[2])  # "compiled in 28.4 s"
    return {"wall_s": time.perf_counter() - start, "cpu_s": compiled, "notice": False}


def summary(samples):
    walls, cpus = [w for w, _ in samples], [c for _, c in samples]
    return {"wall_median_s": statistics.median(walls), "wall_min_s": min(walls), "wall_max_s": max(walls),
            "cpu_median_s": statistics.median(cpus), "cpu_min_s": min(cpus), "cpu_max_s": max(cpus)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(bench.RESULTS))
    args = parser.parse_args(argv)
    out = Path(args.out)
    model = out / "checkpoint"
    bench.make_checkpoint(model, None)
    lines_file = out / "startup-lines.txt"
    lines_file.write_text("".join(f"{t}\n" for t in PAIR * 4))
    masks_file = out / "startup-masks.txt"
    masks_file.write_text("Hello I'm a [MASK] model.\nThe capital of France is [MASK].\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MINIDISTIL_BACKEND", "NUMBA_CACHE_DIR")}

    first = {}
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        fresh = {**env, "NUMBA_CACHE_DIR": cache}
        steps = [
            ("one-shot similarity, default backend", ["similarity", *PAIR]),
            ("batch embed --input, default backend (starts the compile in the background)",
             ["embed", "--input", str(lines_file)]),
            ("the same batch again", ["embed", "--input", str(lines_file)]),
            ("fill-mask --input (another command's batch path)", ["fill-mask", "--model", str(model), "--input", str(masks_file)]),
        ]
        for n, (name, cli_args) in enumerate(steps):
            wall, cpu, stderr = timed(cli_args, fresh)
            first[name] = {"wall_s": wall, "cpu_s": cpu, "notice": NOTICE in stderr}
            print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU{', notice shown' if NOTICE in stderr else ''}",
                  file=sys.stderr, flush=True)
            if n == 1:
                first["background compile"] = wait_for_stamp(Path(cache), start=time.perf_counter() - wall)

    calls = {
        "similarity --backend numpy": ["similarity", "--backend", "numpy", *PAIR],
        "similarity --backend numba": ["similarity", "--backend", "numba", *PAIR],
        "similarity (default: numpy by workload)": ["similarity", *PAIR],
        "fill-mask --backend numpy": ["fill-mask", "--model", str(model), "--backend", "numpy", "Hello I'm a [MASK] model."],
        "fill-mask --backend numba": ["fill-mask", "--model", str(model), "--backend", "numba", "Hello I'm a [MASK] model."],
    }
    for cli_args in calls.values():  # untimed: fill the OS page cache and this machine's Numba cache
        timed(cli_args, env)
    samples = {name: [] for name in calls}
    for r in range(args.repeats):
        for name in list(calls)[r % len(calls):] + list(calls)[: r % len(calls)]:
            wall, cpu, _ = timed(calls[name], env)
            samples[name].append((wall, cpu))
    later = {name: summary(s) for name, s in samples.items()}

    m = bench.machine()
    lines = [f"Date: {time.strftime('%Y-%m-%d')}. Machine: {m['cpu']}, {m['cores']} cores; flags: {m['flags']}; "
             f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared with other jobs).", "",
             "First runs ever (empty Numba cache), in this order:", "",
             "| run | wall s | CPU s | compile notice |", "|---|---|---|---|"]
    lines += [f"| {name} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | {'yes' if r['notice'] else 'no'} |" for name, r in first.items()]
    lines += ["", f"Later single calls, {args.repeats} interleaved repeats, median (min–max):", "",
              "| call | wall s | CPU s |", "|---|---|---|"]
    lines += [f"| {name} | {s['wall_median_s']:.2f} ({s['wall_min_s']:.2f}–{s['wall_max_s']:.2f}) | "
              f"{s['cpu_median_s']:.2f} ({s['cpu_min_s']:.2f}–{s['cpu_max_s']:.2f}) |" for name, s in later.items()]
    lines += ["", f"Command: `python tools/bench/bench_startup.py {' '.join(argv if argv is not None else sys.argv[1:])}`"]
    text = "\n".join(lines)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.md").write_text(text + "\n")
    (out / "startup.json").write_text(json.dumps({"first": first, "later": later, "machine": m}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
