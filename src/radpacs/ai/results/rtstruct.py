"""Label map -> RT Structure Set (PS3.3 A.19, C.8.8.5-C.8.8.8), built in memory with pydicom.

Contours are traced per slice with :func:`skimage.measure.find_contours` at level 0.5 on
the mask (padded by one voxel so that shapes touching the border close), so they run
half-way between inside and outside pixel centres. Each contour point (row, column) of
slice k is mapped to patient coordinates with that slice's own ImagePositionPatient, so
the contour lies exactly in the plane of the image it references (ContourImageSequence).

Holes: every boundary is written as its own CLOSED_PLANAR contour, outer boundaries and
hole boundaries alike, with no keyhole cut. A reader fills a slice with the even-odd rule
(a point is inside when it lies within an odd number of the slice's contours of that ROI),
which is how Eclipse, RayStation, 3D Slicer (SlicerRT), dicompyler and plastimatch read
nested contours; :func:`rtstruct_to_mask` does the same (XOR of the filled contours).
Keyholes were not chosen because they put a zero-width bridge into the shape that some
readers rasterise as a one-pixel cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
from pydicom import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian

from radpacs.ai.geometry import Volume
from radpacs.ai.provenance import MANUFACTURER, Provenance
from radpacs.ai.results.labels import Label
from radpacs.ai.results.uids import new_uid
from radpacs.errors import InvalidInput

__all__ = ["RT_STRUCTURE_SET_STORAGE", "build_rtstruct", "mask_contours", "rtstruct_to_mask"]

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"

_COPIED = [
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
]


def mask_contours(mask2d: npt.NDArray[np.bool_]) -> list[npt.NDArray[np.float64]]:
    """Closed boundaries of a 2-D mask: (N, 2) arrays of (row, column), first point not repeated."""
    from skimage.measure import find_contours

    if not mask2d.any():
        return []
    padded = np.pad(mask2d.astype(np.float32), 1)
    contours = []
    for contour in find_contours(padded, 0.5):
        points = contour[:-1] - 1.0 if np.allclose(contour[0], contour[-1]) else contour - 1.0
        if len(points) >= 3:
            contours.append(points)
    return contours


def _code_item(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def build_rtstruct(
    volume: Volume,
    label_map: npt.NDArray[np.integer],
    labels: Mapping[int, Label],
    provenance: Provenance,
    series_number: int = 9002,
) -> Dataset:
    """An RT Structure Set with one ROI per label, referencing every slice of ``volume``."""
    if label_map.shape != volume.array.shape:
        raise InvalidInput(
            f"label map shape {label_map.shape} does not match the volume {volume.array.shape}"
        )
    source = volume.datasets[0]
    frame_of_reference = str(source.get("FrameOfReferenceUID", "")) or new_uid()
    now = datetime.now(UTC)
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(RT_STRUCTURE_SET_STORAGE)
    sop_uid = UID(new_uid())
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.SpecificCharacterSet = "ISO_IR 192"
    for keyword in _COPIED:
        if keyword in source:
            setattr(ds, keyword, source[keyword].value)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex"):
        ds.setdefault(keyword, "")
    for keyword in ("StudyDate", "StudyTime", "StudyID", "AccessionNumber"):
        ds.setdefault(keyword, "")
    ds.setdefault("ReferringPhysicianName", "")
    ds.Modality = "RTSTRUCT"
    ds.SeriesInstanceUID = new_uid()
    ds.SeriesNumber = series_number
    ds.SeriesDescription = f"{provenance.name} contours"[:64]
    ds.InstanceNumber = 1
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = provenance.name[:64]
    ds.SoftwareVersions = provenance.version[:64]
    ds.OperatorsName = ""
    ds.ContentDate = ds.InstanceCreationDate = ds.StructureSetDate = now.strftime("%Y%m%d")
    ds.ContentTime = ds.InstanceCreationTime = ds.StructureSetTime = now.strftime("%H%M%S")
    # Frame of Reference module (PS3.3 C.7.4.1), part of the RT Structure Set IOD (A.19.3)
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PositionReferenceIndicator = source.get("PositionReferenceIndicator", "")
    ds.StructureSetLabel = provenance.name[:16]
    ds.StructureSetName = f"{provenance.name} {provenance.version}"[:64]
    ds.ApprovalStatus = "UNAPPROVED"

    contour_images = DicomSequence()
    for image in volume.datasets:
        ref = Dataset()
        ref.ReferencedSOPClassUID = image.SOPClassUID
        ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
        contour_images.append(ref)
    series_ref = Dataset()
    series_ref.SeriesInstanceUID = source.SeriesInstanceUID
    series_ref.ContourImageSequence = contour_images
    study_ref = Dataset()
    study_ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management
    study_ref.ReferencedSOPInstanceUID = source.StudyInstanceUID
    study_ref.RTReferencedSeriesSequence = DicomSequence([series_ref])
    frame_ref = Dataset()
    frame_ref.FrameOfReferenceUID = frame_of_reference
    frame_ref.RTReferencedStudySequence = DicomSequence([study_ref])
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([frame_ref])

    rois, roi_contours, observations = DicomSequence(), DicomSequence(), DicomSequence()
    for number, (value, label) in enumerate(sorted(labels.items()), start=1):
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame_of_reference
        roi.ROIName = label.name[:64]
        roi.ROIGenerationAlgorithm = "AUTOMATIC"
        roi.ROIGenerationDescription = (
            f"{provenance.name} {provenance.version} {provenance.checksum_text}"
        )[:64]
        rois.append(roi)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = list(label.color)
        roi_contour.ContourSequence = DicomSequence(_slice_contours(volume, label_map == value))
        roi_contours.append(roi_contour)
        observation = Dataset()
        observation.ObservationNumber = number
        observation.ReferencedROINumber = number
        observation.ROIObservationLabel = label.name[:16]
        observation.RTROIInterpretedType = label.rt_type
        observation.ROIInterpreter = ""
        observations.append(observation)
    ds.StructureSetROISequence = rois
    ds.ROIContourSequence = roi_contours
    ds.RTROIObservationsSequence = observations
    return provenance.stamp(ds)


def _slice_contours(volume: Volume, mask: npt.NDArray[np.bool_]) -> list[Dataset]:
    items: list[Dataset] = []
    for k in np.flatnonzero(mask.any(axis=(1, 2))):
        image = volume.datasets[k]
        affine = volume.slice_affine(int(k))
        for contour in mask_contours(mask[k]):
            ijk = np.c_[contour[:, 1], contour[:, 0], np.zeros(len(contour)), np.ones(len(contour))]
            xyz = (ijk @ affine.T)[:, :3]
            item = Dataset()
            ref = Dataset()
            ref.ReferencedSOPClassUID = image.SOPClassUID
            ref.ReferencedSOPInstanceUID = image.SOPInstanceUID
            item.ContourImageSequence = DicomSequence([ref])
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(xyz)
            item.ContourData = [f"{v:.4f}".rstrip("0").rstrip(".") for v in xyz.ravel()]
            items.append(item)
    return items


def rtstruct_to_mask(rtstruct: Dataset, volume: Volume, roi: str | int) -> npt.NDArray[np.bool_]:
    """Rasterise one ROI (by name or ROINumber) onto ``volume`` with the even-odd rule.

    A contour goes to the slice whose SOP Instance UID it references, else to the nearest
    slice along the normal; points are projected with that slice's own geometry.
    """
    from skimage.draw import polygon

    number = _roi_number(rtstruct, roi)
    slice_of = {uid: k for k, uid in enumerate(volume.sop_uids)}
    mask = np.zeros(volume.array.shape, dtype=bool)
    for roi_contour in rtstruct.ROIContourSequence:
        if int(roi_contour.ReferencedROINumber) != number:
            continue
        for contour in roi_contour.get("ContourSequence", []):
            xyz = np.asarray([float(v) for v in contour.ContourData]).reshape(-1, 3)
            refs = contour.get("ContourImageSequence", [])
            k = slice_of.get(str(refs[0].ReferencedSOPInstanceUID)) if refs else None
            if k is None:
                distances = (volume.positions - xyz.mean(axis=0)) @ volume.normal
                k = int(np.argmin(np.abs(distances)))
            ijk = np.c_[xyz, np.ones(len(xyz))] @ np.linalg.inv(volume.slice_affine(k)).T
            rows, cols = polygon(ijk[:, 1], ijk[:, 0], shape=mask.shape[1:])
            filled = np.zeros(mask.shape[1:], dtype=bool)
            filled[rows, cols] = True
            mask[k] ^= filled
    return mask


def _roi_number(rtstruct: Dataset, roi: str | int) -> int:
    for item in rtstruct.StructureSetROISequence:
        if roi in (int(item.ROINumber), str(item.ROIName)):
            return int(item.ROINumber)
    raise InvalidInput(f"the structure set has no ROI {roi!r}")
