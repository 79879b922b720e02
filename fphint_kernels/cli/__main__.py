"""``python -m fphint_kernels.cli``: the ``fphint`` command."""

import sys

from . import main

sys.exit(main())
