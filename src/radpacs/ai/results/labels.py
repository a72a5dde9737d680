"""What a segmentation label means: name, display colour, coded property (PS3.16 CID 7150/7151)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Label"]

_PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48)]


@dataclass(frozen=True)
class Label:
    """One segment: ``name`` is free text; the property codes default to SCT "Tissue"/"Organ".

    Example::

        Label("brain", (255, 200, 0), type_code=("12738006", "SCT", "Brain"))
    """

    name: str
    color: tuple[int, int, int] = (230, 25, 75)
    category_code: tuple[str, str, str] = ("85756007", "SCT", "Tissue")
    type_code: tuple[str, str, str] = ("85756007", "SCT", "Tissue")
    rt_type: str = "ORGAN"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a label needs a name")
        if len(self.color) != 3 or any(not 0 <= c <= 255 for c in self.color):
            raise ValueError(f"label colour {self.color!r} is not three values in 0..255")

    @classmethod
    def default(cls, name: str, index: int) -> Label:
        """A label with the index-th colour of a fixed palette."""
        return cls(name, _PALETTE[(index - 1) % len(_PALETTE)])

    @property
    def hex_color(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.color)
