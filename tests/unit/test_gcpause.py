"""paused_gc / gc_paused: pauses nest and overlap, the collector comes back only after the last
one ends, and never comes back if it was off before the first."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from finsync.gcpause import gc_paused, paused_gc

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def gc_enabled() -> Iterator[None]:
    """Every test starts with the collector on; whatever happens, the suite gets it back as it was."""
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


def test_a_pause_disables_then_restores() -> None:
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_nested_pauses_restore_only_after_the_outermost() -> None:
    with paused_gc():
        with paused_gc():
            with paused_gc():
                assert not gc.isenabled()
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()


def test_overlapping_pauses_restore_after_the_last_to_end() -> None:
    first, second = ExitStack(), ExitStack()
    try:
        first.enter_context(paused_gc())
        second.enter_context(paused_gc())  # starts while the collector is already off
        first.close()  # the first one ends first: not the LIFO order of nesting
        assert not gc.isenabled()
        second.close()
        assert gc.isenabled()
    finally:
        first.close()
        second.close()


def test_overlapping_pauses_in_two_threads() -> None:
    entered, release, done = threading.Event(), threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with paused_gc():
            entered.set()
            release.wait(5)
        seen.append(gc.isenabled())
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert entered.wait(5)
        with paused_gc():
            release.set()
            assert done.wait(5)
            assert seen == [False]  # the other thread ended its pause while this one runs
            assert not gc.isenabled()
        assert gc.isenabled()
    finally:
        release.set()
        thread.join(5)


def test_a_collector_off_before_the_first_pause_stays_off() -> None:
    gc.disable()
    with paused_gc():
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert not gc.isenabled()

    first, second = ExitStack(), ExitStack()
    try:
        first.enter_context(paused_gc())
        second.enter_context(paused_gc())
        first.close()
        second.close()
        assert not gc.isenabled()
    finally:
        first.close()
        second.close()


def test_each_new_series_of_pauses_looks_at_the_collector_again() -> None:
    gc.disable()
    with paused_gc():
        pass
    assert not gc.isenabled()
    gc.enable()  # the previous series must not be remembered
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_an_exception_still_restores() -> None:
    with pytest.raises(ValueError, match="boom"), paused_gc():
        raise ValueError("boom")
    assert gc.isenabled()

    with paused_gc():
        with pytest.raises(KeyError), paused_gc():
            raise KeyError("inner")
        assert not gc.isenabled()  # the outer pause is still running
    assert gc.isenabled()


def test_decorator_pauses_during_the_call_and_returns_its_value() -> None:
    calls: list[bool] = []

    @gc_paused
    def add(a: int, b: int = 0, *, scale: int = 1) -> int:
        """Adds."""
        calls.append(gc.isenabled())
        return (a + b) * scale

    assert gc.isenabled()  # decorating pauses nothing
    assert add(2, b=3, scale=10) == 50
    assert calls == [False]
    assert gc.isenabled()
    assert (add.__name__, add.__doc__) == ("add", "Adds.")

    with paused_gc():
        assert add(1) == 1
        assert not gc.isenabled()  # the inner call ended, the outer pause did not
    assert gc.isenabled()


def test_decorator_restores_after_an_exception() -> None:
    @gc_paused
    def fail() -> None:
        raise RuntimeError("no")

    with pytest.raises(RuntimeError, match="no"):
        fail()
    assert gc.isenabled()

    gc.disable()
    with pytest.raises(RuntimeError, match="no"):
        fail()
    assert not gc.isenabled()
