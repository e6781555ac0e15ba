"""boonb: Jupyter as an agent orchestrator."""

__version__ = "0.1.0"
