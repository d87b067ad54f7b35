"""Time to build hex / cartesian / kNN / radius graphs for 10^4, 10^5 and 10^6 nodes.

Baselines measured in the same run: PyG's ``knn_graph``/``radius_graph`` where pyg-lib or
torch-cluster is installed, else scikit-learn's ``kneighbors_graph`` for kNN, networkx's
``geometric_edges`` for radius, and networkx's lattice generators for grid layouts.
Target: kNN (k=6) on 10^6 points under 3 s on 2 cores.

    python benchmarks/graph_build.py [--sizes 10000 100000 1000000] [--baseline-max 100000]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import best_of, machine, print_table  # noqa: E402

from gridgraph.graph import cartesian_graph, hex_graph, knn_graph, radius_graph  # noqa: E402


def pyg_builders():
    try:
        import torch
        from torch_geometric.nn import knn_graph as pyg_knn, radius_graph as pyg_radius

        pyg_knn(torch.rand(4, 2), k=1)
    except Exception:
        return None
    return pyg_knn, pyg_radius


def baseline_knn(pts, k):
    pyg = pyg_builders()
    if pyg is not None:
        import torch

        return "PyG knn_graph", lambda: pyg[0](torch.from_numpy(pts).float(), k=k)
    from sklearn.neighbors import kneighbors_graph

    return "sklearn kneighbors_graph", lambda: kneighbors_graph(pts, k, n_jobs=-1)


def baseline_radius(pts, r):
    pyg = pyg_builders()
    if pyg is not None:
        import torch

        return "PyG radius_graph", lambda: pyg[1](torch.from_numpy(pts).float(), r=r, max_num_neighbors=64)
    import networkx as nx

    def run():
        g = nx.Graph()
        g.add_nodes_from((i, {"pos": p}) for i, p in enumerate(pts.tolist()))
        return nx.geometric_edges(g, r)

    return "networkx geometric_edges", run


def grid_side(n: int) -> int:
    return int(np.ceil(np.sqrt(n)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    ap.add_argument("--baseline-max", type=int, default=10**5, help="largest size for baselines")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    import networkx as nx

    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        side = grid_side(n)
        r, c = np.meshgrid(np.arange(side), np.arange(2 * side), indexing="ij")
        keep = (r % 2) == (c % 2)
        hr, hc = r[keep][:n], c[keep][:n]
        cr, cc = np.divmod(np.arange(n), side)
        pts = rng.random((n, 2)) * np.sqrt(n) * 10.0  # ~10 px between points
        radius = 15.0
        cases = [
            ("hex", lambda: hex_graph(hr, hc), "networkx hexagonal_lattice_graph",
             lambda: nx.hexagonal_lattice_graph(side // 2, side)),
            ("cartesian (4)", lambda: cartesian_graph(cr, cc), "networkx grid_2d_graph",
             lambda: nx.grid_2d_graph(side, side)),
            ("kNN (k=6)", lambda: knn_graph(pts, k=6), *baseline_knn(pts, 6)),
            (f"radius (r={radius:g})", lambda: radius_graph(pts, radius), *baseline_radius(pts, radius)),
        ]
        for name, ours, base_name, base in cases:
            t = best_of(ours, args.repeat)
            if n <= args.baseline_max:
                tb = best_of(base, 1)
                rows.append([name, n, t, base_name, tb, tb / t])
            else:
                rows.append([name, n, t, base_name, "-", "-"])
            print(f"  {name} n={n}: {t:.3f} s", file=sys.stderr, flush=True)
    print(f"\nGraph construction on {machine()} (best of {args.repeat}; baseline once)\n")
    print_table(["graph", "nodes", "gridgraph s", "baseline", "baseline s", "speed-up"], rows)
    knn_big = [r for r in rows if r[0].startswith("kNN") and r[1] >= 10**6]
    if knn_big:
        t = knn_big[0][2]
        print(f"\nkNN on 10^6 points: {t:.2f} s (target < 3 s): {'PASS' if t < 3 else 'FAIL'}")


if __name__ == "__main__":
    main()
