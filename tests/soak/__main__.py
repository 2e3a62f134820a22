import sys

from tests.soak.cli import main

sys.exit(main())
