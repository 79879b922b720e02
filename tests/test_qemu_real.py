"""One small real migration between two local QEMUs (needs qemu-system-x86_64; see
``.ci/install-qemu.sh``).  Skipped, with the reason, where QEMU or the guest cannot be had."""

from __future__ import annotations

import shutil

import pytest

from fphint_kernels.errors import FphintError
from fphint_kernels.io import load_dataset, save_dataset
from fphint_kernels.qemu import measurement
from fphint_kernels.qemu.process import QEMU
from fphint_kernels.qemu.runconfig import RunConfig
from fphint_kernels.qemu.runner import detect_accelerator, migrate_once

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def guest():
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} not installed (run .ci/install-qemu.sh)")
    from fphint_kernels.qemu.prepare import prepare

    try:
        return prepare()
    except FphintError as exc:
        pytest.skip(f"cannot prepare the guest: {exc}")


def test_real_idle_migration_with_hinting(guest, tmp_path):
    cfg = RunConfig(
        memory=512 << 20,
        mode="idle",
        hint=True,
        init_on_alloc=False,
        downtime_limit_ms=300,
        max_time_s=60,
        settle_s=1.0,
    )
    res = migrate_once(cfg, guest=guest, accel=detect_accelerator(guest), keep_logs=tmp_path)
    assert res.status == "completed", res.failure
    ds = measurement.to_dataset(res)
    path = save_dataset(ds, tmp_path / "run.nc")
    back = load_dataset(path)
    pages = cfg.memory // 4096
    sent = int(back["ram-duplicate"]) + int(back["ram-normal"])
    assert back.attrs["guest_free_page_hint_negotiated"] == 1, back.attrs["guest_features"]
    assert back.attrs["guest_init_on_alloc_reported"] == 0
    # the guest hinted and QEMU applied the hints (trace event of the source's iothread).  How
    # many pages that saves is the outcome of a race between the guest's hint worker and the
    # sender, which repeats of one configuration win by 3-20x different margins on this host
    # (data/measurements/tcg-quiet), so the saving itself is not asserted here
    assert back.sizes.get("hint", 0) > 0, "no hinted block reached QEMU"
    assert 0 < sent <= 1.05 * pages, sent
    assert int(back["ram-transferred"]) >= 4096 * int(back["ram-normal"])
    assert 0 < float(back["downtime"]) <= float(back["total-time"])
    assert int(back["dirty-sync-count"]) >= 2
    assert back.sizes["time"] >= 1 and str(back["qmp-status"].values[-1]) == "completed"
    # completed is not enough: the destination guest must be alive and clean
    assert res.health.ok, res.health.evidence
    assert back.attrs["guest_ok"] == 1 and back.attrs["destination_run_state"] == "running"
