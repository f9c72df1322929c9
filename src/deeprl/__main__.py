"""`python -m deeprl ...` is the `deeprl` command."""

import sys

from deeprl.cli import main

sys.exit(main())
