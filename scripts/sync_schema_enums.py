"""Write harness.errors.FailureKind into the results schemas' `error_kind` enums (run after adding a kind).

The enum is the one source; tests/harness/test_errors.py fails until the schemas are regenerated.
Usage: .venv/bin/python scripts/sync_schema_enums.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.errors import FailureKind

SCHEMAS = Path(__file__).resolve().parents[1] / "harness" / "schemas"
ENUM = re.compile(r'("error_kind": \{[^\n]*?"enum": )\[[^\]]*\]')


def main() -> None:
    values = json.dumps([None] + [kind.value for kind in FailureKind])
    for name in ("results", "gc_metrics"):
        path = SCHEMAS / f"{name}.schema.json"
        text, count = ENUM.subn(lambda m: m.group(1) + values, path.read_text())
        if count != 1:
            raise SystemExit(f"{path}: expected one error_kind enum, found {count}")
        json.loads(text)
        path.write_text(text)
        print(f"{path}: error_kind = {len(FailureKind)} kinds")


if __name__ == "__main__":
    main()
