"""Test-wide setup.

TRITON_INTERPRET must be set before any @triton.jit function is defined: there is no GPU here, so
the Triton kernels run in Triton's interpreter on the CPU.
"""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")
# Tests often run a CLI subprocess beside the test process on 2 cores: one intra-op thread each
# avoids oversubscription, which made torch 10x slower here. Set before torch is imported, and
# inherited by subprocesses.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


@pytest.fixture
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
