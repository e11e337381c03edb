"""Code shared by the pipeline's Lambda functions, deployed as one layer.

Exceptions raised to Step Functions keep their class name as the error name
(the Lambda runtime reports it as `errorType`), so the named errors the state
machine and the docs mention are plain classes here and in each function.
"""
