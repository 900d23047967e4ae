#!/usr/bin/env python3
"""Map -i CASE globs (as given to kosoku) to the fuzzingserver's 1-based case
numbers, using the case order of the Autobahn TestSuite (sections in numeric
order, cases within a section in numeric order), as kosoku numbers them."""
import fnmatch
import sys

# Case ids in suite order, generated from the section structure of the
# Autobahn TestSuite (517 cases).
def all_cases():
    ids = []
    def add(prefix, n):
        ids.extend(f"{prefix}.{i}" for i in range(1, n + 1))
    add("1.1", 8); add("1.2", 8)
    add("2", 11)
    add("3", 7)
    add("4.1", 5); add("4.2", 5)
    add("5", 20)
    add("6.1", 3); add("6.2", 4); add("6.3", 2); add("6.4", 4); add("6.5", 5); add("6.6", 11)
    add("6.7", 4); add("6.8", 2); add("6.9", 4); add("6.10", 3); add("6.11", 5); add("6.12", 8)
    add("6.13", 5); add("6.14", 10); add("6.15", 1); add("6.16", 3); add("6.17", 5); add("6.18", 5)
    add("6.19", 5); add("6.20", 7); add("6.21", 8); add("6.22", 34); add("6.23", 7)
    add("7.1", 6); add("7.3", 6); add("7.5", 1); add("7.7", 13); add("7.9", 9); add("7.13", 2)
    for g in range(1, 9):
        add(f"9.{g}", 9 if g in (3, 4) else 6)
    add("10.1", 1)
    for g in range(1, 6):
        add(f"12.{g}", 18)
    for g in range(1, 8):
        add(f"13.{g}", 18)
    return ids


def main():
    pats = [a for a in sys.argv[1:] if a != "-i"]
    ids = all_cases()
    for n, c in enumerate(ids, start=1):
        if any(fnmatch.fnmatch(c, p) for p in pats):
            print(n)


if __name__ == "__main__":
    main()
