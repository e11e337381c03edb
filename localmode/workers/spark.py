"""One local SparkSession per process for the Glue worker, started early.

Starting the JVM is the slowest fixed cost of a local run, so the runner calls
`SparkProvider.warm()` before anything else (this module imports nothing
heavy) and the Glue task waits for the session only if it is not ready yet.
The driver's log4j output goes to `<log_dir>/spark.log` from its first line,
keeping the terminal for progress.
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from pathlib import Path

_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{HH:mm:ss.SSS}} %p %c{{1}}: %m%n
"""


class SparkProvider:
    """One local SparkSession for the process, with its JVM log in a file instead of the terminal."""

    _lock = threading.Lock()
    _future: Future | None = None
    log_path: Path | None = None
    start_seconds: float | None = None  # how long the JVM and session took to start

    @classmethod
    def warm(cls, log_dir: Path, input_bytes: int | None = None) -> Future:
        """Start the session in the background (no-op if already started); `input_bytes`, the size
        of the data the runs will read if known, picks the JVM's JIT settings (glue_local.jit_options)."""
        with cls._lock:
            if cls._future is None:
                cls._future = Future()
                cls.log_path = Path(log_dir) / "spark.log"
                threading.Thread(target=cls._start, args=(cls._future, cls.log_path, input_bytes), name="spark-start",
                                 daemon=True).start()
            return cls._future

    @classmethod
    def get(cls, log_dir: Path, timeout: float = 600.0):
        session = cls.warm(log_dir).result(timeout=timeout)
        if session.sparkContext._jsc is None:  # someone stopped it (a test, glue_local's CLI): start another
            with cls._lock:
                if cls._future is not None and cls._future.done() and cls._future.result() is session:
                    cls._future = None
            session = cls.warm(log_dir).result(timeout=timeout)
        return session

    @classmethod
    def _start(cls, future: Future, log_path: Path, input_bytes: int | None = None) -> None:
        started = time.monotonic()
        try:
            from localmode import glue_local

            log_path.parent.mkdir(parents=True, exist_ok=True)
            config = log_path.with_name("log4j2-local.properties")
            config.write_text(_LOG4J.format(path=log_path), encoding="utf-8")
            # Read by pyspark when it launches the JVM: the driver's log4j goes to the file from its first line.
            java_options = f"-Dlog4j2.configurationFile={config.as_uri()} {glue_local.jit_options(input_bytes)}".strip()
            os.environ.setdefault("PYSPARK_SUBMIT_ARGS", f'--driver-java-options "{java_options}" pyspark-shell')

            session = glue_local.build_spark_session(app_name="localmode-glue")
            cls.start_seconds = round(time.monotonic() - started, 2)
            future.set_result(session)
        except BaseException as exc:  # surfaces in the Glue task that waits for it
            future.set_exception(exc)
