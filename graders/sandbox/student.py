"""The student's process: confined, it loads the submission and answers the harness's calls.

It is forked by the harness process (graders/sandbox/child.py) and holds nothing but the submission, its
working copy and one socket: no result channel, no exercise spec, no expected value, no reference.
Whatever runs here (including code that patches this module) can only shape the answers it sends,
and every answer is checked plain data on the other side.

Requests it serves (graders/sandbox/endpoint.py frames): `call` (a name or a handle, optionally a method,
with args; `grad` lists the mirrored inputs to differentiate), `batch` (a list of such calls, run in
order, never differentiable, one outcome each: graders/sandbox/remote.py's `batch`), `getattr`, `setpath`, `introspect`,
`list`, `replace` (swap a name of the submission for a harness function), `backward` (the
vector-Jacobian product through a differentiable call's graph). It speaks first: `loaded` or
`load_error`.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import types
from pathlib import Path
from typing import Any

from . import wire
from .endpoint import Endpoint, _Reply, error_reply
from .spawn import fork_running, name_process, reap_ended

BATCH_CAP = 100_000  # calls in one batch request


class ForbiddenCall(BaseException):
    """Raised into student code that calls a function the exercise forbids (BaseException: an
    `except Exception` in the submission does not swallow it)."""


class RefusedHung(BaseException):
    """Raised by a function of the submission that overran a check's timeout earlier in this job (the
    harness names the file and line it hung at): it is not run again, and the check that calls it fails at
    once instead of waiting its timeout out (BaseException: an `except Exception` does not swallow it)."""


def refuse_hung(loaded: Any, sites: list[Any]) -> None:
    """Replace each function and method of the submission whose lines hold one of `sites` ([file, line,
    where in words]: the innermost frame of the submission's own where a timeout found it) by one that
    raises RefusedHung. Functions nested in others are left alone (they keep the shorter timeouts)."""
    import functools
    import inspect

    from .remote import not_called_again

    root = str(loaded.root)

    def holds(fn: Any) -> str | None:
        try:  # a decorated function (@torch.no_grad()) is the decorator's wrapper: its lines are the wrapped one's
            fn = inspect.unwrap(fn)
        except ValueError:
            pass
        code = getattr(fn, "__code__", None)
        if code is None or not isinstance(code.co_filename, str) or not code.co_filename.startswith(root):
            return None
        short = os.path.relpath(code.co_filename, root)
        lines = [line for _, _, line in code.co_lines() if line is not None] or [code.co_firstlineno]
        for file, line, where in sites:
            if file == short and code.co_firstlineno <= int(line) <= max(lines):
                return str(where)
        return None

    def refused(fn: Any, where: str) -> Any:
        @functools.wraps(fn)
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise RefusedHung(not_called_again(fn.__qualname__, where))
        return refuse

    def replaced(member: Any) -> Any:  # the member with its function refused, or None if it holds no site
        for kind in (staticmethod, classmethod):
            if isinstance(member, kind):
                where = holds(member.__func__)
                return kind(refused(member.__func__, where)) if where else None
        if isinstance(member, property):
            accessors: list[Any] = [(refused(f, w) if (w := holds(f)) else f) if f is not None else None
                                    for f in (member.fget, member.fset, member.fdel)]
            fget, fset, fdel = accessors
            if (fget, fset, fdel) == (member.fget, member.fset, member.fdel):
                return None
            return property(fget, fset, fdel, member.__doc__)
        where = holds(member) if callable(member) and not isinstance(member, type) else None
        return refused(member, where) if where else None

    module = loaded.module
    for name, value in list(vars(module).items()):
        if isinstance(value, type) and getattr(value, "__module__", None) == module.__name__:
            for attr, member in list(vars(value).items()):
                new = replaced(member)
                if new is not None:
                    try:
                        setattr(value, attr, new)
                    except (AttributeError, TypeError):
                        pass
        else:
            new = replaced(value)
            if new is not None:
                setattr(module, name, new)


class Server:
    def __init__(self, endpoint: Endpoint, loaded: Any, forbid: dict[str, list[str]]):
        self.endpoint, self.loaded, self.module = endpoint, loaded, loaded.module
        self.forbid = forbid
        self.origins: dict[int, str] = {}  # handle id -> the API name it came from
        self.active: list[str] = []  # API names being called (outermost first)
        self.violation: str | None = None
        # name -> (it existed, its value, the registry entries it also took) per swap in place
        self.swapped: dict[str, list[tuple[bool, Any, list[tuple[dict, Any, Any]]]]] = {}
        endpoint.handler = self.handle

    # ---- resolving ---------------------------------------------------------------------------------------

    def _target(self, header: dict[str, Any], buffers: list[bytes]) -> tuple[Any, str | None]:
        target = header.get("target")
        if not isinstance(target, dict):
            raise wire.WireError("a request without a target")
        if "name" in target:
            name = target["name"]
            if not isinstance(name, str):
                raise wire.WireError("a malformed name")
            return self._module_attr(name), name
        handle = target.get("handle")
        if handle is None:
            return self.module, None
        obj = self.endpoint.decode(handle, buffers)
        origin = self.origins.get(handle.get("id")) if isinstance(handle, dict) else None
        return obj, origin

    def _module_attr(self, name: str) -> Any:
        if not hasattr(self.module, name):
            from .submission import missing_cause

            # the cell that failed at load and would have defined it, if one did (the harness words it)
            cause = missing_cause(self.loaded, name)
            raise error_reply("missing", f"the submission does not define `{name}`", cause=cause)
        return getattr(self.module, name)

    # ---- requests -----------------------------------------------------------------------------------------

    def handle(self, header: dict[str, Any], buffers: list[bytes]) -> Any:
        if "swaps" in header:
            self._swap(header["swaps"], buffers)
        op = header.get("op")
        if op == "call":
            return self._call(header, buffers)
        if op == "batch":
            return self._batch(header, buffers)
        if op == "backward":
            return self._backward(header, buffers)
        if op == "local":  # trusted harness code run here, beside the student's objects (endpoint.Local)
            # under the forbid rules of the API names whose objects it is handed: their code runs in it
            # (a gradcheck of a Function's backward, an optimizer's steps to convergence), and a rule
            # held only in calls the harness made by name (red team, round 7: torch.linalg.inv in a
            # Newton step scored full marks through every Local of exercise-6)
            # (in the harness's grad mode: exercise-9's placement ran with autograd off after invariants, and its
            # prediction had no graph to differentiate; the mode the student's process holds is not the harness's)
            origins = self._origins_in(header.get("value"))

            def local() -> Any:
                import torch

                with torch.set_grad_enabled(header.get("grad_mode") is not False):
                    return self.endpoint.decode(header.get("value"), buffers)
            return self._student(local, origins)
        obj, origin = self._target(header, buffers)
        if op == "getattr":
            name = header.get("name")
            if not isinstance(name, str):
                raise wire.WireError("getattr without a name")
            if obj is self.module:
                value = self._module_attr(name)
                origin = name
            else:
                value = self._student(lambda: getattr(obj, name), None, missing=True)
                return _Remembered(value, origin, _is_method_of(obj, name, value))
            return _Remembered(value, origin)
        if op == "introspect":
            cls = obj if isinstance(obj, type) else type(obj)
            mro = [f"{getattr(c, '__module__', '?')}.{getattr(c, '__qualname__', '?')}" for c in getattr(cls, "__mro__", ())]
            return {"type": getattr(cls, "__qualname__", "object"), "mro": mro, "callable": callable(obj),
                    "class": isinstance(obj, type)}
        if op == "list":
            return self._student(lambda: list(obj), origin)
        if op == "setpath":
            path = self.endpoint.decode(header.get("path", []), buffers)
            value = self.endpoint.decode(header.get("value"), buffers)
            return self._student(lambda: _set_path(obj, path, value), origin)
        raise wire.WireError(f"an unknown request {op!r}")

    def _swap(self, swaps: Any, buffers: list[bytes]) -> None:
        """The harness's swaps, in order (RemoteSubmission.replaced): {name, value} puts the harness's value
        in place of the module's `name`, remembering what was there; {name} puts it back (removes a name
        the submission lacked). Every swap is made, and remembered, even when an earlier one's value could
        not be built here (a local value whose factory raised): each put-back the harness sends later then
        finds its swap, and the error is raised once all are made, as the reply to this request."""
        if not isinstance(swaps, list):
            raise wire.WireError("malformed swaps")
        failed: BaseException | None = None
        for swap in swaps:
            name = swap.get("name") if isinstance(swap, dict) else None
            if not isinstance(name, str):
                raise wire.WireError("a swap without a name")
            if "value" in swap:
                had, old = hasattr(self.module, name), getattr(self.module, name, None)
                entries: list[tuple[dict, Any, Any]] = []
                self.swapped.setdefault(name, []).append((had, old, entries))
                try:
                    value = self.endpoint.decode(swap["value"], buffers)
                    setattr(self.module, name, value)
                    if had and callable(old):
                        entries += _registered(self.module, old, value)
                except Exception as e:  # noqa: BLE001 - raised below, after the other swaps
                    failed = failed or e
                continue
            if not self.swapped.get(name):
                raise wire.WireError(f"a swap of {name!r} put back that was never made")
            had, old, entries = self.swapped[name].pop()
            for table, key, value in entries:
                if table.get(key) is value:  # (only where the swap's value still stands)
                    table[key] = old
            if had:
                setattr(self.module, name, old)
            elif hasattr(self.module, name):
                delattr(self.module, name)
        if failed is not None:
            raise failed

    def _call(self, header: dict[str, Any], buffers: list[bytes]) -> Any:
        import torch

        obj, origin = self._target(header, buffers)
        method = header.get("method")
        self.endpoint.saw_elsewhere = False
        args = self.endpoint.decode(header.get("args", []), buffers)
        kwargs = self.endpoint.decode(header.get("kwargs", {"$": "dict", "v": []}), buffers)
        # on the placement probe's device with values, its rules apply
        elsewhere = self.endpoint.saw_elsewhere or _holds_elsewhere(args, kwargs)
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise wire.WireError("malformed arguments")
        from . import bridge

        inputs = bridge.inputs_for(self.endpoint, header.get("grad"))
        grad_mode = bool(inputs) or header.get("grad_mode", True) is not False

        def run():
            fn = getattr(obj, method) if isinstance(method, str) else obj
            if elsewhere:
                from ..kinds.elsewhere import values_elsewhere

                with values_elsewhere(), torch.set_grad_enabled(grad_mode):
                    return fn(*args, **kwargs)
            with torch.set_grad_enabled(grad_mode):
                if not header.get("capture"):
                    return fn(*args, **kwargs)
                import contextlib
                import io

                printed = io.StringIO()
                with contextlib.redirect_stdout(printed):
                    value = fn(*args, **kwargs)
                return value, printed.getvalue()[-100_000:]

        arrays = _array_arguments(args, kwargs) if not header.get("batched") else []
        result = self._student(run, origin)
        # (a call that raised says nothing: its error is the finding)
        self.endpoint.changed_arrays = [label for label, array, before in arrays if array.tobytes() != before]
        if not inputs:
            return _Remembered(result, origin)
        reply = bridge.tracked(self.endpoint, result, inputs, origin)
        reply["value"] = _Remembered(result, origin)
        return reply

    def _batch(self, header: dict[str, Any], buffers: list[bytes]) -> list[Any]:
        """Calls run in order, each as a `call` request alone would (never differentiable); each one's
        outcome is [True, value] or [False, error]: one that raises does not stop the next."""
        calls = header.get("calls")
        if not isinstance(calls, list) or len(calls) > BATCH_CAP:
            raise wire.WireError("a malformed batch")
        outcomes: list[Any] = []
        for call in calls:
            if not isinstance(call, dict):
                raise wire.WireError("a malformed call in a batch")
            call = {k: call[k] for k in ("target", "method", "args", "kwargs") if k in call}
            call["grad_mode"] = header.get("grad_mode", True)
            call["batched"] = True  # (its arguments are judged on the harness's copies)
            try:
                outcomes.append([True, self._call(call, buffers)])
            except _Reply as r:
                outcomes.append([False, r.error])
        return outcomes

    def _backward(self, header: dict[str, Any], buffers: list[bytes]) -> Any:
        from . import bridge

        # under the forbid rules of the call that made the graph: a hand-written backward (an
        # autograd.Function's) is the part an exercise most often asks for by hand
        return bridge.backward_reply(self.endpoint, header, buffers, run=self._student)

    def _origins_in(self, encoded: Any, depth: int = 0) -> list[str]:
        """The API names of the handles in an encoded value (each once, in order of appearance)."""
        found: list[str] = []
        if depth > 32:
            return found
        if isinstance(encoded, dict):
            handle = encoded.get("$") == "handle" and isinstance(encoded.get("id"), int)
            origin = self.origins.get(encoded["id"]) if handle else None
            if origin:
                found.append(origin)
            items: Any = encoded.values()
        elif isinstance(encoded, list):
            items = encoded
        else:
            return found
        for item in items:
            if isinstance(item, (dict, list)):  # (a scalar holds no handle: no call for each number of a run)
                found += [o for o in self._origins_in(item, depth + 1) if o not in found]
        return found

    def _student(self, fn, origin: str | list[str] | None, missing: bool = False) -> Any:
        """Run student code (as API name `origin`, or names, or none); its exceptions become error
        replies naming the student's own frames."""
        from .submission import describe, trimmed_traceback

        names = [origin] if isinstance(origin, str) else list(origin or ())
        for name in names:
            self.active.append(name)
        self.violation = None
        try:
            result = fn()
        except ForbiddenCall:
            raise error_reply("forbidden", self.violation or "a forbidden function was called") from None
        except RefusedHung as e:
            raise error_reply("hung", str(e)[:2000]) from None
        except AttributeError as e:
            if missing:
                raise error_reply("missing", str(e)) from None
            raise error_reply("raised", describe(e, self.loaded), trimmed_traceback(e, self.loaded)) from None
        except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt from student code too
            reply = error_reply("raised", describe(e, self.loaded), trimmed_traceback(e, self.loaded))
            reply.error.update(type=type(e).__name__, text=str(e)[:2000])
            raise reply from None
        finally:
            for _ in names:
                self.active.pop()
        if self.violation:
            raise error_reply("forbidden", self.violation)
        return result

    # ---- forbid ------------------------------------------------------------------------------------------

    def install_guards(self) -> None:
        """Wrap each forbidden function: a call from the student's own code, while an API name that
        forbids it is being called, is refused with the file and line. Module entries ("sympy.*") and
        "complex" (graders/sandbox/forbid.py) are judged by a watch (_Watch) that runs only while an API
        name that forbids them is being called: `active` starts and stops it; so are op entries
        ("aten.*convolution*": torch's operator, whichever Python name reached it)."""
        from .forbid import COMPLEX, OPERATORS, is_op, module_of

        wanted: dict[str, list[str]] = {}
        watches: dict[str, _Watch] = {}
        for api_name, names in self.forbid.items():
            modules = [(dotted, module) for dotted in names if (module := module_of(dotted)) is not None]
            ops = [entry for entry in names if is_op(entry)]
            if modules or COMPLEX in names or ops:
                watches[api_name] = _Watch(self, modules, COMPLEX in names, ops)
            for dotted in names:
                if dotted not in (COMPLEX, OPERATORS) and module_of(dotted) is None and not is_op(dotted):
                    wanted.setdefault(dotted, []).append(api_name)
        if watches:
            self.active = _Active(watches)
        for dotted, api_names in wanted.items():
            owner, attr = _resolve_owner(dotted)
            if owner is None:
                continue
            original = getattr(owner, attr)
            guarded = self._guard(original, dotted, set(api_names))
            try:
                setattr(owner, attr, guarded)
            except (AttributeError, TypeError):
                _guard_through_proxy(dotted, owner, attr, guarded)

    def _guard(self, original, dotted: str, api_names: set[str]):
        server = self

        def guarded(*args, **kwargs):
            if server.active and api_names.intersection(server.active):
                where = _student_caller(server.loaded)
                if where is None and threading.current_thread() is not threading.main_thread():
                    # the API name runs on the main thread; a call of a thread the submission started
                    # (a pool's worker has only the pool's frames) is its doing too (red team, round 7)
                    where = f"on the thread {threading.current_thread().name!r}, while it runs"
                if where is not None:
                    inside = next(a for a in reversed(server.active) if a in api_names)
                    server.violation = (f"{inside}() calls {dotted} ({where}); this exercise asks for "
                                        f"{inside} without it")
                    raise ForbiddenCall(server.violation)
            return original(*args, **kwargs)

        guarded.__name__ = getattr(original, "__name__", "guarded")
        guarded.__doc__ = getattr(original, "__doc__", None)
        guarded.__wrapped__ = original  # type: ignore[attr-defined]  # (inspect.unwrap: what it guards)
        return guarded


def _registered(module: Any, old: Any, new: Any) -> list[tuple[dict, Any, Any]]:
    """`old` replaced by `new` in the module's own dicts of callables too (a registry such as
    ACTIVATIONS = {"relu": ReLU, ...}, filled when the module ran): a swap by name alone left the
    function that reads the registry calling the submission's own (exercise-5's mlp_forward kept the
    student's ReLU under own_layers, and a ReLU bug cost gradcheck-mlp as well as its own check).
    Returns the (dict, key, new) entries changed, for the put-back."""
    changed = []
    for attr, table in list(vars(module).items()):
        if attr.startswith("__") or type(table) is not dict:
            continue
        for key, value in list(table.items()):
            if value is old:
                table[key] = new
                changed.append((table, key, new))
    return changed


def _holds_elsewhere(args: list[Any], kwargs: dict[str, Any]) -> bool:
    """Whether an argument (a mirror sent before, so not decoded afresh) is on the placement probe's
    device with values (graders/kinds/elsewhere.py); free until that probe has run in this process."""
    module = sys.modules.get(__name__.rsplit(".", 2)[0] + ".kinds.elsewhere")
    if module is None:
        return False
    from torch.utils._pytree import tree_flatten

    return any(isinstance(a, module.Elsewhere) for a in tree_flatten((args, kwargs))[0])


class _Active(list):
    """Server.active, the API names being called, that starts the watch of a name whose `forbid` names
    modules or complex numbers when the name is pushed and stops it when it is popped: Server._student
    pushes the name just before the student's code runs and pops it in its `finally`. (Calls do not
    nest there: a name pushed while a watch runs starts none.)"""

    def __init__(self, watches: dict[str, "_Watch"]):
        super().__init__()
        self.watches = watches
        self.running: list[_Watch | None] = []

    def append(self, name: Any) -> None:
        super().append(name)
        watch = None if any(self.running) else self.watches.get(name)
        if watch is not None:
            try:
                watch = watch if watch.start(name) else None
            except Exception:  # noqa: BLE001 - a watch that cannot start leaves the call to the static scan
                watch.stop()
                watch = None
        self.running.append(watch)

    def pop(self, index: Any = -1) -> Any:
        name = super().pop(index)
        watch = self.running.pop() if self.running else None
        if watch is not None:
            watch.stop()
        return name


# Code that a module makes at run time, which names no module of its own: module -> (its file names' start,
# what made it)
_GENERATED = {"sympy": ("<lambdifygenerated-", "sympy.lambdify")}
# What a watch may cost. Its trace function adds ~2 us per Python function call (+20 us on a call of
# exercise-1's gradient(), +7% to +35% on a train()); it watches the calls of an API name until they have
# taken WATCH_BUDGET_S together in the process (every call of the references': a bound for slow
# submissions, which it cannot push past their timeouts). Its torch function mode costs ~10 us per torch
# call (it triples a train()): it watches until MODE_BUDGET_S (exercise-1: the first ~90 calls of
# gradient(), train()'s short runs in first-loss). A complex step or a differentiation tool is not
# data-dependent: a gradient() that uses one does so on its first calls.
WATCH_BUDGET_S = 0.5
MODE_BUDGET_S = 0.02


class _Watch:
    """The run-time half of module entries and "complex", for one API name, while it is being called.

    - A module ("sympy.*"): a trace function (sys.settrace) sees every Python function that starts. One
      defined in the module (its globals' __name__), one the module exports from elsewhere (functorch's
      functions live in torch._functorch) or one sympy.lambdify made, called straight from the student's
      own code, is refused with the file and line. What the module is called by from elsewhere (torch
      imports and calls sympy itself) is not the student's call, nor the submission's own file of that
      name. (C functions are not seen: the modules these entries name are Python.)
    - "complex": a student's function that returns a complex value, or holds one in a variable when it
      returns (a Python complex, from cmath or not, a torch or numpy complex array), is refused; and a
      torch function mode refuses any complex tensor a torch function returns (`w + 1j * h`,
      `.to(torch.complex128)`, torch.complex, view_as_complex, a complex factory), even one no variable
      holds.

    - an op ("aten.*convolution*", "aten.linalg_inv_ex"): a torch dispatch mode sees every operator
      torch runs below its Python names (F.conv2d, torch.convolution, torch.ops.aten._convolution,
      torch._C._nn.*, nn.Conv2d, conv3d on an unsqueezed input all reach aten.convolution). One whose
      name matches, run while the student's code is on the stack, is refused with the file and line
      (the harness's own ops, lent into the call, use none). Its cost is ~4 us per operator of the
      forbidding calls, with no budget: a rule about the student's own op must hold on every call.

    The trace and the complex mode run only while the API name is being called, within the budgets
    above: the rest of the check pays nothing."""

    def __init__(self, server: Server, modules: list[tuple[str, str]], complex_: bool, ops: list[str] = ()):  # type: ignore[assignment]
        self.server = server
        self.modules = modules
        self.complex = complex_
        self.ops = list(ops)
        self.ops_mode: Any = None  # the mode while it is entered
        self.ops_made: Any = None  # this watch's mode, made at its first call
        self.tracing = False
        self.name = ""
        self.previous: Any = None
        self.mode: Any = None
        self.started = 0.0
        self.spent = 0.0  # seconds of watched calls in this process
        self.mode_spent = 0.0
        self.known: dict[Any, str | None] = {}  # a module's name -> the entry that forbids it, or None
        self.codes: dict[Any, str] = {}  # code of a function a forbidden module exports from elsewhere -> entry
        self.indexed: set[str] = set()
        self.student_files: dict[str, bool] = {}
        # a file name's start -> (the entry, "a function made by ...")
        self.generated = {_GENERATED[m][0]: (e, f"a function made by {_GENERATED[m][1]}") for e, m in modules
                          if m in _GENERATED}
        self.hook = self._hook()

    def start(self, name: str) -> bool:
        """Watch this call of `name`: False (and nothing started) once the trace's budget is spent and
        no op is forbidden."""
        import time

        self.tracing = bool(self.modules or self.complex) and self.spent < WATCH_BUDGET_S
        if not self.tracing and not self.ops:
            return False
        self.name = name
        self.started = time.perf_counter()
        if self.tracing:
            self.previous = sys.gettrace()
            self._index()
            sys.settrace(self.hook)
            if self.complex and self.mode_spent < MODE_BUDGET_S:
                mode = _no_complex_mode(self)
                mode.__enter__()
                self.mode = mode
        if self.ops:
            if self.ops_made is None:
                self.ops_made = _forbidden_ops_mode(self)
            self.ops_made.__enter__()
            self.ops_mode = self.ops_made
        return True

    def stop(self) -> None:
        import time

        try:
            if self.ops_mode is not None:
                self.ops_mode.__exit__(None, None, None)
        finally:
            self.ops_mode = None
            try:
                if self.mode is not None:
                    self.mode.__exit__(None, None, None)
            finally:
                if self.tracing:
                    sys.settrace(self.previous)
                    took = time.perf_counter() - self.started
                    self.spent += took
                    self.mode_spent += took if self.mode is not None else 0.0
                self.mode = None
                self.tracing = False

    def _index(self) -> None:
        """The functions each forbidden module, once imported, exports from other modules (functorch.grad
        is torch._functorch.deprecated.grad): a call of one of those is a call of the module's."""
        for entry, module in self.modules:
            if module in self.indexed:
                continue
            imported = sys.modules.get(module)
            if imported is None or getattr(imported, "__spec__", None) is None:  # not yet, or nosympy's stand-in
                continue
            self.indexed.add(module)
            names = getattr(imported, "__all__", None)
            public = vars(imported)
            for attr in list(names if isinstance(names, (list, tuple)) else public):
                value = public.get(attr) if isinstance(attr, str) and not attr.startswith("_") else None
                code = getattr(value, "__code__", None) if isinstance(value, types.FunctionType) else None
                home = getattr(value, "__module__", None) or ""
                if code is not None and home != __name__ and not self._entry(home):  # (not our own guards)
                    self.codes[code] = entry

    def _entry(self, module: Any) -> str | None:
        """The entry that forbids the module named `module` (a function's __module__ or globals' __name__)."""
        found = None
        if isinstance(module, str):
            found = next((e for e, m in self.modules if module == m or module.startswith(m + ".")), None)
        self.known[module] = found
        return found

    def _student(self, filename: str) -> bool:
        known = self.student_files.get(filename)
        if known is None:  # ("<lambdifygenerated-1>", "<string>": no file, though relative to the working folder)
            known = self.student_files[filename] = (not filename.startswith("<")
                                                    and bool(self.server.loaded.is_student_file(filename)))
        return known

    def _hook(self) -> Any:
        """The trace function (sys.settrace: a closure, called as each Python function starts while the API
        name is being called; C calls cost it nothing). The student's own frames get a local one that
        sees them return (the complex values they return or hold), and no line events."""
        from .forbid import COMPLEX

        known, codes, generated, student_files = self.known, self.codes, self.generated, self.student_files
        entry_of, student, complex_ = self._entry, self._student, self.complex
        unseen = object()

        def returns(frame: Any, event: str, arg: Any) -> Any:
            if event == "return":
                if _is_complex(arg):
                    self.refuse(COMPLEX, f"{frame.f_code.co_name}() returns a complex value", frame)
                for var, value in frame.f_locals.items():
                    if _is_complex(value):
                        self.refuse(COMPLEX, f"the variable {var} holds a complex value", frame)
            return returns

        def hook(frame: Any, event: str, arg: Any) -> Any:
            module = frame.f_globals.get("__name__")
            entry: Any = known.get(module, unseen)
            if entry is unseen:
                entry = entry_of(module)
            code = frame.f_code
            if entry is None:
                entry = codes.get(code)
                if entry is None and generated and module is None:
                    entry = next((made for prefix, made in generated.items() if code.co_filename.startswith(prefix)), None)
            ours = student_files.get(code.co_filename)
            if ours is None:
                ours = student(code.co_filename)
            if entry is not None and not ours:  # (the submission's own module of that name is its own code)
                caller = frame.f_back
                if caller is not None and student(caller.f_code.co_filename):
                    what = entry[1] if isinstance(entry, tuple) else f"{module}.{code.co_qualname}"
                    self.refuse(entry[0] if isinstance(entry, tuple) else entry, f"calls {what}", caller)
            if complex_ and ours:
                frame.f_trace_lines = False
                return returns
            return None

        return hook

    def refuse(self, entry: str, what: str, frame: Any) -> None:
        """Record the violation and raise it into the student's code (ForbiddenCall)."""
        from .forbid import COMPLEX, without

        if entry == COMPLEX:
            message = f"{self.name}() uses complex numbers ({what.removeprefix('calls ')}, {self._where(frame)})"
            message += f": {without(self.name, entry)}"
        else:
            message = f"{self.name}() {what} ({self._where(frame)}); {without(self.name, entry)}"
        self.server.violation = self.server.violation or message
        raise ForbiddenCall(self.server.violation)

    def _where(self, frame: Any) -> str:
        """The innermost of the student's own frames from `frame` out, as "FILE line N"."""
        from .submission import _short

        while frame is not None and not self._student(frame.f_code.co_filename):
            frame = frame.f_back
        return f"{_short(frame.f_code.co_filename, self.server.loaded)} line {frame.f_lineno}" if frame else "?"


def _is_complex(value: Any) -> bool:
    """A complex value of the kinds a complex-step derivative uses: a Python complex, a torch or numpy one."""
    if isinstance(value, complex):
        return True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return bool(value.dtype.is_complex)
    np = sys.modules.get("numpy")
    return np is not None and isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind == "c"


_FORBIDDEN_OPS: list[Any] = []


def _forbidden_ops_mode(watch: _Watch) -> Any:
    """A torch dispatch mode that refuses the operators `watch.ops` names (fnmatch patterns after "aten."),
    run while the student's code is on the stack. The class is made once, when first needed; each watch
    keeps its one instance (entered again at each watched call), and with it what each operator matched."""
    if not _FORBIDDEN_OPS:
        import fnmatch

        from torch.utils._python_dispatch import TorchDispatchMode

        from .torchfast import never_compiled

        class ForbiddenOps(TorchDispatchMode):
            def __init__(self, watch: _Watch):
                super().__init__()
                self.watch = watch
                self.patterns = [(entry, entry.split(".", 1)[1]) for entry in watch.ops]
                self.seen: dict[Any, str | None] = {}  # an operator -> the entry that forbids it, or None

            def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                entry: Any = self.seen.get(func, False)
                if entry is False:
                    name = getattr(getattr(func, "overloadpacket", None), "__name__", "") or ""
                    entry = self.seen[func] = next((e for e, pattern in self.patterns
                                                    if fnmatch.fnmatchcase(name, pattern)), None)
                if entry is not None:
                    frame = sys._getframe(1)
                    while frame is not None and not self.watch._student(frame.f_code.co_filename):
                        frame = frame.f_back
                    if frame is not None:
                        name = func.overloadpacket.__name__
                        self.watch.refuse(entry, f"runs torch's operator aten.{name} (what torch's own functions "
                                                 "for it run, whichever name called it)", frame)
                return func(*args, **(kwargs or {}))

        # (torch wraps it in torch._disable_dynamo, whose first call would import torch._dynamo: 1.3 s)
        never_compiled(getattr(ForbiddenOps.__dict__["__torch_dispatch__"], "__wrapped__", None))
        _FORBIDDEN_OPS.append(ForbiddenOps)
    return _FORBIDDEN_OPS[0](watch)


_NO_COMPLEX: list[Any] = []


def _no_complex_mode(watch: _Watch) -> Any:
    """A torch function mode that refuses a complex tensor returned by any torch function (the class made
    once, when first needed: torch is imported by then)."""
    if not _NO_COMPLEX:
        import torch
        from torch.overrides import TorchFunctionMode

        from .forbid import COMPLEX

        class NoComplex(TorchFunctionMode):
            def __init__(self, watch: _Watch):
                super().__init__()
                self.watch = watch

            def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
                out = func(*args, **(kwargs or {}))
                if isinstance(out, torch.Tensor):
                    made = out.dtype.is_complex
                elif isinstance(out, (tuple, list)):
                    made = any(isinstance(o, torch.Tensor) and o.dtype.is_complex for o in out)
                else:
                    return out
                if made:
                    name = getattr(func, "__name__", None) or str(func)
                    self.watch.refuse(COMPLEX, f"a complex tensor from {name}()", sys._getframe(1))
                return out

        _NO_COMPLEX.append(NoComplex)
    return _NO_COMPLEX[0](watch)


class _Remembered:
    """A reply value with the API name its handles come from; unwrapped by `encode_reply`."""

    __slots__ = ("value", "origin", "bound")

    def __init__(self, value: Any, origin: str | None, bound: bool = False):
        self.value, self.origin, self.bound = value, origin, bound


def _is_method_of(obj: Any, name: str, value: Any) -> bool:
    """Is `value` (just read as obj.name) a plain function of obj's class bound to obj? Then the harness
    may call it later as a method call, one message (endpoint.BoundMethod). Read without running the
    object's code (getattr_static): a property or a __getattr__ is never taken for a method."""
    import inspect

    try:
        return (isinstance(value, types.MethodType) and value.__self__ is obj
                and isinstance(inspect.getattr_static(type(obj), name, None), types.FunctionType))
    except Exception:  # noqa: BLE001 - a hostile class can make even static lookups raise
        return False


def _proxy(target: Any, attr: str, guarded: Any) -> Any:
    """Stands in for an object whose attribute cannot be replaced (a method of a C object: autograd's
    engine, Variable._execution_engine), with that attribute guarded and every other one its own. The
    target is held by a closure, not an attribute: `proxy._target.run_backward` reached the engine past
    its guard (red team, round 8c)."""

    class _Proxy:
        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            return guarded if name == attr else getattr(target, name)

    return _Proxy()


def _guard_through_proxy(dotted: str, owner: Any, attr: str, guarded: Any) -> None:
    """Where `owner.attr` cannot be set, put a _Proxy of `owner` in its place, in the object that holds
    it (torch.autograd.Variable holds the engine); torch's own calls go through it unchanged."""
    holder, name = _resolve_owner(dotted.rsplit(".", 1)[0])
    if holder is None or getattr(holder, name, None) is not owner:
        return
    try:
        setattr(holder, name, _proxy(owner, attr, guarded))
    except (AttributeError, TypeError):
        pass


def _resolve_owner(dotted: str) -> tuple[Any, str]:
    """(the object that holds the last part of `dotted`, that part), or (None, "") where there is none."""
    from .forbid import resolve

    prefix, _, attr = dotted.rpartition(".")
    owner = resolve(prefix) if prefix else None
    return (owner, attr) if owner is not None and hasattr(owner, attr) else (None, "")


def _student_caller(loaded: Any) -> str | None:
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename  # ("<frozen runpy>", "<string>": no file of the student's)
        if not name.startswith("<") and loaded.is_student_file(name):
            from .submission import _short

            return f"{_short(frame.f_code.co_filename, loaded)} line {frame.f_lineno}"
        frame = frame.f_back
    return None


def _array_arguments(args: list, kwargs: dict) -> list[tuple[int | str, Any, bytes]]:
    """(position or keyword, array, its bytes now) for each numpy array passed: arrays cross by value, so
    a change the call makes to one is seen only here (sent with the reply: Endpoint.changed_arrays)."""
    np = sys.modules.get("numpy")
    if np is None:
        return []
    labelled = [*enumerate(args), *kwargs.items()]
    return [(label, value, value.tobytes()) for label, value in labelled if isinstance(value, np.ndarray)]


def _set_path(obj: Any, path: list, value: Any) -> None:
    if not isinstance(path, list) or not path:
        raise ValueError("an empty path")
    for step in path[:-1]:
        obj = getattr(obj, step) if isinstance(step, str) and not isinstance(obj, dict) else obj[step]
    last = path[-1]
    if isinstance(last, str) and not isinstance(obj, dict):
        setattr(obj, last, value)
    else:
        obj[last] = value


class StudentEndpoint(Endpoint):
    """The student side's endpoint: reply values remember their API name for forbid guards."""

    server: Server | None = None

    def encode(self, value: Any, buffers: list[bytes], depth: int = 0) -> Any:
        if isinstance(value, _Remembered):
            encoded = super().encode(value.value, buffers, depth)
            if self.server is not None and isinstance(encoded, dict) and encoded.get("$") == "handle":
                if value.origin:
                    self.server.origins[encoded["id"]] = value.origin
                if value.bound:
                    encoded["bound"] = True
            return encoded
        return super().encode(value, buffers, depth)


def run(sock_fd: int, request: dict[str, Any], dump_fd: int, pid_namespace_ready: bool = False) -> None:
    """The student process's whole life: confine, guard, load, answer until the harness hangs up.
    `pid_namespace_ready`: it was forked as the init of a PID namespace of its own (the zygote's
    confine.PidNamespaceForks)."""
    import socket

    from .submission import Loaded, SubmissionError, import_only_what_was_handed_in, load

    sock = socket.socket(fileno=sock_fd)
    endpoint = StudentEndpoint(sock, "student")
    # The relay that confine() leaves outside the PID namespace (where the zygote could not make it) must
    # survive the harness's SIGUSR1; the process that runs student code dumps its stack on it (where a
    # hung submission hangs).
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    applied: list[str] = []
    try:  # a notebook's own check() cells import it inside the sandbox, where a late import failed
        import dldiy.incheck  # noqa: F401
    except ImportError:
        pass
    if request.get("sandbox"):
        from .confine import confine

        # As its PID namespace's init, the harness moves it into its cgroups while it builds its root
        # (Zygote.fork_student); it waits for that report before it loads the submission.
        joined = (lambda: _join_report(sock)) if pid_namespace_ready else None
        state = confine(request["sandbox"], pid_namespace_ready=pid_namespace_ready, joined=joined)
        applied = state.applied + [f"not applied: {m}" for m in state.missing]
    # The confinement's report goes out now, before any of the submission's code runs: code run at import
    # could otherwise rewrite what 'loaded' says of it (red team: a forged isolation list in batch.json).
    endpoint.send({"op": "confined", "sandbox": applied})
    dump = os.fdopen(dump_fd, "w")
    faulthandler.register(signal.SIGUSR1, file=dump, all_threads=False, chain=False)
    try:
        import torch

        from .torchfast import skip_dynamo

        torch.set_num_threads(1)
        skip_dynamo()  # a fresh student process: as its forked siblings
    except Exception:  # noqa: BLE001
        pass
    entry = Path(request["entry"]).resolve()
    # until it is loaded, a Loaded without a module tells the guards which frames are the student's
    server = Server(endpoint, Loaded(types.ModuleType("pending"), entry, entry.parent), request.get("forbid") or {})
    server.install_guards()  # before the submission's imports bind the names
    if request.get("forbid"):  # rules are judged from the source the scan read: nothing else is imported
        import_only_what_was_handed_in(entry.parent)
    try:
        loaded = load(Path(request["entry"]), request.get("load"))
    except SubmissionError as e:
        endpoint.send({"op": "load_error", "message": str(e)})
        return
    if request.get("hung_sites"):  # a replacement after a timeout: what hung is not run again
        try:
            refuse_hung(loaded, request["hung_sites"])
        except Exception:  # noqa: BLE001 - a saving of time only: the shorter timeouts still apply
            pass
    server.loaded, server.module = loaded, loaded.module
    endpoint.server = server
    endpoint.send({"op": "loaded", "skipped": list(loaded.skipped)})
    while True:
        try:
            header, buffers = endpoint.receive()
        except (wire.PeerGone, wire.WireError, OSError):
            return
        endpoint.serve(header, buffers)


class Zygote:
    """Forks every student's process for one harness process, from a copy of it taken before it read
    any submission's tasks.

    The harness process serves submission after submission: its memory soon holds hidden seeds, the
    earlier students' objects and what it measured of them. A student's process forked from it would
    inherit all of that; one forked from this zygote (a clean copy: torch imported, the harness
    compiled, nothing of any submission) inherits nothing. The zygote never learns anything of a
    submission either: a request over its SOCK_SEQPACKET pair is only the pipe the student's output
    goes to; the reply is the pid, with the harness's end of the call socket, the read end of the
    stack-dump pipe and the read end of a pipe on which the zygote writes the exit status when it
    reaps it. The student's request (its entry, its sandbox) then goes straight to the new process
    over the call socket, so no later student's fork finds an earlier one's in the zygote's memory.

    `pid_namespaces`: fork each student as the init of a PID namespace of its own where this process
    may (confine.PidNamespaceForks: root), so that confine() in the student has no relay to fork."""

    def __init__(self, pid_namespaces: bool = False) -> None:
        import socket

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        os.set_inheritable(ours.fileno(), False)
        self.pid = fork_running(lambda: _zygote(theirs, ours, pid_namespaces))
        theirs.close()
        self.sock = ours

    def fork_student(self, request: dict[str, Any], output_fd: int) -> tuple[int, Any, int, int, bool]:
        """(pid, the harness's socket, the dump pipe's read end, the exit-status pipe's read end, whether it
        is the init of a PID namespace of its own: everything it starts then dies with it)."""
        import json
        import socket
        import struct

        socket.send_fds(self.sock, [b"fork"], [output_fd])
        reply, fds, _, _ = socket.recv_fds(self.sock, 64, 3)
        if not reply or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            raise OSError("the zygote did not fork the student's process")
        pid, namespace_init = (int(field) for field in reply.split())
        sock = socket.socket(fileno=fds[0])

        def send(message: dict[str, Any]) -> None:
            data = json.dumps(message).encode()
            try:  # one that died already is read as a death by the caller
                sock.sendall(struct.pack(">I", len(data)) + data)
            except OSError:
                pass

        send(request)  # its first read (_request_from)
        if namespace_init and request.get("sandbox"):
            # It forks nothing before it has read the report (confine's `joined`): moved now, all of it
            # is in its cgroups before any of the student's code runs.
            from .confine import join_cgroups

            applied, missing = join_cgroups(request["sandbox"], pid)
            send({"applied": applied, "missing": missing})
        return pid, sock, fds[1], fds[2], bool(namespace_init)

    def close(self) -> None:
        self.sock.close()  # the zygote reads end of file and exits
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _join_report(sock: Any) -> tuple[list[str], list[str]]:
    """What the harness's join_cgroups() applied and missed, its second message on the call socket."""
    report = _request_from(sock)
    return [str(line) for line in report.get("applied", [])], [str(line) for line in report.get("missing", [])]


def _request_from(sock: Any) -> dict[str, Any]:
    """The student's request, the first thing the harness sends on the call socket (Zygote.fork_student)."""
    import json
    import struct

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise wire.PeerGone()
            data += chunk
        return data

    (size,) = struct.unpack(">I", exactly(4))
    if size > MAX_REQUEST:
        raise wire.WireError("a request too large")
    return json.loads(exactly(size))


MAX_REQUEST = 1 << 20


def _zygote(sock: Any, harness_end: Any, pid_namespaces: bool = False) -> None:
    """The zygote's life: fork one student's process per request, report each one's exit status."""
    import socket

    from .confine import PidNamespaceForks

    harness_end.close()
    name_process("dldiy-zygote")
    # no harness code in what the students' processes inherit: the worker imported only what its harness
    # imports (child._import_what_it_imports), and the harness files the fork server compiled go here
    # (endpoint.Local: the code comes with the first Local)
    from . import submission

    submission._COMPILED.clear()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # never the harness's stdin: the tasks arrive there
    os.close(null)
    _close_other_fds({0, 1, 2, sock.fileno()})
    forks = PidNamespaceForks.create() if pid_namespaces else None  # (its descriptor closed in each student)
    statuses: dict[int, int] = {}  # pid -> the write end of its exit-status pipe

    def reap(signum: int, frame: Any) -> None:
        for pid, status in reap_ended():
            fd = statuses.pop(pid, None)
            if fd is not None:
                try:
                    os.write(fd, str(os.waitstatus_to_exitcode(status)).encode())
                except OSError:
                    pass
                os.close(fd)

    signal.signal(signal.SIGCHLD, reap)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, 16, 1)
        except OSError:
            return
        if not data or len(fds) != 1:
            return  # the harness process closed its end (or is gone)
        ours, theirs = wire.socketpair()
        dump_r, dump_w = os.pipe()
        status_r, status_w = os.pipe()
        output = fds[0]

        def serve_there() -> None:
            name_process("dldiy-student")
            ours.close()
            for fd in (dump_r, status_r, status_w):
                os.close(fd)
            os.dup2(output, 1)  # what the student's code prints: the harness reads it afterwards
            os.dup2(output, 2)
            os.setsid()
            _close_other_fds({0, 1, 2, theirs.fileno(), dump_w})
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
            os.set_inheritable(theirs.fileno(), True)
            request = _request_from(theirs)  # its own, from the harness: the zygote never held it
            run(theirs.detach(), request, dump_w, pid_namespace_ready=forks is not None)

        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # registered before it can be reaped
        try:
            # never returns into the zygote's code
            pid = forks.fork(lambda: fork_running(serve_there)) if forks is not None else fork_running(serve_there)
            statuses[pid] = status_w
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        theirs.close()
        for fd in (dump_w, output):
            os.close(fd)
        try:
            socket.send_fds(sock, [f"{pid} {int(forks is not None)}".encode()], [ours.fileno(), dump_r, status_r])
        except OSError:
            return
        finally:
            ours.close()
            os.close(dump_r)
            os.close(status_r)


def _close_other_fds(keep: set[int]) -> None:
    """The student's process inherits nothing of the harness's: not the result channel, not a file."""
    top = 1 << 16
    start = 0
    for fd in sorted(keep) + [top]:
        if fd > start:
            os.closerange(start, fd)
        start = fd + 1
