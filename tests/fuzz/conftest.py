"""The fuzz campaigns draw their PDUs from the schema-derived strategies of tests/smpp."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "smpp"))
