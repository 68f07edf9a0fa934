"""The live status line (on a real pseudo-terminal) and the "trained on other classes" note."""
import os
import pty
import subprocess

from engine_helpers import ROOT, run_cli, streamseg_cmd, subprocess_env

from streamseg.engine.status import StreamStatus, terminal_line, top_labels


def test_terminal_line_shows_instances_top_labels_progress_and_eta():
    s = StreamStatus(stream="0", source="f.mp4", state="connected", epoch=0, fps_in=20, fps_out=10.0,
                     frames_in=60, frames_out=50, dropped=0, send_dropped=0, instances=4,
                     top_labels=top_labels(["car", "person", "car", "dog"], n=2), total_frames=650)
    line = terminal_line([s])
    assert "4 inst: car 2, person 1" in line and "dog" not in line
    assert line.endswith("50/650 ETA 1:00")  # 600 frames left at 10 fps


def test_status_line_on_a_tty_counts_instances_and_frames():
    uri = "synthetic://?seed=3&fps=30&width=160&height=96&instances=3&frames=45"
    master, slave = pty.openpty()
    proc = subprocess.Popen(streamseg_cmd("run", "--source", uri, "--segmenter", "ground-truth", "--publish",
                                          "inproc://tty", "--set", "engine.status_hz=10"),
                            cwd=ROOT, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=30) == 0
    lines = [x for x in b"".join(chunks).decode(errors="replace").replace("\r", "\n").splitlines() if "[0]" in x]
    assert lines, b"".join(chunks)
    assert any(" inst: " in x for x in lines)  # the scene has visible shapes, named by label
    assert any("/45 ETA" in x for x in lines)
    assert any(name in lines[-1] for name in ("disk", "square", "triangle", "ring", "cross"))


def test_a_vocabulary_unknown_to_the_checkpoint_gets_one_note():
    proc = run_cli("run", "--source", "synthetic://?fps=0&width=96&height=64&frames=1", "--names", "person,car",
                   "--publish", "inproc://note", "--quiet", timeout=120)
    assert proc.returncode == 0, proc.stderr
    notes = [x for x in proc.stderr.splitlines() if "trained on other classes" in x]
    assert len(notes) == 1 and "disk, square" in notes[0] and "person" in notes[0]
    same = run_cli("run", "--source", "synthetic://?fps=0&width=96&height=64&frames=1", "--names", "disk,car",
                   "--publish", "inproc://note", "--quiet", timeout=120)
    assert same.returncode == 0 and "trained on other classes" not in same.stderr


def test_a_file_source_knows_its_length_unless_it_loops(tmp_path):
    import dataclasses

    from engine_helpers import write_square_mp4

    from streamseg.config import Config
    from streamseg.sources import open_source

    path = tmp_path / "sq.mp4"
    write_square_mp4(path, 12)
    opts = Config().source
    assert open_source(str(path), opts).total_frames == 12
    assert open_source(str(path), dataclasses.replace(opts, loop=True)).total_frames is None
