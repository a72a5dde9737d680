"""The Basic Application Level Confidentiality Profile and its Options (PS3.15 E.1, E.3).

:class:`Profile` answers one question: given the Options in force, what does PS3.15
Table E.1-1 require for this tag? The table itself is data in
:mod:`radpacs.deid.table_e1_1`; this module only resolves it.

Resolution rules:

- A requirement of an Option in force overrides the Basic Profile (PS3.15 E.1.1). When
  several Options in force name the same attribute, the most protective of their actions
  wins (X before C before K): e.g. Calibration DateTime under Retain Device Identity and
  Retain Longitudinal Temporal Information with Modified Dates is shifted, not kept.
- The compound codes choose between removal and replacement by the attribute's type in
  its IOD. The anonymizer does not carry the IOD module tables, so it resolves them to the
  choice that conforms whatever the type is (a Type 3 attribute may be present with an
  empty or dummy value; a Type 1 one may not be empty):

  ========  ====================================================================
  ``Z/D``   D: a dummy value (also satisfies Z)
  ``X/Z``   Z: an empty value; a sequence is removed instead (an empty Type 3
            sequence is invalid), except Acquisition Context Sequence (Type 2)
  ``X/D``   D: a dummy value
  ``X/Z/D`` D: a dummy value
  ``X/Z/U*``U: the sequence is kept, every UID inside it replaced and the profile
            applied to its items, so that references still resolve
  ========  ====================================================================

- Private attributes (odd groups) are removed (X); under Retain Safe Private Option they
  are kept when radpacs knows them to be safe (see :mod:`radpacs.deid.anonymizer`).

Example::

    profile = Profile([Option.RETAIN_LONGITUDINAL_FULL_DATES])
    profile.action_for(0x00080020)   # Action.KEEP: Study Date kept under full dates
    profile.action_for(0x00100010)   # Action.EMPTY: Patient's Name (Z)
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from radpacs.deid.table_e1_1 import ROWS

__all__ = [
    "BASIC_PROFILE_CODE",
    "Action",
    "Option",
    "Profile",
    "TableRow",
    "table_row",
    "table_tags",
]


class Action(StrEnum):
    """The action codes of PS3.15 Table E.1-1, compound codes included."""

    DUMMY = "D"
    EMPTY = "Z"
    REMOVE = "X"
    KEEP = "K"
    CLEAN = "C"
    UID = "U"
    EMPTY_OR_DUMMY = "Z/D"
    REMOVE_OR_EMPTY = "X/Z"
    REMOVE_OR_DUMMY = "X/D"
    REMOVE_OR_EMPTY_OR_DUMMY = "X/Z/D"
    REMOVE_OR_EMPTY_OR_UID = "X/Z/U*"

    def resolved(self) -> Action:
        """The simple action applied for a compound code (see the module docstring)."""
        return _COMPOUND.get(self, self)


_COMPOUND: Final[dict[Action, Action]] = {
    Action.EMPTY_OR_DUMMY: Action.DUMMY,
    Action.REMOVE_OR_EMPTY: Action.EMPTY,
    Action.REMOVE_OR_DUMMY: Action.DUMMY,
    Action.REMOVE_OR_EMPTY_OR_DUMMY: Action.DUMMY,
    Action.REMOVE_OR_EMPTY_OR_UID: Action.UID,
}

# Most protective first; used when several Options in force name one attribute.
_PROTECTION_ORDER: Final[tuple[Action, ...]] = (Action.REMOVE, Action.CLEAN, Action.KEEP)


class Option(StrEnum):
    """The Options of PS3.15 E.3 that radpacs implements, with their CID 7050 codes."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain_longitudinal_full_dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain_longitudinal_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"

    @property
    def code(self) -> tuple[str, str]:
        """The (DCM code value, code meaning) of this Option in PS3.16 CID 7050."""
        return _CODES[self]


#: PS3.16 CID 7050 "De-identification Method": the Basic Profile's code.
BASIC_PROFILE_CODE: Final[tuple[str, str]] = ("113100", "Basic Application Confidentiality Profile")

_CODES: Final[dict[Option, tuple[str, str]]] = {
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
}


class TableRow:
    """One row of PS3.15 Table E.1-1: the attribute's name, its Basic Profile action and
    the action each Option column gives (Options not named leave the Basic action)."""

    __slots__ = ("basic", "name", "options")

    def __init__(self, name: str, basic: Action | str, options: dict[str, str]) -> None:
        self.name = name
        self.basic = Action(basic)
        self.options: dict[Option, Action] = {}
        for option, action in options.items():
            try:
                self.options[Option(option)] = Action(action)
            except ValueError:
                # Clean Structured Content / Clean Graphics: columns radpacs does not offer.
                continue

    def action(self, options: frozenset[Option]) -> Action:
        """The action for this row when ``options`` are in force."""
        chosen = [action for option, action in self.options.items() if option in options]
        if not chosen:
            return self.basic
        return min(chosen, key=_PROTECTION_ORDER.index)


def _parse_rows() -> tuple[dict[int, TableRow], list[tuple[int, int, TableRow]], TableRow]:
    exact: dict[int, TableRow] = {}
    masked: list[tuple[int, int, TableRow]] = []
    private: TableRow | None = None
    for key, (name, basic, options) in ROWS.items():
        row = TableRow(name, basic, options)
        if key == "private":
            private = row
        elif "X" in key:
            mask = int("".join("0" if c == "X" else "F" for c in key), 16)
            value = int(key.replace("X", "0"), 16)
            masked.append((mask, value, row))
        else:
            exact[int(key, 16)] = row
    if private is None:
        raise RuntimeError("table_e1_1 has no row for private attributes")
    return exact, masked, private


_EXACT, _MASKED, _PRIVATE = _parse_rows()
_IDENTIFYING: Final[frozenset[int]] = frozenset(
    tag
    for tag, row in _EXACT.items()
    if row.basic not in (Action.KEEP, Action.CLEAN) and Action.CLEAN not in row.options.values()
)


class Profile:
    """The Basic Profile with a set of Options in force, resolved to one action per tag.

    ``options`` accepts :class:`Option` members or their string values. Retain
    Longitudinal Temporal Information with Full Dates and with Modified Dates exclude each
    other (PS3.15 E.3.6): asking for both raises ``ValueError``.
    """

    def __init__(self, options: Iterable[Option | str] = ()) -> None:
        if isinstance(options, str | bytes):
            raise TypeError("options must be an iterable of Option, not a single string")
        chosen: set[Option] = set()
        for option in options:
            try:
                chosen.add(Option(option))
            except ValueError:
                known = ", ".join(o.value for o in Option)
                raise ValueError(
                    f"unknown de-identification option {option!r}; known: {known}"
                ) from None
        if {
            Option.RETAIN_LONGITUDINAL_FULL_DATES,
            Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
        } <= chosen:
            raise ValueError(
                "retain_longitudinal_full_dates and retain_longitudinal_modified_dates "
                "exclude each other (PS3.15 E.3.6)"
            )
        self.options: frozenset[Option] = frozenset(chosen)
        self._cache: dict[int, Action | None] = {
            tag: row.action(self.options).resolved() for tag, row in _EXACT.items()
        }
        self.private_action: Action = _PRIVATE.action(self.options).resolved()

    def __repr__(self) -> str:
        names = ", ".join(sorted(o.value for o in self.options))
        return f"Profile([{names}])"

    def action_for(self, tag: int) -> Action | None:
        """The simple action (D, Z, X, K, C or U) for a public ``tag``, None if unlisted.

        Private tags (odd groups) are answered by :attr:`private_action`.
        """
        try:
            return self._cache[tag]
        except KeyError:
            pass
        action: Action | None = None
        for mask, value, row in _MASKED:
            if tag & mask == value and (tag >> 16) % 2 == 0:
                action = row.action(self.options).resolved()
                break
        self._cache[tag] = action
        return action

    def raw_action_for(self, tag: int) -> Action | None:
        """The unresolved Basic Profile code of Table E.1-1 for ``tag``, None if unlisted."""
        row = table_row(tag)
        return None if row is None else row.basic

    @property
    def codes(self) -> list[tuple[str, str]]:
        """CID 7050 codes for DeidentificationMethodCodeSequence: 113100, then the Options."""
        return [BASIC_PROFILE_CODE, *(o.code for o in Option if o in self.options)]


def table_row(tag: int) -> TableRow | None:
    """The Table E.1-1 row that lists ``tag`` (repeating groups included), None if none."""
    row = _EXACT.get(tag)
    if row is not None:
        return row
    if (tag >> 16) % 2:
        return _PRIVATE
    for mask, value, masked_row in _MASKED:
        if tag & mask == value:
            return masked_row
    return None


def identifying_tags() -> frozenset[int]:
    """Exact tags whose values identify: the Basic Profile protects them (not K or C) and no
    Option cleans them (a cleaned descriptor is what gets cleaned, not an identifier)."""
    return _IDENTIFYING


def table_tags() -> frozenset[int]:
    """Every exact tag listed in Table E.1-1 (repeating-group rows excluded)."""
    return frozenset(_EXACT)
