"""``python -m optinas.strategies.cli``: the same as the ``optinas`` command."""

import sys

from optinas.strategies.cli import main

sys.exit(main())
