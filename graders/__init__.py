"""The grading machinery, by role.

    kinds/      one module per check kind: its `judge()` (parent side) beside the measuring helpers
                harnesses call (child side); the registry `KINDS`, `check_kind()` and `CheckKind`
    sandbox/    running a submission: the parent's runner and fork server, the harness process, the
                student's confined process, and the wire between them
    batch/      grading a class: discover, run, gradebook, export
    course/     the instructor's course: exercise specs, folders, bugs as patches, handouts, release,
                validation
    mutation/   mutation analysis

At the top, what harnesses and the judge share: `api` (calls into the submission), `data`, `layers`,
`verdict`, `judge` (measurements + expectations -> a report), `assess` (one submission, measured and
judged) and `plots`. The parent never imports torch.
"""
