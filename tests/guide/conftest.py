"""The guide's tests import the examples by module name, as the examples import each other."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "docs" / "guide" / "examples"

# guide_support (next to this file), then the examples and the answers to the exercises.
for folder in (HERE, EXAMPLES, EXAMPLES / "answers"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
