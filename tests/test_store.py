"""Atomic writes: an interrupted write leaves the previous file intact and no debris."""

from __future__ import annotations

import pandas as pd
import pytest

from perspectives.store import atomic_path, write_parquet


def test_interrupted_write_keeps_previous_file(tmp_path):
    target = tmp_path / "table.parquet"
    write_parquet(target, pd.DataFrame({"a": [1, 2, 3]}))
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"PAR1 half a file")
            raise KeyboardInterrupt
    assert pd.read_parquet(target)["a"].tolist() == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["table.parquet"]


def test_file_lock_excludes_a_second_holder_and_is_released(tmp_path):
    from perspectives.store import file_lock

    lock = tmp_path / "deep" / ".lock"
    with file_lock(lock):
        with pytest.raises(BlockingIOError), file_lock(lock, wait=False):
            pass
    with file_lock(lock, wait=False):  # free again once the first holder left
        pass
