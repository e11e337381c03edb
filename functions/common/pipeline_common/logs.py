"""Keeping the libraries' own loggers quiet.

At DEBUG, botocore logs every request it sends and every response body it
reads ("Making request ... with params", "Response body"), urllib3 the
request lines, and Powertools' internals (POWERTOOLS_DEBUG) the routes they
match, i.e. the approval path. Lambda's ApplicationLogLevel=DEBUG sets the
*root* logger to DEBUG, which those loggers inherit: the approval functions'
requests carry the task token, the link reference (in the email SNS sends)
and the form nonce. An explicit level on each library logger stops that
inheritance. The functions' own Powertools Logger (named after the service)
is not one of them: it logs what the code chooses to log.
"""
from __future__ import annotations

import logging

LIBRARY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "aws_xray_sdk", "aws_lambda_powertools")


def quiet_library_loggers(level: int = logging.WARNING) -> None:
    """Set every library logger to `level` (WARNING), whatever the root logger's level."""
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level)
