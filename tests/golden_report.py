"""The worst error of each golden case, collected while the tests run and printed once, in pytest's
summary at the end (conftest.py's pytest_terminal_summary), never in the middle of the progress dots.

    golden_report.record("model goldens", "numba", "official_mlm", 1.2e-5, "logits")
"""

TOLERANCE = 1e-4  # the project's bound on logits and hidden states against the reference
TABLES = {}  # title -> {(backend, case): (worst error, output name)}


def record(title, backend, case, error, field):
    TABLES.setdefault(title, {})[(backend, case)] = (error, field)


def summary_lines():
    lines = []
    for title, worst in TABLES.items():
        lines.append(f"{title}, worst abs error per case (tolerance {TOLERANCE:g}):")
        for (backend, case), (err, field) in sorted(worst.items()):
            lines.append(f"  {backend:6s} {case:45s} {err:.3e}  ({field})")
        overall = max(worst.values())
        lines.append(f"  overall worst: {overall[0]:.3e} ({overall[1]})")
    return lines
