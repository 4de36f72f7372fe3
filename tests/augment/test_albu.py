"""albumentations loads without torch for the augment stage, and its torch part still works later."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_load_skips_torch_and_leaves_albumentations_pytorch_importable() -> None:
    code = textwrap.dedent("""
        import sys
        from pipeline.augment.albu import load
        A = load()
        assert "torch" not in sys.modules, "torch was imported"
        assert hasattr(A, "Affine") and hasattr(A, "Compose")
        assert "albumentations.pytorch" not in sys.modules
        from albumentations.pytorch import ToTensorV2  # imports torch now, as usual
        assert "torch" in sys.modules and ToTensorV2 is not None
        assert load() is A
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_with_torch_loaded_nothing_is_blocked() -> None:
    code = textwrap.dedent("""
        import sys
        import torch  # noqa: F401
        from pipeline.augment.albu import load
        A = load()
        assert "albumentations.pytorch" in sys.modules and hasattr(A, "ToTensorV2")
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
