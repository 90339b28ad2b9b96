"""The wheel's build hook (hatchling; pyproject.toml names this file). With ROOTSERVE_MYPYC=1
in the environment, the wheel carries the hot modules compiled by mypyc (mypyc_build.py)
beside their source, and is tagged for this Python and platform. Without it, the default,
the wheel is pure Python: the fallback for a platform that has no compiled wheel, and what
an install from the sdist builds unless asked, since compiling needs a C compiler and
Python's headers. An editable install is never compiled.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mypyc_build

ENABLE = "ROOTSERVE_MYPYC"


def _asked() -> bool:
    return os.environ.get(ENABLE, "") not in ("", "0")


class MypycBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        return list(mypyc_build.REQUIRES) if _asked() else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable" or not _asked():
            return
        self._tree = Path(tempfile.mkdtemp(prefix="rootserve-mypyc-"))
        out = mypyc_build.build(self._tree / "tree")
        for path in mypyc_build.extensions(out):
            build_data["force_include"][str(out / path)] = path.as_posix()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True  # cp311-cp311-<platform>: the extensions' own

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        tree = getattr(self, "_tree", None)
        if tree is not None:
            shutil.rmtree(tree, ignore_errors=True)
