"""The suite's own scheduling: the heaviest files are handed to xdist's workers first."""

from __future__ import annotations

from pathlib import Path

from conftest import HEAVY_FIRST

ROOT = Path(__file__).resolve().parent.parent


class TestHeavyFirst:
    def test_every_file_it_names_exists(self):
        """A renamed or removed file would silently fall back to the end of the run."""
        assert [name for name in HEAVY_FIRST if not (ROOT / name).is_file()] == []

    def test_the_collection_starts_with_them_in_their_order(self, request):
        """The session's items begin with the named files it holds, heaviest first, each file's
        items together (in a run of a few files, only those of them it holds)."""
        files: list[str] = []
        for item in request.session.items:
            name = item.path.relative_to(request.config.rootpath).as_posix()
            if not files or files[-1] != name:
                files.append(name)
        held = [name for name in HEAVY_FIRST if name in files]
        assert held == files[: len(held)]
        assert len(set(held)) == len([name for name in files if name in HEAVY_FIRST])
