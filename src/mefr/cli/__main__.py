"""``python -m mefr.cli``: the ``mefr`` command."""

import sys

from mefr.cli.parser import main

sys.exit(main())
