"""What one extraction call did: counts, failures (path, reason) and throughput, returned per call."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ExtractionReport:
    """What an ``extract`` call did: counts, failures (path, reason) and throughput.

    Each call gets its own report (``Extractor.extract`` puts it in ``table.attrs["report"]``,
    ``Extractor.iter_extract`` returns a stream that owns one), so concurrent calls never share one.
    """

    images: int = 0
    images_with_faces: int = 0
    faces: int = 0
    videos: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0

    @property
    def processed(self) -> int:
        """Inputs that gave at least one face (images, or videos with a face track)."""
        return self.images_with_faces + sum(1 for video in self.videos if video["faces"])

    def summary(self) -> str:
        """One line: counts, failures, time, and the rate of what was processed (images and/or frames)."""
        parts = [f"{self.images} images"]
        rates = [f"{self.images_per_second:.2f} images/s"] if self.images or not self.videos else []
        if self.videos:
            frames = sum(video["frames"] for video in self.videos)
            parts.append(f"{len(self.videos)} videos ({frames} frames)")
            rates.append(f"{frames / self.seconds if self.seconds > 0 else 0.0:.1f} frames/s")
        parts += [f"{self.faces} faces", f"{len(self.failures)} failures", f"{self.seconds:.1f} s ({', '.join(rates)})"]
        return ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (what ``table.attrs["report"]`` and chunk records hold)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExtractionReport:
        return cls(**data)

    @classmethod
    def of_table(cls, table: Any) -> ExtractionReport:
        """The report of the call that made ``table`` (``Extractor.extract`` stores it in ``table.attrs["report"]``)."""
        if "report" not in table.attrs:
            raise ValueError("ExtractionReport.of_table: the table has no attrs['report']; pass the table Extractor.extract returned")
        return cls.from_dict(table.attrs["report"])
