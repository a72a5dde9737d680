"""Which algorithm made a result: name, version and weights checksum, written into every object.

Each result object carries the same :class:`Provenance` twice (PS3.3 C.12.1.1.5 and
C.8.20.2.1 / highdicom ``AlgorithmIdentificationSequence``):

- ContributingEquipmentSequence: Manufacturer "radpacs", ManufacturerModelName the model
  name, SoftwareVersions the model version, ContributionDescription naming the weights
  checksum, PurposeOfReferenceCode (DCM 109104, "De-identifying Equipment" is *not* used;
  DCM 109102 "Processing Equipment");
- AlgorithmIdentification (SEG segments, SR observer context): AlgorithmName, AlgorithmVersion,
  AlgorithmFamily, and AlgorithmParameters holding ``weights_sha256`` and the run parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from radpacs import __version__

__all__ = ["MANUFACTURER", "Provenance"]

MANUFACTURER = "radpacs"


@dataclass(frozen=True)
class Provenance:
    """The model that produced a result; ``weights_sha256`` is empty for weightless models."""

    name: str
    version: str
    weights_sha256: str = ""
    family: str = "Artificial Intelligence"
    parameters: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name or not self.version:
            raise ValueError("a model needs a name and a version")

    @property
    def checksum_text(self) -> str:
        return f"sha256:{self.weights_sha256}" if self.weights_sha256 else "sha256:none"

    def algorithm_parameters(self) -> dict[str, str]:
        """AlgorithmParameters: the checksum first, then the run parameters (all as text)."""
        return {"weights_sha256": self.weights_sha256 or "none", **self.parameters}

    def algorithm_identification(self) -> Any:
        """A highdicom AlgorithmIdentificationSequence for SEG segments."""
        import highdicom as hd

        family_codes = {
            "Artificial Intelligence": hd.sr.CodedConcept("AI", "DCM", "Artificial Intelligence"),
        }
        family = family_codes.get(self.family, hd.sr.CodedConcept("ALGO", "99RADPACS", self.family))
        return hd.AlgorithmIdentificationSequence(
            name=self.name,
            family=family,
            version=self.version,
            source=MANUFACTURER,
            parameters=self.algorithm_parameters(),
        )

    def contributing_equipment(self) -> Dataset:
        """One ContributingEquipmentSequence item (PS3.3 C.12.1.1.5)."""
        item = Dataset()
        purpose = Dataset()
        purpose.CodeValue = "109102"
        purpose.CodingSchemeDesignator = "DCM"
        purpose.CodeMeaning = "Processing Equipment"
        item.PurposeOfReferenceCodeSequence = DicomSequence([purpose])
        item.Manufacturer = MANUFACTURER
        item.ManufacturerModelName = self.name[:64]
        item.SoftwareVersions = [self.version[:64], f"radpacs {__version__}"]
        item.ContributionDateTime = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        item.ContributionDescription = (f"{self.name} {self.version} weights {self.checksum_text}")[
            :1024
        ]
        return item

    def stamp(self, dataset: Dataset) -> Dataset:
        """Append the ContributingEquipmentSequence item to ``dataset`` and return it."""
        existing = list(dataset.get("ContributingEquipmentSequence", []))
        dataset.ContributingEquipmentSequence = DicomSequence(
            [*existing, self.contributing_equipment()]
        )
        return dataset

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "parameters": dict(self.parameters),
        }
