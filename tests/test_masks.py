"""The one mask representation (crop + mask_box): boxes and IoU checked against full frames."""
from __future__ import annotations

import numpy as np

from streamseg.masks import crop_iou, crop_of, paste, tight_box


def test_crop_iou_equals_full_frame_iou_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = np.zeros((40, 56), bool)
        b = np.zeros((40, 56), bool)
        for m in (a, b):
            y, x = rng.integers(0, 30), rng.integers(0, 46)
            m[y:y + rng.integers(1, 10), x:x + rng.integers(1, 10)] = rng.random() < 0.9
            m[rng.integers(0, 40), rng.integers(0, 56)] = True
        ca, cb = crop_of(a), crop_of(b)
        assert ca is not None and cb is not None
        expect = (a & b).sum() / (a | b).sum()
        assert crop_iou(*ca, *cb) == expect
        assert np.array_equal(paste(*ca, 40, 56), a) and tight_box(a) == ca[1]
