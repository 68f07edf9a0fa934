"""Multi-dataset sampler (ratios, DDP sharding) and the unified taxonomy."""
from __future__ import annotations

import numpy as np
import pytest

from streamseg.errors import ConfigError
from streamseg.training.sampler import MultiDatasetSampler
from streamseg.training.unified_classes import build_taxonomy, load_aliases, normalise_name


def test_default_ratios_are_named_by_dataset_not_by_order():
    from streamseg.training.sampler import default_ratios

    assert default_ratios(["data/ytvis2019/train.json", "data/UVO_v1/train.json", "data/OVIS/train.json"]) \
        == (1.0, 1.0, 0.75)
    assert default_ratios(["data/OVIS/train.json", "data/youtube-vis-2021", "mine/"]) == (0.75, 1.0, 1.0)


def test_ratios_hold_statistically():
    sizes = [50, 30, 20]
    s = MultiDatasetSampler(sizes, ratios=(1.0, 1.0, 0.75), num_samples=20000, seed=3, rank=0, world_size=1)
    counts = np.bincount([s.dataset_of(i) for i in s], minlength=3)
    expected = 20000 * np.array([1.0, 1.0, 0.75]) / 2.75
    chi2 = float((((counts - expected) ** 2) / expected).sum())
    assert chi2 < 13.8  # chi-square, 2 degrees of freedom, p = 0.001


def test_draw_follows_the_ratios():
    s = MultiDatasetSampler([50, 30, 20], ratios=(1.0, 1.0, 0.75), rank=0, world_size=1)
    idx = s.draw(np.random.default_rng(4), 20000)
    counts = np.bincount([s.dataset_of(i) for i in idx], minlength=3)
    expected = 20000 * np.array([1.0, 1.0, 0.75]) / 2.75
    assert float((((counts - expected) ** 2) / expected).sum()) < 13.8
    assert idx.min() >= 0 and idx.max() < 100


def test_custom_ratios_and_even_coverage_within_a_dataset():
    sizes = [10, 40]
    s = MultiDatasetSampler(sizes, ratios=[3, 1], num_samples=8000, seed=1, rank=0, world_size=1)
    idx = np.array(list(s))
    assert 0.73 < np.mean(idx < 10) < 0.77  # 3:1 -> 75 % from the first dataset
    per_item = np.bincount(idx, minlength=50)
    # Each dataset is walked in permutations: item counts within a dataset differ by at most 1.
    for lo, hi in ((0, 10), (10, 50)):
        assert per_item[lo:hi].max() - per_item[lo:hi].min() <= 1


def test_ddp_shards_are_disjoint_and_cover_the_epoch():
    sizes = [7, 5, 3]
    shards = [list(MultiDatasetSampler(sizes, num_samples=101, seed=9, rank=r, world_size=3)) for r in range(3)]
    assert [len(x) for x in shards] == [34, 34, 34]
    glob = MultiDatasetSampler(sizes, num_samples=101, seed=9, rank=0, world_size=3).global_indices()
    interleaved = [shards[i % 3][i // 3] for i in range(102)]
    assert interleaved == glob.tolist()  # positions partitioned: no sample position is shared by two ranks
    a = MultiDatasetSampler(sizes, seed=9, rank=0, world_size=1)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first  # a new epoch, a new order


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="ratios"):
        MultiDatasetSampler([3, 3], ratios=[1.0], rank=0, world_size=1)
    with pytest.raises(ConfigError, match="rank"):
        MultiDatasetSampler([3], rank=2, world_size=2)


def test_unified_taxonomy_dedups_by_normalised_text(tmp_path):
    assert normalise_name("  Sedan_Car ") == normalise_name("sedan-car") == normalise_name("SEDAN  car") == "sedan car"
    datasets = {
        "ytvis19": [(1, "Person"), (2, "sedan_car"), (5, "motorbike")],
        "ovis": [(7, "person "), (3, "Sedan-Car"), (4, "horse")],
        "uvo": [(1, "motorcycle")],
    }
    tax = build_taxonomy(datasets)
    assert tax.names == ["Person", "sedan_car", "motorbike", "horse", "motorcycle"]
    assert tax.maps["ytvis19"] == {1: 0, 2: 1, 5: 2}
    assert tax.maps["ovis"] == {7: 0, 3: 1, 4: 3}
    assert tax.maps["uvo"] == {1: 4}
    # With an alias file, motorbike and motorcycle are one class (named by the file's canonical name).
    alias_file = tmp_path / "aliases.yaml"
    alias_file.write_text("motorcycle: [motorbike, Motor-Bike]\n")
    tax = build_taxonomy(datasets, load_aliases(alias_file))
    assert tax.names == ["Person", "sedan_car", "motorcycle", "horse"]
    assert tax.maps["ytvis19"][5] == tax.maps["uvo"][1] == 2
    assert tax.dataset_names("ovis") == ["Person", "sedan_car", "horse"]


def test_alias_file_errors(tmp_path):
    bad = tmp_path / "a.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must map"):
        load_aliases(bad)
    clash = tmp_path / "b.yaml"
    clash.write_text("car: [auto]\nvan: [auto]\n")
    with pytest.raises(ConfigError, match="alias of both"):
        load_aliases(clash)
    with pytest.raises(ConfigError, match="not found"):
        load_aliases(tmp_path / "missing.yaml")
