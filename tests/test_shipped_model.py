"""The shipped CPU model (configs/cpu-mobilenet.yaml's default checkpoint) really segments and tracks
the demo's scene: the regression test for the weights that `make demo` publishes."""
from collections import defaultdict
from pathlib import Path

import pytest
from engine_helpers import iou

from streamseg import build_segmenter, load_config
from streamseg.data.synthetic_scene import SceneConfig, SyntheticScene
from streamseg.interface import Frame

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def segmenter():
    return build_segmenter(load_config(ROOT / "configs/cpu-mobilenet.yaml"))


def test_shipped_checkpoint_is_the_configs_default_and_carries_its_vocabulary(segmenter):
    cfg = load_config(ROOT / "configs/cpu-mobilenet.yaml")
    assert Path(cfg.checkpoint).is_file() and Path(cfg.checkpoint).stat().st_size <= 36 * 2**20  # small enough for the repository (with the target encoder: 31 MiB)
    assert segmenter.vocabulary.names == ["disk", "square", "triangle", "ring", "cross"]


def test_shipped_model_segments_and_tracks_the_demo_scene(segmenter):
    scene = SyntheticScene(SceneConfig(seed=7, width=640, height=360))
    state = segmenter.init_state()
    matches: dict[int, list[tuple[float, str, int]]] = defaultdict(list)  # truth id -> per frame
    labels: dict[int, str] = {}
    for index in range(30):
        image, truth = scene.render(index)
        tracks = segmenter.step(state, Frame(image, index, None, 0, truth=truth))
        masks = [inst.full_mask(360, 640) for inst in tracks.instances]
        assert all(inst.crop.dtype == bool and inst.crop.any() for inst in tracks.instances)
        if index < 10:  # let the tracks be born
            continue
        for t in truth:
            labels[t.instance_id] = t.label
            scored = [(iou(t.mask, m), inst.label, inst.track_id) for inst, m in zip(tracks.instances, masks)]
            matches[t.instance_id].append(max(scored, default=(0.0, "", -1)))
    # "Segmented": every frame matches the instance with IoU >= 0.7 and the right label.
    # "Tracked": segmented, and by one track id throughout.
    segmented = [
        tid for tid, per_frame in matches.items()
        if len(per_frame) == 20 and all(m[0] >= 0.7 and m[1] == labels[tid] for m in per_frame)
    ]
    tracked = [tid for tid in segmented if len({m[2] for m in matches[tid]}) == 1]
    last = {tid: per_frame[-1] for tid, per_frame in matches.items()}
    assert len(segmented) >= 3, last
    assert len(tracked) >= 2, last
    assert len({matches[tid][0][2] for tid in tracked}) == len(tracked)  # distinct ids
