import os
import sys
from pathlib import Path

import pytest

RECIPE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = RECIPE_DIR.parents[1]
for p in (RECIPE_DIR, REPO_ROOT / "tools" / "export"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory):
    """A dozen short utterances and a K=16 tokenizer, made once for the module (needs espeak-ng and sox)."""
    import shutil

    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        # CI installs both (scripts/setup.sh): there a missing tool is a failure, not a skip.
        if os.environ.get("CI"):
            pytest.fail("espeak-ng and sox are missing although scripts/setup.sh installs them")
        pytest.skip("espeak-ng and sox are needed (scripts/setup.sh installs them)")
    import torch

    torch.set_num_threads(2)
    from duet_recipe.speech import make_corpus
    from duet_recipe.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("recipe")
    corpus, out = root / "speech", root / "units"
    summary = make_corpus(corpus, 12, seed=3, jobs=2, progress=False)
    manifest = train_tokenizer(corpus, out, units=16, seed=0, kmeans_steps=30, kmeans_batch=1024, progress=False)
    return {"corpus": corpus, "out": out, "summary": summary, "manifest": manifest}
