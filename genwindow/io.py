"""Atomic writes of results: a file is either absent or complete, never half written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic_target(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    # mkstemp creates the file as 0600; results get the usual permissions of new files.
    os.chmod(tmp, 0o666 & ~_current_umask())
    return Path(tmp)


def prepare_out_dir(path: str | Path, option: str = "--out") -> Path:
    """Create the output folder and check that it is writable, before any work is done."""
    from genwindow.errors import ConfigError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option}: {path} exists and is not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, prefix=".write-check.", delete=True)
        probe.close()
    except OSError as error:
        raise ConfigError(f"{option}: cannot write into {path} ({error.strerror}); "
                          f"choose a writable folder") from error
    return path


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, float) and np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON; numpy values become plain numbers, NaN becomes null."""
    path = Path(path)
    tmp = _atomic_target(path)
    tmp.write_text(json.dumps(_to_jsonable(obj), indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def write_csv(path: str | Path, frame) -> Path:
    """Write a pandas DataFrame as CSV without its index."""
    path = Path(path)
    tmp = _atomic_target(path)
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def save_figure(fig, path: str | Path, dpi: int = 150) -> Path:
    """Save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = _atomic_target(path)
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one JSON record as a line and flush it to disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(_to_jsonable(record)) + "\n")
        f.flush()
        os.fsync(f.fileno())


def format_table(frame, floatfmt: str = ".4g") -> str:
    """Return a fixed-width text table of a DataFrame for the terminal."""
    columns = list(frame.columns)
    rows = [[_format_cell(v, floatfmt) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(str(c)), *(len(r[i]) for r in rows)) if rows else len(str(c))
              for i, c in enumerate(columns)]
    lines = ["  ".join(str(c).rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(cell.rjust(w) for cell, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


def _format_cell(value, floatfmt: str) -> str:
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value)
