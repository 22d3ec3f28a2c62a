"""``python -m tickerd``: the same as the ``tickerd`` command."""

import sys

from .cli import main

sys.exit(main())
