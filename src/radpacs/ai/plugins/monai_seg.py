"""MONAI networks (a UNETR checkpoint or a MONAI bundle) from a local folder, over several
series of a study, with sliding-window inference (seed 004's brain lesion segmenter).

Optional: listed when ``monai`` and ``torch`` import and the setting ``monai_models_dir``
holds manifests (``*.json``), one per model::

    {
      "name": "brain-lesions", "version": "1",
      "network_def": {"_target_": "UNETR", "in_channels": 4, "out_channels": 2,
                      "img_size": [96, 96, 96], "feature_size": 16},   # MONAI config syntax
      "checkpoint": "unetr.pt", "sha256": "<hex>",        # a state dict (or {"state_dict": ..})
      # or, instead of network_def/checkpoint: "bundle": "my_bundle"   (a MONAI bundle folder:
      # configs/inference.json's "network_def", weights models/model.pt)
      "inputs": [
        {"name": "T1", "patterns": ["*t1*"], "exclude": ["*post*", "*gd*", "*t1c*", "*+c*"]},
        {"name": "T1c", "patterns": ["*t1*post*", "*t1*gd*", "*t1c*", "*t1*+c*"]},
        {"name": "T2", "patterns": ["*t2*"], "exclude": ["*flair*"]},
        {"name": "FLAIR", "patterns": ["*flair*"]}
      ],
      "modality": "MR",
      "roi_size": [96, 96, 96], "overlap": 0.25, "sw_batch_size": 1,
      "labels": {"1": "lesion"}
    }

A job runs once per study: each input role gets a series by its SeriesDescription
(:func:`radpacs.ai.execute.assign_roles`); the others are resampled onto the first role's
grid in patient coordinates (:meth:`SeriesInput.channels`), each channel is normalised to zero
mean and unit variance over its non-zero voxels (MONAI ``NormalizeIntensity(nonzero=True,
channel_wise=True)``), and ``sliding_window_inference`` runs the network over
``[1, channels, slice, row, column]`` on the GPU when torch sees one, else on the CPU; the
arg-max over output channels is the label map (SEG, RTSTRUCT and measurement SR as usual).
The checkpoint's SHA-256 is checked when the manifest is read and before loading.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from radpacs.ai.interface import Accepts, ModelResult, Progress, SeriesInput, SeriesRole, Task
from radpacs.ai.results.labels import Label
from radpacs.errors import ConfigurationError, InvalidInput

if TYPE_CHECKING:
    from radpacs.settings import Settings

__all__ = ["MonaiSegmenter", "models"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class MonaiSegmenter:
    """One manifest-described MONAI segmentation network (see the module docstring)."""

    task = Task.SEGMENTATION

    def __init__(self, manifest_path: Path) -> None:
        try:
            manifest = json.loads(manifest_path.read_text())
            self.name = str(manifest["name"])
            self.version = str(manifest["version"])
            folder = manifest_path.parent
            if "bundle" in manifest:
                bundle = folder / str(manifest["bundle"])
                config = json.loads((bundle / "configs" / "inference.json").read_text())
                self.network_def: dict[str, Any] = config["network_def"]
                self.checkpoint = bundle / "models" / "model.pt"
                expected = manifest.get("sha256")
            else:
                self.network_def = dict(manifest["network_def"])
                self.checkpoint = folder / str(manifest["checkpoint"])
                expected = manifest["sha256"]
            self.inputs = tuple(
                SeriesRole(
                    str(role["name"]),
                    tuple(role["patterns"]),
                    tuple(role.get("exclude", ())),
                    str(manifest.get("modality", "")),
                )
                for role in manifest["inputs"]
            )
            self.roi_size = tuple(int(v) for v in manifest["roi_size"])
            self.overlap = float(manifest.get("overlap", 0.25))
            self.sw_batch_size = int(manifest.get("sw_batch_size", 1))
            labels = manifest.get("labels", {"1": "lesion"})
            self.labels = {int(k): Label.default(str(v), int(k)) for k, v in labels.items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"MONAI manifest {manifest_path} is invalid: {exc}") from exc
        if not self.inputs or len(self.roi_size) != 3:
            raise ConfigurationError(
                f"MONAI manifest {manifest_path}: needs inputs and a 3-value roi_size"
            )
        if not self.checkpoint.is_file():
            raise ConfigurationError(f"checkpoint {self.checkpoint} does not exist")
        self.weights_sha256 = _sha256(self.checkpoint)
        if expected is not None and str(expected).lower() != self.weights_sha256:
            raise ConfigurationError(
                f"checkpoint {self.checkpoint} has sha256 {self.weights_sha256}, the manifest "
                f"says {expected}; refusing it"
            )
        modality = str(manifest.get("modality", ""))
        self.accepts = Accepts((modality,) if modality else (), min_slices=3)
        roles = ", ".join(r.name for r in self.inputs)
        self.description = str(
            manifest.get("description", f"MONAI network over {roles}, sliding window")
        )

    @property
    def parameters(self) -> dict[str, Any]:
        return {"overlap": self.overlap, "sw_batch_size": self.sw_batch_size}

    def network(self, device: Any) -> Any:
        """The network built by MONAI's config parser, with the checkpoint's weights."""
        import torch
        from monai.bundle import ConfigParser

        if _sha256(self.checkpoint) != self.weights_sha256:
            raise ConfigurationError(f"checkpoint {self.checkpoint} changed since it was read")
        parser = ConfigParser({"network_def": self.network_def})
        net = parser.get_parsed_content("network_def")
        state = torch.load(self.checkpoint, map_location=device, weights_only=True)
        if isinstance(state, dict):
            for key in ("state_dict", "model", "network"):
                if key in state and isinstance(state[key], dict):
                    state = state[key]
                    break
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigurationError(
                f"checkpoint {self.checkpoint} does not fit the network: {exc}"
            ) from exc
        return net.to(device).eval()

    def run(
        self, series: SeriesInput, progress: Progress, parameters: Mapping[str, Any]
    ) -> ModelResult:
        import torch
        from monai.inferers import sliding_window_inference
        from monai.transforms import NormalizeIntensity

        unknown = set(parameters) - set(self.parameters)
        if unknown:
            raise InvalidInput(f"unknown parameters for {self.name}: {', '.join(sorted(unknown))}")
        p = {**self.parameters, **parameters}
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        channels = series.channels([r.name for r in self.inputs])
        progress(0.2)
        x = NormalizeIntensity(nonzero=True, channel_wise=True)(torch.from_numpy(channels))
        x = torch.as_tensor(x, dtype=torch.float32)[None].to(device)
        net = self.network(device)
        progress(0.3)
        with torch.no_grad():
            logits = sliding_window_inference(
                x,
                self.roi_size,
                int(p["sw_batch_size"]),
                net,
                overlap=float(p["overlap"]),
                mode="gaussian",
            )
        label_map = torch.argmax(logits[0], dim=0).to("cpu").numpy().astype(np.uint8)
        progress(0.9)
        used = {**{k: str(v) for k, v in p.items()}, "device": device.type}
        return ModelResult(label_map=label_map, labels=dict(self.labels), parameters=used)


def models(settings: Settings) -> list[MonaiSegmenter]:
    """One model per manifest in ``monai_models_dir``, when MONAI and torch are installed."""
    folder = settings.monai_models_dir
    if folder is None or importlib.util.find_spec("monai") is None:
        return []
    return [MonaiSegmenter(path) for path in sorted(Path(folder).glob("*.json"))]
