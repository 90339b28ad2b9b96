"""MkDocs hook: add the settings reference page, generated from rootserve's config.py.

The page is made at build time and never stored in docs/, so it cannot go stale. The
Markdown comes from `rootserve.config.reference_markdown()`, the same declarations the
command line is built from.
"""

import sys
from pathlib import Path

from mkdocs.structure.files import File

PAGE = "reference/settings.md"


def settings_page(repo_root):
    """The Markdown of the settings page; imports rootserve from `repo_root`/src if needed."""
    try:
        from rootserve.config import reference_markdown
    except ImportError:  # rootserve not installed: use the source tree next to mkdocs.yml
        sys.path.insert(0, str(Path(repo_root) / "src"))
        from rootserve.config import reference_markdown
    return reference_markdown()


def on_files(files, config):
    if files.get_file_from_path(PAGE) is not None:
        raise RuntimeError(f"docs/{PAGE} is generated; delete the stored copy")
    repo_root = Path(config.config_file_path).parent
    files.append(File.generated(config, PAGE, content=settings_page(repo_root)))
    return files
