"""Modality Worklist C-FIND (PS3.4 K.6.1) over the worklist the REST API manages.

The identifier's matching keys, at top level and in the first item of the Scheduled
Procedure Step Sequence, become :class:`~radpacs.archive.worklist.WorklistStore` keys; each
matching item is answered with the requested attributes, the others empty (PS3.4 C.2.2.1).

Example::

    worklist = Worklist(archive.engine)
    for response in worklist.find(identifier):
        print(response.PatientName, response.ScheduledProcedureStepSequence[0].Modality)
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom import Dataset
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from sqlalchemy import Engine

from radpacs.archive.worklist import WORKLIST_KEYS, WorklistItem, WorklistStore

__all__ = ["Worklist", "item_dataset"]

_SPS = "ScheduledProcedureStepSequence"


def _text(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def item_dataset(item: WorklistItem) -> Dataset:
    """The full worklist answer for one item (PS3.4 K.6.1.2.2 attributes radpacs keeps)."""
    step = Dataset()
    step.Modality = item.modality
    step.ScheduledStationAETitle = item.station_ae_title
    step.ScheduledProcedureStepStartDate = item.scheduled_date
    step.ScheduledProcedureStepStartTime = item.scheduled_time[:6]
    step.ScheduledProcedureStepID = item.step_id
    step.ScheduledProcedureStepDescription = item.step_description
    answer = Dataset()
    answer.SpecificCharacterSet = "ISO_IR 192"
    answer.PatientName = item.patient_name
    answer.PatientID = item.patient_id
    answer.PatientBirthDate = item.patient_birth_date
    answer.PatientSex = item.patient_sex
    answer.AccessionNumber = item.accession_number
    answer.ReferringPhysicianName = item.referring_physician
    answer.StudyInstanceUID = item.study_uid
    answer.RequestedProcedureID = item.requested_procedure_id
    answer.RequestedProcedureDescription = item.requested_procedure_description
    answer.ScheduledProcedureStepSequence = DicomSequence([step])
    return answer


def _keep(requested: Dataset, full: Dataset) -> Dataset:
    """``requested``'s attributes with ``full``'s values, empty where ``full`` has none."""
    kept = Dataset()
    for element in requested:
        if element.keyword == _SPS and element.VR == "SQ":
            asked = element.value[0] if element.value else Dataset()
            kept.ScheduledProcedureStepSequence = DicomSequence(
                [_keep(asked, step) for step in full.get(_SPS, [])]
            )
        elif element.tag in full:
            kept[element.tag] = full[element.tag]
        else:
            kept.add_new(element.tag, element.VR, [] if element.VR == "SQ" else None)
    return kept


class Worklist:
    """Answers Modality Worklist C-FIND identifiers from the worklist store."""

    def __init__(self, engine: Engine) -> None:
        self.store = WorklistStore(engine)

    def find(self, identifier: Dataset) -> Iterator[Dataset]:
        keys: dict[str, str] = {}
        steps = identifier.get(_SPS) or []
        for source, in_step in ((identifier, False), (steps[0] if steps else Dataset(), True)):
            for element in source:
                known = WORKLIST_KEYS.get(element.keyword)
                if known is not None and known[2] == in_step and element.VR != "SQ":
                    value = _text(element).strip()
                    if value:
                        keys[element.keyword] = value
        for item in self.store.items(keys):
            response = _keep(identifier, item_dataset(item))
            response.SpecificCharacterSet = "ISO_IR 192"
            yield response
