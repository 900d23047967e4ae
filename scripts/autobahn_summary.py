#!/usr/bin/env python3
"""Summarise kosoku reports: a table of role x driver x counts, a per-case
comparison with the committed expectations, and the exit status.

A case passes when behavior is OK or INFORMATIONAL and behaviorClose is OK or
INFORMATIONAL. NON-STRICT, FAILED, UNIMPLEMENTED and anything else fail.
"""
import json
import os
import sys

PASS = {"OK", "INFORMATIONAL"}


def load(outdir, role, driver):
    path = os.path.join(outdir, f"{role}-{driver}", "index.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        data = json.load(f)
    cases = {}
    for agent in data.values():
        for case, r in agent.items():
            cases[case] = (r.get("behavior"), r.get("behaviorClose"))
    return cases


def key(case):
    return tuple(int(x) for x in case.split("."))


def main():
    outdir, expected_path, quick = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    rest = sys.argv[4:]
    sep = rest.index("--")
    roles, drivers = rest[:sep], rest[sep + 1:]
    expected = {}
    if os.path.exists(expected_path):
        with open(expected_path) as f:
            expected = json.load(f)
    failed = False
    rows = []
    for role in roles:
        for driver in drivers:
            cases = load(outdir, role, driver)
            if cases is None:
                rows.append((role, driver, 0, 0, 0, "no report"))
                failed = True
                continue
            ok = sum(1 for b, c in cases.values() if b in PASS and c in PASS)
            bad = sorted((c for c, (b, bc) in cases.items() if not (b in PASS and bc in PASS)), key=key)
            exp = expected.get(role, {}) if isinstance(expected.get(role), dict) else {}
            changed = [c for c in cases if exp and exp.get(c) and exp[c] != ("pass" if c not in bad else "fail")]
            missing = [] if quick or not exp else [c for c in exp if c not in cases]
            note = ""
            if bad:
                note += "failed: " + ", ".join(f"{c} ({cases[c][0]}/{cases[c][1]})" for c in bad[:20])
            if changed:
                note += " changed vs expected: " + ", ".join(sorted(changed, key=key)[:20])
            if missing:
                note += f" missing {len(missing)} cases"
            if bad or changed or missing:
                failed = True
            rows.append((role, driver, len(cases), ok, len(cases) - ok, note))
    print()
    print("| role | driver | cases | pass | fail | notes |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |")
    print()
    total_pass = sum(r[3] for r in rows)
    total_fail = sum(r[4] for r in rows)
    print("autobahn: " + ("FAILED" if failed else "all cases pass"))
    print(f"autobahn: {total_pass} passed, {total_fail} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
