"""The fitting loop shared by every calibration of a host profile.

Both calibrations of the package fit a few host-profile parameters so that simulations match
measured or published numbers: :func:`fphint_kernels.calibrate.fit_profile` (``fphint
calibrate``, published migration times of the thread) and
:func:`fphint_kernels.qemu.compare.fit_host_profile` (``fphint qemu fit``, migrations measured
on this host).  They differ only in their residuals; :func:`fit_log_params` is the loop both
call.

* Search space: the logarithm of each free parameter (costs span orders of magnitude), clipped
  to the documented :data:`BOUNDS`.
* Residuals: a vector computed by the caller's model for one set of parameter values (for
  example ``log(simulated / target)`` per target).  Evaluations are cached by parameter values,
  so a point the optimiser asks for again costs nothing (the model must be deterministic: the
  simulations use fixed seeds, i.e. common random numbers).
* Optimisers: :func:`scipy.optimize.minimize` with Nelder-Mead on the sum of squared residuals
  (initial simplex: a 20 % step in each parameter, inside the bounds; robust to the small steps
  of a discrete simulation), or :func:`scipy.optimize.least_squares` (trust region reflective,
  finite differences with a relative step of 5 %).

References
----------
.. [1] J. A. Nelder, R. Mead, "A simplex method for function minimization", The Computer Journal
   7(4), 1965, doi:10.1093/comjnl/7.4.308.
.. [2] M. A. Branch, T. F. Coleman, Y. Li, "A subspace, interior, and conjugate gradient method
   for large-scale bound-constrained minimization problems", SIAM J. Sci. Comput. 21(1), 1999
   (the ``trf`` method of ``least_squares``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .errors import FphintError

__all__ = ["BOUNDS", "METHODS", "LogFit", "fit_log_params"]

#: Bounds of every host-profile parameter that may be freed (physically plausible ranges for a
#: 2016 Xeon and for this host).
BOUNDS = {
    "zero_page_ns": (50.0, 5000.0),
    "normal_page_ns": (100.0, 20000.0),
    "link_bytes_per_s": (1e8, 1e11),
    "scan_word_ns": (0.1, 50.0),
    "sync_ns_per_page": (0.05, 50.0),
    "setup_fixed_ms": (0.1, 500.0),
    "setup_ns_per_page": (0.05, 100.0),
    "switchover_fixed_ms": (0.1, 500.0),
    "hint_block_us": (1.0, 2000.0),
    "hint_start_ms": (0.01, 100.0),
    "hint_host_latency_ms": (0.001, 10.0),
    "zero_fill_ns_per_page": (10.0, 5000.0),
    "write_fault_ns": (100.0, 50000.0),
    "cpu_speed": (0.1, 10.0),
    "dst_zero_page_ns": (1.0, 5000.0),
    "dst_normal_page_ns": (50.0, 50000.0),
    "first_touch_us": (1.0, 20000.0),
    "hint_apply_us": (0.1, 100.0),
    "bitmap_lock_ns": (1.0, 5000.0),
    "alloc_low_first": (0.0, 1.0),
}

#: The optimisers of :func:`fit_log_params`.
METHODS = ("nelder-mead", "least-squares")

#: Nelder-Mead's initial simplex step in log space: a factor 1.2 in each parameter.
_SIMPLEX_STEP = 0.18232155679395462  # log(1.2)


@dataclass
class LogFit:
    """Outcome of :func:`fit_log_params`.

    Attributes
    ----------
    params : dict
        Fitted value of every free parameter (inside its bounds).
    start : dict
        The starting values actually used (clipped to the bounds).
    residuals : numpy.ndarray
        The model's residuals at ``params``.
    extra : object
        What the model returned beside those residuals (e.g. the simulated values).
    nfev : int
        Evaluations the optimiser reports.
    calls : int
        Residual vectors asked for, cached ones included.
    success : bool
    message : str
    wall_time_s : float
    history : list of dict
        One record per new evaluation: ``params`` and ``objective`` (sum of squared residuals).
    """

    params: dict
    start: dict
    residuals: np.ndarray
    extra: object
    nfev: int
    calls: int
    success: bool
    message: str
    wall_time_s: float
    history: list = field(default_factory=list)

    @property
    def objective(self) -> float:
        """Sum of squared residuals at the optimum."""
        return float(np.sum(self.residuals**2))


def fit_log_params(
    model: Callable[[dict], tuple],
    start: Mapping[str, float],
    *,
    method: str = "nelder-mead",
    max_evals: int = 150,
    bounds: Mapping[str, tuple] | None = None,
    on_eval: Callable[[int, np.ndarray, bool], None] | None = None,
) -> LogFit:
    """Fit the parameters of ``start`` in log space within their bounds.

    Parameters
    ----------
    model : callable
        ``model(params) -> (residuals, extra)``: ``params`` maps every free parameter to a
        value; ``residuals`` is a 1-d array (the loop minimises the sum of its squares) and
        ``extra`` anything the caller wants back for the best point.
    start : mapping
        Free parameters and their starting values (clipped to the bounds).
    method : {"nelder-mead", "least-squares"}
    max_evals : int
        Budget of evaluations (``maxfev`` of Nelder-Mead, ``max_nfev`` of least squares).
    bounds : mapping, optional
        ``name -> (low, high)`` (default :data:`BOUNDS`).
    on_eval : callable, optional
        Called after every request of residuals as ``on_eval(calls, residuals, new)``, where
        ``new`` is False when the point came from the cache (progress bars, logs).

    Returns
    -------
    LogFit

    Examples
    --------
    >>> fit = fit_log_params(lambda p: (np.log([p["cpu_speed"] / 2.0]), None),
    ...                      {"cpu_speed": 1.0}, method="least-squares", max_evals=50)
    >>> print(f"{fit.params['cpu_speed']:.4f}")
    2.0000
    """
    from scipy import optimize

    bounds = BOUNDS if bounds is None else bounds
    free = tuple(start)
    if not free:
        raise FphintError("a fit needs at least one free parameter")
    unknown = [k for k in free if k not in bounds]
    if unknown:
        raise FphintError(f"no bounds for {', '.join(map(repr, unknown))}")
    if method not in METHODS:
        raise FphintError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if max_evals < 1:
        raise FphintError("max-evals must be >= 1")
    lo = np.log([bounds[k][0] for k in free])
    hi = np.log([bounds[k][1] for k in free])
    x0 = np.clip(np.log([max(start[k], 1e-12) for k in free]), lo, hi)
    cache: dict = {}
    history: list = []
    calls = [0]

    def evaluate(x):
        key = tuple(np.round(x, 12))
        new = key not in cache
        if new:
            x = np.clip(x, lo, hi)
            params = dict(zip(free, np.exp(x), strict=True))
            r, extra = model(params)
            r = np.asarray(r, dtype=float)
            cache[key] = (r, extra)
            history.append({"params": dict(zip(free, np.exp(x).tolist(), strict=True)),
                            "objective": float(np.sum(r**2))})  # fmt: skip
        calls[0] += 1
        if on_eval is not None:
            on_eval(calls[0], cache[key][0], new)
        return cache[key]

    t0 = time.perf_counter()
    if method == "nelder-mead":
        res = optimize.minimize(
            lambda x: float(np.sum(evaluate(x)[0] ** 2)), x0, method="Nelder-Mead",
            bounds=list(zip(lo, hi, strict=True)),
            options={"maxfev": max_evals, "xatol": 0.01, "fatol": 1e-4,
                     "initial_simplex": _simplex(x0, lo, hi)},
        )  # fmt: skip
    else:
        res = optimize.least_squares(
            lambda x: evaluate(x)[0], x0, bounds=(lo, hi), method="trf", diff_step=0.05,
            max_nfev=max_evals, x_scale=1.0,
        )  # fmt: skip
    x_best = np.clip(res.x, lo, hi)
    r, extra = evaluate(x_best)
    return LogFit(
        params=dict(zip(free, np.exp(x_best), strict=True)),
        start=dict(zip(free, np.exp(x0).tolist(), strict=True)),
        residuals=r,
        extra=extra,
        nfev=int(res.nfev),
        calls=calls[0],
        success=bool(res.success),
        message=str(res.message),
        wall_time_s=time.perf_counter() - t0,
        history=history,
    )


def _simplex(x0, lo, hi, step=_SIMPLEX_STEP):
    """Nelder-Mead's first simplex: ``x0`` and one step along each axis (back if out of bounds).

    Examples
    --------
    >>> _simplex(np.array([0.0, 1.0]), np.array([-1.0, -1.0]), np.array([1.0, 1.0]), 0.5)
    array([[0. , 1. ],
           [0.5, 1. ],
           [0. , 0.5]])
    """
    pts = [x0]
    for i in range(len(x0)):
        p = x0.copy()
        p[i] = x0[i] + step if x0[i] + step <= hi[i] else x0[i] - step
        pts.append(p)
    return np.array(pts)
