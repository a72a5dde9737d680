"""Synthetic CT/MR series with real geometry, masks and a Dice score for the AI tests."""

from __future__ import annotations

import random

import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.uid import generate_uid

from conftest import make_ct

ORIENTATIONS = {
    # row direction (i), column direction (j); the normal is their cross product
    "axial": ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),
    "sagittal": ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0]),
    "coronal": ([1.0, 0.0, 0.0], [0.0, 0.0, -1.0]),
}


def make_series(
    array: npt.NDArray[np.integer],
    orientation: str = "axial",
    spacing: tuple[float, float, float] = (0.8, 0.7, 2.5),
    origin: tuple[float, float, float] = (-100.0, -80.0, 40.0),
    study_uid: str | None = None,
    modality: str = "CT",
    shuffle: bool = True,
    description: str = "synthetic",
) -> list[Dataset]:
    """One dataset per slice of ``array[k, j, i]`` (int16 stored values, HU for CT).

    ``spacing`` is (column, row, slice) in mm. InstanceNumber is scrambled on purpose (and the
    list shuffled) so that only the positions give the right order.
    """
    row, col = (np.asarray(v) for v in ORIENTATIONS[orientation])
    normal = np.cross(row, col)
    study_uid = study_uid or generate_uid()
    series_uid = generate_uid()
    frame_uid = generate_uid()
    numbers = list(range(1, len(array) + 1))
    random.Random(7).shuffle(numbers)
    datasets = []
    for k, plane in enumerate(array):
        position = np.asarray(origin) + normal * spacing[2] * k
        ds = make_ct(
            study_uid,
            series_uid,
            Modality=modality,
            SeriesDescription=description,
            FrameOfReferenceUID=frame_uid,
            InstanceNumber=numbers[k],
            ImagePositionPatient=[f"{v:.3f}" for v in position],
            ImageOrientationPatient=[*row.tolist(), *col.tolist()],
            PixelSpacing=[spacing[1], spacing[0]],
            SliceThickness=spacing[2],
            SliceLocation=f"{float(position @ normal):.3f}",
            Rows=plane.shape[0],
            Columns=plane.shape[1],
            BitsAllocated=16,
            BitsStored=16,
            HighBit=15,
            PixelRepresentation=1,
            RescaleSlope=1,
            RescaleIntercept=0,
        )
        ds.PixelData = np.ascontiguousarray(plane.astype(np.int16)).tobytes()
        for keyword in (
            "WindowCenter",
            "WindowWidth",
            "SmallestImagePixelValue",
            "LargestImagePixelValue",
        ):
            if keyword in ds:
                delattr(ds, keyword)
        datasets.append(ds)
    if shuffle:
        random.Random(3).shuffle(datasets)
    return datasets


def ball(
    shape: tuple[int, int, int],
    center: tuple[float, float, float],
    radius: float,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> npt.NDArray[np.bool_]:
    """A solid ellipsoid (a ball in mm) on a (k, j, i) grid; center in voxels (k, j, i)."""
    k, j, i = np.indices(shape, dtype=np.float64)
    d = (
        ((i - center[2]) * spacing[0]) ** 2
        + ((j - center[1]) * spacing[1]) ** 2
        + ((k - center[0]) * spacing[2]) ** 2
    )
    return np.asarray(d <= radius**2)


def dice(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(a, b).sum()) / total


def add_sphere(
    volume: npt.NDArray[np.floating],
    center_mm: tuple[float, float, float],
    radius: float,
    spacing_kji: tuple[float, float, float],
    value: float,
    supersample: int = 3,
) -> float:
    """Blend a sphere of ``value`` into ``volume`` with partial volume, as a scanner would.

    ``center_mm`` is (k, j, i) in mm from the first voxel's centre. Each voxel takes the
    fraction of ``supersample``^3 sub-points inside the sphere. Returns 4/3 pi r^3 (mm3).
    """
    c = np.asarray(center_mm)
    sp = np.asarray(spacing_kji)
    lo = np.maximum(np.floor((c - radius) / sp).astype(int) - 1, 0)
    hi = np.minimum(np.ceil((c + radius) / sp).astype(int) + 2, volume.shape)
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    axes = [
        ((np.arange(a, b)[:, None] + offsets).ravel()) * s
        for a, b, s in zip(lo, hi, sp, strict=True)
    ]
    kk, jj, ii = np.meshgrid(*axes, indexing="ij")
    inside = (kk - c[0]) ** 2 + (jj - c[1]) ** 2 + (ii - c[2]) ** 2 <= radius**2
    n = [b - a for a, b in zip(lo, hi, strict=True)]
    fraction = inside.reshape(n[0], supersample, n[1], supersample, n[2], supersample).mean(
        axis=(1, 3, 5)
    )
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    volume[box] = volume[box] * (1 - fraction) + value * fraction
    return float(4.0 / 3.0 * np.pi * radius**3)


def body_phantom(
    shape: tuple[int, int, int],
    spacing_kji: tuple[float, float, float],
    tissue: float,
    noise: float,
    spheres: list[tuple[tuple[float, float, float], float, float]],
    seed: int = 0,
) -> tuple[npt.NDArray[np.int16], list[float]]:
    """An elliptic body of ``tissue`` in air (-1000), spheres ((k, j, i) mm, radius, value)
    with partial volume, Gaussian noise; int16 stored values and each sphere's true volume."""
    _, j, i = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cj, ci = (shape[1] - 1) / 2, (shape[2] - 1) / 2
    body = ((j - cj) / (0.48 * shape[1])) ** 2 + ((i - ci) / (0.48 * shape[2])) ** 2 <= 1
    volume = np.broadcast_to(np.where(body, float(tissue), -1000.0), shape).astype(np.float64)
    truths = [add_sphere(volume, c, r, spacing_kji, v) for c, r, v in spheres]
    volume += np.random.default_rng(seed).normal(0, noise, shape)
    return np.round(volume).astype(np.int16), truths
