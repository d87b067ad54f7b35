"""General file utilities: atomic writes (:mod:`.atomic`), sets of output files written as one
(:mod:`.output_set`), strict YAML (:mod:`.yaml_file`)."""
from .atomic import atomic_path, atomic_save, atomic_write, remove_stale_temp_files
from .output_set import OutputSet
from .yaml_file import YamlError, load_yaml_text

__all__ = ["atomic_path", "atomic_save", "atomic_write", "remove_stale_temp_files", "OutputSet", "YamlError",
           "load_yaml_text"]
