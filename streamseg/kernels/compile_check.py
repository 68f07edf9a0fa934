"""Compile every kernel for sm_80 and sm_90 without a GPU: ``python -m kernels.compile_check [cc ...]``.

The interpreter checks the arithmetic but not what only the compiler sees (layouts, shared memory,
register pressure, compile time). ``triton.compile`` with a ``GPUTarget`` runs Triton -> PTX -> ptxas
on the CPU, so each autotune config in ``launch.TUNE_GRID`` is built for each dtype it serves and its
shared memory is compared with the architecture's per-block limit. Takes minutes; prints, never fails.
"""
from __future__ import annotations

import os
import sys
import time

SMEM_LIMIT = {80: 163 * 1024, 90: 227 * 1024}
HEAD_DIMS = {"d64": 32, "d128": 128, "d256": 256}


def _signature(fn, pointers: dict, constexprs: dict) -> dict:
    floats = ("qk_scale", "scale")
    return {n: "constexpr" if n in constexprs else pointers.get(n, "fp32" if n in floats else "i32")
            for n in fn.arg_names}


def build(fn, pointers: dict, constexprs: dict, cc: int, warps: int = 4, stages: int = 2) -> str:
    """'<KB> KB' of shared memory, or the error's last line."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    src = ASTSource(fn, _signature(fn, pointers, constexprs),
                    constexprs={(fn.arg_names.index(k),): v for k, v in constexprs.items()})
    try:
        kernel = triton.compile(src, target=GPUTarget("cuda", cc, 32),
                                options={"num_warps": warps, "num_stages": stages})
    except Exception as exc:  # report and go on: this is a survey
        return "FAILED " + str(exc).strip().splitlines()[-1][:100]
    shared = kernel.metadata.shared
    return f"{shared // 1024}KB" + (" OVER LIMIT" if shared > SMEM_LIMIT[cc] else "")


def main(argv: list[str]) -> int:
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("unset TRITON_INTERPRET: the interpreter does not compile")
        return 0
    from streamseg.kernels.launch import TUNE_GRID
    from streamseg.kernels.mask_packing import _pack_kernel
    from streamseg.kernels.triton_backward import _delta_kernel, _dkdv_kernel, _dq_kernel
    from streamseg.kernels.triton_forward import _fwd_kernel, _merge_kernel

    for cc in [int(a) for a in argv] or [80, 90]:
        pack = build(_pack_kernel, {"Mask": "*u8", "Bits": "*i32"}, {"BLOCK_R": 32, "BLOCK_W": 8}, cc)
        merge = build(_merge_kernel, {"OP": "*fp32", "LseP": "*fp32", "O": "*fp16", "Lse": "*fp32"},
                      {"HEAD_DIM": 32, "BLOCK_M": 32}, cc)
        delta = build(_delta_kernel, {"O": "*fp16", "DO": "*fp16", "Delta": "*fp32"}, {"HEAD_DIM": 32, "BLOCK_M": 64}, cc)
        print(f"sm_{cc} pack {pack}, merge {merge}, delta {delta}", flush=True)
        for name, configs in TUNE_GRID.items():
            kind, size = name.split("-")
            dtypes = ["fp32"] if kind == "fp32" else ["fp16", "bf16"]
            d = HEAD_DIMS[size]
            for dt in dtypes:
                for bm, bn, warps, stages in configs:
                    meta = {"HEAD_DIM": d, "PRECISION": "tf32x3" if dt == "fp32" else "tf32",
                            "BLOCK_M": bm, "BLOCK_N": bn}
                    base = {"Q": f"*{dt}", "K": f"*{dt}", "V": f"*{dt}", "Bits": "*i32", "Empty": "*i8",
                            "Lse": "*fp32", "Delta": "*fp32", "DO": f"*{dt}"}
                    start = time.time()
                    fwd = build(_fwd_kernel, {**base, "O": f"*{dt}"}, meta, cc, warps, stages)
                    dkdv = build(_dkdv_kernel, {**base, "DK": f"*{dt}", "DV": f"*{dt}"}, meta, cc, warps, stages)
                    dq = build(_dq_kernel, {**base, "DQ": "*fp32"}, meta, cc, warps, stages)
                    print(f"sm_{cc} {dt} d={d} BLOCK {bm}x{bn} warps {warps} stages {stages}: fwd {fwd}, "
                          f"dkdv {dkdv}, dq {dq} ({time.time() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
