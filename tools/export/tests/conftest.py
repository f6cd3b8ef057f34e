import os
import sys
from pathlib import Path

import pytest

EXPORT_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = EXPORT_DIR.parents[1]
sys.path.insert(0, str(EXPORT_DIR))


@pytest.fixture(scope="session", autouse=True)
def _quiet_and_small():
    """Deterministic, quiet, and light on the 2 cores CI has."""
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(2)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


@pytest.fixture
def make_checkpoint(tmp_path):
    """make_checkpoint(name, seed=..., tokens=..., **tiny_config kwargs) -> checkpoint dir."""
    from duet_export.tiny import default_tokens, tiny_config, write_tiny

    def make(name="hf", seed=0, tokens=None, **kw):
        config = tiny_config(**kw)
        return write_tiny(tmp_path / name, config, seed, tokens or default_tokens(config.vocab_size))

    return make


def run_cli(*args, timeout=180):
    """Runs the real `tools/export/duet-export` wrapper in a subprocess."""
    import subprocess

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("DUET_PYTHON", sys.executable)
    return subprocess.run(
        [str(EXPORT_DIR / "duet-export"), *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
