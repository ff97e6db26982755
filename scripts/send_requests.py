"""Post the rows of a CSV file to an nbops server's /predict in small batches, as traffic
would arrive; print how many were answered, by which model versions, and any failure.

    python scripts/send_requests.py data.csv --url http://127.0.0.1:8765 [--batch 20]
"""

from __future__ import annotations

import argparse
import collections
import csv
import math
import sys

import httpx


def _value(text: str) -> object:
    """A CSV cell as JSON: an int, a float, else the text (empty: null)."""
    if text == "":
        return None
    for kind in (int, float):
        try:
            number = kind(text)
        except ValueError:
            continue
        return number if not (isinstance(number, float) and math.isnan(number)) else None
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    with open(args.data, newline="") as handle:
        rows = [{k: _value(v) for k, v in row.items()} for row in csv.DictReader(handle)]
    versions: collections.Counter[str] = collections.Counter()
    with httpx.Client(base_url=args.url, timeout=30) as client:
        for start in range(0, len(rows), args.batch):
            batch = rows[start : start + args.batch]
            answer = client.post("/predict", json={"records": batch})
            if answer.status_code != 200:
                print(f"rows {start}-{start + len(batch)}: {answer.status_code} {answer.text}")
                return 1
            versions[answer.headers.get("x-nbops-model-version", "?")] += len(batch)
    seen = ", ".join(f"v{v}: {n}" for v, n in sorted(versions.items()))
    print(f"{len(rows)} records answered ({seen})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
