"""Print pass/fail per op of the ONNX conformance run (verifier/conformance.py) and the totals.

    .venv/bin/python scripts/conformance_report.py [--failures] [--source node|pytorch-converted|pytorch-operator]
"""

import argparse
from collections import defaultdict

from verifier.conformance import all_cases, run_case, supported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--failures", action="store_true", help="list every failing case with its reason")
    parser.add_argument("--source", default=None)
    args = parser.parse_args()
    cases = [c for c in all_cases() if args.source in (None, c.source)]
    per_op = defaultdict(lambda: defaultdict(int))
    totals: dict[str, int] = defaultdict(int)
    failures = []
    for case in cases:
        if not supported(case):
            totals["op not supported"] += 1
            continue
        outcome = run_case(case)
        totals[outcome.status] += 1
        for op in case.ops:
            per_op[op][outcome.status] += 1
        if outcome.status in ("fail", "error"):
            failures.append(outcome)
    print(f"{'op':24} {'pass':>5} {'fail':>5} {'error':>5} {'unsup':>5}")
    for op in sorted(per_op):
        row = per_op[op]
        print(f"{op:24} {row['pass']:5} {row['fail']:5} {row['error']:5} {row['unsupported']:5}")
    print(f"\n{len(cases)} cases: {totals['pass']} pass, {totals['fail']} fail, {totals['error']} error, "
          f"{totals['unsupported']} use an unsupported feature of a supported op, "
          f"{totals['op not supported']} use an op without a lowering")
    if args.failures:
        for outcome in failures:
            print(f"{outcome.status.upper():6} {outcome.case}: {outcome.detail}")


if __name__ == "__main__":
    main()
