"""A spec's `requirements` ("matplotlib", "numpy>=1.24", "scikit-learn>=1,<2"), judged against what this
interpreter has installed.

`packaging` is not one of dldiy's declared dependencies, and this runs on a student's install (`dldiy
check` reads the spec), so the PEP 440 subset that a requirement line needs is here: versions such as
1.26.4, 2.0.0rc1, 1.0.post2.dev3, 1!2.0 or 2.1.0+cpu, and the operators ==, !=, <=, >=, <, >, ~= and
===, with `.*` prefixes after == and !=. The comparison is packaging's (trailing zeros ignored, dev <
pre < final < post, `<V` excludes V's own pre-releases and `>V` its post-releases and local versions,
as packaging 26 reads PEP 440), with pre-releases admitted, as pip admits an installed one when it checks what is installed.
Environment markers and URL requirements are refused when the spec is read (SpecError), never ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_LINE = re.compile(rf"^\s*(?P<name>{_NAME})\s*(?:\[(?P<extras>[^\]]*)\])?\s*(?P<specs>.*?)\s*$")
_SPEC = re.compile(r"^\s*(?P<op>===|==|!=|<=|>=|~=|<|>)\s*(?P<version>[^\s,;]+)\s*$")
_VERSION = re.compile(
    r"""^v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)
        (?:[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>\d+)?)?
        (?:-(?P<post_n1>\d+)|[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>\d+)?)?
        (?:[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>\d+)?)?
        (?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?$""", re.VERBOSE | re.IGNORECASE)
_PRE = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
_LOW, _HIGH = (0,), (2,)  # sort below / above every (1, value)


class RequirementError(ValueError):
    """A requirement or version this module cannot read."""


@dataclass(frozen=True)
class Version:
    text: str
    epoch: int
    release: tuple[int, ...]
    pre: tuple[int, int] | None
    post: int | None
    dev: int | None
    local: tuple[int | str, ...] | None

    @property
    def is_prerelease(self) -> bool:
        return self.pre is not None or self.dev is not None

    @property
    def base(self) -> tuple[int, tuple[int, ...]]:
        """Epoch and release, trailing zeros dropped: 1.0 and 1.0.0 are the same base."""
        return self.epoch, _trim(self.release)

    def public(self) -> Version:
        return Version(self.text, self.epoch, self.release, self.pre, self.post, self.dev, None)

    def key(self) -> tuple[Any, ...]:
        # as packaging's _cmpkey: a bare dev release sorts before the pre-releases of its release
        pre = (_LOW if self.post is None and self.dev is not None else _HIGH) if self.pre is None else (1, self.pre)
        post = _LOW if self.post is None else (1, self.post)
        dev = _HIGH if self.dev is None else (1, self.dev)
        local = _LOW if self.local is None else (1, tuple((1, p, "") if isinstance(p, int) else (0, 0, p)
                                                         for p in self.local))
        return self.epoch, _trim(self.release), pre, post, dev, local


def _trim(release: tuple[int, ...]) -> tuple[int, ...]:
    out = list(release)
    while len(out) > 1 and out[-1] == 0:
        out.pop()
    return tuple(out)


def parse_version(text: str) -> Version:
    m = _VERSION.match(text.strip())
    if m is None:
        raise RequirementError(f"{text!r} is not a version (PEP 440)")
    g = m.groupdict()
    pre = (_PRE[g["pre_l"].lower()], int(g["pre_n"] or 0)) if g["pre_l"] else None
    post_n = g["post_n1"] or g["post_n2"]
    post = int(post_n or 0) if (g["post_n1"] or g["post_l"]) else None
    dev = int(g["dev_n"] or 0) if g["dev_l"] else None
    local = tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"[-_.]", g["local"])) if g["local"] else None
    return Version(text.strip(), int(g["epoch"] or 0), tuple(int(p) for p in g["release"].split(".")), pre, post,
                   dev, local)


@dataclass(frozen=True)
class Requirement:
    text: str  # as the spec writes it
    name: str  # a distribution name (scikit-learn) or a module name (sklearn)
    specifiers: tuple[tuple[str, str], ...]  # (operator, version), all of which must hold

    def satisfied_by(self, version: str) -> bool:
        """Does the installed `version` meet every specifier? (An unreadable version meets only ===.)"""
        return all(_holds(op, spec, version) for op, spec in self.specifiers)


def parse_requirement(text: str) -> Requirement:
    """`name[extras] op version, op version`; RequirementError for anything else (a marker, a URL)."""
    if ";" in text:
        raise RequirementError(f"{text!r}: environment markers (`; ...`) are not supported in requirements")
    if "@" in text:
        raise RequirementError(f"{text!r}: URL requirements (`name @ url`) are not supported in requirements")
    m = _LINE.match(text)
    if m is None:
        raise RequirementError(f"{text!r} is not a requirement (write e.g. \"numpy\" or \"numpy>=1.24\")")
    specs = m["specs"].strip()
    if specs.startswith("(") and specs.endswith(")"):
        specs = specs[1:-1]
    specifiers = []
    for part in specs.split(",") if specs else []:
        s = _SPEC.match(part)
        if s is None:
            raise RequirementError(f"{text!r}: {part.strip()!r} is not a version specifier (e.g. >=1.24)")
        op, version = s["op"], s["version"]
        if op != "===":
            wildcard = version.endswith(".*")
            if wildcard and op not in ("==", "!="):
                raise RequirementError(f"{text!r}: a .* prefix only goes with == or !=")
            v = parse_version(version[:-2] if wildcard else version)
            if op == "~=" and len(v.release) < 2:
                raise RequirementError(f"{text!r}: ~= needs at least two release numbers (~=1.4, not ~=1)")
            if v.local is not None and op not in ("==", "!=", "==="):
                raise RequirementError(f"{text!r}: a local version (+...) only goes with == or !=")
        specifiers.append((op, version))
    return Requirement(text.strip(), m["name"], tuple(specifiers))


def _holds(op: str, spec: str, installed: str) -> bool:
    if op == "===":
        return installed.strip().lower() == spec.strip().lower()
    try:
        v = parse_version(installed)
    except RequirementError:
        return False
    if spec.endswith(".*"):  # a prefix of the release: == 1.1.* holds for 1.1, 1.1.3, 1.1a1, 1.1.post1
        prefix = parse_version(spec[:-2])
        padded = v.release + (0,) * max(0, len(prefix.release) - len(v.release))
        same = v.epoch == prefix.epoch and padded[:len(prefix.release)] == prefix.release
        return same if op == "==" else not same
    s = parse_version(spec)
    if op in ("==", "!="):
        same = (v if s.local is not None else v.public()).key() == s.key()
        return same if op == "==" else not same
    if op == "~=":  # ~=2.2.1 is >=2.2.1 and ==2.2.*
        series = (f"{s.epoch}!" if s.epoch else "") + ".".join(map(str, s.release[:-1])) + ".*"
        return _holds(">=", spec, installed) and _holds("==", series, installed)
    mine, theirs = v.public().key(), s.key()
    if op == ">=":
        return mine >= theirs
    if op == "<=":
        return mine <= theirs
    if op == "<":  # <V is <V.dev0 unless V is a pre-release: never one of V's own pre-releases
        if s.pre is None and s.dev is None:
            theirs = Version(s.text, s.epoch, s.release, None, s.post, 0, None).key()
        return mine < theirs
    # >V: never one of V's post-releases (or local versions), the later versions that share its pre segment
    if not mine > theirs:
        return False
    return s.dev is not None or s.post is not None or not (v.base == s.base and v.pre == s.pre)


@dataclass(frozen=True)
class Unmet:
    requirement: Requirement
    installed: str | None  # the version installed; None: not installed

    def describe(self) -> str:
        if self.installed is None:
            return f"{self.requirement.text} is not installed"
        return f"{self.requirement.name} {self.installed} is installed, the exercise needs {self.requirement.text}"


def installed_version(name: str) -> str | None:
    """The installed version of distribution `name`, or of the distribution that provides module `name`
    (sklearn -> scikit-learn); "" for a module importable without a distribution; None: not installed."""
    import importlib.metadata
    import importlib.util

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    module = name.replace("-", "_")
    for dist in importlib.metadata.packages_distributions().get(module, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    return "" if found else None


def unmet(requirements: list[Requirement] | tuple[Requirement, ...]) -> list[Unmet]:
    """The requirements this interpreter (the one the children run) does not meet, in the spec's order."""
    out = []
    for requirement in requirements:
        version = installed_version(requirement.name)
        if version is None:
            out.append(Unmet(requirement, None))
        elif requirement.specifiers and not requirement.satisfied_by(version):
            out.append(Unmet(requirement, version or "(of unknown version)"))
    return out
