"""pipeline_common.config: the functions' settings come from template.yaml parameters
through environment variables. A wrong setting must fail the function at once with a
ConfigurationError that names the variable (the error Step Functions shows), never be
silently replaced (a NaN accuracy threshold would fail every model; a "false" read as
true would turn on Spot training)."""
from __future__ import annotations

import pytest

from pipeline_common.config import env_bool, env_float, env_int, env_list, env_str
from pipeline_common.errors import ConfigurationError

VAR = "PIPELINE_TEST_SETTING"


@pytest.fixture
def setting(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)

    def set_to(value: str) -> None:
        monkeypatch.setenv(VAR, value)

    return set_to


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_a_blank_value_counts_as_unset(setting, blank):
    setting(blank)
    assert env_str(VAR, "default") == "default"
    with pytest.raises(ConfigurationError, match=f"environment variable {VAR} is not set"):
        env_str(VAR)


def test_a_missing_required_number_says_it_is_not_set(setting):
    for read in (env_int, env_float):
        with pytest.raises(ConfigurationError, match=f"environment variable {VAR} is not set"):
            read(VAR)


def test_a_non_integer_is_named_with_its_value(setting):
    setting("ten")
    with pytest.raises(ConfigurationError, match=f"{VAR} must be an integer, got 'ten'"):
        env_int(VAR, 5)


@pytest.mark.parametrize("value, minimum, maximum", [
    ("0", 1, None),      # below a minimum with no maximum (QA_MAX_ROWS=0)
    ("3601", 0, 3600),   # above a maximum (BAKE_SECONDS)
    ("-1", 0, 3600),
])
def test_an_integer_out_of_range_is_refused_with_the_range(setting, value, minimum, maximum):
    setting(value)
    with pytest.raises(ConfigurationError, match=rf"{VAR}={value} is outside \[{minimum}, {maximum}\]"):
        env_int(VAR, 10, minimum=minimum, maximum=maximum)


@pytest.mark.parametrize("value", ["0", "3600"])
def test_an_integer_on_a_bound_is_accepted(setting, value):
    setting(value)
    assert env_int(VAR, 10, minimum=0, maximum=3600) == int(value)


def test_a_non_number_is_named_with_its_value(setting):
    setting("high")
    with pytest.raises(ConfigurationError, match=f"{VAR} must be a number, got 'high'"):
        env_float(VAR, 0.5)


@pytest.mark.parametrize("value, minimum, maximum", [
    ("nan", 0.0, 1.0),    # ACCURACY_THRESHOLD=nan: accuracy >= nan is never true
    ("nan", None, None),
    ("-0.1", 0.0, None),  # below a minimum with no maximum
    ("-0.1", 0.0, 1.0),
    ("1.5", 0.0, 1.0),
])
def test_a_number_out_of_range_is_refused(setting, value, minimum, maximum):
    setting(value)
    with pytest.raises(ConfigurationError, match=rf"{VAR}={value} is outside \[{minimum}, {maximum}\]"):
        env_float(VAR, 0.5, minimum=minimum, maximum=maximum)


@pytest.mark.parametrize("value", ["0", "0.0", "1", "1.0"])
def test_a_number_on_a_bound_is_accepted(setting, value):
    # ACCURACY_THRESHOLD=1.0 (only a perfect model passes) and 0 (QA reports, never gates).
    setting(value)
    assert env_float(VAR, minimum=0.0, maximum=1.0) == float(value)


def test_an_unset_flag_is_off_unless_its_default_says_otherwise(setting):
    # USE_SPOT_TRAINING: off unless asked for.
    assert env_bool(VAR) is False
    assert env_bool(VAR, True) is True


@pytest.mark.parametrize("value", ["0", "false", "False", "no", "OFF", " off ", ""])
def test_false_words_turn_a_flag_off(setting, value):
    setting(value)
    assert env_bool(VAR, True) is False


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on"])
def test_true_words_turn_a_flag_on(setting, value):
    setting(value)
    assert env_bool(VAR, False) is True


def test_any_other_flag_value_is_refused_with_the_value(setting):
    setting("maybe")
    with pytest.raises(ConfigurationError, match=f"{VAR} must be true or false, got 'maybe'"):
        env_bool(VAR)


def test_an_unset_or_empty_list_has_no_items(setting):
    # ROLLBACK_ALARM_NAMES: no alarms configured means none, not one named "".
    assert env_list(VAR) == []
    setting(" , ,")
    assert env_list(VAR) == []
    setting("errors-alarm, latency-alarm ,")
    assert env_list(VAR) == ["errors-alarm", "latency-alarm"]
