"""Readers and writers: Space Ranger, classic ST, spot tables, nuclei CSVs, AnnData, Loupe CSV."""
from .readers.anndata import read_anndata
from .images.image import LazyImage, read_image, thumbnail, to_rgb_uint8
from .images.intensity import Intensity
from .readers.nuclei import read_nuclei_csv
from .labels import encode_labels, map_labels
from .section import Section
from .images.slide import SlideImage
from .readers.spaceranger import read_barcode_labels, read_scalefactors, read_spaceranger
from .readers.spot_table import read_class_names, read_spot_table
from .readers.st_tsv import read_st_tsv
from .tables.frames import read_frame
from .readers.visium_hd import hd_bin_folder, read_visium_hd
from .readers.visium_hd_cells import read_visium_hd_cells
from .readers.xenium import read_alignment, read_xenium
from .writers.tables import read_loupe_csv, read_predictions, write_loupe_csv, write_predictions

__all__ = [
    "Section",
    "encode_labels",
    "map_labels",
    "LazyImage",
    "SlideImage",
    "Intensity",
    "thumbnail",
    "read_image",
    "to_rgb_uint8",
    "read_spaceranger",
    "read_scalefactors",
    "read_barcode_labels",
    "read_st_tsv",
    "read_spot_table",
    "read_class_names",
    "read_nuclei_csv",
    "read_anndata",
    "read_visium_hd", "read_visium_hd_cells",
    "hd_bin_folder",
    "read_xenium",
    "read_alignment",
    "read_frame",
    "write_loupe_csv",
    "read_loupe_csv",
    "write_predictions",
    "read_predictions",
]
