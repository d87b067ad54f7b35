"""The package's layering: a module imports only modules of its own or lower layers, no cycles."""
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "gridgraph"

# Lower layers first; a module may import its own layer and those before it.
LAYERS = [
    {"names", "registry", "files", "defaults", "colors"},
    {"distributed"},  # torch.distributed machinery: imports no other gridgraph package
    {"graph"},
    {"io"},
    {"patches"},
    {"encoders", "correctors", "evaluate"},
    {"features", "model"},
    {"inference", "plot", "embeddings"},
    {"config"},
    {"checkpoint"},
    {"train"},
    {"workflows"},
    {"cli", "__main__", "__init__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def top(module: Path) -> str:
    return module.relative_to(PKG).parts[0].removesuffix(".py")


def imported(module: Path) -> set:
    """Top-level gridgraph packages a module imports (lazily inside functions too)."""
    parts = module.relative_to(PKG).with_suffix("").parts
    out = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = list(parts[: len(parts) - node.level])
            target = base + (node.module.split(".") if node.module else [])
            if target:
                out.add(target[0])
            else:
                out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gridgraph."):
            out.add(node.module.split(".")[1])
    return out


def test_every_module_has_a_layer():
    assert {top(p) for p in PKG.rglob("*.py")} <= set(RANK)


def test_no_module_imports_a_higher_layer():
    bad = []
    for module in PKG.rglob("*.py"):
        mine = RANK[top(module)]
        for name in imported(module) - {top(module)}:
            if name in RANK and RANK[name] > mine:
                bad.append(f"{module.relative_to(PKG)} imports gridgraph.{name}")
    assert bad == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports() -> dict:
    """``{module: {gridgraph modules it imports}}`` over every module of the package (module-level
    and lazy imports alike; a package counts as its ``__init__``): ``from . import sibling`` is the
    sibling module, ``from . import NAME`` the package's ``__init__``, which imports its modules."""
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                target = ".".join(base + (node.module.split(".") if node.module else []))
                for alias in node.names:  # a submodule by its own name, else a name of the module
                    sub = f"{target}.{alias.name}"
                    found.add(sub if sub in modules else target)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        graph[name] = {t for t in found if t in modules and t != name}
    return graph


def cycles(graph: dict) -> list:
    """The import circles of ``graph``, each as a path back to its start (depth-first search)."""
    state, found = {}, []

    def visit(module, path):
        state[module] = "open"
        for other in sorted(graph.get(module, ())):
            if state.get(other) == "open":
                found.append(path[path.index(other):] + [other])
            elif other not in state:
                visit(other, path + [other])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_import_circle_between_modules_inside_packages_too():
    graph = module_imports()
    assert "gridgraph.patches.cut" in graph["gridgraph.patches.slide"]  # lazy and relative imports are read
    assert cycles(graph) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_patches_cut_from_one_place_without_the_old_circle():
    graph = module_imports()
    inside = {m.rsplit(".", 1)[1]: {t.rsplit(".", 1)[1] for t in targets if t.startswith("gridgraph.patches.")}
              for m, targets in graph.items() if m.startswith("gridgraph.patches.")}
    assert inside["slide"] == {"cut"} and inside["stain"] == set() and "extract" in inside["plan"]
    old = {"extract": {"slide", "stain"}, "slide": {"extract"}, "stain": {"extract"}}  # before cut.py
    assert cycles(old) == [["extract", "slide", "extract"], ["extract", "stain", "extract"]]
