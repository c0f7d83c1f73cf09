"""dldiy: auto-grading and bug-hunting for the Deep Learning DIY course.

The command line lives in `dldiy.cli` (one module per command), the grading machinery and the check
kinds in `dldiy.graders`, the exercise specs in `dldiy.exercises`. Importing this package stays
cheap (no torch): the parent process that judges never imports torch.
"""

__version__ = "0.1.0"


def check(exercise_id: str, *only: str, path=None, plots: bool = True, autograde: bool = False):
    """Check EXERCISE (optionally only the named checks) on this notebook's code, or on `path`,
    and show the result as a table with pictures: `from dldiy import check; check("exercise-1")`.
    `autograde=True` is for nbgrader's autograder cell: while `nbgrader autograde` runs a notebook,
    only that call runs checks (the others return at once)."""
    from .incheck import check as _check  # lazy: importing dldiy stays cheap

    return _check(exercise_id, *only, path=path, plots=plots, autograde=autograde)
