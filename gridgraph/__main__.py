"""``python -m gridgraph ...``: the same as the ``gridgraph`` console script."""
import sys

from .cli import main

sys.exit(main())
