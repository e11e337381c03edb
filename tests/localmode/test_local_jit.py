"""The local JVM's JIT setting follows the input's size (localmode/glue_local.py jit_options)."""
from __future__ import annotations

from localmode import glue_local


def test_small_inputs_get_c1_only_and_large_or_unknown_ones_the_default_jit(tmp_path):
    assert glue_local.jit_options(1_728 * 30) == "-XX:TieredStopAtLevel=1"
    assert glue_local.jit_options(glue_local.C1_ONLY_BELOW_BYTES) == ""
    assert glue_local.jit_options(None) == ""
    (tmp_path / "a.csv").write_bytes(b"x" * 10)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.csv").write_bytes(b"y" * 5)
    assert glue_local.input_size(tmp_path) == 15
    assert glue_local.input_size(tmp_path / "a.csv") == 10
