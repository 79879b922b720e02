"""Exceptions raised for bad user input; the CLI turns them into one-line messages."""


class FphintError(ValueError):
    """Base class of every error caused by user input (bad scenario, unknown profile...)."""


class ScenarioError(FphintError):
    """A scenario parameter is invalid."""
