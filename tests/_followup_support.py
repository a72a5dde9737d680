"""A phantom patient for the follow-up tests: one head, four visits, four lesions.

Each visit is a study of its own (own date, own frame of reference, the head placed
elsewhere on the table), with its own slice spacing; the third visit is sagittal. Lesions
are balls (radius in mm) at fixed places relative to the head centre:

========  ==========  ==========  ==============  ==========
lesion    baseline    visit 1     visit 2 (sag.)  visit 3
========  ==========  ==========  ==============  ==========
A         12          7           7               7
B         9           6           6.5             11
C         7           5           gone            gone
D         -           -           -               6 (new)
========  ==========  ==========  ==============  ==========
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from pydicom import Dataset
from pydicom.uid import generate_uid

from _ai_support import ORIENTATIONS, make_series
from radpacs.ai.geometry import volume_from_datasets
from radpacs.ai.provenance import Provenance
from radpacs.ai.results.labels import Label
from radpacs.ai.results.seg import build_seg

PATIENT_ID = "FU-PHANTOM-1"
HEAD_SEMI_AXES = (32.0, 36.0, 40.0)
LESION_OFFSETS = {
    "A": (-12.0, -10.0, 8.0),
    "B": (14.0, 8.0, -10.0),
    "C": (0.0, 14.0, 18.0),
    "D": (-10.0, 16.0, -18.0),
}
RADII: list[dict[str, float]] = [
    {"A": 12, "B": 9, "C": 7},
    {"A": 7, "B": 6, "C": 5},
    {"A": 7, "B": 6.5},
    {"A": 7, "B": 11, "D": 6},
]


@dataclass(frozen=True)
class Visit:
    date: str
    orientation: str
    spacing: tuple[float, float, float]  # (column, row, slice) mm
    shape: tuple[int, int, int]  # (slices, rows, columns)
    head_centre: tuple[float, float, float]


VISITS = [
    Visit("20260110", "axial", (0.8, 0.8, 2.0), (50, 100, 100), (0.0, 0.0, 0.0)),
    Visit("20260310", "axial", (0.8, 0.8, 3.0), (34, 100, 100), (4.0, -3.0, 25.0)),
    Visit("20260510", "sagittal", (0.8, 0.8, 2.5), (32, 125, 100), (-3.0, 2.0, -15.0)),
    Visit("20260710", "axial", (0.8, 0.8, 1.5), (67, 100, 100), (2.0, 5.0, 10.0)),
]
LESION_LABEL = Label(
    "metastasis",
    (230, 25, 75),
    category_code=("49755003", "SCT", "Morphologically Altered Structure"),
    type_code=("14799000", "SCT", "Neoplasm, Metastatic"),
)


def ball_volume(radius: float) -> float:
    return 4.0 / 3.0 * math.pi * radius**3


def _grid_origin(visit: Visit) -> npt.NDArray[np.float64]:
    """The first voxel's position so that the grid is centred on the head."""
    row, col = (np.asarray(v) for v in ORIENTATIONS[visit.orientation])
    normal = np.cross(row, col)
    k, j, i = visit.shape
    half = (
        row * visit.spacing[0] * (i - 1) / 2
        + col * visit.spacing[1] * (j - 1) / 2
        + normal * visit.spacing[2] * (k - 1) / 2
    )
    return np.asarray(visit.head_centre) - half


def _voxel_centres(visit: Visit) -> npt.NDArray[np.float64]:
    row, col = (np.asarray(v) for v in ORIENTATIONS[visit.orientation])
    normal = np.cross(row, col)
    k, j, i = np.indices(visit.shape, dtype=np.float64)
    origin = _grid_origin(visit)
    return np.asarray(
        origin
        + i[..., None] * row * visit.spacing[0]
        + j[..., None] * col * visit.spacing[1]
        + k[..., None] * normal * visit.spacing[2]
    )


def visit_series(index: int) -> tuple[list[Dataset], npt.NDArray[np.int16], dict[str, float]]:
    """The visit's CT series, its lesion label map (1..n in lesion order) and the radii."""
    visit = VISITS[index]
    xyz = _voxel_centres(visit)
    rel = xyz - np.asarray(visit.head_centre)
    head = ((rel / np.asarray(HEAD_SEMI_AXES)) ** 2).sum(axis=-1) <= 1
    array = np.where(head, 40, -1000).astype(np.int16)
    labels = np.zeros(visit.shape, dtype=np.int16)
    radii = RADII[index]
    for number, name in enumerate(sorted(radii), start=1):
        inside = ((rel - np.asarray(LESION_OFFSETS[name])) ** 2).sum(axis=-1) <= radii[name] ** 2
        array[inside] = 70
        labels[inside] = number
    origin = _grid_origin(visit)
    study_uid = generate_uid()
    datasets = make_series(
        array,
        orientation=visit.orientation,
        spacing=visit.spacing,
        origin=tuple(float(v) for v in origin),  # type: ignore[arg-type]
        study_uid=study_uid,
        description=f"visit {index}",
    )
    for ds in datasets:
        ds.PatientID = PATIENT_ID
        ds.PatientName = "Phantom^Followup"
        ds.StudyDate = visit.date
        ds.SeriesDate = visit.date
        ds.AccessionNumber = f"ACC{index}"
        ds.SpacingBetweenSlices = visit.spacing[2]
    return datasets, labels, radii


def visit_seg(index: int) -> tuple[list[Dataset], Dataset, dict[str, float]]:
    """The visit's series and a SEG with one segment per lesion present."""
    datasets, labels, radii = visit_series(index)
    volume = volume_from_datasets(datasets)
    # make_series puts slice k at origin + k x spacing along the normal: volume order is k
    names = sorted(radii)
    seg = build_seg(
        volume,
        labels,
        {
            n: Label(
                f"metastasis {name}",
                (230, 25, 75),
                LESION_LABEL.category_code,
                LESION_LABEL.type_code,
            )
            for n, name in enumerate(names, start=1)
        },
        Provenance("phantom-segmenter", "1.0"),
    )
    return datasets, seg, radii


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _content(value_type: str, relationship: str, concept: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code_item(*concept)]
    return item


def ohif_length_sr(
    image: Dataset,
    lengths: list[tuple[str, tuple[float, float, float, float], float]],
    concept: tuple[str, str, str] = ("G-D7FE", "SRT", "Length"),
) -> Dataset:
    """A measurement SR as OHIF's measurement tracking saves it through dcmjs (TID 1500):
    one Measurement Group per length, tracking identifier "Cornerstone3DTools@^0.1.0:Length",
    a NUM (SRT G-D7FE "Length", mm) inferred from a SCOORD POLYLINE of two image points
    selected from the referenced image. ``lengths`` are (label, (x1, y1, x2, y2), mm)."""
    return ohif_sr(
        image,
        [
            (f"Length {label}", [(concept, mm, "mm", "POLYLINE", list(points))])
            for label, points, mm in lengths
        ],
    )


NumSpec = tuple[tuple[str, str, str], float, str, str, list[float]]


def ohif_sr(image: Dataset, groups: list[tuple[str, list[NumSpec]]]) -> Dataset:
    """A dcmjs-style TID 1500 SR: per group a tracking identifier and UID, then one NUM per
    spec (concept, value, UCUM unit, graphic type, image points x1, y1, ...), each inferred
    from a SCOORD selected from ``image``."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    sr = Dataset()
    sr.file_meta = FileMetaDataset()
    sr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.34"
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.34"
    sr.SOPInstanceUID = generate_uid()
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in (
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "StudyDate",
        "AccessionNumber",
        "StudyID",
        "PatientBirthDate",
        "PatientSex",
        "StudyTime",
    ):
        if keyword in image:
            setattr(sr, keyword, image.data_element(keyword).value)
    sr.SeriesInstanceUID = generate_uid()
    sr.Modality = "SR"
    sr.SeriesNumber = 4700
    sr.InstanceNumber = 1
    sr.SeriesDescription = "Research Derived Series"
    sr.ContentDate = "20260311"
    sr.ContentTime = "101010"
    sr.Manufacturer = "dcmjs"
    sr.ValueType = "CONTAINER"
    sr.ContinuityOfContent = "SEPARATE"
    sr.CompletionFlag = "COMPLETE"
    sr.VerificationFlag = "UNVERIFIED"
    sr.ConceptNameCodeSequence = [_code_item("126000", "DCM", "Imaging Measurement Report")]
    template = Dataset()
    template.MappingResource = "DCMR"
    template.TemplateIdentifier = "1500"
    sr.ContentTemplateSequence = [template]
    items = []
    for label, specs in groups:
        group = _content("CONTAINER", "CONTAINS", ("125007", "DCM", "Measurement Group"))
        group.ContinuityOfContent = "SEPARATE"
        tracking = _content("TEXT", "HAS OBS CONTEXT", ("112039", "DCM", "Tracking Identifier"))
        tracking.TextValue = f"Cornerstone3DTools@^0.1.0:{label}"
        uid = _content("UIDREF", "HAS OBS CONTEXT", ("112040", "DCM", "Tracking Unique Identifier"))
        uid.UID = generate_uid()
        children = [tracking, uid]
        for concept, value, unit, graphic, points in specs:
            num = _content("NUM", "CONTAINS", concept)
            measured = Dataset()
            measured.MeasurementUnitsCodeSequence = [_code_item(unit, "UCUM", unit)]
            measured.NumericValue = f"{value:.4f}"
            num.MeasuredValueSequence = [measured]
            scoord = Dataset()
            scoord.RelationshipType = "INFERRED FROM"
            scoord.ValueType = "SCOORD"
            scoord.GraphicType = graphic
            scoord.GraphicData = points
            image_item = Dataset()
            image_item.RelationshipType = "SELECTED FROM"
            image_item.ValueType = "IMAGE"
            ref = Dataset()
            ref.ReferencedSOPClassUID = image.SOPClassUID
            ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
            image_item.ReferencedSOPSequence = [ref]
            scoord.ContentSequence = [image_item]
            num.ContentSequence = [scoord]
            children.append(num)
        group.ContentSequence = children
        items.append(group)
    container = _content("CONTAINER", "CONTAINS", ("126010", "DCM", "Imaging Measurements"))
    container.ContinuityOfContent = "SEPARATE"
    container.ContentSequence = items
    sr.ContentSequence = [container]
    return sr


def wait_for_followup_jobs(store: object, timeout: float = 240.0) -> None:
    """Wait until no job of a follow-up kind (or an AI job) is queued or running in
    ``store`` (a :class:`radpacs.archive.jobs.JobStore`): the server feeds the follow-up
    through background jobs."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = [
            job
            for state in ("queued", "running")
            for job in store.find(state=state, limit=1000)  # type: ignore[attr-defined]
            if job.kind.startswith("followup.") or job.kind == "ai"
        ]
        if not pending:
            return
        time.sleep(0.2)
    raise AssertionError(f"follow-up jobs still pending after {timeout} s: {pending}")


def wait_for_patient(
    url: str, patient_id: str, timepoints: int, sources: int, timeout: float = 240.0
) -> dict[str, object]:
    """Poll a live server until the patient has ``timepoints`` and ``sources`` recorded."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    data: dict[str, object] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/api/followup/patients/{patient_id}", timeout=30)
        if response.status_code == 200:
            data = response.json()
            if len(data["timepoints"]) == timepoints and len(data["sources"]) == sources:  # type: ignore[arg-type]
                return data
        time.sleep(0.3)
    raise AssertionError(f"patient {patient_id} not fed after {timeout} s: {data}")
