"""torchxrayvision chest radiograph classification (seed 003) as a model plugin.

Optional: listed when ``torchxrayvision`` and ``torch`` are installed and the setting
``xrv_weights_dir`` names a folder holding the weight file of each name in ``xrv_weights``
(default ``densenet121-res224-all``); a missing file is listed under the registry's errors
with the file name to place there. Weights are never downloaded at run time: the loader
checks the file before the library's own constructor (which would download) runs.

The library's real classes and code do the work: ``xrv.models.DenseNet(weights=name,
cache_dir=folder)`` loads the file, ``xrv.utils.read_xray_dcm`` scales pixels by the image's
bit depth (``2**BitsStored - 1`` to [-1024, 1024], MONOCHROME1 inverted),
``xrv.datasets.XRayCenterCrop`` and ``XRayResizer`` crop and resize to the model's resolution.
The outputs are calibrated probabilities (the library's operating points map to 0.5), one per
pathology, independent (multi-label): every pathology goes into the image's SR, and each one
at or above ``threshold`` (setting ``xrv_threshold``, also a run parameter) is coded as a
finding.

torchxrayvision 1.5.7 imports torchvision at the top of its ``models`` and ``datasets``
modules but its DenseNet, preprocessing and DICOM reader do not use it, and PyPI's
torchvision wheels do not load beside the CPU torch wheel this project uses (``operator
torchvision::nms does not exist``). When torchvision cannot be imported, :func:`_import_xrv`
imports the library with a placeholder ``torchvision`` module present only during that import;
any use of it (the ResNet models, the dataset transforms) raises ImportError.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import sys
import types
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radpacs.ai.interface import (
    Accepts,
    ImageClassification,
    ModelResult,
    Progress,
    SeriesInput,
    Task,
)
from radpacs.ai.results.sr import ClassScore
from radpacs.errors import ConfigurationError, InvalidInput

if TYPE_CHECKING:
    from radpacs.settings import Settings

__all__ = ["XrvClassifier", "models", "weights_file"]

# SNOMED CT codes for the pathologies that have an obvious concept; the others use 99RADPACS.
CODES: dict[str, tuple[str, str, str]] = {
    "Atelectasis": ("46621007", "SCT", "Atelectasis"),
    "Consolidation": ("95436008", "SCT", "Lung consolidation"),
    "Pneumothorax": ("36118008", "SCT", "Pneumothorax"),
    "Edema": ("19242006", "SCT", "Pulmonary edema"),
    "Emphysema": ("87433001", "SCT", "Pulmonary emphysema"),
    "Fibrosis": ("51615001", "SCT", "Fibrosis of lung"),
    "Effusion": ("60046008", "SCT", "Pleural effusion"),
    "Pneumonia": ("233604007", "SCT", "Pneumonia"),
    "Cardiomegaly": ("8186001", "SCT", "Cardiomegaly"),
    "Nodule": ("427359005", "SCT", "Solitary nodule of lung"),
    "Mass": ("126952004", "SCT", "Neoplasm of lung"),
    "Hernia": ("84089009", "SCT", "Hiatal hernia"),
    "Fracture": ("72704001", "SCT", "Fracture"),
}


def _code(pathology: str) -> tuple[str, str, str]:
    if pathology in CODES:
        return CODES[pathology]
    value = "XRV-" + "".join(c for c in pathology.upper() if c.isalnum())[:12]
    return (value, "99RADPACS", pathology.replace("_", " "))


@contextmanager
def _torchvision_placeholder() -> Iterator[None]:
    """A ``torchvision`` module that only exists during the import, when the real one fails."""
    try:
        import torchvision  # noqa: F401

        yield
        return
    except Exception:  # a torchvision that does not match torch fails with RuntimeError
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]

    def _missing(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"torchvision.{name} is not available: torchvision does not load beside this torch"
        )

    names = ["torchvision", *(f"torchvision.{n}" for n in ("models", "transforms", "ops"))]
    for name in names:
        module = types.ModuleType(name)
        module.__path__ = []
        module.__getattr__ = _missing  # type: ignore[method-assign]
        sys.modules[name] = module
        if "." in name:
            setattr(sys.modules["torchvision"], name.split(".")[1], module)
    try:
        yield
    finally:
        for name in names:
            sys.modules.pop(name, None)


def _import_xrv() -> Any:
    """``torchxrayvision``, imported without needing a working torchvision (see above)."""
    if "torchxrayvision" in sys.modules:
        return sys.modules["torchxrayvision"]
    try:
        with _torchvision_placeholder():
            import torchxrayvision
    except ImportError as exc:
        raise ConfigurationError(f"torchxrayvision cannot be imported: {exc}") from exc
    return torchxrayvision


def weights_file(name: str) -> str:
    """The file name the library expects for weights ``name`` (the last part of its URL)."""
    xrv = _import_xrv()
    try:
        url = str(xrv.models.model_urls[name]["weights_url"])
    except KeyError as exc:
        known = sorted(k for k in xrv.models.model_urls if k.startswith("densenet"))
        raise ConfigurationError(
            f"unknown torchxrayvision weights {name!r}; known: {known}"
        ) from exc
    return url.rsplit("/", 1)[-1]


class XrvClassifier:
    """One torchxrayvision DenseNet-121 (weights ``name``) over CR/DX images."""

    task = Task.CLASSIFICATION
    accepts = Accepts(modalities=("CR", "DX", "DR", "RG", "XR"))

    def __init__(self, weights: str, folder: Path, threshold: float = 0.5) -> None:
        self.weights = weights
        self.folder = folder
        self.threshold = threshold
        self.name = f"xrv-{weights}"
        self.file = folder / weights_file(weights)
        if not self.file.is_file():
            raise ConfigurationError(
                f"torchxrayvision weights {weights}: put {self.file.name} into {folder} "
                "(see docs/ai.md); radpacs never downloads them"
            )
        self.version = str(_import_xrv().__version__)
        digest = hashlib.sha256()
        with self.file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
        self.weights_sha256 = digest.hexdigest()
        self.description = (
            f"torchxrayvision {self.version} DenseNet-121 ({weights}): probability of each "
            "chest pathology, findings above a threshold"
        )
        self._model: Any = None

    @property
    def parameters(self) -> dict[str, Any]:
        return {"threshold": self.threshold}

    def model(self) -> Any:
        """The library's DenseNet with the local weights (loaded once, eval mode)."""
        if self._model is None:
            if not self.file.is_file():  # checked again: the constructor would download
                raise ConfigurationError(f"weights file {self.file} is missing")
            xrv = _import_xrv()
            self._model = xrv.models.DenseNet(weights=self.weights, cache_dir=str(self.folder))
            self._model.eval()
        return self._model

    def preprocess(self, data: bytes) -> Any:
        """The library's preprocessing of one DICOM file: a [1, 1, R, R] float tensor."""
        import torch

        xrv = _import_xrv()
        with warnings.catch_warnings():  # it warns on every MONOCHROME1 image it inverts
            warnings.simplefilter("ignore", UserWarning)
            image = xrv.utils.read_xray_dcm(io.BytesIO(data))
        if image.ndim != 2:
            raise InvalidInput(f"expected one grayscale frame, got an array of {image.shape}")
        image = xrv.datasets.XRayCenterCrop()(image[None, ...])
        resolution = int(getattr(self.model(), "input_resolution", 224))
        image = xrv.datasets.XRayResizer(resolution)(image)
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, ...]

    def run(
        self, series: SeriesInput, progress: Progress, parameters: Mapping[str, Any]
    ) -> ModelResult:
        import torch

        unknown = set(parameters) - {"threshold"}
        if unknown:
            raise InvalidInput(f"unknown parameters for {self.name}: {', '.join(sorted(unknown))}")
        threshold = float(parameters.get("threshold", self.threshold))
        if not 0.0 <= threshold <= 1.0:
            raise InvalidInput(f"threshold {threshold} is not in [0, 1]")
        model = self.model()
        results = []
        for index, ds in enumerate(series.datasets):
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            try:
                x = self.preprocess(buffer.getvalue())
            except (ValueError, NotImplementedError) as exc:
                raise InvalidInput(f"image {ds.SOPInstanceUID}: {exc}") from exc
            with torch.no_grad():
                outputs = model(x)[0].numpy()
            scores = tuple(
                ClassScore(_code(pathology), float(np.clip(value, 0.0, 1.0)))
                for pathology, value in zip(model.pathologies, outputs, strict=True)
                if pathology  # the library leaves "" for outputs a dataset had no label for
            )
            findings = tuple(s for s in scores if s.probability >= threshold)
            results.append(ImageClassification(str(ds.SOPInstanceUID), scores, findings))
            progress((index + 1) / len(series.datasets))
        return ModelResult(classifications=results, parameters={"threshold": str(threshold)})


def models(settings: Settings) -> list[XrvClassifier]:
    """One classifier per configured weights name, when the library and a folder are there."""
    folder = settings.xrv_weights_dir
    if folder is None or importlib.util.find_spec("torchxrayvision") is None:
        return []
    return [
        XrvClassifier(name, Path(folder), settings.xrv_threshold) for name in settings.xrv_weights
    ]
