"""gridgraph: registration of histology images at spatial -omics spots and cells.

f (a patch CNN) classifies the image around every node; g (a corrector on the nodes' layout)
refines those predictions: GridNet (Daly, Geras & Bonneau 2020) generalised to graphs.

The names below are imported on first use, so ``import gridgraph.io`` (readers, slides) does
not load the model stack (torch-geometric, HexagDLy).
"""
from importlib import import_module

__version__ = "0.1.0"

_WHERE = {
    "SpotGraph": "graph", "cartesian_graph": "graph", "hex_graph": "graph", "knn_graph": "graph",
    "radius_graph": "graph", "collate": "graph", "Section": "io", "GridGraphNet": "model",
    "build_model": "model", "build_encoder": "encoders", "encode": "encoders", "gridnet_simple": "encoders",
    "densenet121": "encoders", "build_corrector": "correctors", "register_corrector": "correctors",
    "available_correctors": "correctors", "resnet34_seg": "model", "build_run": "workflows", "load_model": "workflows",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gridgraph' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
