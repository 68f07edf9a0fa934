"""synthetic:// as a source: frames are the scene's frames with their ground truth attached."""

import numpy as np
import pytest

from streamseg.data.synthetic_scene import SceneConfig, SyntheticScene
from streamseg.errors import SourceError
from streamseg.sources import SourceOptions, open_source


def test_unpaced_synthetic_source_matches_the_scene():
    source = open_source("synthetic://?seed=4&fps=0&frames=6&start=100&width=160&height=96&instances=4",
                         SourceOptions())
    assert not source.live
    frames = list(source.frames())
    assert source.state == "ended"
    assert [f.index for f in frames] == list(range(100, 106))
    scene = SyntheticScene(SceneConfig(seed=4, width=160, height=96, instances=4))
    for f in frames:
        image, truth = scene.render(f.index)
        assert np.array_equal(f.image, image)
        assert [t.instance_id for t in f.truth] == [t.instance_id for t in truth]
        assert all(np.array_equal(a.mask, b.mask) for a, b in zip(f.truth, truth))


def test_live_synthetic_source_is_paced_and_closable():
    source = open_source("synthetic://?fps=50&width=64&height=48", SourceOptions())
    assert source.live and source.fps == 50.0
    frames = []
    for f in source.frames():
        frames.append(f)
        if len(frames) == 10:
            source.close()
    assert source.state == "ended"
    assert [f.index for f in frames] == list(range(10))
    assert [f.pts for f in frames] == pytest.approx([i / 50 for i in range(10)])
    # paced by the schedule (frame 9 is due 0.18 s after frame 0; unpaced it would take ~1 ms)
    assert (frames[-1].t_capture_ns - frames[0].t_capture_ns) / 1e9 > 0.1
    assert all(f.truth is not None for f in frames)


def test_synthetic_rejects_bad_sizes():
    with pytest.raises(SourceError, match="must be >= 16"):
        open_source("synthetic://?width=8", SourceOptions())
    with pytest.raises(SourceError, match="only query parameters"):
        open_source("synthetic://host/path", SourceOptions())
