"""``livecommerce loadtest <scenario> …``: run a load-test scenario of the checkout's
``loadtests/`` directory.

The scenarios drive locust, whose user classes live in ``loadtests/locustfile.py`` beside the
package, so they run from a checkout (an editable install included), not from a bare wheel.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

SCENARIOS = {"spike": "loadtests.spike"}


def checkout_root() -> Path | None:
    """The directory holding both ``livecommerce/`` and ``loadtests/``, if there is one."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "loadtests" / "locustfile.py").is_file() else None


def run_loadtest(scenario: str, args: list[str]) -> int:
    """Run ``scenario`` with its own command-line ``args``; its exit code (0 = every check
    passed)."""
    module_name = SCENARIOS.get(scenario)
    if module_name is None:
        print(f"livecommerce loadtest: unknown scenario {scenario!r}", file=sys.stderr)
        return 2
    root = checkout_root()
    if root is None:
        print(
            "livecommerce loadtest: loadtests/ was not found beside the livecommerce package; "
            "run it from a checkout (pip install -e '.[load]')",
            file=sys.stderr,
        )
        return 2
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"livecommerce loadtest: {exc} (pip install 'livecommerce[load]')", file=sys.stderr)
        return 2
    code: int = module.main(args)
    return code
