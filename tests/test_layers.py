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
