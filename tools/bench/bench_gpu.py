#!/usr/bin/env python3
"""GPU benchmark: minidistil on the cupy backend vs PyTorch CUDA (transformers' DistilBertModel), fp32, same weights.

    python tools/bench/bench_gpu.py [--out bench-gpu.md] [--shapes 1x128,32x128,256x128,1x512] [--tf32]
    python tools/bench/bench_gpu.py --smoke      # CPU only (numpy backend vs torch CPU): checks this script, times nothing useful

An official-size DistilBERT (dim 768, 6 layers, 12 heads, vocab 30522) with
seeded random weights is built by minidistil and copied into transformers'
DistilBertModel, and the two outputs are compared before anything is timed.
Each shape is timed for every engine in interleaved rounds; each forward pass
is bracketed by CUDA events on the engine's stream, after a device
synchronisation, and the median, min and max over all rounds are reported.

Engines:
  minidistil-cupy   device in, device out: the encoder with CuPy inputs, the
                    last hidden state left on the GPU (kernels.gpu.CupyOps)
  torch-sdpa        transformers' default attention (scaled_dot_product_attention)
  torch-eager       transformers' eager attention (matmul + softmax), as in the reference
With --end-to-end the same is timed again from NumPy inputs to a NumPy last
hidden state (the public DistilBertModel call; torch copies to and from the GPU).
TF32 is off for both unless --tf32 (torch: allow_tf32; minidistil: CupyOps(tf32=True)).
The table is printed and, with --out, written as markdown.
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from minidistil import DistilBertConfig, DistilBertModel  # noqa: E402
from minidistil.modeling import transformer as M  # noqa: E402

DEFAULT_SHAPES = "1x128,32x128,256x128,1x512"


def parse_shapes(text):
    shapes = []
    for item in text.split(","):
        batch, seq = item.lower().split("x")
        shapes.append((int(batch), int(seq)))
    return shapes


class Timer:
    """Times one call in ms: synchronise, record start, call, record end, synchronise.

    With make_event (a CUDA event factory) the start and end are events on the
    engine's current stream; without, wall-clock time (the CPU smoke run).
    """

    def __init__(self, synchronize, make_event=None):
        self.synchronize, self.make_event = synchronize, make_event

    def __call__(self, fn):
        self.synchronize()
        if self.make_event is None:
            start = time.perf_counter()
            fn()
            self.synchronize()
            return (time.perf_counter() - start) * 1e3
        begin, end = self.make_event(), self.make_event()
        begin.record()
        fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) if hasattr(begin, "elapsed_time") else _cupy_elapsed(begin, end)


def _cupy_elapsed(begin, end):
    import cupy

    return cupy.cuda.get_elapsed_time(begin, end)


def _torch_to_numpy(y):
    return y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y)


def build_engines(args, config, state, smoke):
    """{name: (make_runner(ids, mask, end_to_end) -> fn, timer, to_numpy)}, same weights in every engine."""
    import torch
    import transformers

    device = "cpu" if smoke else "cuda"
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.set_float32_matmul_precision("high" if args.tf32 else "highest")
    engines = {}

    # minidistil
    if smoke:
        ours = DistilBertModel(config, state, backend="numpy")
        ours_timer = Timer(lambda: None)
    else:
        import cupy

        from minidistil.kernels.gpu import CupyOps

        ours = DistilBertModel(config, state, backend="cupy")
        ours.ops.tf32 = args.tf32
        assert isinstance(ours.ops, CupyOps)
        ours_timer = Timer(lambda: cupy.cuda.Device().synchronize(), cupy.cuda.Event)

    def ours_runner(ids, mask, end_to_end):
        if end_to_end:
            return lambda: ours(input_ids=ids, attention_mask=mask).last_hidden_state
        checked_ids, checked_mask, _, _ = M.check_inputs(config, ids, mask)
        device_ids, device_mask = ours.ops.asarray(checked_ids), ours.ops.asarray(checked_mask)
        return lambda: M.encoder(ours._prepared, ours.ops, config, device_ids, device_mask)[0]

    engines["minidistil-" + ours.ops.name] = (ours_runner, ours_timer, lambda y: ours.ops.to_numpy(y))

    # PyTorch through transformers, both attention implementations
    hf_fields = {k: v for k, v in config.to_dict().items() if k != "architectures"}
    tensors = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in state.items()}
    torch_timer = (Timer(lambda: None) if smoke else
                   Timer(torch.cuda.synchronize, lambda: torch.cuda.Event(enable_timing=True)))
    for attn in ("sdpa", "eager"):
        reference = transformers.DistilBertModel(transformers.DistilBertConfig(**hf_fields, attn_implementation=attn))
        assert reference.config._attn_implementation == attn, reference.config._attn_implementation
        missing, unexpected = reference.load_state_dict(tensors, strict=False)
        if missing or unexpected:
            raise SystemExit(f"weights do not map onto transformers' DistilBertModel: missing {missing}, "
                             f"unexpected {unexpected}")
        reference = reference.to(device).eval()

        def torch_runner(ids, mask, end_to_end, reference=reference):
            if end_to_end:
                def run():
                    with torch.inference_mode():
                        out = reference(input_ids=torch.from_numpy(ids).to(device),
                                        attention_mask=torch.from_numpy(mask).to(device))
                    return out.last_hidden_state.cpu().numpy()
                return run
            device_ids, device_mask = torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)

            def run():
                with torch.inference_mode():
                    return reference(input_ids=device_ids, attention_mask=device_mask).last_hidden_state
            return run

        engines[f"torch-{attn}"] = (torch_runner, torch_timer, _torch_to_numpy)
    return engines


def bench(args):
    smoke = args.smoke
    shapes = [(1, 8), (2, 16)] if smoke else parse_shapes(args.shapes)
    config = DistilBertConfig() if not smoke else DistilBertConfig(n_layers=2)
    state = DistilBertModel(config, backend="numpy", seed=args.seed).state_dict()
    engines = build_engines(args, config, state, smoke)
    rng = np.random.default_rng(args.seed)
    modes = [False, True] if args.end_to_end else [False]
    rows = []
    for batch, seq in shapes:
        ids = rng.integers(0, config.vocab_size, size=(batch, seq), dtype=np.int64)
        mask = np.ones((batch, seq), dtype=np.int64)
        for end_to_end in modes:
            runners = {name: (make(ids, mask, end_to_end), timer, host)
                       for name, (make, timer, host) in engines.items()}
            outputs = {name: np.asarray(host(fn()), dtype=np.float32) for name, (fn, _, host) in runners.items()}
            first = next(iter(outputs.values()))
            diffs = {name: float(np.abs(out - first).max()) for name, out in outputs.items()}
            times = {name: [] for name in runners}
            for name, (fn, timer, _) in runners.items():  # warm-up
                for _ in range(args.warmup):
                    timer(fn)
            for _ in range(args.rounds):  # interleaved rounds
                for name, (fn, timer, _) in runners.items():
                    deadline = time.perf_counter() + args.seconds
                    count = 0
                    while count < args.min_iters or (time.perf_counter() < deadline and count < args.max_iters):
                        times[name].append(timer(fn))
                        count += 1
            for name, samples in times.items():
                median = statistics.median(samples)
                rows.append(dict(shape=f"{batch}x{seq}", mode="end-to-end" if end_to_end else "device",
                                 engine=name, median=median, min=min(samples), max=max(samples), n=len(samples),
                                 seq_per_s=batch / median * 1e3, diff=diffs[name]))
                print(f"{batch}x{seq} {rows[-1]['mode']:10s} {name:18s} median {median:9.3f} ms  "
                      f"{rows[-1]['seq_per_s']:10.1f} seq/s  (n={len(samples)}, max |diff| {diffs[name]:.2e})",
                      flush=True)
    return rows


def environment(args):
    lines = [f"date {datetime.date.today().isoformat()}, python {platform.python_version()}"]
    try:
        import torch

        lines.append(f"torch {torch.__version__}" + (f", GPU {torch.cuda.get_device_name()}"
                                                      if torch.cuda.is_available() else ", no GPU"))
        import transformers

        lines.append(f"transformers {transformers.__version__}")
    except ImportError:
        pass
    try:
        import cupy

        lines.append(f"cupy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, "
                     f"driver {cupy.cuda.runtime.driverGetVersion()}")
    except Exception:  # noqa: BLE001 - informational only
        pass
    lines.append(f"TF32 {'on' if args.tf32 else 'off'}; warm-up {args.warmup}, {args.rounds} interleaved rounds of "
                 f">= {args.min_iters} runs / {args.seconds} s per engine")
    return lines


def markdown(rows, env, command):
    out = ["| shape | mode | engine | median ms | min ms | max ms | seq/s | vs best torch | max abs diff |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        peers = [r["seq_per_s"] for r in rows if r["shape"] == row["shape"] and r["mode"] == row["mode"]
                 and r["engine"].startswith("torch")]
        ratio = row["seq_per_s"] / max(peers) if peers else float("nan")
        out.append(f"| {row['shape']} | {row['mode']} | {row['engine']} | {row['median']:.3f} | {row['min']:.3f} | "
                   f"{row['max']:.3f} | {row['seq_per_s']:.1f} | {ratio:.2f}x | {row['diff']:.1e} |")
    return "\n".join([f"`{command}`", "", *[f"- {line}" for line in env], "", *out, ""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help=f"batch x seq list (default {DEFAULT_SHAPES})")
    parser.add_argument("--tf32", action="store_true", help="allow TF32 in both engines (default: off)")
    parser.add_argument("--end-to-end", action="store_true", help="also time NumPy in -> NumPy out")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-iters", type=int, default=5, help="runs per engine per round, at least")
    parser.add_argument("--max-iters", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per engine per round, about")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the markdown table here")
    parser.add_argument("--smoke", action="store_true", help="CPU smoke test of this script (no GPU)")
    args = parser.parse_args(argv)
    if os.environ.get("MINIDISTIL_TF32") and not args.tf32:
        raise SystemExit("MINIDISTIL_TF32 is set: unset it, or pass --tf32 to time both engines with TF32")
    rows = bench(args)
    table = markdown(rows, environment(args), "python tools/bench/bench_gpu.py " + " ".join(argv or sys.argv[1:]))
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
