"""What the numbers were measured on: cores, memory, CPU model, and how busy the machine was."""
from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path


def cpu_model_from(cpuinfo: str) -> str | None:
    """The first `model name` (x86) or `Model`/`Hardware` (ARM) line of /proc/cpuinfo."""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        match = re.search(rf"^{re.escape(key)}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return None


def memory_bytes_from(meminfo: str) -> int | None:
    """MemTotal of /proc/meminfo in bytes."""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", meminfo, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def java_version() -> str | None:
    try:
        completed = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = (completed.stderr or completed.stdout).strip().splitlines()
    return first[0] if first else None


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine_info() -> dict:
    memory = memory_bytes_from(_read("/proc/meminfo"))
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "cpu_model": cpu_model_from(_read("/proc/cpuinfo")) or platform.processor() or None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "java": java_version(),
        "load_average_at_start": load_average(),
    }
