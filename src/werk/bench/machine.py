"""What the benchmark ran on, and free ports to run it on."""

from __future__ import annotations

import os
import platform
import socket
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psutil

_CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True, slots=True)
class MachineInfo:
    """CPU, memory and Python of the machine."""

    cpu_model: str
    logical_cpus: int
    physical_cores: int | None
    ram_gib: float
    python: str
    system: str

    def describe(self) -> str:
        """One line such as ``AMD EPYC, 2 CPUs (1 cores), 23.4 GiB RAM, Python 3.11.9``."""
        cores = f" ({self.physical_cores} cores)" if self.physical_cores else ""
        return (
            f"{self.cpu_model}, {self.logical_cpus} CPUs{cores}, {self.ram_gib:.1f} GiB RAM, "
            f"Python {self.python}, {self.system}"
        )


def machine_info() -> MachineInfo:
    """Describe this machine."""
    return MachineInfo(
        cpu_model=cpu_model(),
        logical_cpus=os.cpu_count() or 0,
        physical_cores=psutil.cpu_count(logical=False),
        ram_gib=psutil.virtual_memory().total / 2**30,
        python=platform.python_version(),
        system=f"{platform.system()} {platform.release()}",
    )


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or what `platform` knows."""
    try:
        lines = _CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Ports the OS says are free, all different (held open together while asked)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((host, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
