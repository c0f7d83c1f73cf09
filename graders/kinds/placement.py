"""placement: outputs follow the inputs' device; runs on any machine, no GPU needed.

The probe runs the model's forward and backward with every input on PyTorch's `meta` device (shapes
and dtypes, no data). A tensor created inside without `device=` (for instance `torch.ones(n, 1)`),
or a hard-coded `.cuda()` / `.numpy()`, then raises or leaves an output on another device: the same
code would break, or silently copy, on a GPU.
A meta tensor has no values, so code whose control flow reads one (`if u >= 0`, `int(y[i])`, `.item()`,
an `isfinite(...).all()` guard, a boolean mask, `.tolist()`, a loss history of floats) cannot run there,
although it runs on a GPU. The probe then runs the code again with its inputs on a second device that has
values (graders/kinds/elsewhere.py: CPU tensors that say they are elsewhere, refusing what a GPU refuses),
and judges that run; where that cannot run either (a harness that places its inputs in the student's
process), it says inconclusive: no points, never a failure. An output that is not a tensor has no
device: inconclusive too (the checks of values charge the contract). A copy out of
a meta tensor is such a read (`.tolist()`) unless the student's line moves it to a device (`.cpu()`,
`.cuda()`, `.to(...)`): that is the placement error itself (on a GPU machine, `.cuda()` of a meta
tensor raises the same copy error as `.tolist()`, where a CPU machine says CUDA is missing), unless the
run with values ends with every output on the inputs' device (a numpy round trip, moved back).
The measurement is {"error": str}, {"inconclusive": str} or {"outputs": {name: device}, "input_device": "meta"},
with "with_values": the student's line where the meta run stopped, when the second run made it, and "what":
the function that raised, where the probe knows it (else the spec's `what`).
"""

from __future__ import annotations

import re
import traceback
from pathlib import Path
from typing import Any, Callable

from ..course.exercise import Check
from ..verdict import Verdict

NEEDS_REFERENCE = False
READS_OTHER_CHECKS = True  # judged after the others, with their failures' messages (graders/judge.py): see cpu_too

# What torch raises when meta code needs a value (or a value-dependent shape); a GPU has the value.
_COPY_OUT = "Cannot copy out of meta tensor"
_NEEDS_A_VALUE = ("cannot be called on meta tensors", _COPY_OUT,
                  "data-independent implementation does not exist", "data-dependent")


def measure_placement(run: Callable[[str], dict[str, Any]], values: bool = True,
                      meta_first: bool = True) -> dict[str, Any]:
    """`run(device)` builds inputs on `device` and returns the named output tensors. First on the meta
    device (no values: fast); where the code needs a value or an operation meta lacks, again with the
    inputs on graders/kinds/elsewhere.py's device with values (when `values`, and `run` places its
    inputs in this process). `meta_first=False`: on the device with values alone, for a probe whose
    correct code always needs values (exercise-2's train() reads its losses; its least squares has no
    meta kernel, whose Python fallback imports sympy: 0.6 s of every check)."""
    if values and not meta_first:
        return _with_values(run, "", "")
    try:
        outputs = run("meta")
    except Exception as e:  # noqa: BLE001 - the failure *is* the measurement
        text = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        where = _student_line(e)
        # a copy out of the meta tensor on a line that moves one (.cpu()) is that move; any other value read
        # (.item(), .tolist(), a data-dependent shape) is not, whatever else the line does
        needs_value = any(s in str(e) for s in _NEEDS_A_VALUE) and not (_COPY_OUT in str(e) and _moves_device(e))
        if (needs_value or any(s in str(e) for s in _NO_META_KERNEL)) and values:
            return _with_values(run, where or "your code", text)
        if needs_value:
            return {"inconclusive": f"{where or 'your code'} reads a value of a tensor ({text}), which a "
                                    "meta tensor does not have; a GPU does, so this is not a placement error"}
        if any(s in str(e) for s in _NO_META_KERNEL):
            return {"inconclusive": f"{where or 'your code'} uses an operation the meta device cannot run ("
                                    f"{text[:160]}); a GPU can, so this is not a placement error"}
        found = _device_error(e, text, where)
        if "error" in found and values and _COPY_OUT in str(e):
            # a copy to the host (`.cpu()`) that may come back: a numpy round trip moved back with
            # `.to(X.device)` runs on a GPU (exercise-7's numpy-inside train()). With values, where `.cpu()` is
            # a plain CPU tensor, the outputs must end on the inputs' device; else the meta error, its line named
            return _round_trip(run, where or "your code", text, found)
        if "inconclusive" in found and values:
            # an error that is not about devices: with values, and then on the CPU, where it may run (a
            # submission that raises off the CPU must not turn its placement check into a skip: round 13)
            return _with_values(run, where or "your code", f"{type(e).__name__}: {text}", read=False)
        return found
    measured = {"input_device": "meta",
                "outputs": _devices(outputs)}
    return _typed_on_cpu(run, measured) if values else measured


def _round_trip(run: Callable[[str], dict[str, Any]], where: str, text: str, found: dict[str, Any]) -> dict[str, Any]:
    """The meta run stopped at a copy to the host on `where`: the run with values judges it (every output on
    the inputs' device: a round trip; one left on the CPU, or a CPU tensor meeting the inputs: that finding,
    with the copy's line); where that run cannot tell, `found` (the meta run's error, its line named)."""
    again = _with_values(run, where, text)
    if "inconclusive" in again or not (again.get("outputs") or "error" in again):
        return found
    return {**again, "host_copy": where}


def _devices(outputs: dict[str, Any]) -> dict[str, str]:
    """Each output's device name, or its type's name where it has none (a number, a list). A Placed (a device
    the student's process reported) reads as the tensor it stands for."""
    return {name: str(getattr(t, "device", type(t).__name__)) for name, t in outputs.items()}


def _is_device(name: str) -> bool:
    return name in _DEVICE_TYPES or name.startswith("cuda")


def _typed_on_cpu(run: Callable[[str], dict[str, Any]], measured: dict[str, Any]) -> dict[str, Any]:
    """An output that came back as no tensor (no device: the judge's inconclusive) is compared with the same
    run on the CPU: a tensor there is code that answers otherwise off the CPU, a placement error."""
    odd = [n for n, d in measured["outputs"].items() if not _is_device(d)]
    if not odd:
        return measured
    try:
        on_cpu = _devices(run("cpu"))
    except Exception as e:  # noqa: BLE001 - the checks of values charge a function that fails on the CPU
        return {**measured, "cpu_too": _raised(e)}
    name = next((n for n in odd if _is_device(on_cpu.get(n, ""))), None)
    if name is None:  # no tensor on the CPU either: a contract the checks of values charge (cpu_too: which)
        return {**measured, "cpu_too": NOT_A_TENSOR}
    return {"error": f"{name} came back as a {measured['outputs'][name]} with its inputs on another device, "
                     "where on the CPU it is a tensor: the code answers differently off the CPU"}


def _cpu_error(run: Callable[[str], dict[str, Any]]) -> str | None:
    """What `run` with its inputs on the CPU raised ("Type: text"), None where it returns."""
    try:
        run("cpu")
    except Exception as e:  # noqa: BLE001 - the finding: it fails on the CPU too
        return _raised(e)
    return None


def _raised(e: BaseException) -> str:
    """An exception as the checks' messages say it: "Type: its first line"."""
    text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# cpu_too where an output is no tensor on the CPU either: the words the checks of values say it in (api.expect_tensor)
NOT_A_TENSOR = "expected a torch tensor"


def _simulation_limit(e: BaseException) -> bool:
    """Whether `e` is graders/kinds/elsewhere.py's own NotSimulated, raised in this process: what the device with
    values cannot run. One that comes from the student's process (a RemoteError of that name) is the submission's
    word only: any code can raise an exception so named, and a placement that is inconclusive at will is a skip
    that takes the check out of the maximum (integrity round 8: a CPU-only bias column, 9/9 and a pass, where the
    honest one scored 9/9.5)."""
    from ..sandbox.endpoint import RemoteError
    from .elsewhere import NotSimulated

    return isinstance(e, NotSimulated) and not isinstance(e, RemoteError)


def _with_values(run: Callable[[str], dict[str, Any]], where: str, text: str, read: bool = True) -> dict[str, Any]:
    """The meta run stopped at `where` (`text`): run again on a device that has values ("" for both:
    this is the only run). `read`: it stopped at a value read (or an operation meta lacks); else at an error
    of another kind (`text` names it), which the message then says as such (a Linear keeping its inputs on the
    class raised a shape error in backward, which "reads a value" misnamed: blind round 8)."""
    from .elsewhere import values_elsewhere

    # what the measurement says of the run: after the meta one, or alone
    run_was = {"with_values": where} if where else {"values_only": True}
    before = ("on a device with values, " if not where else
              f"{where} reads a value of a tensor ({text}), which a meta tensor does not have; run again with values, "
              if read else f"{where} raised {text}; run again with values, ")
    try:
        with values_elsewhere():
            outputs = run("meta")
            measured = {"input_device": "meta", **run_was,
                        "outputs": _devices(outputs)}
    except Exception as e:  # noqa: BLE001 - the failure *is* the measurement
        again = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        if _simulation_limit(e):
            return {"inconclusive": f"{before}{_student_line(e) or 'your code'} cannot run as on a GPU ({again[:160]}): "
                                    "not a placement error"}
        about_meta = any(s in str(e) for s in _NEEDS_A_VALUE + _NO_META_KERNEL)  # (not from this run's values)
        if not about_meta and (_DEVICE_ERROR.search(str(e)) or _moves_device(e)):
            return {**_device_error(e, again, _student_line(e)), **run_was}
        on_cpu = _cpu_error(run)
        if on_cpu is None:  # not about devices, yet only off the CPU: the code breaks on a GPU
            return {"error": f"{type(e).__name__}: {again}" + (f" (at {_student_line(e)})" if _student_line(e) else "")
                             + ", where with the same inputs on the CPU it runs", **run_was}
        # it fails on the CPU too: the checks of values charge what the code computes, where they see it (the
        # judge looks: cpu_too), else this probe's inputs are the only ones it fails on, and placement charges it
        said = "the same" if not read and f"{type(e).__name__}: {again}" == text else \
            f"{type(e).__name__}: {again[:200]}"
        return {"inconclusive": f"{before}it raised {said}, an error that is not about devices (the other checks "
                                "judge what the code computes)", "cpu_too": on_cpu}
    return _typed_on_cpu(run, measured)


class Placed:
    """An output as measure_placement reads it: its device (`.device`), as the student's process reported it
    (exercises 4, 5, 6, 8 and 9 place their inputs in the student's process and get back device names)."""

    def __init__(self, device: Any):
        self.device = str(device)


def placed_in_student(sub: Any, objects: list[tuple[str, Any]], placed_here: Callable[..., Any],
                      seed: int) -> tuple[dict[str, Any], str | None]:
    """measure_placement over functions that run in the student's process (exercises 4 and 5): for each
    (name, handle) of `objects`, `placed_here(handle, name, seed, with_values)` there returns {what: device
    name}. Returns the measurement and the name whose run was under way when it stopped (for the message)."""
    from ..api import ApiError

    running: list[str | None] = [None]

    def run(device: str) -> dict[str, Any]:
        placed: dict[str, str] = {}
        for name, obj in objects:
            running[0] = name
            # (measure_placement's second run, with values, is passed on to the student's process)
            found = sub.run_local(placed_here, obj, name, seed, values_run())
            if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in found.items()):
                raise ApiError("the placement probe got a malformed reply")
            placed.update(found)
        return {k: Placed(v) for k, v in placed.items()}
    return measure_placement(run), running[0]


def values_run() -> bool:
    """Whether placement's second run, with values (graders/kinds/elsewhere.py), is under way in this
    process: a probe that runs its model in the student's process (sub.run_local) passes it on, and the
    function run there enters it with `values_run_there`. Read without importing elsewhere."""
    import sys

    module = sys.modules.get("dldiy.graders.kinds.elsewhere")
    return module is not None and module.active()


def values_run_there(with_values: bool) -> Any:
    """In the student's process: the second run's device with values when the harness said so, else nothing."""
    import contextlib

    if not with_values:
        return contextlib.nullcontext()
    from .elsewhere import values_elsewhere

    return values_elsewhere()


def _device_error(e: BaseException, text: str, where: str) -> dict[str, Any]:
    """A device error is the finding; any other error is not this probe's to judge."""
    if not (_DEVICE_ERROR.search(str(e)) or _moves_device(e)):
        # a shape or type error, not about devices: the same code fails on the CPU, and the checks of
        # values charge it (one bug, one deduction)
        return {"inconclusive": f"{where or 'your code'} raised {type(e).__name__}: {text[:200]} on the meta "
                                "device, an error that is not about devices: this probe cannot tell where the "
                                "outputs would go (the other checks judge what the code computes)"}
    error = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return {"error": error + (f" (at {where})" if where else "")}


def warm_up(devices: tuple[str, ...] = ("meta", "cpu")) -> None:
    """Run once by the fork server (graders/sandbox/forkserver.py) before it forks anything: a small forward
    pass through the ops the exercises' code uses (matrix products of every shape, cat, scalar arithmetic,
    the usual activations and losses, reductions, stack, a convolution and a pooling) on the meta device
    (float32) and on the CPU (float32 and float64). The first use of each op fills torch's dispatch and
    decomposition caches (meta) and picks its CPU kernel for this machine (CPU); done here, every student's
    process inherits them filled (exercise-1's placement probe in a forked child: 12.0 -> 9.4 ms; its
    first loss() on the CPU 1.0 -> 0.6 ms). No student code; no random numbers (the generators every child
    inherits stay as they were). Forward only, nothing requires a gradient: a backward starts autograd's
    device threads where CUDA is available, and a process forked after that cannot run autograd at all."""
    import torch

    with torch.no_grad():
        for device in devices:
            for dtype in ((torch.float32,) if device == "meta" else (torch.float32, torch.float64)):
                _forward(device, dtype)


def _forward(device: str, dtype: Any) -> None:
    import torch
    import torch.nn.functional as F

    def full(*shape: int) -> torch.Tensor:
        return torch.full(shape, 0.5, dtype=dtype, device=device)

    X, w, b, v = full(8, 3), full(3, 4), full(4), full(3)
    y = torch.zeros(8, dtype=torch.long, device=device)
    t = 2 * y.to(dtype) - 1
    Xt = torch.cat([X, -torch.ones(8, 1, dtype=dtype, device=device)], dim=1)
    u = t * (Xt[:, :3] @ v)  # matrix-vector, then vector-matrix below
    (torch.sigmoid(-u) * t) @ X / X.shape[0] + F.softplus(-u).mean() + torch.logaddexp(torch.zeros_like(u), -u).mean()
    h = X @ w + b
    h = torch.tanh(h) * torch.sigmoid(h) - torch.relu(-h) / 2 + torch.exp(-h.abs()).log1p() + \
        torch.logaddexp(h, torch.zeros_like(h))
    F.cross_entropy(h, y) + ((h - 1) ** 2).mean() + h.sum(dim=1).max() + torch.stack([h, h]).mean() + \
        F.log_softmax(h, dim=1).sum() + torch.logsumexp(h, dim=1).sum() + F.mse_loss(h, h)
    F.max_pool2d(F.relu(F.conv2d(full(2, 1, 6, 6), full(2, 1, 3, 3), padding=1)), 2).sum()
    if device != "meta":  # what values are read with (a meta tensor has none)
        torch.isfinite(h).all().item()
        torch.allclose(h, h) and torch.equal(h, h)
        h.tolist()
        torch.tensor([0.5, 1.5, 2.5, 3.5], dtype=dtype) + torch.as_tensor(h.numpy())


def device_probes(run_for: Callable[[Any, int], Callable[[str], dict[str, Any]]]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """A harness's placement and parity probes, both from `run_for(sub, seed)`: the `run(device)` that
    measure_placement and measure_parity call (exercises 1 and 2: loss() and gradient() on a problem)."""
    from .parity import measure_parity

    def placement(sub: Any, seed: int, p: dict[str, Any]) -> dict[str, Any]:
        return measure_placement(run_for(sub, seed))

    def parity(sub: Any, seed: int, p: dict[str, Any]) -> dict[str, Any]:
        return measure_parity(run_for(sub, seed))
    return placement, parity


_DEVICE_TYPES = ("cpu", "meta", "mps")  # what str(tensor.device) reads (cuda with its index: "cuda:0")
# torch lacks a meta implementation of the operation: the probe cannot run it, a GPU can
_NO_META_KERNEL = ("Meta kernel registered", "with Meta tensors", "from the 'Meta' backend", "for the Meta backend")
# what torch says when tensors of two devices meet, or one leaves its device (numpy, a copy out)
_DEVICE_ERROR = re.compile(r"device|\bcuda\b|\bcpu\b|numpy|meta tensor", re.IGNORECASE)
_DEVICE_MOVES = (".cuda(", ".cpu(", ".to(", ".numpy(")


# what `.to(...)` holds when it casts a dtype and leaves the device alone: .to(Z.dtype), .to(torch.float64),
# .to(dtype=x.dtype), .to(float), .to(torch.long)
_DTYPE_CAST = re.compile(r"\s*(dtype\s*=\s*)?(([\w.]*\.)?dtype|(torch\.)?(float|double|half|bfloat16|long|int|bool|"
                         r"float16|float32|float64|int8|int16|int32|int64|uint8)|float|int|bool)\s*")


def _moves_device(e: BaseException) -> bool:
    """Whether the student's own line where `e` was raised moves a tensor to a device (or to numpy).
    A `.to(...)` that casts a dtype alone (`F.one_hot(y).to(Z.dtype)`, whose one_hot reads a value) moves
    nothing: the line is judged by its other calls."""
    line = _student_source(e)[1]
    casts = sum(1 for m in re.finditer(r"\.to\(([^()]*)\)", line) if _DTYPE_CAST.fullmatch(m.group(1)))
    return any(m in line for m in _DEVICE_MOVES if m != ".to(") or line.count(".to(") > casts


def _student_source(e: BaseException) -> tuple[str, str]:
    """(`file:line`, the source line) of the submission's innermost frame: from the traceback where `e`
    was raised in this process, or from the student's traceback text a remote call's error carries."""
    frame = _student_frame(e)
    if frame is not None:
        return f"{Path(frame.filename).name}:{frame.lineno}", frame.line or ""
    text = getattr(e, "traceback", None)
    where, line = "", ""
    if isinstance(text, str):  # graders/sandbox/submission.trimmed_traceback: File "x", line N, in f / source
        rows = text.splitlines()
        for i, row in enumerate(rows):
            if row.startswith('  File "') and ", line " in row:
                name = row.split('"')[1]
                number = row.split(", line ")[1].split(",")[0]
                where = f"{Path(name).name}:{number}"
                line = rows[i + 1].strip() if i + 1 < len(rows) and rows[i + 1].startswith("    ") else ""
    return where, line


def _student_frame(e: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame outside torch and dldiy: where the submission's code was."""
    root = Path(__file__).resolve().parent.parent.parent
    ours = (root / "graders", root / "exercises")
    for frame in reversed(traceback.extract_tb(e.__traceback__)):
        path = Path(frame.filename)
        if "torch" in path.parts or frame.filename.startswith("<") or any(d in path.resolve().parents for d in ours):
            continue
        return frame
    return None


def _student_line(e: BaseException) -> str:
    """`file:line` of the innermost frame outside torch and dldiy: where the submission's code was."""
    return _student_source(e)[0]


def _charged_nowhere(measured: dict[str, Any], check: Check) -> str | None:
    """Where the probe could not tell where the outputs go because the code fails on the CPU too, with the probe's
    own inputs (it raised, or gave no tensor: measured["cpu_too"]): that failure is the checks of values' to charge
    (one bug, one deduction), and the probe says inconclusive, where another check failed. Where every other check
    passed, the code fails on these inputs alone, and placement charges it: an inconclusive at will takes the check
    out of the maximum (integrity round 8: loss() raising on the probe's shape alone, beside a CPU-only bias column,
    graded 9/9 and a pass where the honest one scored 9/9.5). Which other failure is the same bug cannot be told
    from its words (a missing transpose fails gradcheck's square matrices by its values and raises on the probe's
    shapes), so any one excuses. The message, else None."""
    said = measured.get("cpu_too")  # (exercise-6's: one optimizer of several, the others' outputs beside it)
    if not isinstance(said, str):
        return None
    if check.params.get("other_failures"):
        return None
    what = measured.get("what") or check.params.get("what", "the forward and backward pass")
    failure = "gave no tensor" if said.endswith(NOT_A_TENSOR) else f"raised {said}"
    return (f"run again with the probe's own inputs, off the meta device (on the CPU where the probe places them), "
            f"{what} {failure}, and every other check passes: code that runs nowhere with these inputs tells nothing "
            "of where its outputs go, so placement is charged. Valid inputs of any shape, size or dtype must work as "
            "the ones the other checks use (a size or a shape written in the code?)")


def judge(measured: dict[str, Any], expected: None, check: Check) -> Verdict:
    # (a probe that runs several functions names the one under way when it stopped: exercise-7's train())
    what = measured.get("what") or check.params.get("what", "the forward and backward pass")
    unseen = _charged_nowhere(measured, check)
    if unseen:
        return Verdict.failed(unseen)
    if "inconclusive" in measured:
        return Verdict.skipped(f"inconclusive on the meta device: {measured['inconclusive']}. Run `dldiy check` "
                               "on a machine with a GPU (the parity check) to test placement for real.")
    if "error" in measured:
        on = (f"on a second device with values (the meta device, which has none, stopped at "
              f"{measured['with_values']})") if measured.get("with_values") else \
            "on a device that keeps their values (a CPU tensor that refuses what a GPU refuses)" \
            if measured.get("values_only") else "on device 'meta'"
        return Verdict.failed(
            f"with every input {on}, {what} raised {measured['error']}. A tensor created "
            "without device= (write torch.ones(n, 1, device=X.device)), or a hard-coded .cuda()/.numpy(), "
            "breaks the same way on a GPU.")
    if not measured.get("outputs"):  # a degenerate measurement earns nothing
        return Verdict.failed("no output was measured on the meta device: there is nothing to judge")
    not_tensors = {n: d for n, d in measured["outputs"].items() if not _is_device(d)}
    if not_tensors:  # a contract the other checks charge (one bug, one deduction): no device to follow
        name, kind = next(iter(not_tensors.items()))
        return Verdict.skipped(f"inconclusive: {name} came back as a {kind}, not a tensor, so it has no device to "
                               "follow (the checks of values judge what it returns)")
    stray = {n: d for n, d in measured["outputs"].items() if d != measured["input_device"]}
    if stray:
        name, device = next(iter(stray.items()))
        copied = (f" (a copy to the host at {measured['host_copy']} is not moved back: end with .to(X.device), "
                  "the inputs' device)") if measured.get("host_copy") else ""
        return Verdict.failed(f"with inputs on '{measured['input_device']}', {name} came back on '{device}': "
                              f"an output does not follow its inputs' device{copied}")
    values = (f" (run twice: the meta device, which has no values, stopped at {measured['with_values']}; then on a "
              "second device with values)") if measured.get("with_values") else ""
    return Verdict.passed(f"{len(measured['outputs'])} outputs follow the inputs' device{values}")
