"""The synthetic scene: determinism, random access, identity and occlusion semantics."""
import numpy as np
import pytest

from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene


def test_render_is_deterministic_and_random_access():
    a = SyntheticScene(SceneConfig(seed=7))
    b = SyntheticScene(SceneConfig(seed=7))
    forward = [a.render(i) for i in range(0, 60, 3)]
    for i, (img, truth) in reversed(list(zip(range(0, 60, 3), forward))):
        img2, truth2 = b.render(i)  # other object, other order
        assert np.array_equal(img, img2)
        assert [t.instance_id for t in truth] == [t.instance_id for t in truth2]
        for t, t2 in zip(truth, truth2):
            assert np.array_equal(t.mask, t2.mask)
    far_a, _ = a.render(123456)
    far_b, _ = SyntheticScene(SceneConfig(seed=7)).render(123456)
    assert np.array_equal(far_a, far_b)
    other, _ = SyntheticScene(SceneConfig(seed=8)).render(0)
    assert not np.array_equal(forward[0][0], other)


def test_frame_format_and_truth_fields():
    cfg = SceneConfig(seed=1, width=320, height=200, instances=5)
    img, truth = SyntheticScene(cfg).render(300)
    assert img.shape == (200, 320, 3) and img.dtype == np.uint8 and img.flags.c_contiguous
    assert truth, "a 5-instance scene should show objects at frame 300"
    for t in truth:
        assert t.mask.shape == (200, 320) and t.mask.dtype == bool and t.mask.any()
        assert t.label == SYNTHETIC_CLASSES[t.class_id]


def test_visible_masks_are_silhouettes_minus_nearer_objects():
    scene = SyntheticScene(SceneConfig(seed=3, instances=8))
    occluded = 0
    for i in range(0, 600, 20):
        _, truth = scene.render(i)
        amodal = scene.amodal_masks(i)
        depth_order = [o.instance_id for o in scene.objects_at(i)]  # far to near
        covered = np.zeros((360, 640), np.int32)
        for t in truth:
            covered += t.mask
            nearer = [amodal[j] for j in depth_order[depth_order.index(t.instance_id) + 1:] if j in amodal]
            expected = amodal[t.instance_id].copy()
            for m in nearer:
                expected &= ~m
            assert np.array_equal(t.mask, expected)
            occluded += int(t.mask.sum() < amodal[t.instance_id].sum())
        assert covered.max() <= 1, f"visible masks overlap at frame {i}"
        # an object in view but not reported must be fully hidden by nearer ones
        visible_ids = {t.instance_id for t in truth}
        for j, m in amodal.items():
            if j not in visible_ids:
                rest = m.copy()
                for k in depth_order[depth_order.index(j) + 1:]:
                    rest &= ~amodal.get(k, np.zeros_like(m))
                assert not rest.any()
    assert occluded > 0, "no occlusion in 30 frames of an 8-instance scene"


def test_instances_enter_and_leave_and_ids_are_never_reused():
    scene = SyntheticScene(SceneConfig(seed=5, width=320, height=180, instances=6, lifetime_frames=60))
    seen_frames: dict[int, list[int]] = {}
    classes: dict[int, int] = {}
    counts = []
    for i in range(0, 900, 2):
        _, truth = scene.render(i)
        counts.append(len(truth))
        ids = [t.instance_id for t in truth]
        assert len(ids) == len(set(ids))
        for t in truth:
            seen_frames.setdefault(t.instance_id, []).append(i)
            assert classes.setdefault(t.instance_id, t.class_id) == t.class_id  # class is stable
    # many objects came and went: far more ids than simultaneous objects
    assert len(seen_frames) > 30
    # an id, once gone for good, never comes back: each id's frames span one bounded lifetime
    for iid, frames in seen_frames.items():
        assert frames[-1] - frames[0] <= 1.5 * 60 + 2, f"id {iid} lived too long (reused?)"
    # some ids start after frame 0 (entered) and end before the last frame (left)
    assert any(f[0] > 100 and f[-1] < 800 for f in seen_frames.values())
    assert 3 <= np.mean(counts) <= 9  # about `instances` at once
    assert len({c for c in classes.values()}) == len(SYNTHETIC_CLASSES)


def test_zero_instances_and_bad_config():
    img, truth = SyntheticScene(SceneConfig(instances=0, noise=0)).render(10)
    assert truth == [] and img.shape == (360, 640, 3)
    with pytest.raises(ValueError):
        SyntheticScene(SceneConfig(width=4))


def test_class_is_not_decided_by_colour():
    """The same class appears in very different colours (a model must learn the shape)."""
    scene = SyntheticScene(SceneConfig(seed=2, instances=8, noise=0))
    colours: dict[int, list[np.ndarray]] = {}
    for i in range(0, 600, 15):
        img, truth = scene.render(i)
        for t in truth:
            if t.mask.sum() > 200:
                colours.setdefault(t.class_id, []).append(img[t.mask].mean(0))
    spread = [np.ptp(np.array(c), axis=0).max() for c in colours.values() if len(c) >= 3]
    assert spread and min(spread) > 60
