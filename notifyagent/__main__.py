"""Allow ``python -m notifyagent``."""

from notifyagent.cli import main

raise SystemExit(main())
