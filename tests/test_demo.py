"""`alertd demo`: one command, no set-up, alerts on the terminal, a clean exit."""

import os
import signal
import subprocess
import sys
import time

import pytest

DEMO = [sys.executable, "-m", "alertd", "demo"]


@pytest.mark.slow
def test_demo_prints_an_alert_of_each_demo_rule_and_ends_by_itself() -> None:
    """Within its duration the demo shows fills, the balance threshold, refused orders, and a
    stream dropping, coming back and the blind window; then it exits 0 on its own."""
    result = subprocess.run(
        [*DEMO, "--duration", "14"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "filled --------" in out
    assert "USDT balance low" in out
    assert "insufficient" in out
    assert "[piexgo-main] stream down" in out
    assert "[piexgo-main] stream back" in out
    assert "events may have been missed" in out
    assert "alertd demo: stopped after" in out
    assert "Traceback" not in result.stderr


def test_demo_stops_cleanly_on_ctrl_c() -> None:
    """Ctrl-C (SIGINT) stops the demo with exit code 0 and its closing line."""
    proc = subprocess.Popen(
        DEMO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("alertd demo: simulator on ws://127.0.0.1:")
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "alertd demo: stopped after" in out
    assert "Traceback" not in err


def test_demo_rejects_a_negative_duration() -> None:
    """A duration that is not positive is a usage error naming the flag."""
    result = subprocess.run(
        [*DEMO, "--duration", "-1"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "--duration" in result.stderr
