"""Local workers behind the state machine's Task states: each takes a
`localmode.sfn.TaskRequest` and returns what the AWS integration would return,
or raises `TaskFailed` with the error AWS would report."""
