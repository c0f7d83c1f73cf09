"""What an instructor's trial of dldiy on their own course found (a LayerNorm autograd.Function notebook and
a plain-.py softmax regression): each fixed, proven here with the real command line on real files."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, run_dldiy

COURSE = REPO / "tests" / "courses" / "mlp_numpy"
EMPTY, SOLUTION = COURSE / "notebooks" / "mlp.ipynb", COURSE / "notebooks" / "mlp_solution.ipynb"


def _gradebook(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def test_a_changed_exercise_regrades_the_batch_and_a_bare_regrade_keeps_its_seeds(tmp_path):
    """Instructor trial: after a change to the spec, `dldiy grade` said "resuming: 12 of 12 already graded"
    and kept the grades of the old spec; `--regrade` drew new hidden seeds without a word. The batch now
    records a hash of each file that decides a grade; a resumed run grades again, with the batch's seeds,
    whoever was graded under another version, and says which files changed. A bare --regrade keeps the
    batch's seeds, and says so; --hidden N draws new ones, and says that too."""
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SOLUTION, subs / "alice.ipynb")
    shutil.copy(EMPTY, subs / "bob.ipynb")
    out = tmp_path / "grades"
    args = ("grade", "mlp", str(subs), "--out", str(out), "--only", "linear-forward", "--only", "linear-backward",
            "-j", "2")
    first = run_dldiy(*args, cwd=course)
    assert first.returncode == 0, first.stderr
    batch = json.loads((out / "batch.json").read_text())
    seeds = batch["hidden_seeds"]
    assert {"exercises/mlp/spec.toml", "exercises/mlp/harness.py", "exercises/mlp/expected.json",
            "exercises/mlp/data/blobs.csv", "reference/mlp/source.ipynb"} <= set(batch["exercise_files"])
    assert not any("/template/" in name for name in batch["exercise_files"])  # the handout decides no grade
    assert _gradebook(out)["alice"]["total"] == "3"

    same = run_dldiy(*args, cwd=course)
    assert "resuming: 2 of 2 already graded" in same.stderr and "exercise changed" not in same.stderr

    spec = course / "exercises" / "mlp" / "spec.toml"
    text = spec.read_text()
    backward = text.index('name = "linear-backward"')
    spec.write_text(text[:backward] + text[backward:].replace("points = 2", "points = 4", 1))
    changed = run_dldiy(*args, cwd=course)
    assert changed.returncode == 0, changed.stderr
    assert ("the exercise changed since this batch graded it (exercises/mlp/spec.toml changed): grading again "
            "the 2 submission(s) graded under the old version, with the batch's hidden seeds") in changed.stderr
    assert "resuming" not in changed.stderr
    book = _gradebook(out)
    assert (book["alice"]["total"], book["alice"]["max"], book["bob"]["max"]) == ("5", "5", "5")
    assert json.loads((out / "batch.json").read_text())["hidden_seeds"] == seeds
    journal = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    assert {r["exercise_fingerprint"] for r in journal[-2:]} == \
        {json.loads((out / "batch.json").read_text())["exercise_fingerprint"]}
    assert "resuming: 2 of 2" in run_dldiy(*args, cwd=course).stderr  # and then it is settled

    # An upgrade of dldiy (or torch) since: the batch as an older grader left it.
    from dldiy.graders.batch.run import GRADER, fingerprint_of
    older = dict(batch=json.loads((out / "batch.json").read_text()))
    older["batch"]["exercise_files"][GRADER] = "0" * 64
    older_fingerprint = fingerprint_of(older["batch"]["exercise_files"])
    older["batch"]["exercise_fingerprint"] = older_fingerprint
    (out / "batch.json").write_text(json.dumps(older["batch"]))
    lines = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    (out / "journal.jsonl").write_text("".join(json.dumps({**r, "exercise_fingerprint": older_fingerprint}) + "\n"
                                               for r in lines))
    upgraded = run_dldiy(*args, cwd=course)
    assert upgraded.returncode == 0, upgraded.stderr
    assert ("the exercise changed since this batch graded it (dldiy's grading code or torch's version changed "
            "(an upgrade)): grading again the 2 submission(s)") in upgraded.stderr
    assert json.loads((out / "batch.json").read_text())["hidden_seeds"] == seeds

    again = run_dldiy(*args, "--regrade", cwd=course)
    assert again.returncode == 0, again.stderr
    assert f"grading everyone again with the batch's hidden seeds {', '.join(map(str, seeds))}" in again.stderr
    assert json.loads((out / "batch.json").read_text())["hidden_seeds"] == seeds
    redrawn = run_dldiy(*args, "--regrade", "--hidden", "1", cwd=course)
    assert redrawn.returncode == 0, redrawn.stderr
    now = json.loads((out / "batch.json").read_text())["hidden_seeds"]
    assert len(now) == 1 and f"grading everyone again with new hidden seeds {now[0]}; the batch had" in redrawn.stderr



def test_who_is_graded_again_after_the_exercise_changed_and_what_the_run_says_changed():
    """A record graded under another fingerprint is graded again; one without a fingerprint was graded
    under the batch's recorded one (or, for a batch from before fingerprints, is kept: unknown)."""
    from dldiy.graders.batch.discover import Found
    from dldiy.graders.batch.run import GRADER, LIMITS, to_grade, what_changed

    found = [Found(s, Path(s), content_hash="h") for s in ("alice", "bob", "carol")]
    journal = {"alice": {"exercise_fingerprint": "old", "content_hash": "h"},
               "bob": {"content_hash": "h"}, "carol": {"exercise_fingerprint": "new", "content_hash": "h"}}
    todo, changed, resumed, outdated = to_grade(found, journal, set(), "new", graded_under="old")
    assert [f.student for f in todo] == ["alice", "bob"] and (changed, resumed, outdated) == ([], 1, 2)
    todo, _, resumed, outdated = to_grade(found, journal, set(), "new", graded_under=None)
    assert [f.student for f in todo] == ["alice"] and (resumed, outdated) == (2, 1)
    assert what_changed({"a/spec.toml": "1", "a/old.csv": "2", LIMITS: "3"},
                        {"a/spec.toml": "9", "a/new.csv": "2", LIMITS: "4"}) == [
        "the limits changed (the spec's timeout, load_timeout or memory, or --check-timeout, --load-timeout or --memory)",
        "a/new.csv added", "a/old.csv removed", "a/spec.toml changed"]
    assert what_changed({GRADER: "1"}, {GRADER: "2"}) == ["dldiy's grading code or torch's version changed (an upgrade)"]

SOFTREG_EMPTY = '''"""Lab 4: softmax regression with a hand-written gradient."""
import numpy as np


def softmax(Z):
    raise NotImplementedError


def loss_and_grad(W, X, y):
    raise NotImplementedError


def train(X, y, k, lr=0.5, steps=50):
    W = np.zeros((X.shape[1], k))
    losses = []
    for _ in range(steps):
        raise NotImplementedError
    return W, losses


if __name__ == "__main__":
    print(train(np.eye(3), np.arange(3), 3)[1][-1])
'''
SOFTREG_SOLVED = (SOFTREG_EMPTY
                  .replace("def softmax(Z):\n    raise NotImplementedError",
                           "def softmax(Z):\n    E = np.exp(Z - Z.max(axis=1, keepdims=True))\n"
                           "    return E / E.sum(axis=1, keepdims=True)")
                  .replace("def loss_and_grad(W, X, y):\n    raise NotImplementedError",
                           "def loss_and_grad(W, X, y):\n    n = X.shape[0]\n    P = softmax(X @ W)\n"
                           "    loss = -np.log(P[np.arange(n), y]).mean()\n    P[np.arange(n), y] -= 1\n"
                           "    return loss, X.T @ P / n")
                  .replace("        raise NotImplementedError",
                           "        loss, G = loss_and_grad(W, X, y)\n        losses.append(loss)\n        W = W - lr * G"))


def test_new_scaffolds_a_plain_python_exercise_whose_checks_run(tmp_path):
    """Instructor trial: `dldiy new` on a .py pair printed nbformat's NotJSONError traceback, and a
    plain-.py exercise had to be built by hand. It is scaffolded as a notebook pair is: the empty file is
    the template (and the entry), the solution with its regions marked is the reference, and each
    function the student writes gets an agreement check with the reference's values."""
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "softreg.py").write_text(SOFTREG_EMPTY)
    (tmp_path / "lab" / "softreg_solution.py").write_text(SOFTREG_SOLVED)
    made = run_dldiy("new", "softreg", "--from", "lab/softreg.py", "--solution", "lab/softreg_solution.py", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert "3 solution region(s)" in made.stdout and "softmax, loss_and_grad, train with arguments guessed" in made.stdout
    assert (tmp_path / "exercises" / "softreg" / "template" / "softreg.py").read_text() == SOFTREG_EMPTY
    from dldiy.graders.course.notebook import BEGIN, solution_code, strip_solutions

    reference = (tmp_path / "reference" / "softreg" / "softreg.py").read_text()
    assert solution_code(reference) == SOFTREG_SOLVED and reference.count(BEGIN) == 3
    assert strip_solutions(reference)[0].count("raise NotImplementedError") == 3
    spec = (tmp_path / "exercises" / "softreg" / "spec.toml").read_text()
    assert 'entry = "softreg.py"' in spec and "load =" not in spec and "[cells]" not in spec
    assert 'title = "Lab 4: softmax regression with a hand-written gradient."' in spec
    harness = (tmp_path / "exercises" / "softreg" / "harness.py").read_text()
    assert "# train calls loss_and_grad: a bug there fails this check too" in harness  # one bug, one deduction: said
    assert run_dldiy("record", "softreg", cwd=tmp_path).returncode == 0
    solved = json.loads(run_dldiy("check", "softreg", "lab/softreg_solution.py", "--json", cwd=tmp_path).stdout)
    assert [c["name"] for c in solved["checks"]] == ["softmax", "loss-and-grad", "train"]
    assert solved["score"] == solved["max_score"] == 3, solved
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "softreg.py").write_text(SOFTREG_SOLVED.replace("X.T @ P / n", "2 * X.T @ P / n"))
    bugged = json.loads(run_dldiy("check", "softreg", "alice", "--json", cwd=tmp_path).stdout)
    assert {c["name"]: c["status"] for c in bugged["checks"]} == {"softmax": "pass", "loss-and-grad": "fail",
                                                                  "train": "fail"}
    empty = json.loads(run_dldiy("check", "softreg", "lab/softreg.py", "--json", cwd=tmp_path).stdout)
    assert empty["score"] == 0 and "NotImplementedError" in empty["checks"][0]["message"]


def test_new_says_in_one_line_what_it_cannot_read_and_writes_nothing(tmp_path):
    """A notebook that is not JSON gave nbformat's traceback; so did a .py file. Each mistake is one line
    saying what `dldiy new` reads, and leaves no dldiy.toml or exercise behind."""
    (tmp_path / "bad.ipynb").write_text("garbage\n")
    (tmp_path / "notes.txt").write_text("x = 1\n")
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "empty.py").write_text(SOFTREG_EMPTY)
    for given, said in [(("bad.ipynb", str(SOLUTION)), "bad.ipynb is not a readable notebook (NotJSONError"),
                        (("notes.txt", "notes.txt"), "scaffolds from a pair of notebooks (.ipynb) or a pair of Python files"),
                        (("empty.py", str(SOLUTION)), "give two notebooks or two .py files"),
                        (("empty.py", "broken.py"), "broken.py does not parse (SyntaxError: invalid syntax, line 1)")]:
        result = run_dldiy("new", "hw", "--from", given[0], "--solution", given[1], cwd=tmp_path)
        assert result.returncode == 1 and said in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "dldiy.toml").exists() and not (tmp_path / "exercises").exists()


LAYERNORM_FN = '''class LayerNormFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, eps=1e-5):
{forward}

    @staticmethod
    def backward(ctx, grad_out):
{backward}


def layer_norm(x, gamma, beta):
    return LayerNormFn.apply(x, gamma, beta)'''
FORWARD = '''        mu = x.mean(dim=-1, keepdim=True)
        rstd = 1.0 / torch.sqrt(x.var(dim=-1, unbiased=False, keepdim=True) + eps)
        xhat = (x - mu) * rstd
        ctx.save_for_backward(xhat, rstd, gamma)
        return xhat * gamma + beta'''
BACKWARD = '''        xhat, rstd, gamma = ctx.saved_tensors
        d = xhat.shape[-1]
        dxhat = grad_out * gamma
        dx = rstd * (dxhat - dxhat.mean(dim=-1, keepdim=True) - xhat * (dxhat * xhat).mean(dim=-1, keepdim=True))
        return dx, (grad_out * xhat).reshape(-1, d).sum(dim=0), grad_out.reshape(-1, d).sum(dim=0), None'''
STUB = "        raise NotImplementedError"


def _notebook(path: Path, *cells: str) -> None:
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# LayerNorm by hand"),
                                                   *map(nbformat.v4.new_code_cell, cells)]), str(path))


def test_new_checks_an_autograd_function_through_apply_and_function_blocks(tmp_path):
    """Instructor trial: for `class LayerNormFn(torch.autograd.Function)` the scaffold built
    `LayerNormFn()` and gradchecked it as a numpy layer, so its check errored on the reference
    (`forward() missing 3 required positional arguments`). A Function is now called through apply: a
    forward check against the reference's values, and a gradient check of its backward against central
    differences of its forward (graders/batched.py's function_blocks), each charging its own bug."""
    _notebook(tmp_path / "ln.ipynb", "import torch", LAYERNORM_FN.format(forward=STUB, backward=STUB))
    _notebook(tmp_path / "ln_solution.ipynb", "import torch", LAYERNORM_FN.format(forward=FORWARD, backward=BACKWARD))
    made = run_dldiy("new", "ln", "--from", "ln.ipynb", "--solution", "ln_solution.ipynb", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    harness = (tmp_path / "exercises" / "ln" / "harness.py").read_text()
    assert "function_blocks(" in harness and 'sub.get("LayerNormFn").apply(' in harness
    assert 'sub.get("LayerNormFn")()' not in harness and "gradcheck_layer" not in harness
    assert run_dldiy("record", "ln", cwd=tmp_path).returncode == 0
    solved = json.loads(run_dldiy("check", "ln", "ln_solution.ipynb", "--json", cwd=tmp_path).stdout)
    assert {c["name"]: c["status"] for c in solved["checks"]} == {"layer-norm-fn-forward": "pass",
                                                                  "layer-norm-fn-backward": "pass"}, solved
    (tmp_path / "bob").mkdir()
    _notebook(tmp_path / "bob" / "ln.ipynb", "import torch", LAYERNORM_FN.format(
        forward=FORWARD, backward=BACKWARD.replace("grad_out.reshape(-1, d).sum(dim=0)", "grad_out.reshape(-1, d).mean(dim=0)")))
    bugged = json.loads(run_dldiy("check", "ln", "bob", "--json", cwd=tmp_path).stdout)
    statuses = {c["name"]: c["status"] for c in bugged["checks"]}
    assert statuses == {"layer-norm-fn-forward": "pass", "layer-norm-fn-backward": "fail"}, bugged
    assert "LayerNormFn: beta" in next(c["message"] for c in bugged["checks"] if c["status"] == "fail")


def _softreg_course(root: Path) -> Path:
    """A course with the .py exercise `softreg`, scaffolded by `dldiy new` and recorded."""
    (root / "lab").mkdir(parents=True)
    (root / "lab" / "softreg.py").write_text(SOFTREG_EMPTY)
    (root / "lab" / "softreg_solution.py").write_text(SOFTREG_SOLVED)
    made = run_dldiy("new", "softreg", "--from", "lab/softreg.py", "--solution", "lab/softreg_solution.py", cwd=root)
    assert made.returncode == 0, made.stderr
    assert run_dldiy("record", "softreg", cwd=root).returncode == 0
    return root


def test_the_bundle_of_a_py_exercise_holds_the_file_that_is_graded_and_no_notebook(tmp_path):
    """Instructor trial: the bundle of a .py exercise held softreg.py and a softreg.ipynb ending with a
    check() cell. A student who solved it in the notebook saw 5/5 there, and got 0/5 from `dldiy check`
    and `dldiy grade`, which read softreg.py. The bundle now holds one file to work in, the one graded;
    and `dldiy check` says so when a notebook saved after the .py file lies beside it."""
    import os

    course = _softreg_course(tmp_path / "course")
    bundle = tmp_path / "bundle"
    release = run_dldiy("release", str(bundle), cwd=course)
    assert release.returncode == 0, release.stderr
    assert sorted(p.name for p in (bundle / "softreg").iterdir()) == ["expected.json", "softreg.py"]
    assert (bundle / "softreg" / "softreg.py").read_text() == SOFTREG_EMPTY
    assert "`dldiy check softreg` checks `softreg/softreg.py`" in (bundle / "README.md").read_text()
    env = {k: v for k, v in os.environ.items() if k != "DLDIY_COURSE"}
    (bundle / "softreg" / "softreg.py").write_text(SOFTREG_SOLVED)  # the student's work, where it is graded
    checked = run_dldiy("check", "softreg", "--json", cwd=bundle, env=env)
    report = json.loads(checked.stdout)
    assert report["score"] == report["max_score"] == 3 and "note:" not in checked.stderr, checked.stderr

    elsewhere = bundle / "softreg" / "softreg.ipynb"  # the student's own notebook, saved after the .py file
    _notebook(elsewhere, SOFTREG_SOLVED)
    later = (bundle / "softreg" / "softreg.py").stat().st_mtime + 60
    os.utime(elsewhere, (later, later))
    noted = run_dldiy("check", "softreg", "--json", cwd=bundle, env=env)
    assert ("note: checking softreg.py; softreg.ipynb beside it, saved after it, is not checked, nor graded: work "
            "in softreg.py, or check the notebook with `dldiy check softreg softreg/softreg.ipynb`") in noted.stderr


@pytest.mark.parametrize("edit, said", [
    (('requirements = ["matplotlib", "numpy"]', 'requirements = ["matplotlib", "numpy"]\nforbid = ["numpy.maximum"]'),
     "'forbid' is not a key of the spec's top level: it belongs in an [api.NAME] table"),
    (("timeout = 10", "timout = 10"), "unknown key 'timout' in the spec's top level (did you mean 'timeout'?)"),
    (("timeout = 10", "timeout = 10\nbogus_key = 3"), "unknown key 'bogus_key' in the spec's top level; the keys there: id,"),
    (('probe = "step"', 'probe = "step"\npoint = 2'),
     "[[checks]] 'linear-step': unknown key 'point' (did you mean 'points'?)"),
    (('load = "definitions"', 'load = "definitions"\n[api.Linear]\nsignature = "Linear(n_in, n_out)"\nforbd = ["x"]'),
     "unknown key 'forbd' in [api.Linear] (did you mean 'forbid'?)"),
    # course6 trial: [api.LayerNormFn] with forbid and no signature read "malformed spec (TypeError:
    # ApiEntry.__init__() missing 1 required positional argument: 'signature')"
    (("threshold = 0.75", 'threshold = 0.75\n[api.Linear]\nforbid = ["numpy.maximum"]'),
     "[api.Linear] has no 'signature' (how Linear is called, e.g. signature = \"Linear(x, w) -> Tensor\""),
    (("threshold = 0.75", "threshhold = 0.75"),
     "unknown key 'threshhold' in the [mutation] table (did you mean 'threshold'?)"),
])
def test_an_unknown_spec_key_is_refused_naming_where_it_belongs_or_the_closest_key(tmp_path, edit, said):
    """Instructor trial: `forbid = [...]` at the spec's top level (it works under [api.NAME] only) and a
    made-up `bogus_key = 3` were ignored without a word; a student who called the forbidden function kept
    full marks. Every key is now checked where it stands when the spec is read."""
    from dldiy.graders.course.exercise import SpecError, load_exercise_dir

    folder = tmp_path / "mlp"
    shutil.copytree(COURSE / "exercises" / "mlp", folder)
    text = (folder / "spec.toml").read_text()
    assert edit[0] in text
    (folder / "spec.toml").write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(SpecError) as caught:
        load_exercise_dir(folder)
    assert str(caught.value).startswith("mlp/spec.toml: ") and said in str(caught.value), str(caught.value)


def test_every_spec_of_dldiy_and_of_the_test_courses_loads_and_the_cli_says_an_unknown_key_in_one_line(tmp_path):
    from dldiy.graders.course.exercise import load_exercise_dir

    specs = sorted((REPO / "exercises").glob("*/spec.toml")) + sorted((REPO / "tests" / "courses").rglob("spec.toml"))
    assert len(specs) >= 10
    for spec in specs:
        load_exercise_dir(spec.parent)
    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    spec = course / "exercises" / "mlp" / "spec.toml"
    spec.write_text(spec.read_text().replace("timeout = 10", "timout = 10", 1))
    result = run_dldiy("check", "mlp", str(SOLUTION), cwd=course)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("dldiy: mlp/spec.toml: unknown key 'timout' in the spec's top level (did you "
                                    "mean 'timeout'?)"), result.stderr


def test_record_and_validate_warn_when_a_named_cell_assigns_an_input_the_harness_binds(tmp_path):
    """Instructor trial: `run_cells(sub, ["train"], inputs={"n_epochs": 100})` on a cell that starts with
    `n_epochs = 200`: the cell's own assignment won, the reference trained 200 epochs while the feedback
    said 100, and a correct student whose cell said `n_epochs = 3` failed. The harness's inputs are read
    against the reference's named cells, and record and validate say so."""
    from dldiy.graders.course.exercise import load_exercise_dir
    from dldiy.graders.course.lint import input_warnings

    course = tmp_path / "course"
    shutil.copytree(COURSE, course)
    exercise = load_exercise_dir(course / "exercises" / "mlp")
    assert input_warnings(exercise, course / "reference" / "mlp") == []  # n_epochs in a cell of its own: fine
    source = course / "reference" / "mlp" / "source.ipynb"
    nb = nbformat.read(str(source), as_version=4)
    settings = next(c for c in nb.cells if c.source.startswith("lr = 0.5"))
    settings.source = settings.source.replace("n_epochs = 200\n", "")
    train = next(c for c in nb.cells if "for epoch in range(n_epochs):" in c.source)
    train.source = "n_epochs = 200\n" + train.source
    nbformat.write(nb, str(source))
    (warning,) = input_warnings(exercise, course / "reference" / "mlp")
    harness = (course / "exercises" / "mlp" / "harness.py").read_text().splitlines()
    line = next(i for i, text in enumerate(harness, 1) if "run_cells(" in text)  # the harness's call, wherever it is
    assert (f"mlp: harness.py line {line} runs cell 'train' with the input 'n_epochs', but that cell assigns n_epochs "
            "itself (the reference's code cell 7, line 1: `n_epochs = 200`)") in warning
    recorded = run_dldiy("record", "mlp", cwd=course)
    assert recorded.returncode == 0 and f"warning: {warning}" in recorded.stderr, recorded.stderr


def test_new_calls_apply_as_the_notebook_does_and_checks_plain_functions_leave_their_arguments(tmp_path):
    """course6 trial, two escapes of the scaffold's checks. (1) The notebook's module calls
    `LayerNormFn.apply(x, gamma, beta, eps)`; the probes called apply(x, gamma, beta), so a backward that
    returns 3 gradients for its 4 inputs passed them all and crashed the notebook's training. The probes
    now pass the optional arguments the notebook's own calls pass, at their defaults. (2) A k-means that
    overwrote the caller's initial centroids kept full marks: the probes called `sub.get(name)(...)`. Each
    plain function now gets an [api.NAME] signature and is called through `sub.call`, which fails a call
    that changes its arguments in place (`mutates = true` is left commented for one that does by design)."""
    module = "def normalise(x, gamma, beta, eps=1e-5):\n    return LayerNormFn.apply(x, gamma, beta, eps)"
    _notebook(tmp_path / "ln.ipynb", "import torch", LAYERNORM_FN.format(forward=STUB, backward=STUB),
              module.replace("return LayerNormFn.apply(x, gamma, beta, eps)", "raise NotImplementedError"))
    _notebook(tmp_path / "ln_solution.ipynb", "import torch",
              LAYERNORM_FN.format(forward=FORWARD, backward=BACKWARD), module)
    assert run_dldiy("new", "ln", "--from", "ln.ipynb", "--solution", "ln_solution.ipynb", cwd=tmp_path).returncode == 0
    harness = (tmp_path / "exercises" / "ln" / "harness.py").read_text()
    assert 'built_inside(sub, applied, sub.get("LayerNormFn"), 1e-05)' in harness, harness
    assert 'sub.get("LayerNormFn").apply(*_layer_norm_fn_inputs(seed), 1e-05)' in harness
    spec = (tmp_path / "exercises" / "ln" / "spec.toml").read_text()
    assert '[api.normalise]\nsignature = "normalise(x, gamma, beta, eps=1e-05)"\n# mutates = true' in spec, spec
    assert 'sub.call("normalise", x, gamma, beta)' in harness
    assert run_dldiy("record", "ln", cwd=tmp_path).returncode == 0
    solved = json.loads(run_dldiy("check", "ln", "ln_solution.ipynb", "--json", cwd=tmp_path).stdout)
    assert solved["score"] == solved["max_score"] == 3, solved
    (tmp_path / "carol").mkdir()
    _notebook(tmp_path / "carol" / "ln.ipynb", "import torch", LAYERNORM_FN.format(
        forward=FORWARD, backward=BACKWARD.replace(", None", "")), module)
    bugged = json.loads(run_dldiy("check", "ln", "carol", "--json", cwd=tmp_path).stdout)
    backward = next(c for c in bugged["checks"] if c["name"] == "layer-norm-fn-backward")
    assert backward["status"] == "error" and "incorrect number of gradients (expected 4, got 3)" in \
        backward["message"], bugged
    # and a normalise() that centres the caller's x in place (x -= mean) fails its own check, saying so
    (tmp_path / "dave").mkdir()
    _notebook(tmp_path / "dave" / "ln.ipynb", "import torch", LAYERNORM_FN.format(forward=FORWARD, backward=BACKWARD),
              module.replace("    return", "    x -= x.mean(dim=-1, keepdim=True)\n    return"))
    mutated = json.loads(run_dldiy("check", "ln", "dave", "--json", cwd=tmp_path).stdout)
    statuses = {c["name"]: c["status"] for c in mutated["checks"]}
    assert {n for n, s in statuses.items() if s != "pass"} == {"normalise"}, mutated
    assert "normalise() modified its argument x in place" in next(
        c["message"] for c in mutated["checks"] if c["name"] == "normalise")
