"""TensorFlow's start-up banner kept off the terminal; everything else it prints still gets through.

TensorFlow 2.20+ logs through Abseil before Abseil's logging is initialised, so ``TF_CPP_MIN_LOG_LEVEL`` no
longer silences the lines it prints on import ("All log messages before absl::InitializeLog()...", "oneDNN
custom operations are on...", the CPU-feature notice): a known Abseil/TensorFlow issue with no setting to turn it
off. ``quiet_import_banner`` redirects the process's stderr (file descriptor 2, where C++ writes) while
TensorFlow is imported, then writes back every captured line that is not part of that banner.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

BANNER = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|cpu_feature_guard|"
    r"To enable the following instructions|rebuild TensorFlow with the appropriate compiler flags|"
    r"TF_ENABLE_ONEDNN_OPTS"
)


def unexpected_lines(captured: str) -> str:
    """The captured text without the start-up banner's lines."""
    return "".join(line for line in captured.splitlines(keepends=True) if not BANNER.search(line))


@contextlib.contextmanager
def quiet_import_banner():
    """Run the block with fd 2 captured; afterwards print whatever it wrote that is not the banner."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all (a detached process): nothing to keep quiet
        yield
        return
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            rest = unexpected_lines(capture.read().decode("utf-8", "replace"))
            if rest:
                sys.stderr.write(rest)
                sys.stderr.flush()
