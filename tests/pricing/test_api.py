"""The public surface of agentprof.pricing, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import agentprof.pricing


def test_all_is_the_sorted_public_names() -> None:
    public = sorted(name for name in vars(agentprof.pricing) if not name.startswith("_"))
    assert agentprof.pricing.__all__ == sorted(agentprof.pricing.__all__)
    assert sorted(agentprof.pricing.__all__) == [name for name in public if name != "annotations"]


def test_import_does_not_load_genai_prices() -> None:
    code = "import sys, agentprof.pricing; print('genai_prices' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
