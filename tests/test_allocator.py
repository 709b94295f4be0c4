"""wdist.allocator: glibc's trim/mmap thresholds raised once by the CLI, and an off switch."""

from __future__ import annotations

import sys

import pytest

from wdist.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_applied_on_linux_glibc() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert keep_freed_memory() is True


def test_off_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WDIST_DEFAULT_MALLOC", "1")
    assert keep_freed_memory() is False


@pytest.mark.parametrize("kwargs", [{"mmap_threshold_mb": 0}, {"trim_threshold_mb": 4096}, {"mmap_threshold_mb": -1}])
def test_thresholds_out_of_range_are_refused_with_the_value(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=str(next(iter(kwargs.values())))):
        keep_freed_memory(**kwargs)
