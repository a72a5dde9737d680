"""Computed DVHs kept as DICOM: an RT Dose instance with an RT DVH module and no grid.

PS3.3 A.18 allows an RT Dose without dose data (the image modules are conditional on a
grid); its RT DVH module (C.8.8.4) holds one DVH Sequence item per ROI, the cumulative DVH
in bins of ``bin_width`` Gy: DVH Data is ``D1 V1 D2 V2 ...`` with each ``Dn`` the bin width
and ``Vn`` the volume (cm3) receiving at least the dose where bin ``n`` starts (as
dicompyler-core and treatment planning systems read it), with DVH Minimum, Maximum and
Mean Dose. Which ROIs: DVH Referenced ROI Sequence against the Referenced Structure Set
Sequence. Which doses: the RT Dose's Referenced RT Plan Sequence (the plans the dose
grids belong to; Dose Summation Type ``MULTI_PLAN`` when they are several) and the
Referenced Instance Sequence (the RTDOSE grids themselves, Purpose of Reference "Source",
in the order of the sum). Which method: Dose Comment says radpacs, its version and the
convention (docs/rt.md), and a plan sum's weights in that order.

Example::

    ds = dvh_dataset(dvhs, rtstruct, [rtdose])
    ds.save_as("dvh.dcm", enforce_file_format=True)
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

from radpacs import __version__
from radpacs.errors import InvalidInput
from radpacs.rt.dose import RTDOSE_SOP_CLASS
from radpacs.rt.dvh import DVH

__all__ = ["METHOD", "dvh_dataset"]

#: What Dose Comment (LO, 64 characters at most) says about how the DVHs were computed.
METHOD = "radpacs {version} DVH, interpolated contours"
_PATIENT_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
)


def dvh_dataset(
    dvhs: Sequence[DVH],
    rtstruct: pydicom.Dataset,
    rtdoses: Sequence[pydicom.Dataset],
    weights: Sequence[float] | None = None,
    bin_width: float = 0.01,
) -> FileDataset:
    """An RT Dose instance holding ``dvhs`` (see the module docstring), in the study of
    ``rtstruct``; InvalidInput when there is nothing to store or the doses are relative."""
    if not dvhs:
        raise InvalidInput("no DVH to store")
    if any(dvh.dose_units != "Gy" for dvh in dvhs):
        raise InvalidInput("only DVHs in Gy can be stored (the RTDOSE has relative dose)")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(RTDOSE_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    now = datetime.datetime.now(datetime.UTC)
    ds.SpecificCharacterSet = rtstruct.get("SpecificCharacterSet", "ISO_IR 100")
    ds.SOPClassUID = RTDOSE_SOP_CLASS
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.InstanceCreationDate = now.strftime("%Y%m%d")
    ds.InstanceCreationTime = now.strftime("%H%M%S")
    for keyword in _PATIENT_STUDY:
        setattr(ds, keyword, rtstruct.get(keyword, ""))
    ds.Modality = "RTDOSE"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 900
    ds.OperatorsName = ""
    ds.SeriesDescription = f"radpacs DVH of {len(dvhs)} ROI" + ("s" if len(dvhs) > 1 else "")
    ds.Manufacturer = "radpacs"
    ds.SoftwareVersions = __version__
    ds.FrameOfReferenceUID = _frame_of_reference(rtstruct, rtdoses)
    ds.PositionReferenceIndicator = ""
    ds.DoseUnits = "GY"
    ds.DoseType = _dose_type(rtdoses)
    comment = METHOD.format(version=__version__)
    if len(rtdoses) > 1 or weights is not None:
        comment += "; sum " + ",".join(f"{w:g}" for w in _factors(rtdoses, weights))
    ds.DoseComment = comment[:64]
    plans = _plans(rtdoses)
    if len(rtdoses) == 1 and weights in (None, [1.0], (1.0,)):
        ds.DoseSummationType = str(rtdoses[0].get("DoseSummationType", "") or "PLAN")
    else:
        ds.DoseSummationType = "MULTI_PLAN" if len(plans) > 1 else "PLAN"
    if plans:
        ds.ReferencedRTPlanSequence = DicomSequence(plans)
    elif ds.DoseSummationType != "RECORD":
        raise InvalidInput(
            "the RTDOSE references no RTPLAN (Referenced RT Plan Sequence): a stored DVH "
            f"with Dose Summation Type {ds.DoseSummationType} must name its plan"
        )
    ds.ReferencedInstanceSequence = DicomSequence([_source(dose) for dose in rtdoses])
    structure = pydicom.Dataset()
    structure.ReferencedSOPClassUID = rtstruct.SOPClassUID
    structure.ReferencedSOPInstanceUID = rtstruct.SOPInstanceUID
    ds.ReferencedStructureSetSequence = DicomSequence([structure])
    ds.DVHSequence = DicomSequence([_item(dvh, bin_width) for dvh in dvhs])
    return ds


def _item(dvh: DVH, bin_width: float) -> pydicom.Dataset:
    curve = dvh.curve(bin_width=bin_width)
    volumes = np.asarray(curve.volumes, dtype=np.float64)
    item = pydicom.Dataset()
    roi = pydicom.Dataset()
    roi.ReferencedROINumber = dvh.roi_number
    roi.DVHROIContributionType = "INCLUDED"
    item.DVHReferencedROISequence = DicomSequence([roi])
    item.DVHType = "CUMULATIVE"
    item.DoseUnits = "GY"
    item.DoseType = "PHYSICAL"
    item.DVHDoseScaling = 1.0
    item.DVHVolumeUnits = "CM3"
    item.DVHNumberOfBins = int(volumes.size)
    data = np.empty(2 * volumes.size, dtype=np.float64)
    data[0::2] = bin_width
    data[1::2] = np.round(volumes, 6)
    item.DVHData = [float(value) for value in data]
    item.DVHMinimumDose = round(float(dvh.dose_min), 6)
    item.DVHMaximumDose = round(float(dvh.dose_max), 6)
    item.DVHMeanDose = round(float(dvh.dose_mean), 6)
    return item


def _frame_of_reference(rtstruct: pydicom.Dataset, rtdoses: Sequence[pydicom.Dataset]) -> str:
    for dose in rtdoses:
        if dose.get("FrameOfReferenceUID"):
            return str(dose.FrameOfReferenceUID)
    for item in rtstruct.get("ReferencedFrameOfReferenceSequence", []):
        if item.get("FrameOfReferenceUID"):
            return str(item.FrameOfReferenceUID)
    return str(rtstruct.get("FrameOfReferenceUID", generate_uid()))


def _dose_type(rtdoses: Sequence[pydicom.Dataset]) -> str:
    types = {str(dose.get("DoseType", "PHYSICAL")) for dose in rtdoses}
    return types.pop() if len(types) == 1 else "PHYSICAL"


def _plans(rtdoses: Sequence[pydicom.Dataset]) -> list[pydicom.Dataset]:
    seen: dict[str, pydicom.Dataset] = {}
    for dose in rtdoses:
        for item in dose.get("ReferencedRTPlanSequence", []):
            uid = str(item.get("ReferencedSOPInstanceUID", ""))
            if uid and uid not in seen:
                plan = pydicom.Dataset()
                plan.ReferencedSOPClassUID = item.get(
                    "ReferencedSOPClassUID", "1.2.840.10008.5.1.4.1.1.481.5"
                )
                plan.ReferencedSOPInstanceUID = uid
                seen[uid] = plan
    return list(seen.values())


def _factors(rtdoses: Sequence[pydicom.Dataset], weights: Sequence[float] | None) -> list[float]:
    return [1.0] * len(rtdoses) if weights is None else [float(value) for value in weights]


def _source(dose: pydicom.Dataset) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = dose.SOPClassUID
    item.ReferencedSOPInstanceUID = dose.SOPInstanceUID
    purpose = pydicom.Dataset()
    purpose.CodeValue = "SRC"
    purpose.CodingSchemeDesignator = "DCM"
    purpose.CodeMeaning = "Source"
    item.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
    return item
