"""The runs the policy mutation replays: every path the pipeline takes through AWS, in one local
account, recorded (`python scripts/iam_mutation.py`, and tests/localmode/test_local_iam_runs.py).

car approved (its production created), approved again (a blue/green update, compared with
production), rejected, rolled back by its alarms, a rollback to version 1, a training answer lost
(RecoverTraining), a training failure, a stop while the QA endpoint exists and one during approval
(the cleanup workflow),
an upload whose key has a "+", an upload under an unknown dataset, and the first approved run of
each other dataset (penguins, breast-cancer, diabetes), penguins also approved again, rolled back and
stopped during approval.
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Callable

import boto3

from localmode import datasets
from localmode.asl import TaskFailed
from localmode.faults import Faults
from localmode.iam.enforce import acting_as, as_harness, current

OTHER_DATASETS = ("penguins", "breast-cancer", "diabetes")


def _stop_when(pipeline, marker: str) -> Callable[[str], None]:
    say = pipeline.say

    def watch(line: str) -> None:
        say(line)
        if line.strip().endswith(marker) and not watch.done:
            watch.done = True
            raise KeyboardInterrupt

    watch.done = False
    return watch


def _lose_training_answer(pipeline) -> Callable[[], None]:
    """CreateTrainingJob made the job but its answer is lost: the job trains on, RecoverTraining finds it.
    Returns what restores the handler."""
    handlers = pipeline.machine.dispatcher.handlers
    train = handlers["sagemaker:createTrainingJob.sync"]
    sagemaker = boto3.client("sagemaker")

    def answer_lost(request):
        principal, state = current()

        def keep_training():
            with acting_as(principal, state):
                train(request)

        worker = threading.Thread(target=keep_training, name="training-lost-answer")
        worker.start()
        name = request.parameters["TrainingJobName"]
        with as_harness():  # the test's own look at SageMaker, not the state machine's
            while not sagemaker.list_training_jobs(NameContains=name)["TrainingJobSummaries"] and worker.is_alive():
                time.sleep(0.05)
        raise TaskFailed("SageMaker.AmazonSageMakerException",
                         "We encountered an internal error. Please try again. (Service: AmazonSageMaker; "
                         "Status Code: 500; Error Code: InternalFailure; Proxy: null)")

    handlers["sagemaker:createTrainingJob.sync"] = answer_lost
    return lambda: handlers.__setitem__("sagemaker:createTrainingJob.sync", train)


def run_scenarios(pipeline, car_data: Path, workdir: Path) -> dict[str, object]:
    """Each scenario's RunResult, by name."""
    results = {}
    results["car approved"] = pipeline.run(car_data, decision="approve")
    results["car approved again"] = pipeline.run(car_data, decision="approve")
    results["car rejected"] = pipeline.run(car_data, decision="reject", reason="scenario: rejected")
    results["car rolled back by its alarms"] = pipeline.run(car_data, decision="approve", faults=Faults(rollback=True))
    results["rollback to version 1"] = pipeline.rollback(1, decision="approve")
    restore = _lose_training_answer(pipeline)
    try:
        results["car training answer lost"] = pipeline.run(car_data, decision="reject", reason="scenario: recovered")
    finally:
        restore()
    results["car training failed"] = pipeline.run(car_data, decision="approve", faults=Faults(states={"TrainXGBoost"}))
    say = pipeline.say
    for name, marker in (("car stopped while its QA endpoint exists", "WaitForQAEndpoint ..."),
                         ("car stopped while it waits for approval", "RequestApproval ...")):
        pipeline.say = _stop_when(pipeline, marker)
        try:
            results[name] = pipeline.run(car_data, decision="approve")
        finally:
            pipeline.say = say
    # A key S3's notification encodes ambiguously ("+"): start_run lists the bucket to tell which key exists.
    plus = workdir / "car data+1.csv"
    shutil.copyfile(car_data, plus)
    results["car uploaded as 'car data+1.csv', rejected"] = pipeline.run(plus, decision="reject", reason="scenario: key")
    results["an upload under an unknown dataset"] = pipeline.run(car_data, decision="approve", dataset="no-such-dataset")
    for name in OTHER_DATASETS:
        data, _ = datasets.build(name, workdir / name)
        results[f"{name} approved"] = pipeline.run(data, decision="approve", dataset=name)
        if name == OTHER_DATASETS[0]:
            results[f"{name} approved again"] = pipeline.run(data, decision="approve", dataset=name)
            results[f"{name} rollback to version 1"] = pipeline.rollback(1, decision="approve", dataset=name)
            pipeline.say = _stop_when(pipeline, "RequestApproval ...")
            try:
                results[f"{name} stopped while it waits for approval"] = pipeline.run(data, decision="approve", dataset=name)
            finally:
                pipeline.say = say
    return results
