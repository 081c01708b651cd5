"""Benchmark: minidistil (numpy and numba backends) vs transformers + PyTorch and ONNX Runtime, on the CPU.

    python tools/bench/bench.py                 # the full table (several minutes)
    python tools/bench/bench.py --quick         # three shapes, fewer rounds: a smoke test
    python tools/bench/bench.py --threads 2 --shapes 1x8 32x128 --rounds 7

A random official-size checkpoint (dim 768, 6 layers, vocab 30522, seed 0) is
written to bench-results/checkpoint and exported to ONNX with the reference
environment (--ref-python, default .venv-ref/bin/python, which has
torch==2.13.0, transformers, onnxruntime). Every engine runs in its own
process (tools/bench/bench_worker.py) and the processes take turns: each round asks
every engine for a few runs, so a disturbance on the machine hits all engines
alike. Reported per shape and thread count: the median time with min and max,
sequences per second, the ratio of numba to each peer, and the ratio to the
GEMM floor = matmul FLOPs of the shape / the sgemm rate measured here with the
same thread count. Then the peak RSS of each engine's process, and the cold
start (process start -> first output) of the minidistil CLI vs a transformers
pipeline, both doing fill-mask on the same checkpoint.

Results go to stdout and to bench-results/bench.md (markdown) and bench.json.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
WORKER = ROOT / "tools" / "bench" / "bench_worker.py"
RESULTS = ROOT / "bench-results"
VOCAB = ROOT / "tests" / "data" / "bert-base-uncased-vocab.txt"

# name -> (batch, seq, masked-LM head)
SHAPES = {
    "1x8": (1, 8, False),
    "1x32": (1, 32, False),
    "1x128": (1, 128, False),
    "1x512": (1, 512, False),
    "32x128": (32, 128, False),
    "mlm-1x128": (1, 128, True),
}
QUICK_SHAPES = ("1x8", "1x128", "mlm-1x128")
ENGINES = ("numpy", "numba", "torch", "onnxruntime")
REF_ENGINES = ("torch", "onnxruntime")  # run by the reference python
LABELS = {"numpy": "minidistil numpy", "numba": "minidistil numba", "torch": "PyTorch", "onnxruntime": "ONNX Runtime"}
# DistilBERT base: dim, FFN dim, layers, vocab
DIM, HIDDEN, LAYERS, VOCAB_SIZE = 768, 3072, 6, 30522
FILL_MASK_TEXT = "Hello I'm a [MASK] model."


def matmul_flops(batch, seq, mlm):
    """FLOPs of the matrix products of one forward pass (2 per multiply-add)."""
    tokens = batch * seq
    linear = 2 * tokens * (4 * DIM * DIM + 2 * DIM * HIDDEN)  # q, k, v, out; lin1, lin2
    attention = 2 * 2 * batch * seq * seq * DIM  # q·kᵀ and p·v over all heads
    head = 2 * tokens * (DIM * DIM + DIM * VOCAB_SIZE) if mlm else 0  # vocab_transform, vocab_projector
    return LAYERS * (linear + attention) + head


# ---------------------------------------------------------------- setup


def make_checkpoint(directory, ref_python):
    """The random checkpoint (+ tokenizer files) and its ONNX export, made once and reused."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "model.safetensors").exists():
        sys.path.insert(0, str(ROOT))
        from minidistil import DistilBertForMaskedLM
        from minidistil.modeling.config import DistilBertConfig

        DistilBertForMaskedLM(DistilBertConfig(), seed=0).save_pretrained(directory)
        shutil.copyfile(VOCAB, directory / "vocab.txt")
        (directory / "tokenizer_config.json").write_text(json.dumps(
            {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "DistilBertTokenizer"}))
    if ref_python and not (directory / "onnx" / "mlm.onnx").exists():
        print("exporting to ONNX with the reference environment ...", file=sys.stderr)
        subprocess.run([ref_python, str(WORKER), "export", "--model", str(directory)], check=True,
                       stdout=subprocess.DEVNULL)


def thread_env(threads):
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDISTIL_THREADS"):
        env[name] = str(threads)
    env.pop("MINIDISTIL_BACKEND", None)
    return env


# ---------------------------------------------------------------- workers


class Worker:
    """One engine process, loaded and warm, answering `run K` requests."""

    def __init__(self, python, engine, model, threads, batch, seq, mlm, save=None):
        cmd = [python, str(WORKER), engine, "--model", str(model), "--threads", str(threads),
               "--batch", str(batch), "--seq", str(seq)]
        if mlm:
            cmd.append("--mlm")
        if save:
            cmd += ["--save", str(save)]
        self.engine = engine
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=thread_env(threads), cwd=str(ROOT))
        ready = self._read()
        self.load_s, self.first_s = ready["load_s"], ready["first_s"]
        self.times = []

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.engine} worker died (exit {self.proc.wait()})")
        return json.loads(line)

    def run(self, count):
        self.proc.stdin.write(f"run {count}\n")
        self.proc.stdin.flush()
        times = self._read()["times"]
        self.times += times
        return times

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.peak_rss_mib = self._read()["peak_rss_kib"] / 1024
        self.proc.wait()


def measure(pythons, engines, model, threads, shape, rounds, budget_s, scratch):
    """Interleaved runs of every engine on one shape. Returns {engine: stats}."""
    batch, seq, mlm = SHAPES[shape]
    workers = []
    for engine in engines:
        save = scratch / f"out-{engine}.npy"
        workers.append(Worker(pythons[engine], engine, model, threads, batch, seq, mlm, save))
    # runs per request: about budget_s of work, at least 1
    warm = {w.engine: w.run(1)[0] for w in workers}
    counts = {e: max(1, min(50, int(budget_s / max(t, 1e-4)))) for e, t in warm.items()}
    for r in range(rounds):
        order = workers[r % len(workers):] + workers[:r % len(workers)]  # rotate who goes first
        for w in order:
            w.run(counts[w.engine])
    results = {}
    for w in workers:
        w.close()
        times = w.times[1:]  # the first timed run was the warm-up request
        results[w.engine] = {
            "median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times), "max_ms": 1e3 * max(times),
            "runs": len(times), "seq_per_s": batch / statistics.median(times),
            "peak_rss_mib": w.peak_rss_mib, "load_s": w.load_s,
        }
    reference = scratch / ("out-torch.npy" if "torch" in engines else "out-numpy.npy")
    if reference.exists():
        ref = np.load(reference)
        for engine in engines:
            out = np.load(scratch / f"out-{engine}.npy")
            results[engine]["max_abs_diff_vs_ref"] = float(np.max(np.abs(out.astype(np.float64) - ref)))
    return results


def sgemm_rate(python, threads, rounds):
    """GFLOP/s of NumPy's sgemm at the FFN shape of batch 32 x 128, same threads as the engines."""
    w = Worker(python, "sgemm", ".", threads, 1, 1, False)
    for _ in range(rounds):
        w.run(5)
    w.close()
    m, k, n = 4096, 768, 3072
    return 2 * m * k * n / statistics.median(w.times[5:] or w.times) / 1e9


# ---------------------------------------------------------------- cold start


def cold_start(python, ref_python, model, repeats):
    """Seconds from process start to the first line of output: minidistil CLI vs a transformers pipeline."""
    commands = {}
    try:
        import minidistil.cli  # noqa: F401  (the CLI is optional here)

        commands["minidistil CLI (numba)"] = (
            [python, "-c", "import sys; from minidistil.cli import main; sys.exit(main())",
             "fill-mask", "--model", str(model), "--backend", "numba", FILL_MASK_TEXT], {})
    except ImportError as exc:
        print(f"cold start: skipping the CLI ({exc})", file=sys.stderr)
    if ref_python:
        code = ("import sys; from transformers import pipeline; "
                "p = pipeline('fill-mask', model=sys.argv[1], device='cpu'); print(p(sys.argv[2])[0], flush=True)")
        commands["transformers pipeline"] = ([ref_python, "-c", code, str(model), FILL_MASK_TEXT], {})
    times = {name: [] for name in commands}
    for name, (cmd, _) in commands.items():  # untimed: fill the OS page cache and the Numba cache
        subprocess.run(cmd, cwd=str(ROOT), capture_output=True, check=True)
    for _ in range(repeats):
        for name, (cmd, _) in commands.items():
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            proc.stdout.readline()
            times[name].append(time.perf_counter() - start)
            proc.communicate()
    return {name: {"median_s": statistics.median(t), "min_s": min(t), "max_s": max(t)} for name, t in times.items()}


# ---------------------------------------------------------------- report


def _cell(stats):
    if stats is None:
        return "–"
    return f"{stats['median_ms']:.1f} ({stats['min_ms']:.1f}–{stats['max_ms']:.1f})"


def _ratio(a, b):
    return "–" if a is None or b is None else f"{a['median_ms'] / b['median_ms']:.2f}"


def report(data):
    lines = [
        f"Machine: {data['machine']}; load average at start {data['loadavg']}.",
        f"Versions: {data['versions']}.",
        "",
        "Times in ms: median (min–max) over interleaved runs; seq/s from the median; "
        "ratios < 1 mean minidistil numba is faster. GEMM floor = matmul FLOPs / measured sgemm rate.",
        "",
        "| shape | threads | " + " | ".join(LABELS[e] for e in data["engines"])
        + " | numba seq/s | numba ÷ PyTorch | numba ÷ ORT | numba ÷ numpy | GEMM floor ms | numba ÷ floor |",
        "|---|---|" + "---|" * len(data["engines"]) + "---|---|---|---|---|---|",
    ]
    for row in data["rows"]:
        r = row["results"]
        numba, floor = r.get("numba"), row["gemm_floor_ms"]
        cells = [row["shape"], str(row["threads"])] + [_cell(r.get(e)) for e in data["engines"]]
        cells += [
            f"{numba['seq_per_s']:.1f}" if numba else "–",
            _ratio(numba, r.get("torch")), _ratio(numba, r.get("onnxruntime")), _ratio(numba, r.get("numpy")),
            f"{floor:.1f}", f"{numba['median_ms'] / floor:.2f}" if numba else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Peak RSS of each engine's process (MiB), and the largest output difference from PyTorch:", "",
              "| shape | threads | " + " | ".join(LABELS[e] for e in data["engines"]) + " | max abs diff (numba vs PyTorch) |",
              "|---|---|" + "---|" * len(data["engines"]) + "---|"]
    for row in data["rows"]:
        r = row["results"]
        diff = r.get("numba", {}).get("max_abs_diff_vs_ref")
        lines.append(f"| {row['shape']} | {row['threads']} | "
                     + " | ".join(f"{r[e]['peak_rss_mib']:.0f}" if e in r else "–" for e in data["engines"])
                     + f" | {'–' if diff is None else f'{diff:.1e}'} |")
    lines += ["", f"sgemm rate ({'x'.join(map(str, (4096, 768, 3072)))}): "
              + ", ".join(f"{t} thread{'s' if t > 1 else ''} {g:.0f} GFLOP/s" for t, g in data["sgemm_gflops"].items())]
    if data.get("cold_start"):
        lines += ["", "Cold start, process start to first output (fill-mask, warm OS and Numba caches), seconds:", "",
                  "| command | median | min | max |", "|---|---|---|---|"]
        for name, s in data["cold_start"].items():
            lines.append(f"| {name} | {s['median_s']:.2f} | {s['min_s']:.2f} | {s['max_s']:.2f} |")
    lines += ["", f"Command: `{data['command']}`"]
    return "\n".join(lines)


def versions(python, ref_python):
    out = {}
    code = ("import json, numpy, importlib; v = {'numpy': numpy.__version__}\n"
            "for m in ('numba', 'torch', 'transformers', 'onnxruntime'):\n"
            "    try: v[m] = importlib.import_module(m).__version__\n"
            "    except ImportError: pass\n"
            "print(json.dumps(v))")
    for py in filter(None, (python, ref_python)):
        res = subprocess.run([py, "-c", code], capture_output=True, text=True)
        if res.returncode == 0:
            for k, v in json.loads(res.stdout).items():
                out.setdefault(k, v)
    return ", ".join(f"{k} {v}" for k, v in out.items())


def machine():
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"shapes {', '.join(QUICK_SHAPES)}, 2 rounds, short requests")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), help="default: all (or the quick ones)")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, help="rounds of interleaved requests (default 5, quick 2)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--ref-python", default=str(ROOT / ".venv-ref" / "bin" / "python"),
                        help="python with torch, transformers, onnxruntime ('' to skip those engines)")
    parser.add_argument("--no-cold-start", action="store_true")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    ref_python = args.ref_python if args.ref_python and Path(args.ref_python).exists() else None
    engines = [e for e in args.engines if ref_python or e not in REF_ENGINES]
    if len(engines) < len(args.engines):
        print(f"no reference python at {args.ref_python!r}: skipping {', '.join(REF_ENGINES)}", file=sys.stderr)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else list(SHAPES))
    rounds = args.rounds or (2 if args.quick else 5)
    budget_s = 0.3 if args.quick else 1.0
    out = Path(args.out)
    model = out / "checkpoint"
    scratch = out / "outputs"
    scratch.mkdir(parents=True, exist_ok=True)
    make_checkpoint(model, ref_python)
    pythons = {e: (ref_python if e in REF_ENGINES else sys.executable) for e in engines}

    data = {
        "command": "python tools/bench/bench.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": machine(), "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "versions": versions(sys.executable, ref_python), "engines": engines, "rows": [], "sgemm_gflops": {},
    }
    for threads in args.threads:
        gflops = sgemm_rate(sys.executable, threads, rounds)
        data["sgemm_gflops"][threads] = gflops
        for shape in shapes:
            print(f"threads {threads}, {shape} ...", file=sys.stderr, flush=True)
            results = measure(pythons, engines, model, threads, shape, rounds, budget_s, scratch)
            floor_ms = matmul_flops(*SHAPES[shape]) / gflops / 1e6
            data["rows"].append({"shape": shape, "threads": threads, "results": results, "gemm_floor_ms": floor_ms})
    if not args.no_cold_start:
        data["cold_start"] = cold_start(sys.executable, ref_python, model, 3 if args.quick else 5)
    text = report(data)
    print(text)
    (out / "bench.md").write_text(text + "\n")
    (out / "bench.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
