"""Masked attention: Triton kernels (in Triton's interpreter, TRITON_INTERPRET=1 from conftest.py)
against the PyTorch references, the empty-row rule, mask packing, dispatch and the bench's CPU exit.

bf16 runs only through the reference path: ``tl.dot`` in bf16 is wrong in the interpreter.
"""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from streamseg.errors import ConfigError
from streamseg.kernels import masked_attention
from streamseg.kernels.launch import BlockSizes
from streamseg.kernels.reference import masked_attention_reference, naive_masked_attention
from tests.kernels_helpers import TOLERANCE, make_problem, max_errors, oracle, run_with_grads

ROOT = Path(__file__).resolve().parents[1]


def triton_fn():
    from streamseg.kernels.triton_attention import triton_masked_attention

    return triton_masked_attention


# (b, h, nq, nk, d, per_head, blocks): ragged Nq/Nk tails, a key split whose chunk ends mid-tensor,
# a single key, every supported head dim, masks shared by heads and per head.
CASES = {
    "ragged": (2, 2, 37, 300, 32, False, None),
    "ragged-small-blocks-split": (1, 2, 45, 600, 32, True, BlockSizes(block_m=32, block_n=64, splits=3)),
    "single-key": (2, 1, 19, 1, 32, False, None),
    "d16": (1, 2, 20, 50, 16, False, None),
    "d64-per-head": (1, 2, 70, 129, 64, True, None),
    "d128": (1, 1, 130, 77, 128, False, None),
    "d256": (1, 1, 33, 257, 256, False, None),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_triton_forward_backward_match_reference(case, dtype):
    b, h, nq, nk, d, per_head, blocks = CASES[case]
    q, k, v, mask, grad_out = make_problem(b, h, nq, nk, d, dtype, per_head=per_head)
    got = run_with_grads(triton_fn(), q, k, v, mask, grad_out, blocks=blocks)
    assert got[0].dtype == dtype and all(g.dtype == dtype for g in got[1])
    errors = max_errors(got, oracle(q, k, v, mask, grad_out))
    assert max(errors) < TOLERANCE[dtype], f"forward, dq, dk, dv max abs errors {errors}"
    # The production CPU reference (SDPA) agrees with the same oracle, gradients included.
    sdpa = run_with_grads(masked_attention_reference, *(x.float() for x in (q, k, v)), mask, grad_out.float())
    assert max(max_errors(sdpa, oracle(q, k, v, mask, grad_out))) < 1e-4


@pytest.mark.parametrize("seed", range(4))
def test_triton_matches_reference_on_random_shapes_in_the_decoders_layout(seed):
    """Random B, H, Nq, Nk, d and dtype; q/k/v/grad are (B,N,H,d) buffers seen through transpose(1, 2),
    exactly as streamseg.model.layers hands them over (not contiguous)."""
    rng = torch.Generator().manual_seed(100 + seed)
    pick = lambda *xs: xs[torch.randint(len(xs), (1,), generator=rng).item()]  # noqa: E731
    b, h, d = pick(1, 2), pick(1, 2, 3), pick(32, 64)
    nq, nk = torch.randint(1, 150, (1,), generator=rng).item(), torch.randint(1, 700, (1,), generator=rng).item()
    dtype = pick(torch.float32, torch.float16)
    q, k, v, mask, grad_out = make_problem(b, h, nq, nk, d, dtype, per_head=bool(seed % 2), seed=seed)
    q, k, v, grad_out = (x.transpose(1, 2).contiguous().transpose(1, 2) for x in (q, k, v, grad_out))
    assert q.stride(2) == h * d  # rows of one head are h*d apart, as in the model
    got = run_with_grads(triton_fn(), q, k, v, mask, grad_out, scale=0.3)
    errors = max_errors(got, oracle(q, k, v, mask, grad_out, scale=0.3))
    assert max(errors) < TOLERANCE[dtype], f"{(b, h, nq, nk, d, dtype)}: errors {errors}"


def test_key_splits_merge_to_the_unsplit_result():
    q, k, v, mask, grad_out = make_problem(1, 2, 50, 700, 32, torch.float32, density=0.05, seed=3)
    # Sparse mask: some splits hold no allowed key for some rows (lse = -inf in the merge).
    mask[0, 10, :] = False
    mask[0, 10, 650] = True
    whole = run_with_grads(triton_fn(), q, k, v, mask, grad_out, blocks=BlockSizes(64, 256, splits=1))
    split = run_with_grads(triton_fn(), q, k, v, mask, grad_out, blocks=BlockSizes(64, 256, splits=3))
    assert max(max_errors(split, whole)) < 1e-5
    assert max(max_errors(split, oracle(q, k, v, mask, grad_out))) < TOLERANCE[torch.float32]


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_empty_row_attends_to_every_key(backend, monkeypatch):
    monkeypatch.setenv("STREAMSEG_KERNELS", backend)
    q, k, v, mask, _ = make_problem(1, 2, 5, 40, 32, torch.float32, seed=1)
    mask[0, 2, :] = False
    mask[0, 2, 7] = True      # a row with one key attends to exactly that key
    out = masked_attention(q, k, v, mask, scale=0.2)
    full = torch.softmax(q @ k.transpose(-1, -2) * 0.2, dim=-1) @ v
    torch.testing.assert_close(out[:, :, 0], full[:, :, 0], atol=2e-5, rtol=1e-5)  # row 0 is all False
    torch.testing.assert_close(out[:, :, 2], v[:, :, 7], atol=2e-5, rtol=1e-5)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("backend", ["triton", "reference"])
def test_all_true_mask_equals_unmasked_attention(backend, monkeypatch):
    monkeypatch.setenv("STREAMSEG_KERNELS", backend)
    q, k, v, _, _ = make_problem(2, 2, 9, 33, 32, torch.float32, seed=2)
    mask = torch.ones(2, 9, 33, dtype=torch.bool)
    torch.testing.assert_close(masked_attention(q, k, v, mask), F.scaled_dot_product_attention(q, k, v),
                               atol=2e-5, rtol=1e-5)


def test_pack_mask_matches_torch_packing():
    from streamseg.kernels.mask_packing import pack_mask, pack_mask_torch

    gen = torch.Generator().manual_seed(4)
    for shape in [(2, 1, 37, 100), (1, 3, 5, 32), (1, 1, 3, 1)]:
        mask = torch.rand(shape, generator=gen) < 0.5
        mask[..., 0, :] = False
        bits, empty = pack_mask(mask)
        assert bits.shape == (*shape[:3], -(-shape[3] // 32))
        assert torch.equal(bits, pack_mask_torch(mask))
        assert torch.equal(empty.bool(), ~mask.any(-1))
    strided = (torch.rand(1, 2, 70, 6, generator=gen) < 0.5).transpose(2, 3)   # not contiguous
    assert torch.equal(pack_mask(strided)[0], pack_mask_torch(strided))
    word = pack_mask(torch.ones(1, 1, 1, 32, dtype=torch.bool))[0]
    assert word.item() == -1  # bit 31 set: all 32 keys allowed


def test_gradcheck_reference_float64():
    q, k, v, mask, _ = make_problem(1, 2, 4, 6, 3, torch.float64, seed=5)
    leaves = [x.requires_grad_() for x in (q, k, v)]
    assert torch.autograd.gradcheck(lambda a, b, c: masked_attention_reference(a, b, c, mask), leaves)
    assert torch.autograd.gradcheck(lambda a, b, c: naive_masked_attention(a, b, c, mask, scale=0.7), leaves)


def test_bf16_through_dispatch_uses_reference_and_matches(monkeypatch):
    monkeypatch.delenv("STREAMSEG_KERNELS", raising=False)
    q, k, v, mask, grad_out = make_problem(1, 2, 21, 50, 32, torch.bfloat16, seed=6)
    got = run_with_grads(masked_attention, q, k, v, mask, grad_out)
    assert got[0].dtype == torch.bfloat16
    assert max(max_errors(got, oracle(q, k, v, mask, grad_out))) < TOLERANCE[torch.bfloat16]


@pytest.mark.parametrize("env, node", [(None, "ScaledDotProduct"), ("auto", "ScaledDotProduct"),
                                       ("reference", "ScaledDotProduct"), ("triton", "_MaskedAttention"),
                                       (" Triton ", "_MaskedAttention")])
def test_dispatch_follows_device_and_env_var(env, node, monkeypatch):
    if env is None:
        monkeypatch.delenv("STREAMSEG_KERNELS", raising=False)
    else:
        monkeypatch.setenv("STREAMSEG_KERNELS", env)
    q, k, v, mask, _ = make_problem(1, 1, 8, 20, 32, torch.float32, seed=7)
    q.requires_grad_()
    out = masked_attention(q, k, v, mask)
    assert node in type(out.grad_fn).__name__
    torch.testing.assert_close(out, naive_masked_attention(q, k, v, mask), atol=2e-5, rtol=1e-5)


def test_unsupported_head_dim_falls_back_in_auto_and_is_refused_when_forced(monkeypatch):
    q, k, v, mask, _ = make_problem(1, 1, 4, 8, 24, torch.float32)
    monkeypatch.setenv("STREAMSEG_KERNELS", "auto")
    torch.testing.assert_close(masked_attention(q, k, v, mask), naive_masked_attention(q, k, v, mask))
    monkeypatch.setenv("STREAMSEG_KERNELS", "triton")
    with pytest.raises(ValueError, match="head dim"):
        masked_attention(q, k, v, mask)


def test_bad_env_var_and_bad_inputs_are_refused(monkeypatch):
    q, k, v, mask, _ = make_problem(1, 2, 4, 8, 32, torch.float32)
    monkeypatch.setenv("STREAMSEG_KERNELS", "cuda")
    with pytest.raises(ConfigError, match="STREAMSEG_KERNELS"):
        masked_attention(q, k, v, mask)
    monkeypatch.delenv("STREAMSEG_KERNELS")
    with pytest.raises(ValueError, match="mask must be bool"):
        masked_attention(q, k, v, mask.float())
    with pytest.raises(ValueError, match="mask must be"):
        masked_attention(q, k, v, mask[:, :, :7])
    with pytest.raises(ValueError, match="k and v"):
        masked_attention(q, k, v[:, :, :5], mask)
    with pytest.raises(ValueError, match="at least one key"):
        masked_attention(q, k[:, :, :0], v[:, :, :0], mask[..., :0])
    with pytest.raises(ValueError, match="dtypes differ"):
        masked_attention(q, k.double(), v, mask)


def test_importing_kernels_does_not_define_triton_kernels():
    """The model imports the kernels early; the jitted kernels must wait for TRITON_INTERPRET."""
    code = ("import sys, streamseg.kernels; "
            "print(sorted(m for m in sys.modules if m.startswith(('triton', 'streamseg.kernels.'))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = ast.literal_eval(done.stdout.strip())
    assert "streamseg.kernels.masked_attention" in loaded
    assert not any(m.startswith("triton") or m.startswith("streamseg.kernels.triton") for m in loaded), loaded


def test_another_top_level_kernels_package_does_not_shadow_ours(tmp_path):
    """transformers 5 requires the PyPI package ``kernels``: installed beside it (the MiniLM extra),
    the model's attention must still be ours, from outside the checkout as the console script runs."""
    site = tmp_path / "site"
    (site / "kernels").mkdir(parents=True)
    (site / "kernels" / "__init__.py").write_text("FOREIGN = True\n")
    code = ("import torch, kernels; from streamseg.model.layers import MultiHeadAttention; "
            "torch.manual_seed(0); layer = MultiHeadAttention(16, 2); x, y = torch.randn(1, 3, 16), torch.randn(1, 5, 16); "
            "everywhere = torch.ones(1, 3, 5, dtype=torch.bool); "
            "print(kernels.FOREIGN, float((layer(x, y, y, everywhere) - layer(x, y, y)).abs().max()))")
    env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    foreign, err = done.stdout.split()
    assert foreign == "True" and float(err) < 1e-5


def test_bench_without_cuda_says_so_and_exits_zero(capsys):
    from streamseg.bench.kernels import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the benchmark would run for real")
    assert main(json_output=False) == 0
    assert "needs CUDA" in capsys.readouterr().out
    assert main(json_output=True) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["cuda"] is False and report["results"] == []


@pytest.mark.parametrize("d, dtype, expected", [
    (16, torch.float16, "half-d64"), (32, torch.float16, "half-d64"), (64, torch.bfloat16, "half-d64"),
    (32, torch.float32, "fp32-d64"), (128, torch.float16, "half-d128"), (128, torch.float32, "fp32-d128"),
    (256, torch.bfloat16, "half-d256"), (256, torch.float32, "fp32-d256")])
def test_autotune_grid_is_pruned_by_head_dim_and_dtype(d, dtype, expected):
    from streamseg.kernels.launch import TUNE_GRID, autotune_configs, prune_configs

    kept = prune_configs(autotune_configs(), {"Q": torch.empty(1, dtype=dtype)}, HEAD_DIM=d, PRECISION="ieee")
    assert sorted((c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.num_warps, c.num_stages) for c in kept) == \
        sorted(TUNE_GRID[expected])


def test_block_sizes_are_validated():
    with pytest.raises(ValueError, match="block_n"):
        BlockSizes(block_m=64, block_n=16)
    with pytest.raises(ValueError, match="block_m"):
        BlockSizes(block_m=48, block_n=64)
    with pytest.raises(ValueError, match="splits"):
        BlockSizes(block_m=64, block_n=64, splits=0)


def test_the_checkout_does_not_shadow_another_top_level_kernels_package():
    """Run from the checkout (cwd first on sys.path), ``import kernels`` must not find ours: that is
    what transformers imports for its kernel hub."""
    code = "import importlib.util as u; s = u.find_spec('kernels'); print(s.origin if s and s.origin else '-')"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    origin = done.stdout.strip()
    assert origin == "-" or not Path(origin).resolve().is_relative_to(ROOT), origin
