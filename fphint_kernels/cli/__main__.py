"""``python -m fphint_kernels.cli``: the ``fphint`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
