"""The package's shape: no import circle, and the file format knows nothing above it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "molgan"


def _imports(path: Path, everywhere: bool) -> set[str]:
    """The molgan modules ``path`` imports (at module level, or anywhere)."""
    tree = ast.parse(path.read_text())
    nodes = ast.walk(tree) if everywhere else tree.body
    out = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("molgan"):
            for alias in node.names:  # `from molgan.sweep import definition`: the submodule
                sub = f"{node.module}.{alias.name}"
                folder = PACKAGE.parent.joinpath(*sub.split("."))
                is_module = folder.with_suffix(".py").is_file() or folder.is_dir()
                out.add(sub if is_module else node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("molgan")}
    return out


def _graph(everywhere: bool = False) -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        graph[name.removesuffix(".__init__")] = _imports(path, everywhere)
    return graph


def test_no_module_of_the_package_imports_itself_through_a_circle():
    graph = _graph()
    for start in graph:
        seen, todo = set(), [start]
        while todo:
            for dep in graph.get(todo.pop(), ()):
                assert dep != start, f"{start} imports itself through {sorted(seen)}"
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)


def test_the_checkpoint_format_and_the_networks_know_nothing_of_training_mixtures_or_studies():
    graph = _graph(everywhere=True)  # function-local imports count too
    above = {"molgan.train", "molgan.runstate", "molgan.mixture", "molgan.sample", "molgan.steps"}
    for low in ("molgan.checkpoint", "molgan.models", "molgan.population", "molgan.decoding"):
        assert not graph[low] & above, (low, graph[low] & above)
        assert not any(d.startswith("molgan.sweep") for d in graph[low])
