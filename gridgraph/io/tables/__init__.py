"""The one table layer of the readers: delimited text (:mod:`.text`), large tables through
pandas / pyarrow (:mod:`.frames`) and value checks (:mod:`.checks`); every error names the file,
the column, the line and what was expected."""
from .checks import (PathLike, check_array_index, check_inside, check_unique, is_positive_number, natural_key,
                     natural_sorted, require_file)
from .frames import RowNames, is_parquet, numeric_column, read_frame, separator, text_column, unique_column, where
from .text import Table, open_maybe_gzip, read_table, truncated_note

__all__ = ["PathLike", "require_file", "natural_key", "natural_sorted", "is_positive_number", "check_unique",
           "check_array_index", "check_inside", "Table", "read_table", "open_maybe_gzip", "truncated_note",
           "read_frame", "is_parquet", "separator", "numeric_column", "text_column", "unique_column", "where", "RowNames"]
