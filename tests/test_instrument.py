"""``agentprof.instrument()``: SDKs already imported are patched at once, the others when imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys
    import agentprof

    agentprof.configure(db=sys.argv[1])
    listed = agentprof.instrument()
    frameworks = ("langgraph", "pydantic_ai", "agents", "google.genai", "anthropic", "openai")
    print("imported by instrument:", [name for name in frameworks if name in sys.modules])
    print("listed:", sorted(listed))

    import openai  # the program's own import: patched now
    from agentprof.integrations import openai as integration
    print("patched on import:", integration.is_instrumented())
    agentprof.uninstrument()
    print("patched after uninstrument:", integration.is_instrumented())
    import anthropic  # imported after uninstrument: left alone
    from agentprof.integrations import anthropic as anthropic_integration
    print("anthropic patched:", anthropic_integration.is_instrumented())
    agentprof.instrument()  # both are imported now: patched at once
    print("patched again:", integration.is_instrumented(), anthropic_integration.is_instrumented())
    agentprof.shutdown()
    """
)


def test_instrument_imports_nothing_and_patches_each_sdk_when_the_program_imports_it(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "imported by instrument: []"
    assert lines[1] == "listed: ['agents', 'anthropic', 'google.genai', 'langgraph', 'openai', 'pydantic_ai']"
    assert lines[2:] == [
        "patched on import: True",
        "patched after uninstrument: False",
        "anthropic patched: False",
        "patched again: True True",
    ]
