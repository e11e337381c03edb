"""The Glue 5.1 preprocessing job: validate the raw CSV, split it, fit the feature pipeline and
write everything the rest of the pipeline reads (layout: docs/architecture.md, "One run's artifacts").

Runs unchanged on AWS Glue 5.1 (Spark 3.5.6, Python 3.11, Java 17) and on local PySpark 3.5.6.
On Glue, glue/preprocess.py is the job's script (Command.ScriptLocation, which sam package
uploads) and this package with dataset_spec comes in the zip named by the job's --extra-py-files
(scripts/deploy.py builds and uploads it; AWS Glue puts it on the Python path before the script
runs). Locally, `python -m localmode glue` (or `make glue-local`) calls preprocessing.job.run()
in-process, with glue/ and functions/common on sys.path as the zip puts them on Glue's. It needs
nothing Glue does not provide (the standard library, PySpark, boto3), and importing it does no
work. The MLeap bundles are written by the job itself, in the JSON format that MLeap runtime
0.20.0 (SparkML Serving 3.3) reads; the tests load them in that runtime and compare with Spark on
every held-out row.

Where things are, in the order a run goes through them:
- options: the job's arguments, and the spec they name (dataset_spec checks it);
- store: where the outputs go (a local directory or an S3 run prefix), manifest last;
- lines, validate: the input read once, each line classified, every problem reported at once;
- split: the stratified, seeded train/validation/test split;
- features: the preprocess pipeline, what each column type adds to it, what it learns from training;
- labels: the label's classes and the postprocess pipeline;
- mleap, ops, bundle: the bundle format, each op's JSON next to its Spark twin, and the pipelines
  turned into bundle nodes and serving schemas;
- job: the run, from validation to the manifest.
"""
