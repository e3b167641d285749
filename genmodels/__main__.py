"""`python -m genmodels`: see genmodels.cli."""

import sys

from genmodels.cli import main

if __name__ == "__main__":
    sys.exit(main())
