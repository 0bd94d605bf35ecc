"""``python -m cascade_core`` = the ``cascade`` command (e.g. ``python -m cascade_core serve --config cascade.toml``)."""

import sys

from cascade_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
