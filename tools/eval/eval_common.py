"""Shared command-line plumbing of the tools/eval_*.py scripts."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def add_model_arguments(parser, default_model, dataset=True):
    parser.add_argument("--model", default=default_model,
                        help=f"checkpoint directory or hub name, found in the HF cache or downloaded (default: {default_model})")
    parser.add_argument("--backend", default=None, help="kernel backend: auto, numpy, numba, cupy")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    if dataset:
        parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N examples")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def load_pipeline(task, args):
    from minidistil import pipeline

    return pipeline(task, model=args.model, backend=args.backend, threads=args.threads, batch_size=args.batch_size)


def report(args, result, lines):
    import json

    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines))
