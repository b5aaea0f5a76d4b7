"""The package's structure: three rooms (the core at the top, search/ and training/) whose imports
run one way, with no import cycle, whatever is imported inside a function."""

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "diverse_embed"
ENTRY_POINTS = {"diverse_embed.cli", "diverse_embed.hear"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the package's modules it imports, at the top or inside functions."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name.startswith("diverse_embed")}
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                base = base[: len(base) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                if target.startswith("diverse_embed"):
                    found.add(target)
                    found |= {f"{target}.{a.name}" for a in node.names}  # `from . import files`
        graph[name] = found
    return {name: {t for t in targets if t in graph and t != name} for name, targets in graph.items()}


def test_no_import_cycle():
    graph, state = imports(), {}

    def visit(name, trail):
        state[name] = "open"
        for target in sorted(graph[name]):
            assert state.get(target) != "open", "import cycle: " + " -> ".join(trail + [name, target])
            if target not in state:
                visit(target, trail + [name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_rooms_import_one_way():
    graph = imports()
    room = lambda name: name.split(".")[1] if name.count(".") >= 2 else "core"  # noqa: E731
    for name, targets in graph.items():
        if name in ENTRY_POINTS or name == "diverse_embed":
            continue
        rooms = {room(t) for t in targets}
        if room(name) == "core":
            assert rooms <= {"core"}, f"{name} (core) imports {sorted(t for t in targets if room(t) != 'core')}"
        else:
            other = {"search": "training", "training": "search"}[room(name)]
            assert other not in rooms, f"{name} imports the {other} room"
        assert not targets & ENTRY_POINTS, f"{name} imports an entry point"


def test_benchmarks_import_no_training_code():
    for path in (REPO / "benchmarks").glob("*.py"):
        assert "diverse_embed.training" not in path.read_text(), path.name
