"""General file utilities: atomic writes (:mod:`.atomic`), sets of output files written as one
(:mod:`.output_set`), strict YAML (:mod:`.yaml_file`), output folders named and checked
(:mod:`.locations`)."""
from .atomic import atomic_path, atomic_save, atomic_write, remove_stale_temp_files
from .locations import check_output_folder, output_folder_names, output_folders
from .output_set import OutputSet
from .yaml_file import YamlError, load_yaml_text

__all__ = ["atomic_path", "atomic_save", "atomic_write", "remove_stale_temp_files", "OutputSet", "YamlError",
           "load_yaml_text", "check_output_folder", "output_folder_names", "output_folders"]
