"""Models that misbehave on purpose, loaded through the ai_plugins setting by the job tests."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from radpacs.ai.interface import Accepts, ModelResult, Progress, SeriesInput, Task


class _Base:
    version = "0"
    task = Task.SEGMENTATION
    accepts = Accepts(modalities=("CT", "MR"))
    weights_sha256 = ""
    description = "test model"
    parameters: dict[str, Any] = {}


class CrashModel(_Base):
    """Kills its own process, as a segfault in native code would."""

    name = "test-crash"

    def run(self, series: SeriesInput, progress: Progress, p: Mapping[str, Any]) -> ModelResult:
        os._exit(3)


class HangModel(_Base):
    """Never returns."""

    name = "test-hang"

    def run(self, series: SeriesInput, progress: Progress, p: Mapping[str, Any]) -> ModelResult:
        while True:
            time.sleep(0.2)


class EmptyModel(_Base):
    """Finds nothing at once: a job that succeeds without building a result object."""

    name = "test-empty"

    def run(self, series: SeriesInput, progress: Progress, p: Mapping[str, Any]) -> ModelResult:
        return ModelResult(np.zeros(series.volume.array.shape, dtype=np.uint8), {})
