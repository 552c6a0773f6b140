"""Heavy libraries load only where they are used: the package, the CLI and the app's first page stay light."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "bertopic", "umap", "hdbscan", "sentence_transformers", "transformers")


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_package_cli_and_pipelines_do_not_import_heavy_libraries() -> None:
    loaded = modules_after(
        "import vkpp_learning, vkpp_learning.cli, vkpp_learning.extract, vkpp_learning.segment, "
        "vkpp_learning.metadata, vkpp_learning.db, pipelines.ingest"
    )
    assert not [m for m in HEAVY if m in loaded]


def test_cli_help_stays_light() -> None:
    loaded = modules_after(
        "from click.testing import CliRunner\nfrom vkpp_learning.cli import main\nCliRunner().invoke(main, ['--help'])"
    )
    assert not [m for m in HEAVY if m in loaded]
