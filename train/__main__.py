"""Entry point of `python -m train`."""

import sys

try:
    from train.cli import main

    sys.exit(main())
except KeyboardInterrupt:  # Ctrl-C before training has installed its own handler (imports, flag checks)
    print("error: interrupted before training started; nothing was written", file=sys.stderr)
    sys.exit(130)
