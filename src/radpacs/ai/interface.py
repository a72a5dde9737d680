"""The model plugin interface (what a model is, takes and returns) and the registry of models.

A model is any object with the attributes of :class:`Model`. Plugins publish models
through the entry-point group ``radpacs.models``; an entry point names either a model
class (instantiated without arguments), a model instance, or a factory function that is
called with the :class:`~radpacs.settings.Settings` and returns models. The ``ai_plugins``
setting adds ``module:attribute`` names the same way, and ``ai_models_dir`` adds one ONNX
model per ``*.json`` manifest (see :mod:`radpacs.ai.builtin.onnx_runner`);
:func:`radpacs.ai.discovery.discover_models` finds them all at start.

Example plugin (in a package's pyproject.toml)::

    [project.entry-points."radpacs.models"]
    my-model = "my_package.model:MyModel"

with ``MyModel.run(series, progress)`` returning a :class:`ModelResult`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydicom import Dataset

from radpacs.ai.geometry import Volume, volume_from_datasets
from radpacs.ai.provenance import Provenance
from radpacs.ai.results.labels import Label
from radpacs.ai.results.sr import ClassScore
from radpacs.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    pass

__all__ = [
    "ENTRY_POINT_GROUP",
    "Accepts",
    "ImageClassification",
    "Model",
    "ModelRegistry",
    "ModelResult",
    "Progress",
    "SeriesInput",
    "SeriesRole",
    "Task",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "radpacs.models"

Progress = Callable[[float], None]


class Task(StrEnum):
    """What a model produces."""

    CLASSIFICATION = "classification"
    SEGMENTATION = "segmentation"
    DETECTION = "detection"


@dataclass(frozen=True)
class Accepts:
    """Which series a model takes: modalities (empty = any), body parts, minimum slices."""

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    min_slices: int = 1

    def refusal(self, modality: str, body_part: str, slices: int) -> str | None:
        """Why a series with these values is not accepted, or None when it is."""
        if self.modalities and modality.upper() not in {m.upper() for m in self.modalities}:
            return f"modality {modality or '(none)'} is not one of {', '.join(self.modalities)}"
        if self.body_parts and body_part.upper() not in {b.upper() for b in self.body_parts}:
            return f"body part {body_part or '(none)'} is not one of {', '.join(self.body_parts)}"
        if slices < self.min_slices:
            return f"{slices} images, the model needs at least {self.min_slices}"
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "modalities": list(self.modalities),
            "body_parts": list(self.body_parts),
            "min_slices": self.min_slices,
        }


class SeriesInput:
    """One series handed to a model: its datasets, and its volume built on first use.

    A model that takes several series (``Model.inputs``) gets the first role's series here,
    which fixes the grid and is what results reference, with the others in ``companions``
    by role name; :meth:`channels` resamples them all onto this series' grid.
    """

    def __init__(
        self, datasets: Sequence[Dataset], companions: Mapping[str, SeriesInput] | None = None
    ) -> None:
        if not datasets:
            raise InvalidInput("a model input needs at least one image")
        self.datasets = list(datasets)
        self.companions = dict(companions or {})

    @cached_property
    def volume(self) -> Volume:
        return volume_from_datasets(self.datasets)

    def channels(self, roles: Sequence[str]) -> npt.NDArray[np.float32]:
        """``[len(roles), k, j, i]``: this series for the first role, the companions for the
        others, each resampled (trilinear, patient coordinates) onto this series' grid."""
        from radpacs.ai.geometry import resample_onto

        reference = self.volume
        frame = str(reference.datasets[0].get("FrameOfReferenceUID", ""))
        stacked = [reference.array.astype(np.float32, copy=False)]
        for role in roles[1:]:
            if role not in self.companions:
                raise InvalidInput(f"the model needs a {role} series and none was given")
            other = self.companions[role].volume
            if frame and str(other.datasets[0].get("FrameOfReferenceUID", frame)) != frame:
                raise InvalidInput(
                    f"the {role} series has another Frame of Reference than the {roles[0]} "
                    "series: they cannot be put on one grid"
                )
            stacked.append(resample_onto(other, reference))
        return np.stack(stacked)


@dataclass(frozen=True)
class SeriesRole:
    """One series a multi-series model takes: a name (T1, FLAIR) and how to recognise it.

    A series plays the role when its modality matches (if given) and its SeriesDescription
    matches one of ``patterns`` and none of ``exclude`` (shell-style, case-insensitive).
    """

    name: str
    patterns: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    modality: str = ""

    def matches(self, modality: str, description: str) -> bool:
        from fnmatch import fnmatchcase

        text = description.lower()
        if self.modality and modality.upper() != self.modality.upper():
            return False
        return any(fnmatchcase(text, p.lower()) for p in self.patterns) and not any(
            fnmatchcase(text, p.lower()) for p in self.exclude
        )


@dataclass(frozen=True)
class ImageClassification:
    """The class scores of one image and the classes reported as findings.

    ``findings`` None means single-label: the most probable class is the finding. A
    multi-label model gives the classes at or above its threshold (possibly none).
    """

    sop_uid: str
    scores: tuple[ClassScore, ...]
    findings: tuple[ClassScore, ...] | None = None

    @property
    def coded_findings(self) -> tuple[ClassScore, ...]:
        if self.findings is not None:
            return self.findings
        return (max(self.scores, key=lambda s: s.probability),) if self.scores else ()


@dataclass
class ModelResult:
    """What ``Model.run`` returns: a label map with its labels, or per-image class scores."""

    label_map: npt.NDArray[np.integer] | None = None
    labels: dict[int, Label] = field(default_factory=dict)
    classifications: list[ImageClassification] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Model(Protocol):
    """A model plugin. ``parameters`` are the defaults, overridable per job."""

    name: str
    version: str
    task: Task
    accepts: Accepts
    weights_sha256: str
    description: str

    @property
    def parameters(self) -> Mapping[str, Any]: ...

    def run(
        self, series: SeriesInput, progress: Progress, parameters: Mapping[str, Any]
    ) -> ModelResult: ...


def provenance_of(model: Model, parameters: Mapping[str, Any]) -> Provenance:
    """The provenance written into results: model identity and the parameters used."""
    return Provenance(
        model.name,
        model.version,
        model.weights_sha256,
        parameters={key: str(value) for key, value in parameters.items()},
    )


def model_json(model: Model) -> dict[str, Any]:
    return {
        "name": model.name,
        "version": model.version,
        "task": str(model.task),
        "description": model.description,
        "accepts": model.accepts.to_json(),
        "weights_sha256": model.weights_sha256,
        "parameters": dict(model.parameters),
    }


@dataclass
class ModelRegistry:
    """The models found at start, by name, and the plugins that failed to load."""

    models: dict[str, Model] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Model:
        try:
            return self.models[name]
        except KeyError:
            raise NotFound(f"no model named {name!r}") from None

    def add(self, model: Model, source: str) -> None:
        if not isinstance(model, Model):
            self.errors[source] = f"{model!r} does not have the attributes of a radpacs model"
        elif model.name in self.models:
            self.errors[source] = f"a model named {model.name!r} is already registered"
        else:
            self.models[model.name] = model
