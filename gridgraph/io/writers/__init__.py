"""What gridgraph writes back: Loupe and prediction tables (:mod:`.tables`), predictions in an
AnnData (:mod:`.anndata`); every file appears complete or not at all."""
from .anndata import add_predictions, section_anndata, write_h5ad
from .tables import read_loupe_csv, read_predictions, write_columns, write_loupe_csv, write_predictions

__all__ = ["add_predictions", "section_anndata", "write_h5ad", "read_loupe_csv", "read_predictions",
           "write_columns", "write_loupe_csv", "write_predictions"]
