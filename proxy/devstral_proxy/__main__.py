"""`python -m proxy`: the same as the `devstral-proxy` command."""

import sys

from .cli import main

sys.exit(main())
