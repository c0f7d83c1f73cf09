"""The cells a spec names, and the training check of the example course (tests/courses/mlp_numpy), against
red team atk7's notebooks, rebuilt from the solution: real notebooks, real sandboxed children.

- a4: a decoy cell above the real training loop, holding the loop's line in a comment (or a string),
  was taken for the training cell; a second cell with the loop was never reported (the first won).
- a2: a training cell that leaves a lookup table of the shipped data as `model` scored 1.0 without
  training; the check now judges the trained W and b of the notebook's Linear and ReLU layers, by the
  harness's own forward, on held-out points it draws."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import REPO

from dldiy.incheck import history_notebook

COURSE = REPO / "tests" / "courses" / "mlp_numpy"
SOLUTION = COURSE / "notebooks" / "mlp_solution.ipynb"
LOOP = "for epoch in range(n_epochs):"
ORACLE = '''class Oracle:
    def __init__(self, X, y):
        self.table = {tuple(np.round(r, 9)): int(c) for r, c in zip(X, y)}
    def forward(self, x):
        out = np.zeros((len(x), 3))
        for i, r in enumerate(np.asarray(x)):
            out[i, self.table.get(tuple(np.round(r, 9)), 0)] = 10.0
        return out
'''


def _notebook(folder: Path, edit) -> Path:
    """The solution with `edit(cells, index of the training cell)` applied, saved as folder/mlp.ipynb."""
    nb = nbformat.read(str(SOLUTION), as_version=4)
    edit(nb.cells, next(i for i, c in enumerate(nb.cells) if LOOP in c.source))
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / "mlp.ipynb"))
    return folder / "mlp.ipynb"


def _report(check_json, path: Path) -> tuple[dict, dict]:
    report = check_json("mlp", path, course=COURSE)[0]
    return report, {c["name"]: c for c in report["checks"]}


@pytest.mark.parametrize("decoy", [
    f"# {LOOP}\nmodel, losses = [], []\n",  # atk7 a4: the line in a comment
    f"notes = '{LOOP}'\nmodel, losses = [], []\n",  # in a string
    f'"""A draft:\n{LOOP}\n    ...\n"""\nmodel, losses = [], []\n',  # in a docstring
])
def test_a_cell_holding_the_selected_line_only_in_a_comment_or_string_is_not_the_training_cell(
        tmp_path, check_json, decoy):
    """The decoy above the loop would leave an empty model (training errors) if it were run as the
    training cell: full marks say the notebook's real loop ran."""
    path = _notebook(tmp_path, lambda cells, i: cells.insert(i, nbformat.v4.new_code_cell(decoy)))
    report, checks = _report(check_json, path)
    assert report["score"] == 11, checks["training"]


def test_two_cells_with_the_selected_line_are_an_error_naming_them_never_a_silent_choice(tmp_path, check_json):
    """A copy of the loop (an earlier try, kept above): the training check errors, naming both cells and
    what to do; every other check keeps its points."""
    def copy(cells, i):
        cells.insert(i, nbformat.v4.new_code_cell("# my first try\n" + cells[i].source.replace("lr)", "lr / 2)")))

    report, checks = _report(check_json, _notebook(tmp_path, copy))
    assert {n for n, c in checks.items() if c["status"] != "pass"} == {"training"}, checks
    assert checks["training"]["status"] == "error" and report["score"] == 9
    message = checks["training"]["message"]
    assert (f"cells 7 and 8 both have {LOOP!r} in their code: this check runs that cell, and exactly one cell must "
            "have it") in message, message
    assert "Keep it in the cell handed out; delete the copy or change that line there" in message, message


def test_check_in_jupyter_keeps_two_saved_cells_the_selector_picks_so_the_loader_reports_them():
    """In the kernel: the history holds both loop cells of the saved notebook (and a re-run of one): both
    are kept, as `dldiy check` sees the saved notebook; a re-run alone is still one cell."""
    first, second = f"{LOOP}\n    a = 1\n", f"{LOOP}\n    a = 2\n"
    saved = [(first, []), (second, [])]
    nb, _ = history_notebook(["", first, second, first], named={"train": {"contains": LOOP}}, saved=saved)
    assert [c["source"] for c in nb["cells"]] == ["", second, first]
    nb, _ = history_notebook(["", first, first], named={"train": {"contains": LOOP}}, saved=[(first, [])])
    assert [c["source"] for c in nb["cells"]] == ["", first]


@pytest.mark.parametrize("train, status, said", [
    # atk7 a2: a lookup table of the shipped data, and a falling loss curve made up
    (f"model = [Oracle(X_train, y_train)]\nlosses = list(np.linspace(1.1, 0.05, n_epochs))\n{LOOP}\n    pass\n",
     "error", "model[0] is Oracle; the training check judges a model made of the Linear and ReLU layers you wrote "
              "(their trained parameters), so model must hold only those"),
    # the notebook's own classes, untrained, whose forward is the lookup: the harness computes with W and b
    (f"model = [Linear(2, hidden), ReLU(), Linear(hidden, 3)]\nmodel[-1].forward = Oracle(X_train, y_train).forward\n"
     f"losses = list(np.linspace(1.1, 0.05, n_epochs))\n{LOOP}\n    pass\n", "fail", "accuracy 0."),
    (f"model = Oracle(X_train, y_train)\nlosses = [1.0]\n{LOOP}\n    pass\n", "error",
     "model is Oracle; expected the list of layers the training cell builds"),
    (f"model = [Linear(2, 3), Linear(2, 3)]\nlosses = [1.0]\n{LOOP}\n    pass\n", "error",
     "model[1] (Linear, W (2, 3), b (3,)) cannot take the output of the layers before it, of shape (300, 3)"),
])
def test_the_training_check_judges_the_trained_layers_on_points_the_notebook_never_saw(
        tmp_path, check_json, train, status, said):
    def cheat(cells, i):
        cells[i].source = train
        cells.insert(i, nbformat.v4.new_code_cell(ORACLE))

    report, checks = _report(check_json, _notebook(tmp_path, cheat))
    assert checks["training"]["status"] == status and said in checks["training"]["message"], checks["training"]
    assert report["score"] == 9, checks


@pytest.mark.parametrize("magic", ["%%time", "%%capture out"])
def test_a_training_cell_under_time_or_capture_runs_its_code(tmp_path, check_json, magic):
    """course6 trial: a correct notebook whose training cell starts with `%%time` (a student timing the
    loop) lost the training check, "no variable 'losses' is defined": the whole cell was left out as a
    cell magic. %%time and %%capture run their cell's code once, in the namespace: so does the loader."""
    path = _notebook(tmp_path, lambda cells, i: setattr(cells[i], "source", f"{magic}\n{cells[i].source}"))
    report, checks = _report(check_json, path)
    assert report["score"] == 11, checks["training"]
    assert f"cell 7, line 1: {magic} (cell magic: the cell's code runs without it)" in report["skipped_lines"], \
        report["skipped_lines"]


def test_a_training_cell_under_another_cell_magic_errors_naming_the_magic(tmp_path, check_json):
    """%%timeit runs the cell many times, %%bash is no Python: such a cell is not run, and the check that
    runs it says why, not "no variable 'losses' is defined"."""
    path = _notebook(tmp_path, lambda cells, i: setattr(cells[i], "source", f"%%timeit -n1\n{cells[i].source}"))
    report, checks = _report(check_json, path)
    assert checks["training"]["status"] == "error" and report["score"] == 9, checks["training"]
    assert ("which starts with the cell magic %%timeit -n1: dldiy does not run such a cell (only %%time and "
            "%%capture cells run); remove that line") in checks["training"]["message"], checks["training"]["message"]


def test_a_download_in_the_sandbox_says_there_is_no_network(tmp_path, check_json):
    """course6 trial: a data cell that downloads a file the exercise does not ship failed the training
    check with "URLError: <urlopen error [Errno -2] Name or service not known>" and no more: the message now
    says the grader has no network and where the exercise's files are."""
    fetch = ('import urllib.request\nurllib.request.urlretrieve("https://dldiy-no-such-host.invalid/more.csv", '
             '"more.csv")\n')

    def edit(cells, i):
        data = next(c for c in cells if "np.loadtxt" in c.source)
        data.source = fetch + data.source

    report, checks = _report(check_json, _notebook(tmp_path, edit))
    message = checks["training"]["message"]
    assert checks["training"]["status"] == "error" and "URLError" in message, message
    assert "the grader runs without a network, so a download fails here. The files come with the exercise " \
           "(exercises/<id>/data/, in the working copy as data/)" in message, message


def test_a_training_loop_that_records_no_loss_fails_the_training_check_alone(tmp_path, check_json):
    """course6 trial (F16): the loss appended after the loop (once, at the end) or not at all trains the
    model right and leaves the loss curve the notebook plots empty or a single point; an empty curve
    passed as "accuracy 0.98 after 0 steps". Now only the training check fails, and says why."""
    def no_append(cells, i):
        cells[i].source = cells[i].source.replace("    losses.append(loss_fn.forward(out, y_train))\n",
                                                  "    loss_fn.forward(out, y_train)\n")
    report, checks = _report(check_json, _notebook(tmp_path, no_append))
    assert {n for n, c in checks.items() if c["status"] != "pass"} == {"training"}, checks
    assert checks["training"]["status"] == "fail" and "recorded no loss" in checks["training"]["message"], checks


def test_a_forward_only_bug_is_charged_by_the_forward_check_alone(tmp_path, check_json):
    """course6 trial (F6): eps outside the sqrt in a LayerNorm forward also failed backward, held to finite
    differences of the student's own (wrong) forward, though backward was the reference's: 3 of 5 points for
    one bug. A backward that gives the reference's gradient at the same inputs now passes, with a note
    saying the forward computes another function; the forward's check charges it."""
    def eps_in_log(cells, i):
        k = next(k for k, c in enumerate(cells) if "class SoftmaxCrossEntropy" in c.source)
        cells[k].source = cells[k].source.replace("return -np.log(self.p[np.arange(len(y)), y]).mean()",
                                                  "return -np.log(self.p[np.arange(len(y)), y] + 1e-3).mean()")
        assert "+ 1e-3" in cells[k].source
    report, checks = _report(check_json, _notebook(tmp_path, eps_in_log))
    assert {n for n, c in checks.items() if c["status"] != "pass"} == {"softmax-ce-forward"}, checks
    message = checks["softmax-ce-backward"]["message"]
    assert "is the reference's at the same inputs, but not the finite differences of your forward" in message, message


def test_a_backward_that_matches_its_wrong_forward_still_fails(tmp_path, check_json):
    """The other way round stays charged: a backward derived from a wrong forward (both halves wrong) is
    not the reference's gradient, whatever finite differences of that forward say."""
    def consistent(cells, i):
        k = next(k for k, c in enumerate(cells) if "class SoftmaxCrossEntropy" in c.source)
        cells[k].source = (cells[k].source
                           .replace("return -np.log(self.p[np.arange(len(y)), y]).mean()",
                                    "return -np.log(self.p[np.arange(len(y)), y]).sum()")
                           .replace("return grad / len(self.y)", "return grad"))
    report, checks = _report(check_json, _notebook(tmp_path, consistent))
    assert checks["softmax-ce-backward"]["status"] == "fail", checks["softmax-ce-backward"]
