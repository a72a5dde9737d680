"""Several series per model input, resampled onto one grid in patient coordinates, and the
MONAI plugin end to end: a tiny untrained UNETR over a synthetic T1/T1c/T2/FLAIR study
(skipped without monai, except in CI)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from _ai_support import ball, dice, make_series
from _dciodvfy import dciodvfy_errors
from radpacs.ai.geometry import resample_onto, volume_from_datasets
from radpacs.ai.interface import SeriesRole

ROLES = [
    SeriesRole("T1", ("*t1*",), ("*post*", "*gd*", "*t1c*", "*+c*"), "MR"),
    SeriesRole("T1c", ("*t1*post*", "*t1*gd*", "*t1c*", "*t1*+c*"), (), "MR"),
    SeriesRole("T2", ("*t2*",), ("*flair*",), "MR"),
    SeriesRole("FLAIR", ("*flair*",), (), "MR"),
]


def _study() -> tuple[dict[str, list[pydicom.Dataset]], np.ndarray]:
    """T1, T1c, T2 axial on different grids and FLAIR sagittal; one frame, one study.

    A 9 mm ball (bright in T1c and FLAIR) at the same patient position in all four; returns
    the series by description and the ball on the T1 grid.
    """
    study, frame = generate_uid(), generate_uid()
    t1_shape, t1_spacing = (20, 48, 48), (1.0, 1.0, 2.0)  # (k, j, i); spacing (i, j, k)
    centre = np.array([-76.0, -56.0, 60.0])  # each series' grid is centred here
    lesion = ball(t1_shape, (10, 24, 24), 9.0, t1_spacing)
    series: dict[str, list[pydicom.Dataset]] = {}
    layouts = {
        "T1 MPRAGE": ("axial", t1_shape, t1_spacing, 300, 350),
        "T1 post gd": ("axial", t1_shape, t1_spacing, 300, 900),
        "T2 TSE": ("axial", (16, 40, 40), (1.25, 1.25, 2.5), 500, 700),
        "FLAIR": ("sagittal", (24, 40, 20), (1.25, 1.25, 2.0), 200, 800),
    }
    for description, (orientation, shape, spacing, tissue, bright) in layouts.items():
        probe = make_series(np.zeros((2, 2, 2), np.int16), orientation, spacing=spacing)
        # put this series' grid around the same centre: voxel index of the centre -> origin
        volume = volume_from_datasets(probe)
        mid = np.array([shape[2] / 2, shape[1] / 2, shape[0] / 2])
        offset = volume.affine[:3, :3] @ mid
        this_origin = tuple(centre - offset)
        k, j, i = np.indices(shape, dtype=np.float64)
        ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
        affine = volume.affine.copy()
        affine[:3, 3] = this_origin
        xyz = (affine @ ijk)[:3].T
        inside = (np.linalg.norm(xyz - centre, axis=1) <= 9.0).reshape(shape)
        array = np.where(inside, bright, tissue) + np.random.default_rng(0).normal(0, 10, shape)
        datasets = make_series(
            array.astype(np.int16),
            orientation,
            spacing=spacing,
            origin=this_origin,
            study_uid=study,
            modality="MR",
            description=description,
        )
        for ds in datasets:
            ds.FrameOfReferenceUID = frame
        series[description] = datasets
    return series, lesion


def test_roles_pick_series_by_description() -> None:
    names = ["T1 MPRAGE", "T1 post gd", "T2 TSE", "FLAIR", "T1C AX"]
    picks = {r.name: [n for n in names if r.matches("MR", n)] for r in ROLES}
    assert picks == {
        "T1": ["T1 MPRAGE"],
        "T1c": ["T1 post gd", "T1C AX"],
        "T2": ["T2 TSE"],
        "FLAIR": ["FLAIR"],
    }
    assert not ROLES[0].matches("CT", "T1 MPRAGE")


def test_every_sequence_lands_on_the_first_series_grid_in_patient_coordinates() -> None:
    from radpacs.ai.interface import SeriesInput

    series, lesion = _study()
    reference = SeriesInput(
        series["T1 MPRAGE"],
        {
            "T1c": SeriesInput(series["T1 post gd"]),
            "T2": SeriesInput(series["T2 TSE"]),
            "FLAIR": SeriesInput(series["FLAIR"]),
        },
    )
    channels = reference.channels(["T1", "T1c", "T2", "FLAIR"])
    assert channels.shape == (4, 20, 48, 48)
    for index, (tissue, bright) in enumerate([(300, 900), (500, 700), (200, 800)], start=1):
        found = channels[index] > (tissue + bright) / 2
        assert dice(found, lesion) > 0.85, index  # the sagittal FLAIR too
    # the same series resampled onto itself is unchanged
    t1 = volume_from_datasets(series["T1 MPRAGE"])
    assert np.allclose(resample_onto(t1, t1), t1.array, atol=1e-3)


if importlib.util.find_spec("monai") is None and not os.environ.get("CI"):
    pytest.skip("monai is not installed", allow_module_level=True)


def _tiny_unetr(folder: Path) -> str:
    """A 4-channel UNETR on 16^3 windows, untrained (seeded), saved as a state dict."""
    import torch
    from monai.bundle import ConfigParser

    network_def = {
        "_target_": "UNETR",
        "in_channels": 4,
        "out_channels": 2,
        "img_size": [16, 16, 16],
        "feature_size": 8,
        "hidden_size": 48,
        "mlp_dim": 96,
        "num_heads": 4,
    }
    torch.manual_seed(0)
    net = ConfigParser({"network_def": network_def}).get_parsed_content("network_def")
    torch.save(net.state_dict(), folder / "unetr.pt")
    manifest = {
        "name": "brain-lesions-tiny",
        "version": "0",
        "network_def": network_def,
        "checkpoint": "unetr.pt",
        "sha256": hashlib.sha256((folder / "unetr.pt").read_bytes()).hexdigest(),
        "inputs": [
            {"name": r.name, "patterns": list(r.patterns), "exclude": list(r.exclude)}
            for r in ROLES
        ],
        "modality": "MR",
        "roi_size": [16, 16, 16],
        "overlap": 0.25,
        "labels": {"1": "lesion"},
    }
    (folder / "tiny.json").write_text(json.dumps(manifest))
    return str(manifest["name"])


def test_tiny_unetr_end_to_end_writes_seg_rtstruct_and_sr(tmp_path: Path) -> None:
    from radpacs.ai.execute import KIND, run_ai_job
    from radpacs.archive import Archive
    from radpacs.archive.jobs import JobStore
    from radpacs.jobs.registry import JobContext
    from radpacs.settings import load_settings

    models = tmp_path / "monai"
    models.mkdir()
    name = _tiny_unetr(models)
    settings = load_settings(
        data_dir=tmp_path / "data",
        monai_models_dir=models,
        ai_plugins=["radpacs.ai.plugins.monai_seg:models"],
    )
    series, _ = _study()
    archive = Archive.from_settings(settings)
    try:
        payloads = []
        for datasets in series.values():
            for ds in datasets:
                buffer = io.BytesIO()
                ds.save_as(buffer, enforce_file_format=True)
                payloads.append(buffer.getvalue())
        archive.store_many(payloads)
        store = JobStore(archive.engine)
        study = series["T1 MPRAGE"][0].StudyInstanceUID
        job, _ = store.submit(KIND, {"model": name, "study": study}, study_uid=study)
        # the handler the job worker runs, in this process
        outcome = run_ai_job(JobContext(store.get(job.id), settings, archive, store))
        result_series = outcome.result["result_series"]
        modalities = sorted(r["modality"] for r in result_series)
        assert modalities == ["RTSTRUCT", "SEG", "SR"]
        t1_uid = series["T1 MPRAGE"][0].SeriesInstanceUID
        assert {r["source_series"] for r in result_series} == {t1_uid}
        for result in result_series:
            for file in archive.instance_files(study, result["series"]):
                ds = archive.read_file(file)
                assert dciodvfy_errors(ds) == [], result["modality"]
                if ds.Modality == "SEG":
                    assert ds.Rows == 48 and ds.Columns == 48  # the T1 grid
                    algorithm = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence
                    assert "device" in algorithm[0].AlgorithmParameters
    finally:
        archive.close()


def test_a_monai_bundle_folder_loads_through_the_same_parser(tmp_path: Path) -> None:
    import torch

    from radpacs.ai.plugins.monai_seg import MonaiSegmenter

    _tiny_unetr(tmp_path)
    manifest = json.loads((tmp_path / "tiny.json").read_text())
    bundle = tmp_path / "bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    (bundle / "configs" / "inference.json").write_text(
        json.dumps({"network_def": manifest.pop("network_def"), "other": 1})
    )
    (tmp_path / "unetr.pt").rename(bundle / "models" / "model.pt")
    del manifest["checkpoint"], manifest["sha256"]
    manifest["bundle"] = "bundle"
    (tmp_path / "tiny.json").write_text(json.dumps(manifest))
    model = MonaiSegmenter(tmp_path / "tiny.json")
    net = model.network(torch.device("cpu"))
    saved = torch.load(bundle / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in saved.items())
    assert [r.name for r in model.inputs] == ["T1", "T1c", "T2", "FLAIR"]
