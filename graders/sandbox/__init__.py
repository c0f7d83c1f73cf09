"""Running a submission: the parent's side (runner, fork server), the harness process (child,
remote), the student's confined process (student, confine, mounts, forbid) and the wire between
them (wire, endpoint, bridge)."""
