"""``python -m spoolscribe``: the ``spool`` command."""

import sys

from spoolscribe.main import main

sys.exit(main())
