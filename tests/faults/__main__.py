"""``python -m tests.faults``: run the fault suite (see `run`)."""

import sys

from .run import main

sys.exit(main())
