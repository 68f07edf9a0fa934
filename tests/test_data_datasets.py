"""YouTube-VIS reader, synthetic benchmark writer, clip sampling and augmentation."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from streamseg.data.commands import add_data_parser
from streamseg.data.frames import read_rgb
from streamseg.data.synth import SPLIT_TAXONOMIES, SynthSpec, write_synthetic
from streamseg.data.synthetic_scene import SceneConfig, SyntheticScene
from streamseg.data.ytvis import DatasetError, decode_rle, encode_mask, load_ytvis, parse_ytvis
from streamseg.training.augment import ClipAugment
from streamseg.training.datasets import Clip, YtvisClipDataset, sample_frame_indices
from streamseg.training.unified_classes import taxonomy_of

W, H, T = 96, 64, 6


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    # Through the `data synth` parser, as the CLI runs it.
    parser = argparse.ArgumentParser()
    add_data_parser(parser.add_subparsers())
    args = parser.parse_args(["data", "synth", "--out", str(out), "--videos", "2", "--val-videos", "1",
                              "--seed", "5", "--frames", str(T), "--width", str(W), "--height", str(H),
                              "--instances", "4"])
    assert args.func(args) == 0
    return out


def _scene_truth(info, name, t):
    v = info["videos"][name]
    scene = SyntheticScene(SceneConfig(seed=v["scene_seed"], width=W, height=H, instances=info["instances"]))
    return scene.render(v["first_scene_frame"] + t * info["frame_step"])


def test_synthetic_dataset_round_trips(synth):
    info = json.loads((synth / "synth_info.json").read_text())
    ds = load_ytvis(synth / "train.json")
    assert [c.name for c in ds.categories] == ["disk", "square", "triangle", "ring", "cross"]
    assert len(ds.videos) == 2 and all(v.length == T and (v.width, v.height) == (W, H) for v in ds.videos)
    names = ds.category_names()
    checked = 0
    for video in ds.videos:
        vname = video.file_names[0].split("/")[0]
        frames = [_scene_truth(info, vname, t) for t in range(T)]
        # Frames: the JPEG is the rendered image up to compression.
        img = read_rgb(synth / "JPEGImages" / video.file_names[0])
        assert img.shape == (H, W, 3)
        assert np.abs(img.astype(int) - frames[0][0].astype(int)).mean() < 6
        # Every visible instance of the scene is exactly one tube, with its class, in every frame.
        anns = ds.annotations_of(video.id)
        truth_ids = {i.instance_id for _, truth in frames for i in truth if i.mask.any()}
        assert len(anns) == len(truth_ids)
        for a in anns:
            first = next(t for t, s in enumerate(a.segmentations) if s is not None)
            match = [i for i in frames[first][1] if np.array_equal(i.mask, decode_rle(a.segmentations[first]))]
            assert len(match) == 1
            inst_id = match[0].instance_id
            assert names[a.category_id] == match[0].label
            for t in range(T):
                truth = {i.instance_id: i for i in frames[t][1]}
                if a.segmentations[t] is None:
                    assert inst_id not in truth or not truth[inst_id].mask.any()
                else:
                    assert np.array_equal(decode_rle(a.segmentations[t]), truth[inst_id].mask)
                    checked += 1
    assert checked > 10


def test_clip_dataset_reads_masks_ids_and_classes(synth):
    data = YtvisClipDataset(synth / "train.json", num_frames=3, max_stride=2, seed=1)
    gt = data.data
    for index in range(len(data)):
        clip = data[index]
        video = gt.videos[index]
        assert clip.images.shape == (3, 3, H, W) and clip.images.dtype == torch.uint8
        idx = clip.frame_indices
        strides = np.diff(idx)
        assert len(set(strides.tolist())) == 1 and 1 <= strides[0] <= 2
        anns = {a.id: a for a in gt.annotations_of(video.id)}
        expected_ids = {i for i, a in anns.items() if any(a.segmentations[t] is not None for t in idx)}
        assert set(clip.instance_ids.tolist()) == expected_ids
        for n, inst in enumerate(clip.instance_ids.tolist()):
            a = anns[inst]
            assert clip.category_names[int(clip.class_ids[n])] == gt.category_names()[a.category_id]
            for j, t in enumerate(idx):
                seg = a.segmentations[t]
                assert bool(clip.present[n, j]) == (seg is not None)
                want = decode_rle(seg) if seg is not None else np.zeros((H, W), bool)
                assert np.array_equal(clip.masks[n, j].numpy(), want)
        masks, ids, labels = clip.frame_instances(0)
        assert masks.shape[0] == ids.shape[0] == len(labels) == int(clip.present[:, 0].sum())
    # Deterministic in (seed, epoch, index); another epoch samples other frames somewhere.
    again = YtvisClipDataset(synth / "train.json", num_frames=3, max_stride=2, seed=1)
    assert again[0].frame_indices == data[0].frame_indices
    assert torch.equal(again[0].masks, data[0].masks)
    seen = set()
    for e in range(8):
        data.set_epoch(e)
        seen.add(tuple(data[0].frame_indices))
    assert len(seen) > 1


def test_frame_index_sampling():
    rng = np.random.default_rng(0)
    for _ in range(200):
        length, T_, s = int(rng.integers(1, 30)), int(rng.integers(1, 6)), int(rng.integers(1, 5))
        idx = sample_frame_indices(length, T_, s, rng)
        assert len(idx) == T_ and all(0 <= i < length for i in idx)
        if length >= T_ and T_ > 1:
            d = np.diff(idx)
            assert len(set(d.tolist())) == 1 and 1 <= d[0] <= s
            assert idx[-1] < length


def test_split_taxonomies_leave_other_classes_unannotated(tmp_path):
    write_synthetic(SynthSpec(out=str(tmp_path), videos=2, val_videos=1, seed=3, frames=4, width=W, height=H,
                              split=3, instances=6))
    info = json.loads((tmp_path / "synth_info.json").read_text())
    seen_unannotated = 0
    for k, taxonomy in enumerate(SPLIT_TAXONOMIES[3], start=1):
        ds = load_ytvis(tmp_path / f"train_{k}.json")
        assert [c.name for c in ds.categories] == list(taxonomy)
        names = ds.category_names()
        for video in ds.videos:
            vname = video.file_names[0].split("/")[0]
            truth = [i for t in range(4) for i in _scene_truth(info, vname, t)[1] if i.mask.any()]
            in_tax = {i.instance_id for i in truth if i.label in taxonomy}
            assert len(ds.annotations_of(video.id)) == len(in_tax)
            assert all(names[a.category_id] in taxonomy for a in ds.annotations_of(video.id))
            seen_unannotated += len({i.instance_id for i in truth if i.label not in taxonomy})
    assert seen_unannotated > 0  # shapes outside a taxonomy are in the pixels, just not annotated
    valid = load_ytvis(tmp_path / "valid.json")
    assert [c.name for c in valid.categories] == ["disk", "square", "triangle", "ring", "cross"]
    # The unified taxonomy of the three parts is the union; clips carry both id spaces.
    parts = {f"train_{k}": load_ytvis(tmp_path / f"train_{k}.json") for k in (1, 2, 3)}
    tax = taxonomy_of(parts)
    assert tax.names == ["disk", "square", "triangle", "ring", "cross"]
    assert tax.maps["train_2"] == {1: 1, 2: 2, 3: 3} and tax.maps["train_3"] == {1: 3, 2: 4, 3: 0}
    data = YtvisClipDataset(parts["train_3"], tmp_path / "JPEGImages", num_frames=2, unified_map=tax.maps["train_3"])
    clip = next(c for c in (data[i] for i in range(len(data))) if len(c.class_ids))
    assert [tax.names[int(u)] for u in clip.unified_ids] == clip.class_names()


def test_polygon_uncompressed_and_null_segmentations_parse():
    # 4x4 video, 3 frames. Uncompressed RLE is column-major: counts [1, 2, 13] = skip pixel (0,0),
    # then (1,0) and (2,0) set, then 13 unset -> column 0, rows 1-2.
    square = np.zeros((4, 4), bool)
    square[1:3, 1:3] = True
    compressed = encode_mask(square)
    data = {
        "videos": [{"id": 7, "width": 4, "height": 4, "length": 3, "file_names": ["a/0.jpg", "a/1.jpg", "a/2.jpg"]}],
        "categories": [{"id": 3, "name": "thing"}],
        "annotations": [{
            "id": 1, "video_id": 7, "category_id": 3, "iscrowd": 0,
            "segmentations": [
                {"size": [4, 4], "counts": [1, 2, 13]},
                {"size": [4, 4], "counts": compressed["counts"].decode()},
                None,
            ],
        }, {
            "id": 2, "video_id": 7, "category_id": 3, "iscrowd": 1,
            # A polygon around pixels 0..2 x 0..2 (pixel centres at +0.5); frames 1-2 empty.
            "segmentations": [[[0, 0, 3, 0, 3, 3, 0, 3]], None, []],
        }],
    }
    ds = parse_ytvis(data)
    a, b = ds.annotations
    col = np.zeros((4, 4), bool)
    col[1:3, 0] = True
    assert np.array_equal(decode_rle(a.segmentations[0]), col)
    assert np.array_equal(decode_rle(a.segmentations[1]), square)
    assert a.segmentations[2] is None and not a.iscrowd
    poly = decode_rle(b.segmentations[0])
    assert poly[:3, :3].all() and not poly[3, :].any() and not poly[:, 3].any()
    assert b.iscrowd and b.segmentations[1] is None and b.segmentations[2] is None
    # A degenerate polygon (2 points) has no area: present, empty mask.
    data["annotations"][1]["segmentations"][1] = [[0, 0, 2, 2]]
    assert not decode_rle(parse_ytvis(data).annotations[1].segmentations[1]).any()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["annotations"][0]["segmentations"].pop(), "one segmentation per frame"),
    (lambda d: d["annotations"][0].update(video_id=99), "unknown video"),
    (lambda d: d["annotations"][0].update(category_id=5), "unknown category"),
    (lambda d: d["annotations"][0]["segmentations"].__setitem__(0, {"size": [2, 2], "counts": "0"}), "does not match"),
    (lambda d: d.pop("videos"), "needs 'videos'"),
    (lambda d: d["annotations"][0]["segmentations"].__setitem__(0, [[1, 2, 3]]), "coordinate pairs"),
])
def test_malformed_files_raise_one_line_errors(mutate, message):
    data = {
        "videos": [{"id": 1, "width": 4, "height": 4, "file_names": ["0.jpg", "1.jpg"]}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "segmentations": [None, None]}],
    }
    mutate(data)
    with pytest.raises(DatasetError, match=message) as info:
        parse_ytvis(data)
    assert "\n" not in str(info.value)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found"):
        load_ytvis(tmp_path / "nope.json")


def _marked_clip(T_: int = 3, h: int = 40, w: int = 60) -> Clip:
    """Frame t = a fixed random base image + t; instance 0 is a block also painted red in the image."""
    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.integers(0, 200, size=(3, h, w), dtype=np.uint8))
    mask = torch.zeros((h, w), dtype=torch.bool)
    mask[10:25, 5:20] = True
    base[0][mask] = 250
    base[0][~mask] = base[0][~mask] // 2  # red < 100 outside the block
    images = torch.stack([base + t for t in range(T_)])
    masks = torch.stack([mask] * T_)[None]
    return Clip(images, masks, torch.ones((1, T_), dtype=torch.bool), torch.tensor([4]), torch.tensor([0]),
                torch.tensor([0]), ["block"])


def test_augmentation_is_the_same_for_every_frame():
    aug = ClipAugment(scale_range=(0.7, 1.6), flip_prob=0.5, crop=(24, 30))
    for seed in range(12):
        clip = _marked_clip()
        out = aug(clip, np.random.default_rng(seed))
        assert out.images.shape == (3, 3, 24, 30)
        # Same geometry on every frame: frame t - frame 0 == t wherever frame 0 is not saturated
        # (+-1 where bilinear rounding of x.5 tips differently; a different flip/crop/scale per
        # frame would misalign the random base image and give differences of tens).
        d = out.images.int() - out.images[0:1].int()
        valid = out.images[0].int() < 250
        for t in range(3):
            err = (d[t][valid] - t).abs()
            assert err.max() <= 1 and (err == 0).float().mean() > 0.97
        if out.masks.shape[0]:
            # Masks moved with their pixels, identically in every frame.
            assert all(torch.equal(out.masks[0, t], out.masks[0, 0]) for t in range(3))
            assert out.present[0].tolist() == [bool(out.masks[0, 0].any())] * 3


def test_augmentation_moves_masks_with_pixels():
    # No resize (scale 1): flip + crop are exact, so the mask equals the red marker of the image.
    for seed in range(10):
        out = ClipAugment(scale_range=(1.0, 1.0), flip_prob=0.5, crop=(30, 40))(_marked_clip(), np.random.default_rng(seed))
        red = out.images[0, 0] >= 250
        if out.masks.shape[0]:
            assert torch.equal(out.masks[0, 0], red)
        else:
            assert not red.any()  # the block was cropped away: the instance is dropped
    # Scale 2 exactly: nearest-resized masks are the block doubled.
    out = ClipAugment(scale_range=(2.0, 2.0), flip_prob=0.0)(_marked_clip(), np.random.default_rng(0))
    assert out.masks.shape == (1, 3, 80, 120)
    assert torch.equal(out.masks[0, 0].nonzero().min(0).values, torch.tensor([20, 10]))
    assert int(out.masks[0, 0].sum()) == 4 * 15 * 15


def test_data_synth_command_rejects_bad_arguments(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "streamseg", "data", "synth", "--out", str(tmp_path / "x"),
                           "--videos", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "streamseg: error: --videos must be >= 1"
    assert not (tmp_path / "x").exists()
