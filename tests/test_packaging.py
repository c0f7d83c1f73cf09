"""The wheel a student installs works on its own and carries no reference solution."""

import shutil
import subprocess
import sys
import venv
import zipfile

from conftest import REPO


def test_wheel_has_no_reference_and_checks_work_from_it(tmp_path):
    # Build from a clean copy: setuptools reuses a stale build/ folder in the source tree.
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".venv", "build", "*.egg-info", ".git", "__pycache__",
                                                                ".hypothesis", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
                    "-w", str(tmp_path / "dist"), "-q"], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("dldiy-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("exercises/exercise-1/expected.json") for n in names)
    assert any(n.endswith("exercises/exercise-1/template/logreg.py") for n in names)
    assert not [n for n in names if "reference" in n.split("/") or "buggy" in n.split("/")]
    assert not [n for n in names if n.endswith("equivalents.toml")], "reviewed mutants quote the reference"
    assert not [n for n in names if n.split("/")[0] in ("cli", "graders", "exercises", "tests")], \
        "only the dldiy namespace may land in site-packages"
    # What a student reads: templates, specs, expected values, notebooks. The graders' and harnesses'
    # own code is left out of this line scan: written independently, it shares idioms with references
    # (`for d_in, d_out in zip(sizes[:-1], sizes[1:]):`) without holding a solution.
    student_facing = [n for n in names if not n.endswith(".py") or "/template/" in n]
    packaged = "\n".join(zipfile.ZipFile(wheel).read(n).decode("utf-8", "replace") for n in student_facing)
    # Scaffolding the templates hand out (a loop over param_groups, a given training loop) is public.
    public = "\n".join(p.read_text() for p in (REPO / "exercises").glob("*/template/**/*") if p.is_file())
    checked = 0
    for ref in (REPO / "reference").rglob("*.py"):
        for line in ref.read_text().splitlines():
            code = line.strip()
            if len(code) > 30 and not code.startswith(("#", '"""', "def ", "import ", "from ")) and code not in public:
                checked += 1
                assert code not in packaged, f"{ref.name}: {code!r} leaks into the wheel"
    assert checked > 100  # the scan looked at real solution code

    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True,
                   capture_output=True)
    work = tmp_path / "student"
    work.mkdir()
    (work / "logreg.py").write_text((REPO / "reference/exercise-1/logreg.py").read_text())
    result = subprocess.run([str(python), "-m", "dldiy.cli", "check", "exercise-1", "logreg.py", "--only",
                             "first-loss"], cwd=work, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3/3" in result.stdout
    validate = subprocess.run([str(python), "-m", "dldiy.cli", "validate", "exercise-1"], cwd=work,
                              capture_output=True, text=True, timeout=120)
    assert validate.returncode == 2 and "not installed with dldiy" in validate.stderr
