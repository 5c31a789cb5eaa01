"""The command line's output is ours: TensorFlow's import banner stays off the terminal, other messages do not."""

from __future__ import annotations

import os
import subprocess
import sys

from cifarmix.quiet import unexpected_lines

from conftest import ROOT


def test_the_command_line_prints_no_tensorflow_banner_on_stderr(tiny_data):
    result = subprocess.run([sys.executable, "-m", "cifarmix", "data", "check"], cwd=ROOT, capture_output=True,
                            text=True, env=os.environ | {"CIFARMIX_DATA": str(tiny_data)}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "validation" in result.stdout
    assert result.stderr == ""


def test_only_the_banner_is_filtered_and_any_other_line_is_kept():
    captured = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                "I0000 00:00:1796167587.753515    5131 port.cc:153] oneDNN custom operations are on. You may see\n"
                "E0000 something really went wrong\n")
    assert unexpected_lines(captured) == "E0000 something really went wrong\n"
