"""``python -m cascade_core.cli`` = the ``cascade`` command."""

import sys

from cascade_core.cli import main

sys.exit(main())
