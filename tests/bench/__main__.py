"""``python -m tests.bench``: the same as ``scripts/bench``."""

import sys

from tests.bench.cli import main

sys.exit(main())
