"""`run --save-json` / `--save-rle`: real CLI runs on the synthetic scene, scored by `eval-json`."""
import json

import numpy as np
from engine_helpers import run_cli
from pycocotools import mask as coco_mask

from streamseg.data.synthetic_scene import SYNTHETIC_CLASSES, SceneConfig, SyntheticScene
from streamseg.data.ytvis import Annotation, Category, Video, YtvisDataset, encode_mask, rle_to_json
from streamseg.engine.results_writers import YtvisWriter
from streamseg.interface import Frame, Instance, Tracks, Vocabulary

SCENE = dict(seed=5, width=160, height=96, instances=3)
FRAMES = 24
URI = "synthetic://?seed={seed}&fps=0&width={width}&height={height}&instances={instances}".format(**SCENE) \
    + f"&frames={FRAMES}"


def _ground_truth(path) -> None:
    """The scene's truth as a YouTube-VIS file: categories in SYNTHETIC_CLASSES order (ids 1..5)."""
    scene = SyntheticScene(SceneConfig(**SCENE))
    tubes: dict[int, tuple[int, list]] = {}
    for t in range(FRAMES):
        _, truth = scene.render(t)
        for tr in truth:
            if tr.mask.any():
                tubes.setdefault(tr.instance_id, (tr.class_id + 1, [None] * FRAMES))[1][t] = encode_mask(tr.mask)
    anns = [Annotation(i + 1, 1, cat, segs) for i, (cat, segs) in enumerate(tubes.values())]
    gt = YtvisDataset([Video(1, SCENE["width"], SCENE["height"], [f"v/{t:05d}.jpg" for t in range(FRAMES)])],
                      [Category(i + 1, n) for i, n in enumerate(SYNTHETIC_CLASSES)], anns)
    data = {
        "videos": [{"id": 1, "width": SCENE["width"], "height": SCENE["height"],
                    "length": FRAMES, "file_names": gt.videos[0].file_names}],
        "categories": [{"id": c.id, "name": c.name} for c in gt.categories],
        "annotations": [{"id": a.id, "video_id": 1, "category_id": a.category_id, "iscrowd": 0,
                         "segmentations": [rle_to_json(s) for s in a.segmentations],
                         "areas": [None if s is None else float(coco_mask.area(s)) for s in a.segmentations],
                         "bboxes": [None if s is None else list(coco_mask.toBbox(s)) for s in a.segmentations]}
                        for a in anns],
    }
    path.write_text(json.dumps(data))


def test_save_json_scores_ap_1_and_save_rle_logs_every_instance(tmp_path):
    results, log, gt = tmp_path / "results.json", tmp_path / "instances.jsonl", tmp_path / "gt.json"
    proc = run_cli("run", "--source", URI, "--segmenter", "ground-truth", "--publish", "inproc://save",
                   "--quiet", "--save-json", str(results), "--save-rle", str(log))
    assert proc.returncode == 0, proc.stderr
    _ground_truth(gt)
    tubes = json.loads(results.read_text())
    assert tubes and all(len(t["segmentations"]) == FRAMES and t["video_id"] == 1 for t in tubes)
    assert not (tmp_path / "results.json.part").exists()
    scored = run_cli("eval-json", str(gt), str(results), "--json")
    assert scored.returncode == 0, scored.stderr
    stats = json.loads(scored.stdout.strip().splitlines()[-1])
    assert stats["AP"] > 0.99 and stats["results"] == len(tubes)

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    scene = SyntheticScene(SceneConfig(**SCENE))
    assert {r["frame_index"] for r in lines} == set(range(FRAMES))
    for r in lines[:10]:
        _, truth = scene.render(r["frame_index"])
        t = {tr.instance_id: tr for tr in truth}[r["id"]]
        assert r["label"] == SYNTHETIC_CLASSES[t.class_id] and r["stream"] == "0"
        x, y, w, h = r["mask_box"]
        crop = coco_mask.decode({"size": [h, w], "counts": r["counts"].encode()}).astype(bool)
        assert np.array_equal(crop, t.mask[y:y + h, x:x + w])
        assert r["box_xyxy"] == [x, y, x + w, y + h]


def test_save_json_into_missing_folder_is_a_one_line_error(tmp_path):
    proc = run_cli("run", "--source", URI, "--segmenter", "ground-truth", "--publish", "inproc://x",
                   "--save-json", str(tmp_path / "nope" / "r.json"))
    assert proc.returncode == 2
    assert "--save-json" in proc.stderr and "does not exist" in proc.stderr


def _inst(tid: int, x: int) -> Instance:
    crop = np.ones((4, 4), dtype=bool)
    return Instance(tid, 1, "b", 0.5, (x, 2, x + 4, 6), crop, (x, 2, 4, 4))


def test_ytvis_writer_spills_ended_tracks_and_pads_them_to_the_stream_length(tmp_path):
    """A track gone for end_after frames leaves memory for the side file; the tube is whole at EOS."""
    out = tmp_path / "r.json"
    w = YtvisWriter(out, end_after=2)
    vocab = Vocabulary(["a", "b"])
    image = np.zeros((16, 32, 3), np.uint8)
    for t in range(10):
        insts = ([_inst(1, t)] if t < 3 else []) + ([_inst(2, 20)] if t >= 5 else [])
        w.add_frame("s", Frame(image, t, None, 0), Tracks(t, 32, 16, insts), vocab)
        if t == 6:
            assert 1 not in w._streams["s"].open  # spilled, no longer held
    w.end_stream("s")
    w.close()
    tubes = json.loads(out.read_text())
    assert len(tubes) == 2 and all(len(t["segmentations"]) == 10 and t["category_id"] == 2 for t in tubes)
    by_present = {tuple(s is not None for s in t["segmentations"]): t for t in tubes}
    assert (True,) * 3 + (False,) * 7 in by_present and (False,) * 5 + (True,) * 5 in by_present
