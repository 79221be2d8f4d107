"""A background loop during a database outage: quiet, patient, and loud only
about real bugs."""

from __future__ import annotations

import logging

import asyncpg
import pytest

from kaiku_shared.db import OutageWatch


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "kaiku.db" and r.levelno == level]


def test_an_outage_is_one_warning_then_one_line_when_it_is_back(caplog):
    caplog.set_level(logging.INFO, logger="kaiku.db")
    watch = OutageWatch("inbox projection", floor=0.5, ceiling=5.0)
    waits = [watch.failed(ConnectionRefusedError("refused")) for _ in range(8)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]  # capped exponential
    assert len(records(caplog, logging.WARNING)) == 1
    assert not records(caplog, logging.ERROR)
    watch.succeeded()
    (back,) = records(caplog, logging.INFO)
    assert "inbox projection resumed after 8 failed rounds" in back.getMessage()
    # Once back, the next outage starts from the floor again and warns again.
    assert watch.failed(asyncpg.exceptions.CannotConnectNowError("starting up")) == 0.5
    assert len(records(caplog, logging.WARNING)) == 2


def test_a_bug_is_logged_in_full_every_time(caplog):
    caplog.set_level(logging.INFO, logger="kaiku.db")
    watch = OutageWatch("hand-over")
    for _ in range(3):
        watch.failed(KeyError("params"))
    errors = records(caplog, logging.ERROR)
    assert len(errors) == 3 and all(r.exc_info for r in errors)
    assert not records(caplog, logging.WARNING)


def test_success_without_failure_says_nothing(caplog):
    caplog.set_level(logging.INFO, logger="kaiku.db")
    OutageWatch("hand-over").succeeded()
    assert not records(caplog, logging.INFO)
