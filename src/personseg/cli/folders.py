"""Output folders a command creates, and undoing them when a run wrote nothing into them."""

from __future__ import annotations

from pathlib import Path


def folders_to_create(path: str | Path) -> list[Path]:
    """The folders that creating ``path`` will make, deepest first (none when it exists)."""
    missing = []
    for folder in (Path(path), *Path(path).parents):
        if folder.exists():
            break
        missing.append(folder)
    return missing


def remove_if_empty(created: list[Path]) -> bool:
    """Remove the folders a run created (from :func:`folders_to_create`) where nothing but empty folders ended up
    in them; True when the deepest one is gone. A folder holding any file (a partial download) stays."""
    for folder in created:
        if not folder.is_dir():
            continue
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            if not any(sub.iterdir()):
                sub.rmdir()
        if any(folder.iterdir()):
            break
        folder.rmdir()
    return bool(created) and not created[0].exists()
