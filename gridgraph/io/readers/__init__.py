"""Section readers, one per format, and their registry :data:`READERS` (config name -> reader
and file naming). ``synthetic`` generates the embedded default tissue."""
from .anndata import read_anndata
from .features import read_counts, read_node_features
from .nuclei import read_nuclei_csv
from .registry import READERS, SectionSource
from .spaceranger import read_barcode_labels, read_scalefactors, read_spaceranger
from .spatialdata import read_spatialdata
from .spot_table import read_class_names, read_spot_table
from .st_tsv import read_st_tsv
from .synthetic import make_section
from .visium_hd import hd_bin_folder, read_visium_hd
from .visium_hd_cells import read_visium_hd_cells
from .xenium import read_alignment, read_xenium

__all__ = ["READERS", "SectionSource", "read_anndata", "read_counts", "read_node_features", "read_nuclei_csv",
           "read_barcode_labels", "read_scalefactors", "read_spaceranger", "read_spatialdata", "read_class_names", "read_spot_table",
           "read_st_tsv", "make_section", "hd_bin_folder", "read_visium_hd", "read_visium_hd_cells", "read_alignment", "read_xenium"]
