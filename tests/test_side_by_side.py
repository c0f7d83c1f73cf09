"""`dldiy check` shares a submission's seeds out among students' processes run side by side
(graders/assess.py's split_by_seed, one process per CPU, at most 4): the same measurements as one
process, every task run exactly once, a seed's tasks in one process, what the submission prints at
import shown once, and grading with hidden seeds never split."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import REPO

from dldiy.graders.assess import _progress_hooks, assessment, split_by_seed
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.sandbox.forkserver import ForkServer
from dldiy.graders.sandbox.runner import Task

task_lists = st.lists(st.tuples(st.sampled_from("abcdef"), st.sampled_from([1, 42, 2019, 3, 7, 11, 23])),
                      unique=True).map(lambda pairs: [Task(c, s) for c, s in pairs])


@given(task_lists, st.integers(min_value=1, max_value=6))
@settings(max_examples=300, deadline=None)
def test_split_by_seed_runs_every_task_once_a_seed_in_one_group_in_the_tasks_order(tasks, processes):
    groups = split_by_seed(tasks, processes)
    assert 1 <= len(groups) <= max(1, processes)
    assert Counter(t for g in groups for t in g) == Counter(tasks)  # each exactly once
    for g in groups:
        assert g == [t for t in tasks if t in g]  # in the order given
    owner = {t.seed: k for k, g in enumerate(groups) for t in g}
    assert all(owner[t.seed] == k for k, g in enumerate(groups) for t in g)  # a seed in one group
    if tasks:
        assert tasks[0] in groups[0]
    if len({t.seed for t in tasks}) >= 2 and processes >= 2:
        assert len(groups) >= 2 and all(groups)  # shared out, no empty group


def test_progress_counts_every_groups_results_and_names_a_task_still_running():
    groups = [[Task("a", 1), Task("b", 1)], [Task("a", 7)]]
    calls = []
    first, second = _progress_hooks(groups, lambda done, total, running: calls.append((done, total, running)))
    second(Task("a", 7))  # the second group is done; the first still runs its first task
    first(Task("a", 1))
    first(Task("b", 1))
    assert calls == [(1, 3, Task("a", 1)), (2, 3, Task("b", 1)), (3, 3, None)]


PRINTS_AT_IMPORT = "import os\nprint('loaded', flush=True)\nprint('this process', os.urandom(6).hex(), flush=True)\n"


def _printing_reference(tmp_path: Path) -> Path:
    """exercise-1's reference, printing a fixed line and a line of its own process's when it loads."""
    folder = tmp_path / "sub"
    shutil.copytree(REPO / "reference" / "exercise-1", folder)
    entry = folder / "logreg.py"
    entry.write_text(PRINTS_AT_IMPORT + entry.read_text())
    return folder


def test_side_by_side_measures_as_one_process_and_shows_an_import_print_once(tmp_path: Path):
    """exercise-1's reference at its public and check seeds, in 1 and in 2 processes: the same
    measurement for every (check, seed); two processes really ran (each printed its own random line);
    the line both began with alike appears once."""
    ex = load_exercise("exercise-1")
    folder = _printing_reference(tmp_path)
    checks = [ex.check(c) for c in ("gradcheck", "first-loss", "convergence")]
    with ForkServer(warm=False) as server:
        one = assessment(ex, folder, checks=checks, server=server, extra_seeds=ex.check_seeds, processes=1)
        two = assessment(ex, folder, checks=checks, server=server, extra_seeds=ex.check_seeds, processes=2)
    assert set(one.outcome.results) == set(two.outcome.results)
    assert len(one.outcome.results) == 3 * len({*ex.seeds, *ex.check_seeds})
    assert one.outcome.results == two.outcome.results  # seeded: the very same numbers
    assert [r.status for r in two.report.checks] == ["pass"] * 3
    assert one.outcome.output.count("loaded") == 1
    assert two.outcome.output.count("loaded") == 1  # the same line from both: shown once
    assert two.outcome.output.count("this process") == 2  # two processes loaded it


def test_grading_with_hidden_seeds_is_never_split(tmp_path: Path):
    """Hidden seeds' tasks must run after every visible one in one process (judge.tasks_for): grade's
    assessment stays in one process whatever `processes` says."""
    ex = load_exercise("exercise-1")
    with ForkServer(warm=False) as server:
        graded = assessment(ex, _printing_reference(tmp_path), checks=[ex.check("first-loss")],
                            server=server, hidden_seeds=(7, 123), public_seeds=1, processes=4)
    assert set(graded.outcome.results) == {("first-loss", 1), ("first-loss", 7), ("first-loss", 123)}
    assert graded.outcome.output.count("this process") == 1  # one process loaded it
