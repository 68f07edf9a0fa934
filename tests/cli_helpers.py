"""Assertions shared by the CLI error tests."""


def one_line_error(result, *needles: str) -> str:
    """A CLI failure as the project promises it: exit 2, exactly one stderr line, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("streamseg: error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
