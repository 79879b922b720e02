"""The explorer's controls: one ipywidget per :class:`~fphint_kernels.Scenario` field.

:class:`Controls` builds the widgets, snaps initial values to the options offered, and turns the
current values into the pair of scenarios (legacy and hinting) the explorer simulates.  Nothing
here simulates or draws.
"""

from __future__ import annotations

import ipywidgets as w

from ..config import (
    HINT_RELEASE,
    HINTING,
    PAGE_POISON,
    Scenario,
    available_guests,
    available_profiles,
    available_workloads,
)
from ..units import parse_duration_ms, parse_size
from ._shared import format_ms

GIB = 1 << 30
#: guest sizes offered, 1 GiB to 1 TiB in powers of two (a log-scale slider)
MEMORY_OPTIONS = tuple(
    (f"{g} GiB" if g < 1024 else "1 TiB", g * GIB) for g in (1 << k for k in range(11))
)
#: QEMU downtime-limit values offered (ms); 300 ms is QEMU's default
DOWNTIME_OPTIONS = (30, 50, 100, 200, 300, 400, 500, 1000, 2000, 5000)
#: QEMU max-bandwidth values offered (bytes/s); 32 MiB/s is QEMU's default
BANDWIDTH_OPTIONS = (
    ("32 MiB/s", 32 << 20),
    ("128 MiB/s", 128 << 20),
    ("512 MiB/s", 512 << 20),
    ("1 GiB/s", 1 << 30),
    ("4 GiB/s", 4 << 30),
    ("10 GiB/s", 10 << 30),
    ("100 GiB/s", 100 << 30),
)
RELEASE_LABELS = {
    "done": "Linux 4.20: held until DONE",
    "shrinker": "Linux 5.7+: shrinker may take back",
    "after-pass": "v36 patch: freed after each pass",
}
HINTING_LABELS = {
    "fph": "fph: free page hinting (4.20)",
    "report-in-place": "report in place (series <= v34)",
    "reporting": "free page reporting (5.7)",
    "oracle": "oracle: every free page skipped",
}


def closest(options, value):
    """The option value nearest to ``value`` (options: values or (label, value) pairs).

    Examples
    --------
    >>> closest(DOWNTIME_OPTIONS, 350.0), closest(BANDWIDTH_OPTIONS, 3 << 30) == 4 << 30
    (300, True)
    """
    vals = [o[1] if isinstance(o, tuple) else o for o in options]
    return min(vals, key=lambda v: abs(v - value))


class Controls:
    """The widgets of every scenario field, and the *show run* switch.

    Parameters are the initial values (see :class:`fphint_kernels.explorer.Explorer`); sizes,
    bandwidths and durations are snapped to the options offered.

    Attributes
    ----------
    widgets : dict
        Field name (``memory``, ``workload``, ... ``seed``, and ``hint`` for *show run*) ->
        widget.  Each is also an attribute (``controls.memory``).
    box : ipywidgets.VBox
        The controls laid out in groups (guest, host and QEMU, display).
    """

    def __init__(
        self,
        memory="8G",
        workload="idle",
        intensity=1.0,
        downtime_limit="2s",
        max_bandwidth="100G",
        hint=True,
        init_on_alloc=False,
        page_poison="off",
        hint_release="done",
        auto_converge=False,
        profile="v36",
        guest="testbed-2018",
        seed=0,
        hinting="fph",
    ):
        style = {"description_width": "9em"}
        wide = w.Layout(width="100%")
        self.memory = w.SelectionSlider(
            options=MEMORY_OPTIONS,
            value=closest(MEMORY_OPTIONS, parse_size(memory, what="memory", default_unit="M")),
            description="guest RAM",
            continuous_update=False,
            style=style,
            layout=wide,
        )
        self.workload = w.Dropdown(
            options=available_workloads(),
            value=workload,
            description="workload",
            style=style,
            layout=wide,
        )
        self.intensity = w.FloatLogSlider(
            value=float(intensity),
            base=2,
            min=-2,
            max=2,
            step=0.25,
            description="intensity",
            continuous_update=False,
            style=style,
            layout=wide,
            readout_format=".2f",
        )
        dl_ms = parse_duration_ms(downtime_limit, what="downtime-limit")
        self.downtime_limit = w.SelectionSlider(
            options=[(format_ms(v), float(v)) for v in DOWNTIME_OPTIONS],
            value=float(closest(DOWNTIME_OPTIONS, dl_ms)),
            description="downtime limit",
            continuous_update=False,
            style=style,
            layout=wide,
        )
        self.max_bandwidth = w.SelectionSlider(
            options=BANDWIDTH_OPTIONS,
            value=closest(BANDWIDTH_OPTIONS, parse_size(max_bandwidth, what="max-bandwidth")),
            description="max bandwidth",
            continuous_update=False,
            style=style,
            layout=wide,
        )
        self.hint = w.ToggleButtons(
            options=[("hinting", True), ("legacy", False)],
            value=bool(hint),
            description="show run",
            style={"description_width": "9em", "button_width": "7em"},
            tooltips=["free page hinting on", "no hinting (legacy pre-copy)"],
        )
        self.hinting = w.Dropdown(
            options=[(HINTING_LABELS.get(k, k), k) for k in HINTING if k != "none"],
            value=hinting,
            description="hinting design",
            style=style,
            layout=wide,
        )
        self.init_on_alloc = w.Checkbox(
            value=bool(init_on_alloc),
            description="init_on_alloc=1 (zero every allocation)",
            indent=False,
            layout=wide,
        )
        self.page_poison = w.Dropdown(
            options=list(PAGE_POISON),
            value=page_poison,
            description="page poison",
            style=style,
            layout=wide,
        )
        self.hint_release = w.Dropdown(
            options=[(RELEASE_LABELS.get(k, k), k) for k in HINT_RELEASE],
            value=hint_release,
            description="hint release",
            style=style,
            layout=wide,
        )
        self.auto_converge = w.Checkbox(
            value=bool(auto_converge), description="auto-converge", indent=False, layout=wide
        )
        self.profile = w.Dropdown(
            options=available_profiles(),
            value=profile,
            description="host profile",
            style=style,
            layout=wide,
        )
        self.guest = w.Dropdown(
            options=available_guests(),
            value=guest,
            description="guest kind",
            style=style,
            layout=wide,
        )
        self.seed = w.BoundedIntText(
            value=int(seed), min=0, max=2**31 - 1, description="seed", style=style, layout=wide
        )
        self.widgets = {
            "memory": self.memory,
            "workload": self.workload,
            "intensity": self.intensity,
            "downtime_limit": self.downtime_limit,
            "max_bandwidth": self.max_bandwidth,
            "hint": self.hint,
            "hinting": self.hinting,
            "init_on_alloc": self.init_on_alloc,
            "page_poison": self.page_poison,
            "hint_release": self.hint_release,
            "auto_converge": self.auto_converge,
            "profile": self.profile,
            "guest": self.guest,
            "seed": self.seed,
        }
        for name, widget in self.widgets.items():
            widget.add_class(f"fphint-{name.replace('_', '-')}")
        guest = [self.guest, self.memory, self.workload, self.intensity, self.init_on_alloc]
        guest += [self.page_poison, self.hint_release]
        guest += [self.hinting]
        host = [self.profile, self.downtime_limit, self.max_bandwidth, self.auto_converge]
        host += [self.seed]
        self.box = w.VBox(
            [
                w.HTML("<b>guest</b>"),
                *guest,
                w.HTML("<b>host and QEMU</b>"),
                *host,
                w.HTML("<b>display</b>"),
                self.hint,
            ]
        )

    def observe(self, callback) -> None:
        """Call ``callback(change)`` whenever any control's value changes."""
        for widget in self.widgets.values():
            widget.observe(callback, names="value")

    @property
    def shown(self) -> str:
        """The run the race and the page map describe: ``"hinting"`` or ``"legacy"``."""
        return "hinting" if self.hint.value else "legacy"

    def scenario_kwargs(self) -> dict:
        """The :class:`fphint_kernels.Scenario` arguments the controls describe (hint as shown)."""
        return {
            "memory": f"{int(self.memory.value) >> 20}M",
            "workload": self.workload.value,
            "workload_options": {"intensity": float(self.intensity.value)},
            "downtime_limit": float(self.downtime_limit.value),
            "max_bandwidth": float(self.max_bandwidth.value),
            "hint": bool(self.hint.value),
            "init_on_alloc": bool(self.init_on_alloc.value),
            "page_poison": self.page_poison.value,
            "hint_release": self.hint_release.value,
            "auto_converge": bool(self.auto_converge.value),
            "profile": self.profile.value,
            "guest": self.guest.value,
            "seed": int(self.seed.value),
        }

    def scenarios(self) -> tuple[Scenario, Scenario]:
        """The (legacy, hinting) pair of scenarios: without hinting and with the chosen design;
        raises ``ScenarioError`` if invalid."""
        kw = self.scenario_kwargs()
        kw.pop("hint")
        return Scenario(**kw, hinting="none"), Scenario(**kw, hinting=self.hinting.value)
