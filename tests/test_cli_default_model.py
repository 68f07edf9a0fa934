"""No --config: the shipped CPU model; no checkpoint at all: only with --untrained, and said so."""
import json

from engine_helpers import run_cli

URI = "synthetic://?seed=1&fps=0&width=96&height=64&instances=2&frames=2"


def test_run_without_config_uses_the_shipped_model(tmp_path):
    log = tmp_path / "i.jsonl"
    proc = run_cli("run", "--source", URI, "--publish", "inproc://d", "--quiet", "--save-rle", str(log), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no untrained warning, nothing else
    labels = {json.loads(line)["label"] for line in log.read_text().splitlines()}
    assert labels <= {"disk", "square", "triangle", "ring", "cross"}  # the shipped checkpoint's classes


def test_untrained_model_needs_the_flag_and_warns():
    refused = run_cli("run", "--config", "tiny-test", "--source", URI, "--publish", "inproc://u", "--quiet")
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "no checkpoint" in lines[0] and "--untrained" in lines[0]
    allowed = run_cli("run", "--config", "tiny-test", "--untrained", "--source", URI, "--publish", "inproc://u",
                      "--quiet", "--set", "vocabulary.names=a,b", timeout=120)
    assert allowed.returncode == 0, allowed.stderr
    ours = [line for line in allowed.stderr.splitlines() if line.startswith("streamseg")]  # (the encoder's
    assert len(ours) == 1 and ours[0].startswith("streamseg: warning: running an untrained model")  # bar)


def test_eval_and_bench_refuse_an_untrained_model_without_the_flag(tmp_path):
    for cmd in (["eval", "--config", "tiny-test", "--data", str(tmp_path)],
                ["bench", "model", "--config", "tiny-test", "--frames", "1", "--sizes", "96x64"]):
        proc = run_cli(*cmd)
        assert proc.returncode == 2 and "--untrained" in proc.stderr, (cmd, proc.stderr)


def test_bench_model_defaults_to_the_shipped_model():
    proc = run_cli("bench", "model", "--frames", "1", "--sizes", "96x64", "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["config"] == "cpu-mobilenet" and report["vocabulary"]["names"] == 5
