"""Named errors shared by several functions (the class name is the error name
Step Functions sees)."""


class ConfigurationError(Exception):
    """An environment variable is missing or holds an unusable value."""


class InvalidEvent(Exception):
    """The function was invoked with an event it cannot have been sent by the pipeline."""


class ManifestMissing(Exception):
    """The run has no manifest.json: the preprocessing step did not finish."""


class ManifestInvalid(Exception):
    """The run's manifest (or a document it points to) cannot be used as is."""
