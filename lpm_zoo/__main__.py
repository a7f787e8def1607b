"""`python -m lpm_zoo` is the `lpm` command."""

import sys

from lpm_zoo.cli import main

sys.exit(main())
