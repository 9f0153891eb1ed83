"""The house: imports point one way, no module is past 600 lines, the core never opens a room.

The import graph is read from each module's source (its AST), not from what a
run happens to import, so that an import inside a function or under
``TYPE_CHECKING`` counts: a lazy import is still a dependency, and a circle
through a type-only import still means a type sits on the wrong floor (the
way to break it is to move the type, not to hide the import).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import replication

PACKAGE = Path(replication.__file__).parent
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

#: The core: the model, the pure transitions and what they are made of.
CORE = {
    "_canonical",
    "_containers",
    "_ed25519",
    "_exceptions",
    "_files",
    "_frozen",
    "_issuing",
    "_kill_switch",
    "_liveness",
    "_outcome",
    "_records",
    "_resolve",
    "_text",
    "_validation",
    "decisions",
    "encoding",
    "errors",
    "invariants",
    "keys",
    "model",
    "rules",
    "signing",
    "stop_conditions",
    "transitions",
}
#: The facade: the older, imperative API over the core, and the command line.
FACADE = {
    "_committing",
    "cli",
    "clock",
    "commandline",
    "contract",
    "controller",
    "demo",
    "observability",
    "orchestrator",
    "signer",
    "worker",
}
#: The rooms: each capability a folder of its own, which the core never imports.
ROOMS = {"conformance", "explore", "journal", "processes"}
#: The only doors from the facade into a room: the command line opens every room,
#: and the controller takes a journal (``Controller(journal=...)``), which its
#: committing part writes to.
DOORS = {
    ("_committing", "journal"),
    ("cli", "conformance"),
    ("cli", "explore"),
    ("cli", "journal"),
    ("cli", "processes"),
    ("controller", "journal"),
}
#: The rooms that use another: the explorer's tour and the process backend drive
#: adapters through the kit's adapter pieces.
ROOM_TO_ROOM = {("explore", "conformance"), ("processes", "conformance")}
LONGEST = 600


def module_name(root: Path, path: Path) -> str:
    """Return the dotted name of the module at ``path`` under ``root``'s parent."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Return every module of the package at ``root`` with the package's modules it imports.

    ``from a.b import c`` imports the module ``a.b.c`` if there is one, else
    ``a.b``; the packages Python initialises on the way (``a``, ``a.b``) are
    not counted, or every module would import its package's ``__init__``.
    """
    paths = {module_name(root, path): path for path in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parent = parts[: len(parts) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                imported.update(f"{base}.{alias.name}" for alias in node.names)
        graph[name] = set()
        for dotted in imported:
            # The longest prefix that is a module of ours: `a.b.c` is `a.b` when c is a name.
            target = dotted
            while target and target not in paths:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return every strongly connected set of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def describe(graph: dict[str, set[str]], circle: list[str]) -> str:
    """Return a circle's modules with the imports that close it, one per line."""
    members = set(circle)
    return "\n".join(
        f"{module} imports {', '.join(sorted(graph[module] & members))}" for module in circle
    )


def room_of(module: str) -> str | None:
    """Return the room a module of ``replication`` belongs to, or ``None`` for the top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


GRAPH = import_graph(PACKAGE)


class TestTheDetector:
    """The checks below would see what they look for: tried on a package built to have it."""

    def write(self, root: Path, files: dict[str, str]) -> Path:
        for name, text in files.items():
            path = root / "pkg" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return root / "pkg"

    def test_a_circle_through_a_function_and_type_checking_is_found(self, tmp_path):
        """A lazy import and a TYPE_CHECKING import close a circle as a top-level one does."""
        package = self.write(
            tmp_path,
            {
                "__init__.py": "",
                "a.py": "from pkg.b import B\n",
                "b.py": "def f():\n    from pkg import c\n",
                "c.py": (
                    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n"
                ),
                "d.py": "from pkg.a import A\n",
            },
        )
        assert circles(import_graph(package)) == [["pkg.a", "pkg.b", "pkg.c"]]

    def test_relative_imports_and_submodules_resolve(self, tmp_path):
        """``from . import x`` and ``from .sub.mod import y`` name the modules they import."""
        package = self.write(
            tmp_path,
            {
                "__init__.py": "",
                "a.py": "from . import b\nfrom .sub.mod import thing\n",
                "b.py": "",
                "sub/__init__.py": "",
                "sub/mod.py": "from ..a import name\n",
            },
        )
        graph = import_graph(package)
        assert {"pkg.b", "pkg.sub.mod"} == graph["pkg.a"]
        assert circles(graph) == [["pkg.a", "pkg.sub.mod"]]

    def test_no_circle_in_a_one_way_package(self, tmp_path):
        """Imports that all point one way make no circle."""
        package = self.write(
            tmp_path,
            {
                "__init__.py": "",
                "a.py": "import pkg.b\n",
                "b.py": "from pkg import c\n",
                "c.py": "",
            },
        )
        assert circles(import_graph(package)) == []


class TestImports:
    """Every import in ``replication`` points one way, and the core imports only the core."""

    def test_no_import_circle(self):
        """No set of modules imports each other, however indirectly (lazily or for types)."""
        found = circles(GRAPH)
        assert found == [], "\n\n".join(describe(GRAPH, circle) for circle in found)

    def test_no_import_circle_in_the_benchmarks(self):
        """The benchmarks' modules import one way too (bench.py on top, config.py below)."""
        graph = import_graph(PACKAGE.parent / "benchmarks")
        found = circles(graph)
        assert found == [], "\n\n".join(describe(graph, circle) for circle in found)

    def test_the_layer_lists_cover_every_top_level_module(self):
        """Every top-level module is classified as core or facade, every folder as a room."""
        modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
        folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
        assert set() == modules - CORE - FACADE, "classify new modules as core or facade"
        assert folders == ROOMS

    @pytest.mark.parametrize("module", sorted(CORE))
    def test_the_core_imports_only_the_core(self, module):
        """A core module never imports the facade or a room, not even lazily."""
        outside = {
            target
            for target in GRAPH[f"replication.{module}"]
            if target.removeprefix("replication.") not in CORE
        }
        assert set() == outside

    def test_the_facade_opens_only_its_doors(self):
        """Only the command line and the controller's journal reach from the facade into a room."""
        doors = {
            (module.removeprefix("replication."), room_of(target))
            for module, targets in GRAPH.items()
            if room_of(module) is None
            for target in targets
            if room_of(target) is not None
        }
        assert doors == DOORS

    def test_rooms_use_only_the_rooms_they_name(self):
        """A room imports the core, the facade and only the rooms it is known to use."""
        uses = {
            (room_of(module), room_of(target))
            for module, targets in GRAPH.items()
            for target in targets
            if room_of(module) is not None
            and room_of(target) is not None
            and room_of(target) != room_of(module)
        }
        assert uses == ROOM_TO_ROOM

    def test_the_process_backend_is_opened_by_the_command_line_only(self):
        """The process backend is a room of its own: the CLI opens its door, nothing else does."""
        importers = {
            module
            for module, targets in GRAPH.items()
            if room_of(module) != "processes"
            and any(room_of(target) == "processes" for target in targets)
        }
        assert {"replication.cli"} == importers


class TestModuleSize:
    """Every module stays within 600 lines: past that, it holds two concepts."""

    def test_no_module_over_600_lines(self):
        """No module of ``replication`` is longer than 600 lines."""
        lengths = {
            path.relative_to(PACKAGE.parent).as_posix(): len(
                path.read_text(encoding="utf-8").splitlines()
            )
            for path in PACKAGE.rglob("*.py")
        }
        assert {path: length for path, length in lengths.items() if length > LONGEST} == {}


def floor_plan(text: str) -> set[str]:
    """Return every path the floor plan of docs/architecture.md names (``replication/x/``).

    The plan is the ``text`` block after the "The floor plan" heading: a tree
    whose entries are indented four characters per level, each entry's first
    word a file or a folder (ending in ``/``).
    """
    block = text.split("## The floor plan", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    named: set[str] = set()
    path: list[str] = []
    for line in block.splitlines():
        match = re.match(r"([│├└─ ]*)(\S+)", line)
        assert match is not None, f"not an entry of the floor plan: {line!r}"
        drawing, name = match.groups()
        path = [*path[: len(drawing) // 4], name]
        named.add("".join(path))
    return named


class TestTheFloorPlan:
    """docs/architecture.md draws the package as it is: it cannot go stale unseen."""

    def test_the_plan_is_read_as_drawn(self):
        """A nested entry is read under the folder above it."""
        text = (
            "## The floor plan\n\n```text\nreplication/\n├── a.py   one\n"
            "└── room/       two\n    └── seam/    three\n```\n"
        )
        assert floor_plan(text) == {
            "replication/",
            "replication/a.py",
            "replication/room/",
            "replication/room/seam/",
        }

    def test_everything_named_exists(self):
        """Every module and folder the plan names is in the package."""
        named = floor_plan(ARCHITECTURE.read_text(encoding="utf-8"))
        assert sorted(path for path in named if not (PACKAGE.parent / path).exists()) == []

    def test_every_folder_and_top_level_module_is_named(self):
        """Every sub-package, and every module at the top of the package, is in the plan."""
        named = floor_plan(ARCHITECTURE.read_text(encoding="utf-8"))
        packages = {
            init.parent.relative_to(PACKAGE.parent).as_posix() + "/"
            for init in PACKAGE.rglob("__init__.py")
        }
        modules = {
            path.relative_to(PACKAGE.parent).as_posix()
            for path in PACKAGE.glob("*.py")
            if path.stem not in {"__init__", "__main__"}
        }
        assert sorted((packages | modules) - named) == []
