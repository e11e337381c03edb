"""pipeline_common.timeutil: the times the pipeline writes (approval records, the
production claim, reports) and reads (Step Functions' `$$.Execution.StartTime`).

Lambda runs with TZ=UTC, but `make local` runs the same code on a developer's machine in
any time zone: each test that could depend on it runs in a zone far from UTC."""
from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest

from pipeline_common import timeutil

KOLKATA = timezone(timedelta(hours=5, minutes=30))


@pytest.fixture
def far_from_utc(monkeypatch):
    """The process's local time zone set to UTC+05:30 (no DST), restored afterwards."""
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    assert time.localtime(0).tm_gmtoff == 19800, "tzdata for Asia/Kolkata is missing"
    yield
    monkeypatch.undo()
    time.tzset()


def test_now_is_an_aware_utc_time_that_compares_with_parsed_times(far_from_utc):
    now = timeutil.utc_now()
    assert now.utcoffset() == timedelta(0)
    # e.g. the age of a run: a naive "now" would raise TypeError against an aware start time.
    assert timeutil.parse_iso("2024-05-01T10:00:00.123Z") < now


def test_iso_writes_utc_with_z_whatever_the_local_zone(far_from_utc):
    moment = datetime(2024, 5, 1, 15, 30, 0, tzinfo=KOLKATA)
    assert timeutil.iso(moment) == "2024-05-01T10:00:00Z"


def test_a_naive_timestamp_is_read_as_utc(far_from_utc):
    naive = timeutil.parse_iso("2024-05-01T10:00:00")
    assert naive == timeutil.parse_iso("2024-05-01T10:00:00Z")
    assert naive.utcoffset() == timedelta(0)


@pytest.mark.parametrize("bad", [None, 1714557600, b"2024-05-01T10:00:00Z"])
def test_a_non_string_start_time_is_named_in_the_error(bad):
    # deploy_production parses the run's started_at: a broken one must say what it was.
    with pytest.raises(ValueError, match=re.escape(f"not a timestamp: {bad!r}")):
        timeutil.parse_iso(bad)


def test_epoch_micros_counts_microseconds_since_1970_as_an_integer():
    # The production claim stores str(epoch_micros(start)) as a DynamoDB number and compares
    # runs by it; one microsecond apart must stay one apart, written as a whole number.
    start = timeutil.parse_iso("2024-05-01T10:00:00.123456Z")
    assert str(timeutil.epoch_micros(start)) == "1714557600123456"
    assert timeutil.epoch_micros(timeutil.parse_iso("1970-01-01T00:00:01.000001Z")) == 1_000_001


def test_from_epoch_is_the_same_instant_as_the_iso_text(far_from_utc):
    # The approval page shows a record's expires_at (epoch seconds) as UTC.
    moment = timeutil.from_epoch(1714557600)
    assert moment == timeutil.parse_iso("2024-05-01T10:00:00Z")
    assert moment.utcoffset() == timedelta(0)
    assert timeutil.iso(moment) == "2024-05-01T10:00:00Z"
