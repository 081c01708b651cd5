"""The distilbert-base-uncased model card's fill-mask example, checked against a checkpoint.

    python tools/eval/eval_fill_mask.py --model distilbert/distilbert-base-uncased

The card shows the top 5 fillers of "Hello I'm a [MASK] model." with their ids and scores;
this prints ours beside them and exits 0 when tokens, ids and order agree and every score is
within --tolerance (default 1e-4), 1 otherwise.
"""

import argparse
import sys

from eval_common import add_model_arguments, load_pipeline, report

DEFAULT_MODEL = "distilbert/distilbert-base-uncased"
TEXT = "Hello I'm a [MASK] model."
CARD = [  # (token_str, token id, score) from the model card
    ("role", 2535, 0.05292855575680733),
    ("fashion", 4827, 0.03968575969338417),
    ("business", 2449, 0.034743521362543106),
    ("model", 2944, 0.03462274372577667),
    ("modeling", 11643, 0.018145186826586723),
]


def compare(results, card=CARD, tolerance=1e-4):
    """(ok, rows): rows pair each card entry with ours."""
    rows, ok = [], len(results) == len(card)
    for (token_str, token, score), ours in zip(card, results):
        same = ours["token_str"] == token_str and ours["token"] == token and abs(ours["score"] - score) <= tolerance
        ok = ok and same
        rows.append({"card": {"token_str": token_str, "token": token, "score": score}, "ours": ours, "match": same})
    return ok, rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, DEFAULT_MODEL, dataset=False)
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args(argv)

    fill = load_pipeline("fill-mask", args)
    ok, rows = compare(fill(TEXT, top_k=len(CARD)), tolerance=args.tolerance)
    lines = [f"{args.model}: {TEXT!r}", f"{'card':<24}{'ours':<24}"]
    for row in rows:
        c, o = row["card"], row["ours"]
        lines.append(f"{c['token_str']:<9}{c['token']:>6} {c['score']:.5f}  {o['token_str']:<9}{o['token']:>6} "
                     f"{o['score']:.5f}  {'ok' if row['match'] else 'DIFFERENT'}")
    lines.append("matches the model card" if ok else "does NOT match the model card")
    report(args, {"model": str(args.model), "text": TEXT, "match": ok, "rows": rows}, lines)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
