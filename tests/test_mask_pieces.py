"""postprocess.min_piece_ratio: stray pieces of a published mask are dropped before upsampling,
exactly (the kept pieces upsample as before), and boxes shrink to the object."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from streamseg.config import load_config
from streamseg.errors import ConfigError
from streamseg.predictor.postprocess import drop_pieces, paste_mask


def _logits() -> torch.Tensor:
    """48 x 80 logits: a big blob (ragged edge), a 2-pixel speck far away, a 5-pixel piece."""
    gen = torch.Generator().manual_seed(0)
    x = torch.full((48, 80), -4.0) + torch.rand(48, 80, generator=gen)  # background, all < 0
    x[10:22, 8:24] = 3.0 + torch.rand(12, 16, generator=gen)  # the object: 192 pixels
    x[40, 70:72] = 2.0  # a speck
    x[2:7, 60] = 1.5  # a thin sliver, 5 pixels
    return x


def _upsampled(logits: torch.Tensor, size=(360, 640)) -> np.ndarray:
    return (F.interpolate(logits[None, None], size=size, mode="bilinear", align_corners=False)[0, 0] >= 0).numpy()


def _full(pasted, size=(360, 640)) -> np.ndarray:
    crop, (x, y, w, h) = pasted
    out = np.zeros(size, bool)
    out[y:y + h, x:x + w] = crop
    return out


def test_largest_piece_only_equals_upsampling_the_object_alone():
    logits = _logits()
    alone = logits.clone()
    alone[40, 70:72] = -4.0
    alone[2:7, 60] = -4.0
    got = _full(paste_mask(drop_pieces(logits, 0.0, 1.0), 360, 640, 0.0))
    assert np.array_equal(got, _upsampled(alone))
    ys, xs = np.nonzero(got)
    # the box is the object's (stride 8 of 640/80): columns 8..23 -> ~64..192, not to the speck at 560+
    assert xs.max() < 200 and ys.max() < 180
    # and what the speck contributed before is gone: 3 pieces at full resolution, now 1
    assert ndimage.label(_upsampled(logits), structure=np.ones((3, 3)))[1] == 3
    assert ndimage.label(got, structure=np.ones((3, 3)))[1] == 1


def test_ratio_keeps_pieces_by_relative_area():
    logits = _logits()
    fg = lambda t: (t >= 0).numpy()  # noqa: E731
    assert drop_pieces(logits, 0.0, 0.0) is logits  # off: Mask2Former's behaviour
    kept = fg(drop_pieces(logits, 0.0, 0.02))  # 5 >= 0.02 * 192 > 2: the sliver stays, the speck goes
    assert kept[2:7, 60].all() and not kept[40, 70:72].any() and kept[10:22, 8:24].all()
    two = torch.full((20, 20), -1.0)
    two[2:6, 2:6] = 1.0
    two[12:16, 12:16] = 1.0  # equal halves (an occluded object): both stay at 1.0
    assert np.array_equal(fg(drop_pieces(two, 0.0, 1.0)), fg(two))


def test_diagonal_neighbours_are_one_piece():
    x = torch.full((10, 10), -2.0)
    x[2:5, 2:5] = 2.0
    x[5, 5] = 2.0  # touches the square's corner only
    assert drop_pieces(x, 0.0, 1.0) is x  # one 8-connected piece: nothing dropped


def test_threshold_other_than_zero():
    x = torch.full((12, 12), 0.2)
    x[1:6, 1:6] = 0.9
    x[9, 9] = 0.8
    out = drop_pieces(x, 0.5, 1.0)
    assert out[9, 9] < 0.5 and (out[1:6, 1:6] == 0.9).all() and out[0, 0] == pytest.approx(0.2)


def test_config_range_checked():
    with pytest.raises(ConfigError, match="min_piece_ratio"):
        load_config("cpu-mobilenet", ["postprocess.min_piece_ratio=1.5"])
    assert load_config("cpu-mobilenet").postprocess.min_piece_ratio == 1.0
