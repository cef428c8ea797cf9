"""``python -m examples.goldengoose``: run the server (same flags as server.py)."""

import sys

from .server import main

sys.exit(main())
