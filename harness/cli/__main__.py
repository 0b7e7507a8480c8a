"""`python -m harness.cli ...`: the `harness` command without the console script (tests, benchmarks)."""

import sys

from harness.cli import main

sys.exit(main())
