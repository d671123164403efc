"""Autotune files that are not what they claim: ignored with a warning, never a crash or a hang."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import convkit


def _document(choices):
    convkit.set_autotune(True)
    convkit.convolve_nd(np.ones(10), np.ones(3))
    from convkit import _auto

    return {
        "format": _auto.FILE_FORMAT,
        "version": _auto.FILE_VERSION,
        "machine": _auto._machine(),
        "choices": choices,
    }


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="nested-too-deep"),
        pytest.param(None, id="signature-nested-too-deep"),
        pytest.param(
            {"signature": [1], "runnable": [["scipy", "1"]], "chosen": ["scipy"]},
            id="chosen-not-a-name",
        ),
    ],
)
def test_a_malformed_file_is_ignored_with_a_warning(tmp_path, text):
    path = tmp_path / "tuned.json"
    if text is None:
        head = json.dumps(_document([]))[: -len("[]}")]
        deep = "[" * 5000 + "]" * 5000
        text = (
            head + f'[{{"signature": {deep}, "runnable": [["scipy", "1"]], "chosen": "scipy"}}]}}'
        )
    elif isinstance(text, dict):
        text = json.dumps(_document([text]))
    path.write_text(text)
    with pytest.warns(RuntimeWarning, match="ignoring the autotune file"):
        assert convkit.load_autotune(path) == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_in_the_cache_directory_does_not_block_a_call(tmp_path):
    # Reading a FIFO waits for a writer for ever: run in a child, under a timeout.
    script = textwrap.dedent(
        """
        import os, sys, warnings
        import numpy as np
        import convkit
        from convkit import _auto

        os.mkfifo(_auto._directory_file(sys.argv[1]))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            convkit.convolve_nd(np.ones(10), np.ones(3))
        print(any("not a regular file" in str(w.message) for w in caught))
        """
    )
    environment = {**os.environ, "CONVKIT_AUTOTUNE_CACHE": str(tmp_path), "CONVKIT_AUTOTUNE": "1"}
    environment.pop("CONVKIT_BACKEND", None)
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
