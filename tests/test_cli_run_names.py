"""`run --names a,b`: the vocabulary from the command line, embedded with the checkpoint's encoder."""
import time

from engine_helpers import run_cli, start_cli

from streamseg.transport import Subscriber

URI = "synthetic://?seed=2&fps=0&width=160&height=96&instances=3&frames=400"


def test_names_become_the_published_vocabulary_of_the_shipped_model(free_port):
    address = f"tcp://127.0.0.1:{free_port}"
    with Subscriber(address) as sub:
        proc = start_cli("run", "--config", "cpu-mobilenet", "--source", URI, "--names", "square, disk",
                         "--publish", address, "--quiet", "--max-frames", "400")
        seg = None
        deadline = time.monotonic() + 60
        try:
            while seg is None and time.monotonic() < deadline:
                msg = sub.recv(timeout_ms=200)
                if msg is not None and msg.kind == "seg":
                    seg = msg
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
    assert seg is not None, err
    assert seg.vocab_names == ["square", "disk"]
    assert all(i.label in ("square", "disk") for i in seg.instances)


def test_names_and_vocab_together_is_a_one_line_error():
    proc = run_cli("run", "--source", URI, "--segmenter", "ground-truth", "--names", "a", "--vocab", "v.pt",
                   "--publish", "inproc://n")
    assert proc.returncode == 2 and "--names or --vocab" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_empty_names_is_a_one_line_error():
    proc = run_cli("run", "--source", URI, "--segmenter", "ground-truth", "--names", " , ", "--publish", "inproc://n")
    assert proc.returncode == 2 and "--names needs" in proc.stderr
