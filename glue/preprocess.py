"""AWS Glue 5.1 job script (template.yaml, PreprocessJob's Command.ScriptLocation; sam package uploads it).

The job itself is the `preprocessing` package (glue/preprocessing/) with `dataset_spec`
(functions/common/dataset_spec/): Glue puts both on the Python path from the zip the job's
--extra-py-files names, which `make deploy` builds and uploads (scripts/deploy.py). Locally,
`python -m localmode glue` runs the same package in-process (preprocessing.job.run).
"""
import sys

from preprocessing.job import main

if __name__ == "__main__":
    sys.exit(main())
