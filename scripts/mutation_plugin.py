"""pytest plugin loaded only by `make mutation` (pyproject.toml [tool.mutmut] pytest_add_cli_args).

mutmut names a mutant after the file's path (`functions.deploy_production.app.x_deploy__mutmut_3`)
and its trampolines compare that name with the module name the code was imported under. This
project imports the code the way Lambda does instead: each function's `app.py` is loaded by path
(localmode.lambdas names it `localmode_lambda_<function>`) and the shared layer is the top-level
package `pipeline_common` (functions/common on sys.path, as /opt/python on Lambda). Without a
mapping mutmut finds no test for any mutant and stops. This plugin translates between the two
names inside mutmut's trampoline, so neither the handlers nor their tests change for mutation runs.
"""
from __future__ import annotations

import re

# Each pair: (name the tests import the code under, name mutmut derives from its path).
_HANDLER_RUNTIME = re.compile(r"^localmode_lambda_(?P<function>\w+)(?P<rest>\..*)?$")
_HANDLER_PATH = re.compile(r"^functions\.(?P<function>\w+)\.app(?P<rest>\..*)?$")
_LAYER_RUNTIME = "pipeline_common"
_LAYER_PATH = "functions.common.pipeline_common"


def path_name(runtime_name: str) -> str:
    """`localmode_lambda_qa_test.x_predict` -> `functions.qa_test.app.x_predict` (other names unchanged)."""
    match = _HANDLER_RUNTIME.match(runtime_name)
    if match:
        return f"functions.{match['function']}.app{match['rest'] or ''}"
    if runtime_name == _LAYER_RUNTIME or runtime_name.startswith(_LAYER_RUNTIME + "."):
        return _LAYER_PATH + runtime_name[len(_LAYER_RUNTIME):]
    return runtime_name


def runtime_name(path_derived: str) -> str:
    """The inverse of `path_name`; mutmut's own markers ("stats", "fail", "") pass through."""
    if path_derived.startswith(_LAYER_PATH + ".") or path_derived == _LAYER_PATH:
        return _LAYER_RUNTIME + path_derived[len(_LAYER_PATH):]
    match = _HANDLER_PATH.match(path_derived)
    if match and match["function"] != "common":
        return f"localmode_lambda_{match['function']}{match['rest'] or ''}"
    return path_derived


def _install() -> None:
    from mutmut.mutation import trampoline

    if getattr(trampoline, "_project_names_mapped", False):
        return  # every forked worker re-runs pytest.main with this plugin: patch once
    active_mutant = trampoline.get_mutant_under_test
    record_hit = trampoline.record_trampoline_hit

    def get_mutant_under_test() -> str:
        return runtime_name(active_mutant())

    def record_trampoline_hit(name: str, caller: str | None = None) -> None:
        record_hit(path_name(name), caller=None if caller is None else path_name(caller))

    # The trampoline looks both up as module globals at call time.
    trampoline.get_mutant_under_test = get_mutant_under_test
    trampoline.record_trampoline_hit = record_trampoline_hit
    trampoline._project_names_mapped = True


def pytest_configure(config) -> None:
    _install()
