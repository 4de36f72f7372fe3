"""pipeline: computer-vision data from wherever it lives to a trained model."""

import os as _os

# albumentations calls home on import unless told not to; set it before any stage can import it.
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
