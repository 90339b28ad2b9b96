"""`python -m rootserve`: the same as the `rootserve` command."""

import sys

from rootserve.cli import main

if __name__ == "__main__":
    sys.exit(main())
