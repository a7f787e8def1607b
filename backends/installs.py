"""Which pip distributions are installed, and the runtimes whose distributions overwrite each other's module."""

from __future__ import annotations

from importlib import metadata


def installed_distributions(names: tuple[str, ...]) -> list[str]:
    """Which of the distributions `names` are installed (several that ship one module overwrite each other's files)."""

    found = []
    for name in names:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def module_clash(names: tuple[str, ...], module: str, fix: str) -> str:
    """Why the installed `module` cannot be trusted when several of the distributions `names` ship it ("" when
    at most one does), with `fix` after the uninstall of all of them."""
    found = installed_distributions(names)
    if len(found) < 2:
        return ""
    return (f"{' and '.join(found)} are installed together and overwrite each other's {module} module; keep one: "
            f"pip uninstall -y {' '.join(found)}{fix}")
