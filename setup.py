"""Which folders install as which import package (the rest of the build is in pyproject.toml).

The repository keeps the design card's three top-level folders, `lpm_zoo/`, `backends/` and `search/`;
`ROOMS` says under which import name each of the last two installs (docs/README.md says why). Computed
here rather than listed in pyproject.toml so a new subpackage in any folder is found without editing a list.
"""

from setuptools import find_namespace_packages, setup

ROOMS = {"lpm_zoo.backends": "backends", "lpm_zoo.search": "search"}  # import name: folder


def packages() -> list[str]:
    """Every package of lpm_zoo/ and of each room, under its import name."""
    found = find_namespace_packages(include=["lpm_zoo", "lpm_zoo.*"], exclude=["lpm_zoo.data*", "lpm_zoo.zoo*"])
    for name, folder in ROOMS.items():
        found += [name] + [f"{name}.{p}" for p in find_namespace_packages(folder) if "__pycache__" not in p]
    return found


setup(packages=packages(), package_dir={name: folder for name, folder in ROOMS.items()})
