"""keep_freed_memory: glibc's thresholds raised on this (glibc) machine, a user's own settings left alone."""

from __future__ import annotations

import platform

import pytest

from harness.core.allocator import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only (elsewhere it does nothing)")
def test_thresholds_are_set_on_glibc_and_a_users_choice_stands(monkeypatch):
    assert keep_freed_memory() is True
    for var in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
        monkeypatch.setenv(var, "1")
        assert keep_freed_memory() is False
        monkeypatch.delenv(var)


def test_nothing_happens_off_glibc(monkeypatch):
    monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
    assert keep_freed_memory() is False
