"""Run ``python -m convkit``."""

import sys

from convkit._cli import main

sys.exit(main())
