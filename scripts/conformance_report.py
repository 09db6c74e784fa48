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
    failures = []
    unsupported = 0
    for case in cases:
        if not supported(case):
            unsupported += 1
            continue
        outcome = run_case(case)
        for op in case.ops:
            per_op[op][outcome.status] += 1
        if outcome.status in ("fail", "error"):
            failures.append(outcome)
    print(f"{'op':24} {'pass':>5} {'fail':>5} {'error':>5} {'unsup':>5}")
    for op in sorted(per_op):
        row = per_op[op]
        print(f"{op:24} {row['pass']:5} {row['fail']:5} {row['error']:5} {row['unsupported']:5}")
    totals = defaultdict(int)
    for case in cases:
        pass
    statuses = [s for op in per_op.values() for s in op]
    counted = {status: sum(1 for f in failures if f.status == status) for status in ("fail", "error")}
    ran = len(cases) - unsupported
    print(f"\ncases: {len(cases)} total, {unsupported} with unsupported ops, {ran} run: "
          f"{ran - counted['fail'] - counted['error']} pass-or-unsupported-feature, {counted['fail']} fail, {counted['error']} error")
    if args.failures:
        for outcome in failures:
            print(f"{outcome.status.upper():6} {outcome.case}: {outcome.detail}")


if __name__ == "__main__":
    main()
