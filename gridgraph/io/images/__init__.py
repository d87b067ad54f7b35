"""Images of sections: decoded arrays and lazily decoded files (:mod:`.image`), whole-slide
pyramids read window by window (:mod:`.slide`, :mod:`.slide_store`), intensity scaling of
fluorescence images (:mod:`.intensity`), and a reader's image argument opened (:mod:`.open`)."""
from .image import ImageLike, LazyImage, as_array, image_size, read_image, thumbnail, to_rgb_uint8
from .intensity import Intensity
from .open import image_source, open_image
from .slide import SlideImage, open_image_file

__all__ = ["ImageLike", "LazyImage", "as_array", "image_size", "read_image", "thumbnail", "to_rgb_uint8",
           "Intensity", "SlideImage", "open_image_file", "open_image", "image_source"]
