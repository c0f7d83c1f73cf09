"""An exercise scaffolded from a notebook pair (`dldiy new`, cli/new.py): what the solved notebook
defines (its layers, its training loop, its imports and downloads), and the spec.toml and harness.py
written from that."""

from __future__ import annotations

import ast
import json
import re
import sys

from . import notebook

# import name -> distribution name, where they differ
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "pillow", "cv2": "opencv-python", "skimage": "scikit-image"}


def title(nb, default: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return default


def analyse(nb) -> dict:
    """What the scaffold can read off the solution notebook (or a .py file as a notebook of one cell):
    imports, downloads, layer classes (`forward` and `backward` methods: numpy style, checked through
    gradcheck_layer), torch.autograd.Function subclasses (static `forward(ctx, ...)`: checked through
    function_blocks), the student's plain functions, and the training loop."""
    found: dict = {"requirements": set(), "downloads": [], "layers": [], "functions": [], "train": None,
                   "regions": 0, "torch": False, "torch_classes": []}
    applied: dict[str, int] = {}  # Function name -> the most positional arguments a `Name.apply(...)` passes
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        found["regions"] += cell.source.count(notebook.BEGIN)
        lines = cell.source.split("\n")
        found["downloads"] += [line.strip() for line in lines if re.match(r"\s*!\s*(wget|curl)\b", line)]
        try:
            tree = ast.parse("\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in lines))
        except SyntaxError:
            continue
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr == "apply" and isinstance(func.value, ast.Name) \
                    and not any(isinstance(a, ast.Starred) for a in call.args):
                applied[func.value.id] = max(applied.get(func.value.id, 0), len(call.args))
        for node in tree.body:
            # a class or function the notebook hands out whole (no solution region inside) is no student's to check
            marked = any(notebook.BEGIN in line for line in lines[node.lineno - 1:node.end_lineno])
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found["requirements"] |= {n.split(".")[0] for n in names if n and not getattr(node, "level", 0)}
            elif isinstance(node, ast.ClassDef) and _is_autograd_function(node):
                found["layers"].append({**_function_class(node), "given": not marked})
            elif isinstance(node, ast.ClassDef) and {"forward", "backward"} <= _methods(node).keys():
                found["layers"].append({**_layer(node), "given": not marked})
            elif isinstance(node, ast.ClassDef) and marked and any(
                    ast.unparse(b).split(".")[-1] in ("Module", "Optimizer") for b in node.bases):
                # an nn.Module (autograd does its backward) or an Optimizer: no scaffold, said by `new`
                found["torch_classes"].append((node.name, next(ast.unparse(b) for b in node.bases
                                                               if ast.unparse(b).split(".")[-1] in ("Module", "Optimizer"))))
            elif isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                called = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
                found["functions"].append({"name": node.name, "args": _required(node.args), "given": not marked,
                                           "calls": sorted(called - {node.name}),
                                           "signature": f"{node.name}({ast.unparse(node.args)})",
                                           "returns_cache": _returns_cache(node)})
            elif isinstance(node, (ast.For, ast.While)) and found["train"] is None and \
                    re.search(r"\.(backward|step)\(", ast.unparse(node)):
                found["train"] = _loop_selector(lines[node.lineno - 1].strip())
    for layer in found["layers"]:
        # the optional arguments of forward that the notebook's own calls pass (`LayerNormFn.apply(x, gamma, beta,
        # self.eps)`), at their defaults: a backward must return a gradient (None) for each, and the probes call
        # apply as the notebook does (course6 trial: a backward returning 3 gradients for 4 inputs passed
        # every scaffolded check, which left eps out, and crashed the notebook's training)
        optional = layer.pop("optional", [])
        extra = applied.get(layer["name"], 0) - len(layer["args"])
        layer["args"] += [name for name, _ in optional[:max(extra, 0)]]
        layer["defaults"] = dict(optional)
    written = {f["name"] for f in _written(found, "functions")} | {c["name"] for c in _written(found, "layers")}
    for f in found["functions"]:  # which of the student's own functions each one calls
        f["calls"] = [name for name in f.get("calls", []) if name in written]
    found["torch"] = "torch" in found["requirements"]
    found["requirements"] = sorted(_DISTRIBUTIONS.get(n, n) for n in found["requirements"]
                                   if n not in sys.stdlib_module_names and n != "dldiy")
    return found


def _loop_selector(line: str) -> str:
    """What selects the training loop's cell: a `for` loop's line from `in` on (`in range(n_epochs):`), so
    that a student who renames the loop variable keeps the cell selected (course7 trial: `for ep in
    range(n_epochs):` lost the training check's points); another loop's whole line."""
    match = re.match(r"(?:async\s+)?for\s+.+?\s(in\s.+)$", line)
    return match.group(1) if match and len(match.group(1)) >= 8 else line


def _is_autograd_function(node: ast.ClassDef) -> bool:
    """`class F(torch.autograd.Function)` (or `Function`, `autograd.Function`) with a `forward` and a
    `backward`: called through F.apply(...), never built as F()."""
    bases = {b.id if isinstance(b, ast.Name) else b.attr if isinstance(b, ast.Attribute) else "" for b in node.bases}
    return "Function" in bases and {"forward", "backward"} <= _methods(node).keys()


def _required(args: ast.arguments) -> list[str]:
    """The positional arguments a call must give (those without a default)."""
    positional = [*args.posonlyargs, *args.args]
    return [a.arg for a in positional[:len(positional) - len(args.defaults)]]


def _function_class(node: ast.ClassDef) -> dict:
    """A torch.autograd.Function: the inputs its forward needs (after ctx), and its optional ones with their
    defaults' source (analyse keeps those the notebook's `.apply(...)` calls pass)."""
    args = _methods(node)["forward"].args
    positional = [*args.posonlyargs, *args.args]
    optional = [(a.arg, ast.unparse(d)) for a, d in zip(positional[len(positional) - len(args.defaults):], args.defaults)]
    return {"name": node.name, "function": True, "args": _required(args)[1:], "optional": optional,
            "loss": False, "grads": {}}


def _methods(node: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}


def _layer(node: ast.ClassDef) -> dict:
    """A layer class: its constructor's arguments, whether it is a loss, its parameter -> gradient names."""
    methods = _methods(node)
    assigned = {name: {t.attr for n in ast.walk(f) for t in getattr(n, "targets", [getattr(n, "target", None)])
                       if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"}
                for name, f in methods.items()}
    params = assigned.get("__init__", set())
    grads = {}
    for g in sorted(assigned["backward"]):
        for p in sorted(params):
            if g in (f"d{p}", f"grad_{p}", f"{p}_grad", f"d_{p}"):
                grads[p] = g
    init = methods.get("__init__")
    # the constructor's required arguments only (sizes, as the probe passes them); defaults stay defaults
    required = init.args.args[1:len(init.args.args) - len(init.args.defaults)] if init else []
    args = [a.arg for a in required]
    loss = len(methods["forward"].args.args) > 2 and len(methods["backward"].args.args) == 1
    return {"name": node.name, "args": args, "loss": loss, "grads": grads}


def _check_name(layer: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "-", layer).lower().replace("_", "-")


def _written(found: dict, key: str) -> list[dict]:
    """The layer classes (or functions) a student writes: those with a solution region, or all where none
    is marked."""
    written = [item for item in found[key] if not item.get("given")]
    return written if found["regions"] else found[key]


def _checked_layers(found: dict) -> list[dict]:
    return _written(found, "layers")


# Arguments guessed from their names, for a probe to call a student's function or Function with (the
# scaffold cannot know the shapes: `dldiy validate` says where a guess does not fit the reference). Square
# matrices, so that X @ W and W @ X both multiply; labels in 0..2; 3-vectors for a bias or a scale.
_VECTORS = {"b", "bias", "gamma", "beta", "w", "theta", "scale", "shift", "mu", "mean", "std", "var"}
_LABELS = {"y", "labels", "label", "target", "targets", "t", "y_true", "classes"}
_INTS = {"n", "k", "d", "c", "m", "steps", "epochs", "iters", "n_steps", "n_epochs", "n_iter", "batch_size",
         "dim", "axis", "n_classes", "num_classes", "size", "hidden", "depth", "width", "T"}
_FLOATS = {"lr", "eta", "alpha", "eps", "epsilon", "momentum", "rho", "tau", "tol", "p", "temperature", "lam",
           "lambda_", "weight_decay", "decay", "reg", "l2", "beta1", "beta2", "clip", "max_norm", "margin"}


# Arguments no guess can stand for: what a forward returned for its backward (course8 trial: a random 3x3 tensor
# passed as `cache`, which the reference unpacked into nonsense, and record and validate accepted it)
_CACHES = {"cache", "ctx", "state", "saved", "cached", "memo", "stash"}


def _returns_cache(node: ast.FunctionDef) -> bool:
    """Whether a function returns (out, ..., cache): a tuple whose last element is a name of _CACHES."""
    return any(isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple) and len(n.value.elts) > 1
               and isinstance(n.value.elts[-1], ast.Name) and n.value.elts[-1].id in _CACHES for n in ast.walk(node))


def _producer(fn: dict, functions: list[dict]) -> dict | None:
    """The function whose output a `cache` argument of `fn` comes from: batchnorm_forward for batchnorm_backward,
    else the only function that returns a cache."""
    paired = fn["name"].replace("backward", "forward").replace("bwd", "fwd")
    named = [f for f in functions if f["name"] == paired and f["name"] != fn["name"]]
    caching = [f for f in functions if f.get("returns_cache") and f["name"] != fn["name"]]
    return named[0] if named else caching[0] if len(caching) == 1 else None


def _guess(name: str, torch: bool) -> tuple[str, bool]:
    """(the expression for argument `name`, whether it is a tensor/array the probe differentiates)."""
    if name == "seed":
        return "seed", False
    if name in _INTS or name.startswith(("n_", "num_")):
        return "3", False
    if name in _FLOATS:
        return "0.1", False
    if name in _LABELS:
        return ("torch.randint(0, 3, (3,), generator=g)" if torch else "rng.integers(0, 3, 3)"), False
    shape = "3" if name in _VECTORS else "3, 3"
    return (f"torch.randn({shape}, generator=g, dtype=torch.float64)" if torch
            else f"rng.standard_normal(({shape},))" if shape == "3" else f"rng.standard_normal(({shape}))"), True


def _function_checks(found: dict) -> list[dict]:
    """Checks for the student's plain functions and torch.autograd.Functions: (name, kind, probe, title)."""
    out = []
    for layer in _checked_layers(found):
        if layer.get("function"):
            name = _check_name(layer["name"])
            out.append({"name": f"{name}-forward", "kind": "agreement", "probe": f"{name.replace('-', '_')}_forward",
                        "title": f"{layer['name']}.apply agrees with the reference"})
    for fn in _written(found, "functions"):
        name = _check_name(fn["name"])
        out.append({"name": name, "kind": "agreement", "probe": f"{fn['name']}_agrees",
                    "title": f"{fn['name']} agrees with the reference"})
    return out


def spec_text(exercise_id: str, heading: str, entry: str, found: dict) -> str:
    notebook_entry = entry.endswith(".ipynb")
    lines = [f'id = "{exercise_id}"', f"title = {json.dumps(heading)}", f'entry = "{entry}"',
             "seeds = [1, 2, 3]", "timeout = 10  # seconds per check and seed", "load_timeout = 30"]
    if notebook_entry:
        lines += ['# Run imports, functions, classes and constants at load; the training loop runs only when a check',
                  '# asks for it (cells.train below). "all" runs every cell; load_tags / skip_tags select by tag.',
                  'load = "definitions"']
    lines += [f"requirements = {json.dumps(found['requirements'])}"]
    if found["downloads"]:
        lines += [f"# The notebook downloads its data ({found['downloads'][0]}): put the files in",
                  f"# exercises/{exercise_id}/data/; the submission finds them under data/ (no network in the sandbox)."]
    if found["train"] and notebook_entry:
        lines += ["", "# A selector by a tag (train = { tag = \"train\" }, the cell tagged in the notebook) survives a",
                  "# student's edit of the cell's first line; `contains` does not.",
                  "[cells]", f"train = {{ contains = {json.dumps(found['train'])} }}"]
    for fn in _written(found, "functions"):
        # sub.call checks the arguments are left as they were (course6 trial: a kmeans that overwrote the
        # caller's C0 kept full marks through sub.get(name)(...), which does not)
        lines += ["", f"[api.{fn['name']}]", f"signature = {json.dumps(fn['signature'])}",
                  f"# mutates = true  # if {fn['name']} changes its arguments in place by design (else that fails its checks)"]
    for check in _function_checks(found):
        lines += ["", "[[checks]]", f'name = "{check["name"]}"', f'kind = "{check["kind"]}"',
                  f'title = "{check["title"]}"', "points = 1", f'probe = "{check["probe"]}"', "rtol = 1e-6",
                  "atol = 1e-9"]
    for layer in _checked_layers(found):
        name = _check_name(layer["name"])
        what = f"{layer['name']}.backward against finite differences of its forward and the reference's gradient"
        lines += ["", "[[checks]]", f'name = "{name}-backward"', 'kind = "gradcheck"', f'title = "{what}"',
                  "points = 1", f'probe = "{name.replace("-", "_")}_backward"', "rtol = 1e-5", "atol = 1e-7",
                  "# and to the reference's hand gradient at the same inputs and parameters: finite differences of the",
                  "# student's own forward cannot see a forward that is not the layer's, nor a backward made of them",
                  "against_reference = true"]
    return "\n".join(lines) + "\n"


_CASES = '''

def _cases(name, out):
    """A function's output as agreement cases, each part of a returned tuple its own case, compared with
    the reference's values at the same seed (expected.json, written by `dldiy record`)."""
    parts = list(out) if isinstance(out, (tuple, list)) and any(hasattr(o, "shape") or isinstance(o, (list, tuple))
                                                                 for o in out) else [out]
    cases = []
    for i, part in enumerate(parts):
        what = name if len(parts) == 1 else f"{name}[{i}]"
        values = as_array(part, what, finite=False)
        cases.append({"name": what, "shape": list(values.shape), "values": values.ravel().tolist()})
    return {"cases": cases}
'''

_APPLIED = '''

def applied(Function, *rest):
    """Function.apply(*tensors, *rest), built where the submission runs (built_inside): a Function is
    called through its apply, never built."""
    return lambda *xs: Function.apply(*xs, *rest)
'''


def harness_text(exercise_id: str, found: dict) -> str:
    torch = found.get("torch", False)
    layers, functions = _checked_layers(found), _written(found, "functions")
    autograd = [layer for layer in layers if layer.get("function")]
    numpy_layers = [layer for layer in layers if not layer.get("function")]
    out = [f'"""{exercise_id} probes (scaffolded by `dldiy new`: check the inputs, then add checks).', "",
           "The arguments were guessed from their names (3x3 matrices, 3-vectors, labels in 0..2, small",
           'integers): where a guess does not fit your code, `dldiy validate` says so; give them your shapes."""', "",
           "import numpy as np"]
    if torch:
        out.append("import torch")
    out.append("")
    if autograd:
        out += ["from dldiy.graders.api import built_inside", "from dldiy.graders.batched import function_blocks"]
    with_params = any(layer["grads"] for layer in numpy_layers)
    helpers = (["as_array"] if autograd or functions or with_params else []) + (["gradcheck_layer"] if numpy_layers else [])
    helpers += ["set_params"] if with_params else []
    if helpers:
        out.append(f"from dldiy.graders.layers import {', '.join(helpers)}")
    if not (autograd or functions or numpy_layers):
        out += ["", "", "# No layer class, autograd.Function or function with a solution region was found: write the",
                "# probes here (docs/own-course.md, section 5) and their [[checks]] in spec.toml."]
    if functions or autograd:
        out += ["", "", *_CASES.strip("\n").split("\n")]
    if autograd:
        out += ["", "", *_APPLIED.strip("\n").split("\n")]
    for layer in autograd:
        probe = _check_name(layer["name"]).replace("-", "_")
        defaults = layer.get("defaults", {})
        args = [(a, defaults[a], False) if a in defaults else (a, *_guess(a, True)) for a in layer["args"]]
        trailing: list[str] = []  # the other arguments after the last tensor: bound by `applied`
        while args and not args[-1][2]:
            trailing.insert(0, args.pop()[1])
        names = ", ".join(a[0] for a in args) or "x"
        rest = "".join(f", {r}" for r in trailing)
        out += ["", "", f"def _{probe}_inputs(seed):",
                "    g = torch.Generator().manual_seed(seed)",
                f"    return [{', '.join(a[1] for a in args) or 'torch.randn(3, 3, generator=g, dtype=torch.float64)'}]",
                "", "", f"def {probe}_forward(sub, seed, p):",
                f'    out = sub.get("{layer["name"]}").apply(*_{probe}_inputs(seed){rest})',
                f'    return _cases("{layer["name"]}.apply", out)',
                "", "", f"def {probe}_backward(sub, seed, p):",
                f'    """{layer["name"]}.backward against central differences of its forward (graders/batched.py)."""',
                f'    fn = built_inside(sub, applied, sub.get("{layer["name"]}"){rest})',
                f'    names = [f"{layer["name"]}: {{v}}" for v in {json.dumps(names.split(", "))}]',
                f"    return {{\"blocks\": function_blocks(sub, fn, _{probe}_inputs(seed), names)}}"]
    for fn in functions:
        guessed = [(a, _guess(a, torch)[0]) for a in fn["args"]]
        out += ["", ""]
        if fn.get("calls"):
            out += [f"# {fn['name']} calls {', '.join(fn['calls'])}: a bug there fails this check too. One bug, one deduction:",
                    f"# let {fn['name']} call your harness's own version instead (docs/own-course.md, section 5)."]
        body: list[str] = []
        for a, expr in guessed:
            if a not in _CACHES:
                if expr != "seed":
                    body.append(f"    {a} = {expr}")
                continue
            producer = _producer(fn, functions)
            if producer is None:  # no function to build it from: the probe refuses until the instructor writes it
                body.append(f'    raise NotImplementedError("TODO (dldiy new): build `{a}` as your code makes it (what '
                            f'a forward or an init returns): no guess can stand for it; edit this probe in harness.py")')
                continue
            made = [(b, _guess(b, torch)[0]) for b in producer["args"]]
            body += [f"    # `{a}` is what {producer['name']} returned, at inputs of the shapes above (a random tensor "
                     "is no cache)",
                     *[f"    {b}_ = {e}" for b, e in made if e != "seed"],
                     f'    {a} = sub.call("{producer["name"]}"{"".join(", " + b + "_" if e != "seed" else ", seed" for b, e in made)})[-1]']
        call = f'sub.call("{fn["name"]}"{"".join(", " + a for a, _ in guessed)})'
        if fn.get("returns_cache"):  # (out, cache): the cache is the student's own business, out is compared
            body.append(f'    return _cases("{fn["name"]}", {call}[:-1])  # its cache (the last part) is the student\'s own')
        else:
            body.append(f'    return _cases("{fn["name"]}", {call})')
        out += [f"def {fn['name']}_agrees(sub, seed, p):",
                "    g = torch.Generator().manual_seed(seed)" if torch else "    rng = np.random.default_rng(seed)",
                *body]
    for layer in numpy_layers:
        probe = _check_name(layer["name"]).replace("-", "_") + "_backward"
        ctor = ", ".join("3" for _ in layer["args"])
        loss_args = "(rng.integers(0, 3, 4),)" if layer["loss"] else "()"
        out += ["", "", f"def {probe}(sub, seed, p):",
                "    rng = np.random.default_rng(seed)",
                f'    layer = sub.get("{layer["name"]}")({ctor})',
                *(["    # the parameters from the seed, the reference's and the student's alike (the check's against_reference)",
                   f'    set_params(layer, {{attr: rng.standard_normal(as_array(getattr(layer, attr), attr).shape) '
                   f'for attr in {sorted(layer["grads"])!r}}})'] if layer["grads"] else []),
                f'    return gradcheck_layer(layer, rng.standard_normal((4, 3)), name="{layer["name"]}", '
                f'args={loss_args},', f'                           grads={layer["grads"]!r}, loss={layer["loss"]}, seed=seed)']
    return "\n".join(out) + "\n"
