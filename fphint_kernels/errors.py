"""Exceptions raised for bad user input; the CLI turns them into one-line messages."""


class FphintError(ValueError):
    """Base class of every error caused by user input (bad scenario, unknown profile...)."""


class ScenarioError(FphintError):
    """A scenario parameter is invalid."""


class SimulationCancelled(Exception):
    """A run was cancelled (``simulate(..., cancel=event)`` saw the event set between chunks)."""


class InvariantError(RuntimeError):
    """A run broke one of the model's own invariants (a bug of the model, never of the input)."""
