import os

import pytest

JIT_DISABLED = os.environ.get("NUMBA_DISABLE_JIT", "0") == "1"


def pytest_collection_modifyitems(config, items):
    # The coverage pass runs every kernel as plain Python: long simulations are skipped there.
    if JIT_DISABLED:
        skip = pytest.mark.skip(reason="slow with NUMBA_DISABLE_JIT=1 (covered by the JIT pass)")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)
