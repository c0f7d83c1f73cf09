"""dldiy: auto-grading and bug-hunting for the Deep Learning DIY course.

The command line lives in `dldiy.cli` (one module per command), the grading machinery and the check
kinds in `dldiy.graders`, the exercise specs in `dldiy.exercises`. Importing this package stays
cheap (no torch): the parent process that judges never imports torch.
"""

__version__ = "0.1.0"
