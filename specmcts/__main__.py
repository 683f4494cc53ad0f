"""``python -m specmcts`` runs the same CLI as the ``specmcts`` console script."""
import sys

from specmcts.cli import main

if __name__ == "__main__":
    sys.exit(main())
