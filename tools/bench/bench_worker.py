"""One engine of tools/bench/bench.py, in its own process (run by bench.py, not by hand).

    python tools/bench/bench_worker.py ENGINE --model DIR --threads N --batch B --seq S [--mlm] [--save OUT.npy]

ENGINE: numpy | numba | numba-int8 | numba-blas (minidistil, this repository; numba-blas is
the numba backend with its weights left unpacked, so that every product goes to NumPy's BLAS:
the "plain BLAS" line the benchmark checks numba against), torch (transformers + PyTorch),
onnxruntime | onnxruntime-int8 (DIR/onnx/*.onnx; -int8: quantize_dynamic with QInt8 weights),
sgemm (NumPy's BLAS alone, for the GEMM floor), corpus-minidistil | corpus-st (embed the
corpus texts of --texts, one per line, with minidistil's sentence-embedding pipeline or with
sentence-transformers; --model is then the MiniLM directory; one run = the whole corpus).
The worker loads the model, runs the shape once (saving that output with --save)
and prints one JSON line {"ready": ...}; then, for each line "run K" on stdin, it
runs the forward pass K times and prints {"times": [seconds, ...]}; on "quit" it
prints {"peak_rss_kib": ..., "anon_rss_kib": ...} and exits. Thread counts are set by the parent
through the environment (OMP_NUM_THREADS etc.) and again here through each
engine's own switch.

    python tools/bench/bench_worker.py export --model DIR     (reference venv: writes DIR/onnx/*.onnx)

Peak memory is the process's VmHWM (its own high-water mark; ru_maxrss on Linux also counts
what the parent had when it forked).
"""

import argparse
import json
import os
import resource
import sys
import time

import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SGEMM_SHAPE = (4096, 768, 3072)  # M, K, N: the FFN product of batch 32 x 128, the bulk of the FLOPs


ENGINES = ("numpy", "numba", "numba-int8", "numba-blas", "torch", "onnxruntime", "onnxruntime-int8", "sgemm",
           "corpus-minidistil", "corpus-st")


def memory_kib():
    """{"peak_rss_kib": this process's own peak resident memory (VmHWM), "anon_rss_kib": its anonymous
    memory now (RssAnon: without the pages of memory-mapped files such as a checkpoint)}; ru_maxrss where
    /proc is missing."""
    fields = {"VmHWM:": "peak_rss_kib", "RssAnon:": "anon_rss_kib"}
    out = {}
    try:
        with open("/proc/self/status") as status:
            for line in status:
                key = line.split(maxsplit=1)[0]
                if key in fields:
                    out[fields[key]] = int(line.split()[1])
    except OSError:
        pass
    out.setdefault("peak_rss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    return out


def inputs(batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    return ids, np.ones((batch, seq), dtype=np.int64)


def minidistil_engine(engine, model_dir, threads, ids, mask, mlm):
    sys.path.insert(0, ROOT)
    from minidistil import DistilBertForMaskedLM, DistilBertModel

    warnings.filterwarnings("ignore", message=".*dropping tensors of another DistilBERT head")

    backend = engine.split("-")[0]
    cls = DistilBertForMaskedLM if mlm else DistilBertModel
    model = cls.from_pretrained(model_dir, backend=backend, threads=threads,
                                quantize="int8" if engine.endswith("-int8") else None)
    if model.ops.name != backend:
        raise SystemExit(f"asked for backend {backend}, got {model.ops.name}")
    if engine == "numba-blas":  # the same backend with no packed weights: every product through BLAS
        model.runner.matrices = []
        model.runner.replace_params(model.params)
    field = "logits" if mlm else "last_hidden_state"
    run = lambda: getattr(model(input_ids=ids, attention_mask=mask), field)  # noqa: E731
    run.weights_bytes = sum(int(getattr(v, "nbytes", 0)) for v in model.runner.prepared.values())
    if engine in ("numba", "numba-int8"):  # the whole tiles its packed products run with (kernels/calibration.py)
        from minidistil.kernels import calibration

        run.tilings = {kind or "float32": calibration.name(tiling) for kind, tiling in model.ops.tilings.items()}
    return run


def torch_engine(model_dir, threads, ids, mask, mlm):
    import torch
    from transformers import DistilBertForMaskedLM, DistilBertModel

    torch.set_num_threads(threads)
    cls = DistilBertForMaskedLM if mlm else DistilBertModel
    model = cls.from_pretrained(model_dir).eval()
    t_ids, t_mask = torch.from_numpy(ids), torch.from_numpy(mask)
    field = "logits" if mlm else "last_hidden_state"

    def run():
        with torch.inference_mode():
            return getattr(model(input_ids=t_ids, attention_mask=t_mask), field).numpy()

    return run


def onnxruntime_engine(model_dir, threads, ids, mask, mlm, int8=False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    name = ("mlm" if mlm else "model") + ("-int8" if int8 else "")
    path = os.path.join(model_dir, "onnx", name + ".onnx")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask}
    return lambda: session.run(None, feed)[0]


def corpus_texts(path):
    with open(path, encoding="utf-8") as stream:
        return [line.rstrip("\n") for line in stream]


def corpus_minidistil_engine(model_dir, threads, texts_path, batch):
    sys.path.insert(0, ROOT)
    from minidistil import pipeline

    texts = corpus_texts(texts_path)
    embed = pipeline("sentence-embedding", model=model_dir, backend="numba", threads=threads, batch_size=batch)
    return lambda: embed(texts)


def corpus_st_engine(model_dir, threads, texts_path, batch):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    texts = corpus_texts(texts_path)
    model = SentenceTransformer(model_dir, device="cpu")
    return lambda: model.encode(texts, batch_size=batch, convert_to_numpy=True)


def sgemm_engine(threads):
    m, k, n = SGEMM_SHAPE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)  # stored [out, in] like a checkpoint weight
    out = np.empty((m, n), np.float32)
    return lambda: np.matmul(x, w.T, out=out)


EXPORT_NEEDS = ("torch", "transformers", "onnx", "onnxruntime")  # the reference environment's, for `export`


def export(model_dir):
    """Export the checkpoint in model_dir to ONNX (the encoder and the masked-LM model), opset 17."""
    import importlib.util

    missing = [name for name in EXPORT_NEEDS if importlib.util.find_spec(name) is None]
    if missing:  # without onnx, torch.onnx.export fails deep inside torch with a traceback
        raise SystemExit(f"exporting the bench checkpoint to ONNX: the reference environment ({sys.executable}) "
                         f"lacks {', '.join(missing)}; the README's .venv-ref command (section Validation) installs "
                         f"them (torch as torch==2.13.0, first)")
    import torch
    from transformers import DistilBertForMaskedLM, DistilBertModel, DistilBertTokenizerFast

    # tokenizer.json, so that a transformers pipeline loads the fast tokenizer without converting vocab.txt
    DistilBertTokenizerFast.from_pretrained(model_dir)._tokenizer.save(os.path.join(model_dir, "tokenizer.json"))
    os.makedirs(os.path.join(model_dir, "onnx"), exist_ok=True)
    ids, mask = (torch.from_numpy(a) for a in inputs(1, 16))
    for name, cls, output in (("model", DistilBertModel, "last_hidden_state"), ("mlm", DistilBertForMaskedLM, "logits")):
        model = cls.from_pretrained(model_dir, attn_implementation="eager").eval()
        axes = {0: "batch", 1: "sequence"}
        torch.onnx.export(
            model, (ids, mask), os.path.join(model_dir, "onnx", f"{name}.onnx"),
            input_names=["input_ids", "attention_mask"], output_names=[output],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, output: axes},
            opset_version=17, dynamo=False,
        )
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in ("model", "mlm"):  # ONNX Runtime's own int8 recipe, at its defaults (per-tensor QInt8 weights)
        quantize_dynamic(os.path.join(model_dir, "onnx", f"{name}.onnx"), os.path.join(model_dir, "onnx", f"{name}-int8.onnx"),
                         weight_type=QuantType.QInt8)
    print(json.dumps({"exported": sorted(os.listdir(os.path.join(model_dir, "onnx")))}), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", choices=ENGINES + ("export",))
    parser.add_argument("--model", help="checkpoint directory")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=8)
    parser.add_argument("--mlm", action="store_true", help="run the masked-LM model (logits) instead of the encoder")
    parser.add_argument("--save", help="save the first output here (.npy) for the cross-engine check")
    parser.add_argument("--texts", help="corpus engines: a file of texts, one per line")
    args = parser.parse_args(argv)
    if args.engine == "export":
        return export(args.model)

    start = time.perf_counter()
    ids, mask = inputs(args.batch, args.seq) if args.seq > 0 else (None, None)
    if args.engine in ("numpy", "numba", "numba-int8", "numba-blas"):
        run = minidistil_engine(args.engine, args.model, args.threads, ids, mask, args.mlm)
    elif args.engine == "torch":
        run = torch_engine(args.model, args.threads, ids, mask, args.mlm)
    elif args.engine in ("onnxruntime", "onnxruntime-int8"):
        run = onnxruntime_engine(args.model, args.threads, ids, mask, args.mlm, int8=args.engine.endswith("-int8"))
    elif args.engine == "corpus-minidistil":
        run = corpus_minidistil_engine(args.model, args.threads, args.texts, args.batch)
    elif args.engine == "corpus-st":
        run = corpus_st_engine(args.model, args.threads, args.texts, args.batch)
    else:
        run = sgemm_engine(args.threads)
    load_s = time.perf_counter() - start
    t = time.perf_counter()
    first = np.asarray(run())
    first_s = time.perf_counter() - t
    if args.save:
        np.save(args.save, first)
    print(json.dumps({"ready": True, "load_s": load_s, "first_s": first_s,
                      "weights_bytes": getattr(run, "weights_bytes", None), "tilings": getattr(run, "tilings", None)}),
          flush=True)

    for line in sys.stdin:
        command = line.split()
        if not command or command[0] == "quit":
            break
        times = []
        for _ in range(int(command[1])):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        print(json.dumps({"times": times}), flush=True)
    print(json.dumps(memory_kib()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
