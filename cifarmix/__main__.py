"""``python -m cifarmix``: the command line."""

import sys

from cifarmix.cli import main

if __name__ == "__main__":
    sys.exit(main())
