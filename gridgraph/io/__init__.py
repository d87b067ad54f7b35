"""Readers and writers: Space Ranger, classic ST, spot tables, nuclei CSVs, AnnData, Loupe CSV."""
from .image import LazyImage, read_image, to_rgb_uint8
from .section import Section, encode_labels

__all__ = ["Section", "encode_labels", "LazyImage", "read_image", "to_rgb_uint8"]
