"""`python -m labdeck.backend.cli`: how runners, queues and tests start the command line."""

import sys

from . import main

sys.exit(main())
