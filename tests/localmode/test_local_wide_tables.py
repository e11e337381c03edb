"""Tables wider than a serving schema in the container's environment, deployed whole by
`make local AUTO_APPROVE=1` (runner.execute, the real definition, Glue script, XGBoost and
Lambdas): breast-cancer's 30 long names are served as c1..c30 and still by CSV; digits-wide's
100 features by JSON requests that carry the schema (dataset_spec.serving). The container's
rules are SparkML Serving 3.3's (ServingController.retrieveAndVerifySchema, DataConversionHelper
.convertCsvToObjectList), which the local container follows; the bundles themselves are judged
by the JVM MLeap runtime in tests/glue/test_datasets.py."""
from __future__ import annotations

import json
import shlex

import pytest
from botocore.exceptions import ClientError

from localmode import datasets, runner
from localmode.faults import Faults
from localmode.session import EXIT_DEPLOYED

pytestmark = [pytest.mark.slow, pytest.mark.spark]


@pytest.fixture(scope="module")
def deployed(account, tmp_path_factory):
    """name -> (exit code, report) of one AUTO_APPROVE run of that dataset with its committed spec."""
    out = tmp_path_factory.mktemp("wide-data")
    results = {}

    def run(name: str):
        if name not in results:
            data, spec = datasets.build(name, out)
            args = runner.parse_args(["--auto-approve", "--data", str(data), "--spec", str(spec)])
            start = len(account.lines)
            exit_code, report_path = runner.execute(account, args, data, Faults(), dataset=name)
            results[name] = (exit_code, json.loads(report_path.read_text(encoding="utf-8")), account.lines[start:])
        return results[name]

    return run


def test_thirty_long_names_deploy_and_answer_csv_records(account, deployed):
    exit_code, report, _ = deployed("breast-cancer")
    assert exit_code == EXIT_DEPLOYED, json.dumps(report["failure"])
    assert report["qa"]["report"]["passed"] and report["qa"]["rows"] > 50
    assert report["smoke"]["request_content_type"] == "text/csv"
    features, truth = account.sample_row(report)
    assert len(features.split(",")) == 30
    _, answer = account.invoke_endpoint(report["endpoints"]["production"]["name"], features.encode("utf-8"))
    assert answer.strip() in ("benign", "malignant")


def test_a_hundred_features_deploy_and_answer_json_requests_but_refuse_csv_by_the_containers_rule(account, deployed):
    exit_code, report, lines = deployed("digits-wide")
    assert exit_code == EXIT_DEPLOYED, json.dumps(report["failure"])
    assert report["qa"]["report"]["passed"] and report["qa"]["value"] >= 0.94
    endpoint = report["endpoints"]["production"]["name"]
    features, truth = account.sample_row(report)
    assert len(features.split(",")) == 100
    content_type, body = account.request_for(features, report["artifacts"]["manifest"]["test"])
    document = json.loads(body)
    assert content_type == "application/json" and document["data"] == features.split(",")
    assert [f["name"] for f in document["schema"]["input"]] == [f"c{i}" for i in range(1, 101)]
    _, answer = account.invoke_endpoint(endpoint, body, content_type)
    assert answer.strip() in [f"d{i}" for i in range(10)]
    # No schema in the preprocess container's environment: a CSV record is the container's 400.
    with pytest.raises(ClientError, match="Input schema has to be provided either via environment variable"):
        account.invoke_endpoint(endpoint, features.encode("utf-8"))
    # The curl the run prints is the JSON request, and it is what the endpoint answered.
    [curl] = [line for line in lines if line.strip().startswith("curl ")]
    words = shlex.split(curl)
    assert words[words.index("-H") + 1] == "Content-Type: application/json"
    assert json.loads(words[words.index("--data") + 1]) == document
    print(f"digits-wide: request {len(body)} bytes, schema {len(json.dumps(document['schema'], separators=(',', ':')))} "
          f"characters, QA {report['qa']['metric']} {report['qa']['value']}")
