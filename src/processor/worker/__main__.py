"""``python -m processor.worker``: how the daemon starts a worker process."""

import sys

from processor.worker.main import main

sys.exit(main())
