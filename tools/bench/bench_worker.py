"""One engine of tools/bench/bench.py, in its own process (run by bench.py, not by hand).

    python tools/bench/bench_worker.py ENGINE --model DIR --threads N --batch B --seq S [--mlm] [--save OUT.npy]

ENGINE: numpy | numba (minidistil, this repository), torch (transformers + PyTorch),
onnxruntime (DIR/onnx/*.onnx), sgemm (NumPy's BLAS alone, for the GEMM floor).
The worker loads the model, runs the shape once (saving that output with --save)
and prints one JSON line {"ready": ...}; then, for each line "run K" on stdin, it
runs the forward pass K times and prints {"times": [seconds, ...]}; on "quit" it
prints {"peak_rss_kib": ...} and exits. Thread counts are set by the parent
through the environment (OMP_NUM_THREADS etc.) and again here through each
engine's own switch.

    python tools/bench/bench_worker.py export --model DIR     (reference venv: writes DIR/onnx/*.onnx)
"""

import argparse
import json
import os
import resource
import sys
import time

import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SGEMM_SHAPE = (4096, 768, 3072)  # M, K, N: the FFN product of batch 32 x 128, the bulk of the FLOPs


def inputs(batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, 30000, size=(batch, seq), dtype=np.int64)
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    return ids, np.ones((batch, seq), dtype=np.int64)


def minidistil_engine(backend, model_dir, threads, ids, mask, mlm):
    sys.path.insert(0, ROOT)
    from minidistil import DistilBertForMaskedLM, DistilBertModel

    warnings.filterwarnings("ignore", message=".*dropping tensors of another DistilBERT head")

    cls = DistilBertForMaskedLM if mlm else DistilBertModel
    model = cls.from_pretrained(model_dir, backend=backend, threads=threads)
    if model.ops.name != backend:
        raise SystemExit(f"asked for backend {backend}, got {model.ops.name}")
    field = "logits" if mlm else "last_hidden_state"
    return lambda: getattr(model(input_ids=ids, attention_mask=mask), field)


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


def onnxruntime_engine(model_dir, threads, ids, mask, mlm):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    path = os.path.join(model_dir, "onnx", "mlm.onnx" if mlm else "model.onnx")
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask}
    return lambda: session.run(None, feed)[0]


def sgemm_engine(threads):
    m, k, n = SGEMM_SHAPE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((m, k), dtype=np.float32)
    w = rng.standard_normal((n, k), dtype=np.float32)  # stored [out, in] like a checkpoint weight
    out = np.empty((m, n), np.float32)
    return lambda: np.matmul(x, w.T, out=out)


def export(model_dir):
    """Export the checkpoint in model_dir to ONNX (the encoder and the masked-LM model), opset 17."""
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
    print(json.dumps({"exported": sorted(os.listdir(os.path.join(model_dir, "onnx")))}), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine", choices=("numpy", "numba", "torch", "onnxruntime", "sgemm", "export"))
    parser.add_argument("--model", help="checkpoint directory")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=8)
    parser.add_argument("--mlm", action="store_true", help="run the masked-LM model (logits) instead of the encoder")
    parser.add_argument("--save", help="save the first output here (.npy) for the cross-engine check")
    args = parser.parse_args(argv)
    if args.engine == "export":
        return export(args.model)

    start = time.perf_counter()
    ids, mask = inputs(args.batch, args.seq)
    if args.engine in ("numpy", "numba"):
        run = minidistil_engine(args.engine, args.model, args.threads, ids, mask, args.mlm)
    elif args.engine == "torch":
        run = torch_engine(args.model, args.threads, ids, mask, args.mlm)
    elif args.engine == "onnxruntime":
        run = onnxruntime_engine(args.model, args.threads, ids, mask, args.mlm)
    else:
        run = sgemm_engine(args.threads)
    load_s = time.perf_counter() - start
    t = time.perf_counter()
    first = np.asarray(run())
    first_s = time.perf_counter() - t
    if args.save:
        np.save(args.save, first)
    print(json.dumps({"ready": True, "load_s": load_s, "first_s": first_s}), flush=True)

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
    print(json.dumps({"peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
