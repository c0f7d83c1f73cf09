"""A spec's `requirements` ("matplotlib", "numpy>=1.24", "scikit-learn>=1,<2"), judged against what this
interpreter has installed, as pip judges it: by `packaging` (PEP 440 versions and specifiers), with an
installed pre-release admitted. Environment markers and URL requirements are refused when the spec is read
(SpecError), never ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as _Parsed
from packaging.version import InvalidVersion, Version


class RequirementError(ValueError):
    """A requirement line this module cannot read."""


@dataclass(frozen=True)
class Requirement:
    text: str  # as the spec writes it
    parsed: _Parsed

    @property
    def name(self) -> str:
        """A distribution name (scikit-learn) or a module name (sklearn)."""
        return self.parsed.name

    def satisfied_by(self, version: str) -> bool:
        """Does the installed `version` meet every specifier? (An unreadable version meets none but ===.)"""
        if not self.parsed.specifier:
            return True
        try:
            Version(version)
        except InvalidVersion:
            return all(spec.operator == "===" and spec.version == version for spec in self.parsed.specifier)
        return self.parsed.specifier.contains(version, prereleases=True)


def parse_requirement(text: str) -> Requirement:
    """`name[extras] op version, op version`; RequirementError for anything else (a marker, a URL, a typo)."""
    try:
        parsed = _Parsed(text)
    except InvalidRequirement as e:
        raise RequirementError(f"{text!r} is not a requirement (write e.g. \"numpy\" or \"numpy>=1.24\"): "
                               f"{str(e).splitlines()[0]}") from None
    if parsed.marker is not None:
        raise RequirementError(f"{text!r}: environment markers (`; ...`) are not supported in requirements")
    if parsed.url:
        raise RequirementError(f"{text!r}: URL requirements (`name @ url`) are not supported in requirements")
    return Requirement(text.strip(), parsed)


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
        elif requirement.parsed.specifier and not requirement.satisfied_by(version):
            out.append(Unmet(requirement, version or "(of unknown version)"))
    return out
