"""Local workers without Spark: training (XGBoost on moto S3), the plain
service integrations, fault injection, and the report's history reading."""
from __future__ import annotations

import datetime
import io
import json
import tarfile

import boto3
import numpy as np
import pytest
import xgboost as xgb

from localmode import aws, faults, sfn
from localmode.lambdas import LocalLambdas
from localmode.report import HistoryTracker, failure_of
from localmode.stack import LocalStack
from localmode.workers import services, xgboost_algorithm
from localmode.workers import training as training_module
from localmode.workers.training import TrainingWorker, plan_training

ROLE = "arn:aws:iam::123456789012:role/local-sage-maker-execution-role"


@pytest.fixture
def moto_aws():
    with aws.local_aws():
        boto3.client("s3").create_bucket(Bucket="art")
        yield


def put_channel(name: str, rows: np.ndarray, integer_labels: bool = True) -> str:
    text = "\n".join(",".join(str(int(v)) if i == 0 and integer_labels else f"{v:g}" for i, v in enumerate(row))
                     for row in rows) + "\n"
    # Two parts and an empty one, as Spark writes them.
    half = len(text.splitlines()) // 2
    lines = text.splitlines(keepends=True)
    s3 = boto3.client("s3")
    s3.put_object(Bucket="art", Key=f"run/data/{name}/part-00000.csv", Body="".join(lines[:half]).encode())
    s3.put_object(Bucket="art", Key=f"run/data/{name}/part-00001.csv", Body="".join(lines[half:]).encode())
    s3.put_object(Bucket="art", Key=f"run/data/{name}/part-00002.csv", Body=b"")
    return f"s3://art/run/data/{name}/"


def separable(n: int, seed: int, noise: float = 0.05) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    features = np.eye(3)[labels] + rng.normal(0, noise, (n, 3))
    return np.column_stack([labels, features])


def downloaded_model(described: dict, tmp_path) -> xgb.Booster:
    artifact = described["ModelArtifacts"]["S3ModelArtifacts"]
    body = boto3.client("s3").get_object(Bucket="art", Key=artifact[len("s3://art/"):])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        (tmp_path / "model").write_bytes(tar.extractfile("xgboost-model").read())
    booster = xgb.Booster()
    booster.load_model(str(tmp_path / "model"))
    return booster


def failure_reason(worker: TrainingWorker, request: sfn.TaskRequest) -> str:
    with pytest.raises(sfn.TaskFailed) as raised:
        worker(request)
    assert raised.value.error == "States.TaskFailed"
    cause = json.loads(raised.value.cause)
    assert cause["TrainingJobStatus"] == "Failed"
    return cause["FailureReason"]


def training_request(channels: dict[str, str], **hyper) -> sfn.TaskRequest:
    hyperparameters = {"objective": "multi:softmax", "num_class": "3", "num_round": "50",
                       "early_stopping_rounds": "5", "eval_metric": "merror", "eta": "0.3", "max_depth": "3", **hyper}
    return sfn.TaskRequest(
        state_name="TrainXGBoost", resource="arn:aws:states:::sagemaker:createTrainingJob.sync",
        # A whole CreateTrainingJob request, as TrainXGBoost sends it: the worker creates the job with it.
        parameters={
            "TrainingJobName": "run-1-train",
            "AlgorithmSpecification": {"TrainingImage": "xgboost:1.7-1", "TrainingInputMode": "File"},
            "RoleArn": ROLE,
            "HyperParameters": hyperparameters,
            "InputDataConfig": [
                {"ChannelName": n, "ContentType": "text/csv",
                 "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": uri}}}
                for n, uri in channels.items()
            ],
            "OutputDataConfig": {"S3OutputPath": "s3://art/run/training/"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        execution_arn="arn", execution_name="run-1", state_machine_arn="sm",
    )


def test_training_writes_the_built_in_algorithms_artifact(moto_aws, tmp_path):
    channels = {"train": put_channel("train", separable(300, 1)), "validation": put_channel("validation", separable(60, 2))}
    worker = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)

    described = worker(training_request(channels))

    assert described["TrainingJobStatus"] == "Completed"
    artifact = described["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact == "s3://art/run/training/run-1-train/output/model.tar.gz"
    body = boto3.client("s3").get_object(Bucket="art", Key=artifact[len("s3://art/"):])["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.getnames() == ["xgboost-model"]
        (tmp_path / "model").write_bytes(tar.extractfile("xgboost-model").read())
    booster = xgb.Booster()
    booster.load_model(str(tmp_path / "model"))
    test = separable(50, 3)
    predictions = booster.predict(xgb.DMatrix(test[:, 1:]))
    assert (predictions == test[:, 0]).mean() > 0.95
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert set(metrics) == {"train:merror", "validation:merror"} and metrics["validation:merror"] < 0.05
    assert not list(tmp_path.glob("training-*"))  # scratch removed


def test_training_without_data_fails_like_a_training_job(moto_aws, tmp_path):
    worker = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)
    request = training_request({"validation": put_channel("validation", separable(20, 2))})

    with pytest.raises(sfn.TaskFailed) as raised:
        worker(request)

    assert raised.value.error == "States.TaskFailed"
    cause = json.loads(raised.value.cause)
    assert cause["TrainingJobStatus"] == "Failed"
    assert cause["FailureReason"] == "ClientError: the train channel is required"


@pytest.mark.parametrize(
    "role, message",
    [
        (None, "Value null at 'roleArn' failed to satisfy constraint: Member must not be null"),
        ("$.plan.training.RoleArn", "Could not assume role $.plan.training.RoleArn."),
        ("arn:aws:iam::123456789012:role/local-state-machine-role", "Could not assume role arn:aws:iam::123456789012:role/local-state-machine-role."),
    ],
)
def test_training_refuses_a_role_sagemaker_could_not_assume(moto_aws, tmp_path, role, message):
    # CreateTrainingJob refuses the request itself (ValidationException): no job is created, and Step Functions
    # names the error as for every SageMaker optimized integration.
    worker = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)
    request = training_request({"train": put_channel("train", separable(30, 1))})
    request.parameters.pop("RoleArn")
    if role is not None:
        request.parameters["RoleArn"] = role

    with pytest.raises(sfn.TaskFailed) as raised:
        worker(request)

    assert raised.value.error == "SageMaker.AmazonSageMakerException"
    assert message in raised.value.cause and "Error Code: ValidationException" in raised.value.cause
    assert worker.jobs == [] and not boto3.client("s3").list_objects_v2(Bucket="art", Prefix="run/training/").get("Contents")
    assert boto3.client("sagemaker").list_training_jobs()["TrainingJobSummaries"] == []


def test_the_workers_job_is_a_sagemaker_training_job_while_and_after_it_trains(moto_aws, tmp_path, monkeypatch):
    """What the state machine's recovery after a lost answer looks at: DescribeTrainingJob sees the job (InProgress
    while it trains, then as it ended), and CreateTrainingJob of the same name is refused as SageMaker refuses it."""
    channels = {"train": put_channel("train", separable(60, 1))}
    worker = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)
    sagemaker = boto3.client("sagemaker")
    seen_while_training = []
    train_on = training_module.train_on_channels

    def observed(*args, **kwargs):
        seen_while_training.append(sagemaker.describe_training_job(TrainingJobName="run-1-train")["TrainingJobStatus"])
        return train_on(*args, **kwargs)

    monkeypatch.setattr(training_module, "train_on_channels", observed)
    described = worker(training_request(channels, num_round="5"))

    assert seen_while_training == ["InProgress"]
    in_sagemaker = sagemaker.describe_training_job(TrainingJobName="run-1-train")
    assert in_sagemaker["TrainingJobStatus"] == "Completed"
    assert in_sagemaker["ModelArtifacts"] == described["ModelArtifacts"]
    with pytest.raises(sfn.TaskFailed) as raised:
        worker(training_request(channels, num_round="5"))
    assert raised.value.error == "SageMaker.AmazonSageMakerException"
    assert "Error Code: ResourceInUse" in raised.value.cause


def test_a_failed_job_is_failed_in_sagemaker_too(moto_aws, tmp_path):
    worker = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)
    reason = failure_reason(worker, training_request({"validation": put_channel("validation", separable(20, 2))}))
    described = boto3.client("sagemaker").describe_training_job(TrainingJobName="run-1-train")
    assert (described["TrainingJobStatus"], described["FailureReason"]) == ("Failed", reason)


def test_a_job_stopped_while_it_trains_fails_the_task_as_stopped(moto_aws, tmp_path, monkeypatch):
    channels = {"train": put_channel("train", separable(60, 1))}
    train_on = training_module.train_on_channels

    def stopped_meanwhile(*args, **kwargs):
        boto3.client("sagemaker").stop_training_job(TrainingJobName="run-1-train")
        return train_on(*args, **kwargs)

    monkeypatch.setattr(training_module, "train_on_channels", stopped_meanwhile)
    with pytest.raises(sfn.TaskFailed) as raised:
        TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)(training_request(channels, num_round="5"))
    assert raised.value.error == "States.TaskFailed"
    assert json.loads(raised.value.cause)["TrainingJobStatus"] == "Stopped"


def test_the_local_stack_names_its_sagemaker_execution_role():
    stack = LocalStack.from_file()
    role = stack.role_assumable_by("sagemaker.amazonaws.com")
    assert role == stack.get_att("SageMakerExecutionRole", "Arn") == ROLE
    # What PrepareTraining plans with and what local training accepts are the same role.
    assert stack.function_environment("PrepareTrainingFunction")["SAGEMAKER_ROLE_ARN"] == role
    with pytest.raises(KeyError, match="roles lambda.amazonaws.com may assume"):
        stack.role_assumable_by("lambda.amazonaws.com")


# --- the built-in algorithm's own rules (aws/sagemaker-xgboost-container, branch 1.7-1) ------------

def test_early_stopping_saves_the_rounds_up_to_the_best_one(moto_aws, tmp_path):
    # callback.py lines 94-103 (get_callbacks): EarlyStopping(..., save_best=True) on the
    # validation channel's last eval_metric, so model.tar.gz holds the trees up to the best
    # round and a Booster loaded without a tree limit predicts what SageMaker's does.
    train, validation = separable(400, 1, noise=0.6), separable(150, 2, noise=0.6)
    channels = {"train": put_channel("train", train), "validation": put_channel("validation", validation)}
    described = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)(training_request(channels, num_round="200"))
    booster = downloaded_model(described, tmp_path)

    # The same training without save_best: the rounds that ran, and the best one.
    dtrain = xgb.DMatrix(train[:, 1:].astype(np.float32), label=train[:, 0])
    dvalid = xgb.DMatrix(validation[:, 1:].astype(np.float32), label=validation[:, 0])
    history: dict = {}
    full = xgb.train({"objective": "multi:softmax", "num_class": 3, "eval_metric": ["merror"], "eta": 0.3,
                      "max_depth": 3, "nthread": 1}, dtrain, 200, evals=[(dtrain, "train"), (dvalid, "validation")],
                     early_stopping_rounds=5, evals_result=history, verbose_eval=False)
    assert full.num_boosted_rounds() == full.best_iteration + 6 < 200  # early stopping ran
    assert booster.num_boosted_rounds() == full.best_iteration + 1
    test = separable(200, 3, noise=0.6)[:, 1:].astype(np.float32)
    assert np.array_equal(booster.predict(xgb.DMatrix(test)),
                          full.predict(xgb.DMatrix(test), iteration_range=(0, full.best_iteration + 1)))
    assert not np.array_equal(booster.predict(xgb.DMatrix(test)), full.predict(xgb.DMatrix(test)))

    # FinalMetricDataList: the last round EvaluationMonitor logged ("%.5f"), not the best one.
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    last = {f"{c}:{m}": float(f"{v[-1]:.5f}") for c, per in history.items() for m, v in per.items()}
    assert metrics == last
    assert metrics["validation:merror"] != float(f"{history['validation']['merror'][full.best_iteration]:.5f}")


def test_without_eval_metric_the_container_does_not_stop_early(moto_aws, tmp_path):
    # train.py lines 286-293: the early-stopping metric is the last of eval_metric (or of the
    # tuning metric); without one, early_stopping_rounds has no effect.
    channels = {"train": put_channel("train", separable(200, 1, noise=0.6)),
                "validation": put_channel("validation", separable(60, 2, noise=0.6))}
    request = training_request(channels, num_round="30")
    del request.parameters["HyperParameters"]["eval_metric"]
    described = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)(request)
    assert downloaded_model(described, tmp_path).num_boosted_rounds() == 30
    assert {m["MetricName"] for m in described["FinalMetricDataList"]} == {"train:mlogloss", "validation:mlogloss"}


# algorithm_mode/hyperparameter_validation.py (names, ranges, dependencies) checked by
# sagemaker_algorithm_toolkit/hyperparameter_validation.py's validate(); the toolkit's UserError
# reaches sagemaker-containers' _trainer.train (lines 113-122 at v2.8.6.post2) as a framework
# error, which SageMaker reports as "AlgorithmError: framework error: ...".
@pytest.mark.parametrize("change, message", [
    ({"max_dept": "3"}, "Extraneous hyperparameter found: max_dept"),
    ({"eta": "1.5"}, "Hyperparameter eta: 1.5 is not in [0, 1]"),
    ({"num_class": "1"}, "Hyperparameter num_class: 1 is not in [2, +inf)"),
    ({"eval_metric": "auc"}, "Metric 'auc' can only be applied for classification and ranking problems."),
    ({"eval_metric": "merror, mlogloss"}, "Hyperparameter eval_metric: value ['merror', ' mlogloss'] not in range "
                                          f"{list(xgboost_algorithm.MAXIMIZE_METRICS + xgboost_algorithm.MINIMIZE_METRICS)}"),
    ({"num_round": "ten"}, "Hyperparameter num_round: could not parse value (caused by ValueError)"),
    ({"objective": "multi:softprob", "num_class": None}, "Require input for parameter 'num_class' for multi-classification"),
    ({"num_round": None}, "Missing required hyperparameter: num_round"),
])
def test_hyperparameters_are_refused_as_the_container_refuses_them(moto_aws, tmp_path, change, message):
    request = training_request({"train": "s3://art/nothing/"})
    hyperparameters = request.parameters["HyperParameters"]
    for name, value in change.items():
        if value is None:
            hyperparameters.pop(name)
        else:
            hyperparameters[name] = value
    reason = failure_reason(TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE), request)
    # Refused before any data is read (the train channel here is empty); FailureReason is cut
    # at DescribeTrainingJob's 1024 characters.
    expected = f"AlgorithmError: framework error: \nsagemaker_algorithm_toolkit.exceptions.UserError: {message}\n{message}"
    assert reason == expected[:1024]


def test_a_label_xgboost_refuses_is_the_users_error_cut_to_1024_characters(moto_aws, tmp_path):
    # train.py lines 409-415: an xgboost error naming one of CUSTOMER_ERRORS (xgb_constants.py)
    # becomes a UserError; DescribeTrainingJob's FailureReason holds at most 1024 characters.
    channels = {"train": put_channel("train", separable(60, 1)), "validation": put_channel("validation", separable(30, 2))}
    reason = failure_reason(TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE),
                            training_request(channels, num_class="2"))
    assert reason.startswith("AlgorithmError: framework error: \nsagemaker_algorithm_toolkit.exceptions.UserError: ")
    assert "label must be in [0, num_class)" in reason and len(reason) <= 1024


def test_eval_metric_without_objective_fails_as_a_key_error(moto_aws, tmp_path):
    # eval_metric_dep_validator reads dependencies["objective"] (hyperparameter_validation.py line 115).
    request = training_request({"train": "s3://art/nothing/"})
    del request.parameters["HyperParameters"]["objective"]
    del request.parameters["HyperParameters"]["num_class"]
    reason = failure_reason(TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE), request)
    assert reason == "AlgorithmError: framework error: \nKeyError: 'objective'\n'objective'"


def test_aliases_and_the_rules_order_are_the_toolkits():
    validated = xgboost_algorithm.validate_hyperparameters(
        {"num_round": "5", "learning_rate": "0.5", "reg_lambda": "2", "objective": "binary:logistic",
         "eval_metric": "auc,error@0.7", "monotone_constraints": "(1,0,-1)", "tree_method": "hist"})
    assert validated == {"num_round": 5, "eta": 0.5, "lambda": 2.0, "objective": "binary:logistic",
                         "eval_metric": ["auc", "error@0.7"], "monotone_constraints": (1, 0, -1), "tree_method": "hist"}
    # Ranges are checked (in the request's order) before any dependency.
    with pytest.raises(xgboost_algorithm.AlgorithmFailure, match=r"^Hyperparameter gamma: -1.0 is not in \[0, \+inf\)$"):
        xgboost_algorithm.validate_hyperparameters({"num_round": "1", "eval_metric": "auc", "objective": "multi:softmax",
                                                    "num_class": "3", "gamma": "-1"})
    with pytest.raises(xgboost_algorithm.AlgorithmFailure, match="monotone_constraints can be used only when"):
        xgboost_algorithm.validate_hyperparameters({"num_round": "1", "monotone_constraints": "(1,0)"})
    with pytest.raises(xgboost_algorithm.AlgorithmFailure, match=r"'error' or 'ndcg'|'error', 'ndcg', 'map'"):
        xgboost_algorithm.validate_hyperparameters({"num_round": "1", "objective": "binary:logistic",
                                                    "eval_metric": "logloss@0.5"})


def test_this_projects_training_request_passes(monkeypatch):
    # functions/prepare_training builds the CreateTrainingJob request the state machine sends.
    monkeypatch.setenv("SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/sagemaker")
    monkeypatch.setenv("OUTPUT_KMS_KEY_ARN", "arn:aws:kms:us-east-1:123456789012:key/k")
    monkeypatch.setenv("XGBOOST_IMAGE_URI", "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1")
    prepare = LocalLambdas(region="us-east-1").module("prepare_training")
    manifest = {"num_class": 4, "uris": {"train": "s3://b/t/", "validation": "s3://b/v/", "training_output": "s3://b/o/"}}
    request = prepare.training_request("job", manifest, prepare.training_settings_from_env())
    plan = plan_training(request["HyperParameters"])
    assert plan.params == {"objective": "multi:softmax", "num_class": 4, "eval_metric": ["merror"], "eta": 0.2,
                           "max_depth": 4}
    assert (plan.num_round, plan.early_stopping_rounds, plan.early_stopping_metric) == (200, 10, "merror")


@pytest.mark.parametrize("objective, metrics, native, computed", [
    # binary:logistic and reg:squarederror with the metrics they are tuned on (xgboost-tuning docs).
    ("binary:logistic", "logloss,error,auc", ["logloss", "error", "auc"], []),
    ("binary:logistic", "accuracy,f1_binary,auc", ["auc"], ["accuracy", "f1_binary"]),
    ("reg:squarederror", "rmse", [], ["rmse"]),
    ("reg:squarederror", "mae,r2,mse", [], ["mae", "r2", "mse"]),
])
def test_binary_and_regression_objectives_train_with_their_metrics(moto_aws, tmp_path, objective, metrics, native,
                                                                   computed):
    rng = np.random.default_rng(5)
    features = rng.normal(size=(300, 3))
    target = features @ [1.0, -2.0, 0.5] + rng.normal(0, 0.3, 300)
    labels = (target > 0).astype(int) if objective.startswith("binary") else target
    rows = np.column_stack([labels, features])
    classes = objective.startswith("binary")
    channels = {"train": put_channel("train", rows[:220], classes),
                "validation": put_channel("validation", rows[220:], classes)}
    request = training_request(channels, objective=objective, eval_metric=metrics, num_round="40")
    del request.parameters["HyperParameters"]["num_class"]
    plan = plan_training(request.parameters["HyperParameters"])
    assert (plan.params.get("eval_metric", []), plan.custom_metrics) == (native, computed)
    described = TrainingWorker(tmp_path, "us-east-1", "123456789012", role_arn=ROLE)(request)
    names = {m["MetricName"] for m in described["FinalMetricDataList"]}
    assert {f"validation:{m}" for m in metrics.split(",")} <= names
    booster = downloaded_model(described, tmp_path)
    assert booster.num_boosted_rounds() <= 40


def test_the_metrics_the_container_computes_itself():
    # metrics/custom_metrics.py: scikit-learn 0.24 scores on raw margins.
    labels = np.array([0, 1, 1, 0, 1], dtype=np.float32)
    margins = np.array([-1.0, 2.0, -0.5, 0.3, 1.0], dtype=np.float32)  # classes 0,1,0,1,1
    dtrain = xgb.DMatrix(np.zeros((5, 1)), label=labels)
    metric = xgboost_algorithm.CONTAINER_METRICS
    assert metric["accuracy"](margins, dtrain) == ("accuracy", 0.6)
    assert metric["precision"](margins, dtrain) == ("precision", 2 / 3)
    assert metric["recall"](margins, dtrain) == ("recall", 2 / 3)
    assert metric["f1_binary"](margins, dtrain)[1] == pytest.approx(2 / 3)
    assert metric["f1"](margins, dtrain)[1] == pytest.approx((1 / 2 + 2 / 3) / 2)  # per class: 1/2, 2/3
    assert metric["balanced_accuracy"](margins, dtrain) == ("balanced_accuracy", (1 / 2 + 2 / 3) / 2)
    name, value = metric["rmse"](margins, dtrain)
    assert name == "rmse" and value == np.sqrt(np.mean((labels - margins) ** 2, dtype=np.float32))
    multiclass = xgb.DMatrix(np.zeros((3, 1)), label=np.array([0, 2, 1], dtype=np.float32))
    with pytest.raises(ValueError, match="Target is multiclass but average='binary'"):
        metric["f1_binary"](np.eye(3, dtype=np.float32)[[0, 2, 2]], multiclass)
    assert metric["precision_micro"](np.eye(3, dtype=np.float32)[[0, 2, 2]], multiclass)[1] == pytest.approx(2 / 3)


def test_service_errors_are_named_as_step_functions_names_them(moto_aws):
    create = services.optimized("sagemaker", "createEndpoint")
    describe = services.aws_sdk("sagemaker", "describeEndpoint")
    request = sfn.TaskRequest("S", "x", {"EndpointName": "nope", "EndpointConfigName": "nope"}, "a", "e", "sm")

    with pytest.raises(sfn.TaskFailed) as created:
        create(request)
    assert created.value.error == "SageMaker.AmazonSageMakerException"
    assert "Could not find endpoint configuration" in created.value.cause and "Status Code: 400" in created.value.cause

    with pytest.raises(sfn.TaskFailed) as described:
        describe(sfn.TaskRequest("S", "x", {"EndpointName": "nope"}, "a", "e", "sm"))
    assert described.value.error == "SageMaker.SageMakerException"


def test_faults_parse_and_refuse_unknown_states():
    states = {"TrainXGBoost": "arn:aws:states:::sagemaker:createTrainingJob.sync", "RunQATests": "arn:aws:states:::lambda:invoke"}
    parsed = faults.Faults.parse(["TrainXGBoost, rollback"], states)
    assert parsed.states == {"TrainXGBoost"} and parsed.rollback
    with pytest.raises(ValueError, match="unknown fault 'Train'.*RunQATests, TrainXGBoost"):
        faults.Faults.parse("Train", states)
    assert not faults.Faults.parse("", states)


@pytest.mark.parametrize(
    "resource, error",
    [("arn:aws:states:::lambda:invoke", "InjectedFault"),
     ("arn:aws:states:::glue:startJobRun.sync", "States.TaskFailed"),
     ("arn:aws:states:::sagemaker:createEndpoint", "SageMaker.AmazonSageMakerException"),
     ("arn:aws:states:::aws-sdk:sagemaker:describeEndpoint", "SageMaker.SageMakerException"),
     ("arn:aws:states:::sns:publish", "SNS.InternalErrorException")],
)
def test_injected_failures_look_like_the_service(resource, error):
    failure = faults.failure_for("State", resource)
    assert failure.error == error
    assert "LOCAL_FAULTS=State" in failure.cause


def _event(kind: str, seconds: float, **details) -> dict:
    return {"type": kind, "timestamp": datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
            + datetime.timedelta(seconds=seconds), **details}


def test_history_becomes_state_records_and_the_failure():
    lines: list[str] = []
    tracker = HistoryTracker(on_line=lines.append)
    failure = {"state": "TrainXGBoost", "error": "States.TaskFailed", "cause": json.dumps({"FailureReason": "AlgorithmError: boom"})}
    tracker.feed([
        _event("ExecutionStarted", 0),
        _event("TaskStateEntered", 1, stateEnteredEventDetails={"name": "TrainXGBoost", "input": "{}"}),
        _event("TaskScheduled", 1), _event("TaskFailed", 2, taskFailedEventDetails={"error": "SageMaker.ThrottlingException", "cause": "slow down"}),
        _event("TaskScheduled", 3), _event("TaskFailed", 4, taskFailedEventDetails={"error": "States.TaskFailed", "cause": failure["cause"]}),
        _event("TaskStateExited", 4, stateExitedEventDetails={"name": "TrainXGBoost", "output": "{}"}),
        _event("FailStateEntered", 5, stateEnteredEventDetails={"name": "Failed", "input": json.dumps({"failure": failure})}),
        _event("ExecutionFailed", 5, executionFailedEventDetails={"error": "States.TaskFailed"}),
    ])

    [train, fail] = [r.to_json() for r in tracker.records]
    assert (train["outcome"], train["attempts"], train["seconds"]) == ("failed", 2, 3.0)
    assert train["message"] == "AlgorithmError: boom"
    assert fail["outcome"] == "failed"
    assert failure_of(tracker, {"status": "FAILED"})["message"] == "AlgorithmError: boom"
    assert lines[-1].endswith("TrainXGBoost FAILED in 3.0s: States.TaskFailed: AlgorithmError: boom")
