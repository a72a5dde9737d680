"""DICOM JSON (PS3.18 F.2) without patient-identifying attributes, for readers that must not
see identity (AI applications): the view behind ``?phi=false`` and no-PHI tokens.

The attributes are those of the Basic Application Level Confidentiality Profile (PS3.15
E.1, Table E.1-1) with the Retain UIDs Option (PS3.15 E.3.1) in force, resolved by
:class:`radpacs.deid.Profile` (no second attribute table): UIDs stay so the reader can
still retrieve frames and bulk data of the same instances. Per attribute:

- X (remove) and private attributes: removed;
- Z (empty) and C (clean: free text cannot be cleaned reliably here): kept, without value;
- D (dummy): replaced by a dummy value of its VR (``ANONYMOUS``, ``19000101``, ``0``...);
  a bulk data or binary value is removed instead;
- K and U: kept; sequences kept are walked item by item.

Each dataset then says so: PatientIdentityRemoved (0012,0062) ``YES`` and
DeidentificationMethod (0012,0063) naming this view (PS3.3 C.7.1.1).

Example::

    clean = without_phi([{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}}])
    clean[0]["00100010"]  # {'vr': 'PN'}
"""

from __future__ import annotations

from functools import cache
from typing import Any, Final

from radpacs.deid.profile import Action, Option, Profile

__all__ = ["DEIDENTIFICATION_METHOD", "is_protected", "without_phi"]

#: What DeidentificationMethod (0012,0063) says in a no-PHI view.
DEIDENTIFICATION_METHOD: Final = "radpacs no-PHI view: PS3.15 Basic Profile, Retain UIDs"

_PROFILE: Final = Profile([Option.RETAIN_UIDS])
_PATIENT_IDENTITY_REMOVED: Final = "00120062"
_DEIDENTIFICATION_METHOD: Final = "00120063"
_DUMMY: Final[dict[str, Any]] = {
    "PN": {"Alphabetic": "ANONYMOUS"},
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000D",
}
_NUMERIC: Final = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "DS", "IS"})
_TEXT: Final = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "UR", "UI"})


@cache
def _action(tag: int) -> Action:
    if (tag >> 16) % 2:
        return Action.REMOVE  # private attributes and their creators
    return _PROFILE.action_for(tag) or Action.KEEP


@cache
def _key_action(key: str) -> Action:
    return _action(int(key, 16))


def is_protected(tag: int) -> bool:
    """Whether the no-PHI view removes, empties or replaces ``tag`` (matching on such an
    attribute would reveal its value)."""
    return _action(tag) not in (Action.KEEP, Action.UID)


def _dummy(vr: str) -> Any:
    if vr in _DUMMY:
        return _DUMMY[vr]
    if vr in _NUMERIC:
        return 0
    if vr in _TEXT:
        return "ANONYMIZED"
    return None


def _dataset(dataset: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, element in dataset.items():
        action = _key_action(key)
        vr = str(element.get("vr", ""))
        if action is Action.REMOVE:
            continue
        if action in (Action.EMPTY, Action.CLEAN):
            clean[key] = {"vr": vr}
        elif action in (Action.KEEP, Action.UID) or vr == "SQ":
            if vr == "SQ" and "Value" in element:
                clean[key] = {"vr": vr, "Value": [_dataset(item) for item in element["Value"]]}
            else:
                clean[key] = element
        elif "Value" not in element:  # D on an empty attribute, or bulk data / inline binary
            if "BulkDataURI" not in element and "InlineBinary" not in element:
                clean[key] = {"vr": vr}
        else:
            dummy = _dummy(vr)
            if dummy is not None:
                clean[key] = {"vr": vr, "Value": [dummy]}
    return clean


def without_phi(datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each DICOM JSON dataset of ``datasets`` with its identifying attributes removed or
    replaced (see the module docstring); the input is not changed."""
    clean = []
    for dataset in datasets:
        view = _dataset(dataset)
        view[_PATIENT_IDENTITY_REMOVED] = {"vr": "CS", "Value": ["YES"]}
        view[_DEIDENTIFICATION_METHOD] = {"vr": "LO", "Value": [DEIDENTIFICATION_METHOD]}
        clean.append(dict(sorted(view.items())))
    return clean
