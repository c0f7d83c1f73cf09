"""Harness processes that serve one submission after another (graders/sandbox/runner.py's Workers):
a reused worker measures exactly as a fresh one, its students come from its zygote, and nothing of
one submission's probes (the global generators the harness seeds) reaches the next one's."""

from __future__ import annotations

from conftest import REPO

from dldiy.graders.assess import assessment
from dldiy.graders.course.exercise import load_exercise
from dldiy.graders.sandbox.forkserver import ForkServer
from dldiy.graders.sandbox.runner import WORKERS


def _measure(exercise_id: str, server, checks: list[str], seeds=()):
    ex = load_exercise(exercise_id)
    return assessment(ex, REPO / "reference" / exercise_id, checks=[ex.check(c) for c in checks],
                      server=server, hidden_seeds=tuple(seeds)).outcome


def test_a_reused_worker_measures_like_a_fresh_one_after_another_submission_seeded_the_global_generator():
    """exercise-5's invariants probe seeds torch's global generator in the harness process; the next
    submission served by the same worker still measures as in a new process (GlobalState)."""
    WORKERS.close_all()
    with ForkServer(warm=False) as server:
        first = _measure("exercise-5", server, ["invariants", "first-loss"])
        worker = WORKERS.idle_pids()
        assert len(worker) == 1  # kept for the next submission
        again = _measure("exercise-5", server, ["invariants", "first-loss"])
        assert WORKERS.idle_pids() == worker  # the same process served it
        WORKERS.close_all()
        fresh = _measure("exercise-5", server, ["invariants", "first-loss"])
        WORKERS.close_all()
    assert first.results == again.results == fresh.results
    assert all("measurement" in r for r in first.results.values()), first.results


def test_global_state_is_put_back_before_each_job():
    import random

    import numpy as np
    import torch

    from dldiy.graders.sandbox.child import GlobalState

    torch.manual_seed(3)
    state = GlobalState()
    expected = (torch.rand(2), np.random.rand(2), random.random())
    torch.manual_seed(3)
    np.random.set_state(state.numpy_rng)
    random.setstate(state.python_rng)
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = not tf32  # what measure_parity changes on a GPU machine
    try:
        state.restore()
        assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
        assert torch.backends.cudnn.allow_tf32 == tf32
        got = (torch.rand(2), np.random.rand(2), random.random())
    finally:
        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_module_level_state_of_a_harness_never_reaches_the_next_submission():
    """exercise-3's harness keeps the model it trained per (seed, steps) in a module-level dict: a handle
    into one student's process. Each job loads the harness module anew, so the next submission served
    by the same worker trains its own model (it once got the previous student's, from a process gone)."""
    WORKERS.close_all()
    with ForkServer(warm=False) as server:
        first = _measure("exercise-3", server, ["convergence", "evaluation"])
        again = _measure("exercise-3", server, ["convergence", "evaluation"])
        WORKERS.close_all()
    assert all("measurement" in r for r in [*first.results.values(), *again.results.values()]), again.results
    assert first.results == again.results


SCAN_OWN_MEMORY = '''
import ctypes
def _scan(prefix, tail):
    # every private anonymous mapping of its own (the heap, Python's arenas), read in place: a process that
    # dropped to another uid cannot open /proc/self/mem, but its own memory is its own
    # the name is never built whole here (it would then be in this very memory): a prefix, then its
    # last four bytes compared as numbers
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split()
            if fields[1] != "rw-p" or (len(fields) > 5 and fields[5] != "[heap]"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            data = ctypes.string_at(start, end - start)
            at = data.find(prefix)
            while at >= 0:
                if list(data[at + len(prefix):at + len(prefix) + 4]) == tail:
                    return True
                at = data.find(prefix, at + 1)
    return False
print("FOUND" if _scan(b"classmate_secret_", [55, 102, 51, 97]) else "CLEAN",
      "OWN" if _scan(b"my_own_", [57, 99, 50, 101]) else "BLIND", flush=True)
'''


def test_a_student_finds_nothing_of_an_earlier_classmate_in_its_own_memory(tmp_path):
    """The same worker serves a classmate, then a student who searches every readable byte of its own
    process for the classmate's file name: the zygote that forked it never held the classmate's request
    (the request goes to the student's process itself), and the harness's memory is never inherited.
    The same scan finds the student's own file name (its own request): it sees what is there."""
    reference = (REPO / "reference" / "exercise-1" / "logreg.py").read_text()
    classmate = tmp_path / ("classmate_secret_" + "7f3a.py")
    classmate.write_text(reference)
    scanner = tmp_path / ("my_own_" + "9c2e.py")  # the control: its own name, in its own request
    scanner.write_text(SCAN_OWN_MEMORY + reference)
    ex = load_exercise("exercise-1")
    WORKERS.close_all()
    with ForkServer(warm=False) as server:
        assessment(ex, classmate, server=server, checks=[ex.check("gradcheck")])
        worker = WORKERS.idle_pids()
        scanned = assessment(ex, scanner, server=server, checks=[ex.check("gradcheck")]).outcome
        assert WORKERS.idle_pids() == worker  # the same worker served both
        WORKERS.close_all()
    assert "CLEAN OWN" in scanned.output, scanned.output  # (OWN: the scan does see what is in its memory)


def test_a_worker_gone_while_idle_is_replaced_not_handed_the_next_submission():
    import os
    import signal
    import time

    WORKERS.close_all()
    with ForkServer(warm=False) as server:
        _measure("exercise-1", server, ["gradcheck"])
        (worker,) = WORKERS.idle_pids()
        os.killpg(worker, signal.SIGKILL)
        time.sleep(0.2)
        after = _measure("exercise-1", server, ["gradcheck"])
        assert WORKERS.idle_pids() and WORKERS.idle_pids() != [worker]
        WORKERS.close_all()
    assert all("measurement" in r for r in after.results.values()), after.results


STARTS_A_GRANDCHILD = '''
import os, time
if os.fork() == 0:  # a process it leaves behind: it must die with the student
    time.sleep(600)
    os._exit(0)
def whoami():
    return os.getpid()
'''


def test_a_student_is_forked_as_its_pid_namespace_init_with_no_relay_and_takes_its_processes_with_it(tmp_path):
    """As root the zygote forks each student straight into a PID namespace of its own
    (confine.PidNamespaceForks): the student is PID 1 there, its parent outside is the zygote itself
    (no relay process per student), and killing it ends what it started."""
    import os
    import time

    import pytest

    from dldiy.graders.sandbox import confine as sandbox
    from dldiy.graders.sandbox.child import StudentProcess
    from dldiy.graders.sandbox.remote import remote_call
    from dldiy.graders.sandbox.runner import _interpreter_paths
    from dldiy.graders.sandbox.student import Zygote

    if os.geteuid() != 0:
        pytest.skip("PID namespaces from the zygote need root; elsewhere confine() forks its relay (tested apart)")
    (tmp_path / "sub.py").write_text(STARTS_A_GRANDCHILD)
    work, entry = sandbox.workdir(tmp_path, tmp_path / "sub.py")
    group = sandbox.Cgroup(64)
    spec = sandbox.Limits().spec(work, sandbox.new_marker(), str(group.path) if group.path else None,
                                 expose=(REPO / "exercises" / "exercise-1", *_interpreter_paths()))
    zygote = Zygote(pid_namespaces=True)
    student = StudentProcess({"entry": str(entry), "sandbox": spec, "forbid": {}}, 60, zygote=zygote)
    try:
        assert "pid namespace" in " ".join(student.sandbox), student.sandbox
        assert remote_call(student.endpoint, "whoami", None, (), {}) == 1
        status = dict(line.split(":\t", 1) for line in open(f"/proc/{student.pid}/status").read().splitlines())
        assert int(status["PPid"]) == zygote.pid  # no relay in between
        assert status["NSpid"].split()[-1] == "1"
        (grandchild,) = (int(p) for p in open(f"/proc/{student.pid}/task/{student.pid}/children").read().split())
    finally:
        student.kill()
        zygote.close()
        group.kill_all()
        sandbox.remove_workdir(work)
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{grandchild}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{grandchild}")  # it died with the namespace's init


def test_cpu_slots_start_where_the_process_runs_and_spread_pairs(monkeypatch):
    """Separate `dldiy check`s each pin their pair starting from the CPU they run on, not all from CPU 0;
    within one process the pairs spread over the CPUs, fewest pairs first."""
    from dldiy.graders.sandbox import spawn

    monkeypatch.setattr(spawn, "_allowed_cpus", lambda: [0, 1, 2, 3])
    for here in (0, 2, 3):
        monkeypatch.setattr(spawn, "_running_on", lambda here=here: here)
        slots = spawn.CpuSlots()
        taken = [slots.take() for _ in range(5)]
        assert taken[:4] == [(here + k) % 4 for k in range(4)] and taken[4] == here, taken
        slots.give_back(taken[1])
        assert slots.take() == taken[1]  # the freed CPU has the fewest pairs again
    monkeypatch.undo()  # the real reading: a CPU this process may run on
    assert spawn._running_on() in spawn._allowed_cpus() or not spawn._allowed_cpus()
