"""boonb: Jupyter as an agent orchestrator."""

__version__ = "0.1.0"


def load_ipython_extension(shell: object) -> None:
    """``%load_ext boonb``: register the magics and open the project database."""
    from boonb.magics import register
    from boonb.runtime import get_runtime
    from boonb.store import StoreError

    register(shell)  # type: ignore[arg-type]
    try:
        get_runtime().store.writer.flush()
    except StoreError as exc:
        # A short message, not a traceback: the user fixes the path with %boonb config.
        import sys

        print(f"boonb: the database cannot be used: {exc}", file=sys.stderr)
