"""What a refused or interrupted training must leave under models/."""

from pathlib import Path


def no_model_files(project: Path) -> bool:
    """No file under models/: its folders may exist (models/TASK is where the temporary sibling was)."""
    return not any(f.is_file() for f in (project / "models").rglob("*"))
