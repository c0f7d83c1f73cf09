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
    """What the scaffold can read off the solution notebook: imports, downloads, layer classes, the loop."""
    found: dict = {"requirements": set(), "downloads": [], "layers": [], "train": None, "regions": 0}
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        found["regions"] += cell.source.count(notebook.BEGIN)
        lines = cell.source.split("\n")
        found["downloads"] += [line.strip() for line in lines if re.match(r"\s*!\s*(wget|curl)\b", line)]
        try:
            tree = ast.parse("\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in lines))
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found["requirements"] |= {n.split(".")[0] for n in names if n and not getattr(node, "level", 0)}
            elif isinstance(node, ast.ClassDef) and {"forward", "backward"} <= _methods(node).keys():
                # a class the notebook hands out whole (no solution region inside) is no student's to check
                marked = any(notebook.BEGIN in line for line in lines[node.lineno - 1:node.end_lineno])
                found["layers"].append({**_layer(node), "given": not marked})
            elif isinstance(node, (ast.For, ast.While)) and found["train"] is None and \
                    re.search(r"\.(backward|step)\(", ast.unparse(node)):
                found["train"] = lines[node.lineno - 1].strip()
    found["requirements"] = sorted(_DISTRIBUTIONS.get(n, n) for n in found["requirements"]
                                   if n not in sys.stdlib_module_names and n != "dldiy")
    return found


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


def _checked_layers(found: dict) -> list[dict]:
    """The layer classes a student writes: those with a solution region, or all where none is marked."""
    written = [layer for layer in found["layers"] if not layer.get("given")]
    return written if found["regions"] else found["layers"]


def spec_text(exercise_id: str, heading: str, entry: str, found: dict) -> str:
    lines = [f'id = "{exercise_id}"', f"title = {json.dumps(heading)}", f'entry = "{entry}"',
             "seeds = [1, 2, 3]", "timeout = 10  # seconds per check and seed", "load_timeout = 30",
             '# Run imports, functions, classes and constants at load; the training loop runs only when a check',
             '# asks for it (cells.train below). "all" runs every cell; load_tags / skip_tags select by tag.',
             'load = "definitions"', f"requirements = {json.dumps(found['requirements'])}"]
    if found["downloads"]:
        lines += [f"# The notebook downloads its data ({found['downloads'][0]}): put the files in",
                  f"# exercises/{exercise_id}/data/; the submission finds them under data/ (no network in the sandbox)."]
    if found["train"]:
        lines += ["", "[cells]", f"train = {{ contains = {json.dumps(found['train'])} }}"]
    for layer in _checked_layers(found):
        name = _check_name(layer["name"])
        lines += ["", "[[checks]]", f'name = "{name}-backward"', 'kind = "gradcheck"',
                  f'title = "{layer["name"]}.backward against finite differences of its forward"', "points = 1",
                  f'probe = "{name.replace("-", "_")}_backward"', "rtol = 1e-5", "atol = 1e-7"]
    return "\n".join(lines) + "\n"


def harness_text(exercise_id: str, found: dict) -> str:
    out = [f'"""{exercise_id} probes (scaffolded by `dldiy new`: check the inputs, then add checks)."""', "",
           "import numpy as np", "", "from dldiy.graders.layers import gradcheck_layer", ""]
    for layer in _checked_layers(found):
        probe = _check_name(layer["name"]).replace("-", "_") + "_backward"
        ctor = ", ".join("3" for _ in layer["args"])
        args = "(rng.integers(0, 3, 4),)" if layer["loss"] else "()"
        out += ["", f"def {probe}(sub, seed, p):",
                "    rng = np.random.default_rng(seed)",
                f'    layer = sub.get("{layer["name"]}")({ctor})',
                f'    return gradcheck_layer(layer, rng.standard_normal((4, 3)), name="{layer["name"]}", '
                f'args={args},', f'                           grads={layer["grads"]!r}, loss={layer["loss"]}, seed=seed)']
    return "\n".join(out) + "\n"
