"""What gridgraph writes back: Loupe and prediction tables (:mod:`.tables`), predictions in an
AnnData (:mod:`.anndata`, scanpy/squidpy layout), Xenium Explorer cell groups and QuPath GeoJSON
(:mod:`.exports`), a SpatialData table (:mod:`.spatialdata`, optional extra); every file appears
complete or not at all."""
from .anndata import (add_predictions, fullres_positions, predictions_anndata, section_anndata,
                      section_scalefactors, sections_anndata, write_h5ad)
from .exports import section_cell_groups, section_geojson, write_qupath_geojson, write_xenium_cell_groups
from .predictions import class_hex_colors, confidence, prediction_provenance
from .spatialdata import predictions_table, write_spatialdata_predictions  # spatialdata imported when called
from .tables import read_loupe_csv, read_predictions, write_columns, write_loupe_csv, write_predictions

__all__ = ["add_predictions", "section_anndata", "sections_anndata", "predictions_anndata", "fullres_positions",
           "section_scalefactors", "write_h5ad", "write_xenium_cell_groups", "write_qupath_geojson",
           "section_cell_groups", "section_geojson", "class_hex_colors", "confidence", "prediction_provenance",
           "predictions_table", "write_spatialdata_predictions",
           "read_loupe_csv", "read_predictions", "write_columns", "write_loupe_csv", "write_predictions"]
