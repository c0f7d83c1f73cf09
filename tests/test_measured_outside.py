"""Points come from measurements taken outside the student's process (issue 13, "every point is
earned by the work"): attacks that forged results when the probes ran beside student code earn
nothing now, and the protocol between the harness and the student's process holds against a peer
that breaks it. Real children, real sandbox, exercise-1 with hidden seeds as `grade` uses them.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest

from conftest import REPO
from dldiy.graders.assess import assess, measure_reference
from dldiy.graders.course.exercise import load_exercise_dir
from dldiy.graders.sandbox.forkserver import ForkServer
from dldiy.graders.sandbox.confine import GiB, Limits

REFERENCE = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
FAST = Limits(startup_s=20, cpu_s=30, memory_bytes=2 * GiB)
HIDDEN = (7, 1234)
CHECKS = ("gradcheck", "first-loss", "convergence", "stability")


@pytest.fixture(scope="module")
def exercise(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ex") / "exercise-1"
    shutil.copytree(REPO / "exercises" / "exercise-1", folder)
    spec = (folder / "spec.toml").read_text().replace("seeds = [1, 42, 2019]", "seeds = [1]")
    (folder / "spec.toml").write_text(spec.replace("timeout = 20", "timeout = 5"))
    return load_exercise_dir(folder)


@pytest.fixture(scope="module")
def server():
    with ForkServer(warm=False) as s:
        yield s


@pytest.fixture(scope="module")
def expected(exercise, server):
    checks = [exercise.check(c) for c in CHECKS]
    values, _ = measure_reference(exercise, REPO / "reference" / "exercise-1", seeds=(1, *HIDDEN), checks=checks,
                                  limits=FAST, server=server, hidden=HIDDEN)
    return values


@pytest.fixture
def grade(exercise, server, expected, tmp_path):
    def run(code: str, checks=CHECKS):
        folder = tmp_path / "sub"
        folder.mkdir(exist_ok=True)
        (folder / "logreg.py").write_text(textwrap.dedent(code))
        report = assess(exercise, folder, checks=[exercise.check(c) for c in checks], hidden_seeds=HIDDEN,
                        expected=expected, limits=FAST, server=server)
        return report, {c.name: c for c in report.checks}
    return run


def test_the_reference_gets_every_point_at_hidden_seeds(grade):
    report, checks = grade(REFERENCE)
    assert all(c.status == "pass" for c in report.checks), [(c.name, c.message) for c in report.checks]


def test_forged_result_lines_and_a_patched_harness_earn_nothing(grade):
    # What used to score 7/10 with no code: write result lines to every inherited descriptor and
    # replace the harness's probes found in sys.modules.
    report, checks = grade("""
        import json, os, sys
        for fd in range(3, 64):
            for check in ("gradcheck", "first-loss", "convergence", "stability"):
                for seed in (1, 7, 1234):
                    line = json.dumps({"type": "result", "check": check, "seed": seed,
                                       "measurement": {"accuracy": 1.0, "blocks": [], "cases": []}}) + "\\n"
                    try:
                        os.write(fd, line.encode())
                    except OSError:
                        pass
        patched = 0
        for name, module in list(sys.modules.items()):
            if "harness" in name or name.startswith("dldiy"):
                for attr in ("gradcheck", "first_loss", "convergence", "stability", "judge"):
                    if hasattr(module, attr):
                        setattr(module, attr, lambda *a, **k: {"accuracy": 1.0, "blocks": [], "cases": []})
                        patched += 1
    """)
    assert report.score == 0, [(c.name, c.status, c.message) for c in report.checks]


def test_a_lying_tensor_subclass_is_judged_by_its_values(grade):
    # float(), .item() and .tolist() tell the true loss; the tensor itself holds zeros.
    report, checks = grade(REFERENCE + textwrap.dedent("""
        class Liar(torch.Tensor):
            def __float__(self):
                return float(self.truth)
            def item(self):
                return float(self.truth)
            def tolist(self):
                return float(self.truth)

        _loss = loss
        def loss(X, y, w):
            truth = _loss(X, y, w)
            fake = torch.zeros((), dtype=X.dtype).as_subclass(Liar)
            fake.truth = truth
            return fake

        def train(X, y, w0, lr, steps):
            w = w0.clone()
            losses = []
            for _ in range(steps):
                losses.append(loss(X, y, w))
                w = w - lr * gradient(X, y, w)
            return w, losses
    """), checks=("gradcheck", "first-loss"))
    # The values that crossed are zeros, whatever float() says in the student's process: first-loss charges
    # the loss; gradcheck measures gradient() alone (the spec's loss) and only notes that loss() differs.
    assert checks["first-loss"].status in ("fail", "error"), checks["first-loss"].message
    assert checks["gradcheck"].status == "pass" and "your loss() differs" in checks["gradcheck"].message, \
        checks["gradcheck"].message


def test_replacing_the_data_generator_in_the_students_process_changes_nothing(grade):
    report, checks = grade(REFERENCE + textwrap.dedent("""
        import sys
        for name, module in list(sys.modules.items()):
            if name.endswith("graders.data"):
                module.gaussian_blobs = lambda *a, **k: (__import__("numpy").zeros((200, 2)),
                                                         __import__("numpy").zeros(200, dtype=int))
        def train(X, y, w0, lr, steps):
            return torch.zeros_like(w0), [0.0] * steps   # 'converged' on the data it hoped for
    """), checks=("convergence",))
    assert checks["convergence"].status == "fail"


def test_the_students_process_holds_no_descriptor_but_its_own(exercise, server, tmp_path):
    code = REFERENCE + textwrap.dedent("""
        import os
        OPEN = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        def loss(X, y, w):
            return torch.tensor(float(len(OPEN)), dtype=X.dtype)
    """)
    from dldiy.graders.sandbox.child import StudentProcess
    from dldiy.graders.sandbox.remote import RemoteSubmission
    import torch

    (tmp_path / "logreg.py").write_text(code)
    student = StudentProcess({"entry": str(tmp_path / "logreg.py"), "sandbox": None, "forbid": {}}, 20)
    try:
        sub = RemoteSubmission(student.endpoint, exercise)
        opened = float(sub.get("loss")(torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2), torch.zeros(2)))
    finally:
        student.kill()
    # stdin, stdout, stderr, the socket, the stack-dump pipe, and listdir's own descriptor
    assert opened <= 6


def test_a_peer_that_breaks_the_protocol_is_one_error_row(grade):
    report, checks = grade(REFERENCE + textwrap.dedent("""
        import os, socket, stat
        _gradient = gradient
        def gradient(X, y, w):
            if X.shape[0] != 20:  # gradcheck's size: first-loss (n = 100) is unharmed
                return _gradient(X, y, w)
            for fd in range(3, 16):
                try:
                    if stat.S_ISSOCK(os.fstat(fd).st_mode):
                        os.write(fd, b"\\xff\\xff\\xff\\xff" + b"x" * 64)   # a 4 GiB header, then garbage
                except OSError:
                    pass
            import time
            time.sleep(30)
    """), checks=("gradcheck", "first-loss"))
    assert checks["gradcheck"].status == "error"
    assert "protocol" in checks["gradcheck"].message or "header" in checks["gradcheck"].message
    assert checks["first-loss"].status == "pass"  # a fresh student process took over


def test_forbidden_functions_are_caught_statically_and_at_run_time(exercise, server, expected, tmp_path):
    ex = exercise  # the spec forbids torch.autograd.grad in gradient() ("by hand")
    assert "torch.autograd.grad" in ex.api["gradient"].forbid
    by_autograd = REFERENCE + textwrap.dedent("""
        def gradient(X, y, w):
            w = w.detach().clone().requires_grad_(True)
            return torch.autograd.grad(loss(X, y, w), w)[0]
    """)
    # in a module of the submission's own, which the static scan does not follow: the run-time guard's
    hidden = REFERENCE + textwrap.dedent("""
        from helpers import grad_of
        def gradient(X, y, w):
            w = w.detach().clone().requires_grad_(True)
            return grad_of(loss(X, y, w), w)
    """)
    helper = "import torch\n\n\ndef grad_of(L, w):\n    return torch.autograd.grad(L, w)[0]\n"
    for code, where in ((by_autograd, "logreg.py line"), (hidden, "helpers.py line 5")):  # each named with its line
        folder = tmp_path / f"s{len(code)}"
        folder.mkdir()
        (folder / "logreg.py").write_text(code)
        (folder / "helpers.py").write_text(helper)
        report = assess(ex, folder, checks=[ex.check("gradcheck")], expected=expected, limits=FAST, server=server)
        (result,) = report.checks
        assert result.status == "fail", result.message  # a rule broken, in words: never points
        assert "torch.autograd.grad" in result.message and where in result.message, result.message


def test_a_hang_in_a_call_says_where_and_shortens_the_later_checks(grade):
    report, checks = grade(REFERENCE + textwrap.dedent("""
        def gradient(X, y, w):
            while True:
                pass
    """), checks=("gradcheck", "stability"))
    assert checks["gradcheck"].status == "error"
    assert "logreg.py line" in checks["gradcheck"].message and "in gradient" in checks["gradcheck"].message


def test_the_students_process_never_holds_the_hidden_seeds(exercise, server, tmp_path):
    """The tasks (and their hidden seeds) reach the harness only after the student's process was
    forked; a replacement after a timeout is a fresh interpreter. A submission that searches its own
    memory for the seed finds nothing, in the first process and in the replacement."""
    secret = 987_001
    code = REFERENCE + textwrap.dedent(f"""
        import gc
        REVERSED = "{str(secret)[::-1]}"   # the seed, spelled so that no container of ours holds it

        def _seen():
            for o in gc.get_objects():
                for r in [o, *gc.get_referents(o)]:
                    if isinstance(r, (dict, list, tuple, set)):
                        values = r.values() if isinstance(r, dict) else r
                        if any(type(v) is int and v == int(REVERSED[::-1]) for v in values):
                            return True
                    if isinstance(r, (str, bytes)):
                        text = r if isinstance(r, str) else r.decode("latin-1")
                        if REVERSED[::-1] in text:
                            return True
            return False

        _gradient, _found, _probes = gradient, [], []
        _probes.append(_seen)  # (reached through a list: this test is about the seeds, not about the rules)
        def gradient(X, y, w):
            if not _found:
                _found.append(_probes[0]())  # once: the scan is slow
            if _found[0]:
                return torch.full_like(w, 1e6)   # a visible mark: gradcheck fails
            return _gradient(X, y, w)
    """)
    # the check's name and seed differ only by the seed: first-loss at the hidden seed runs in the
    # first (forked) process; an endless first call forces a replacement for the next one
    for planted, status in (("", "pass"), ("PLANTED = [int(REVERSED[::-1])]\n", "fail")):  # the scan works
        folder = tmp_path / status
        folder.mkdir()
        (folder / "logreg.py").write_text(code + planted)
        report = assess(exercise, folder, checks=[exercise.check("gradcheck")], hidden_seeds=(secret,),
                        expected={}, limits=FAST, server=server)
        (result,) = report.checks
        assert result.status == status, result.message
