"""albumentations 2.0.8, imported without torch where torch is not loaded yet.

`import albumentations` ends with `from .pytorch import *` (`ToTensorV2`), which imports torch:
3-4 s of a `pipeline augment` command on this machine (and again in the fork server its workers
come from), for a class this project never uses. albumentations skips that import when it raises
`ImportError`; `load` makes it do so, then removes the block, so a later
`import albumentations.pytorch` imports torch and works as usual. Where torch is loaded already
(training, the benchmarks) nothing is blocked: that import is cheap there.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # it calls home on import otherwise

_TORCH_PART = "albumentations.pytorch"


def load() -> ModuleType:
    """The `albumentations` module."""
    module = sys.modules.get("albumentations")
    if module is not None:
        return module
    block = "torch" not in sys.modules and _TORCH_PART not in sys.modules
    if block:
        sys.modules[_TORCH_PART] = None  # type: ignore[assignment]  # `import` of it raises ImportError
    try:
        import albumentations
    finally:
        if block and _TORCH_PART in sys.modules and sys.modules[_TORCH_PART] is None:
            del sys.modules[_TORCH_PART]
    return albumentations
