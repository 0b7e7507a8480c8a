"""Which adapter prepares which test set: the seven keys of the a-eval benchmark."""

from __future__ import annotations

from harness.data.prepare.amos import Amos
from harness.data.prepare.btcv import Btcv
from harness.data.prepare.common import SourceAdapter
from harness.data.prepare.flare22 import Flare22
from harness.data.prepare.totalseg import TotalSegmentator
from harness.data.prepare.word import Word
from harness.errors import HarnessError
from harness.manifest import CANONICAL_ORDER


def _build() -> dict[str, SourceAdapter]:
    adapters: list[SourceAdapter] = [Flare22(), Amos(modality="CT"), Word(), TotalSegmentator(modality="CT"),
                                     Btcv(), Amos(modality="MR"), TotalSegmentator(modality="MR")]
    return {a.key: a for a in sorted(adapters, key=lambda a: CANONICAL_ORDER.index(a.key))}


SOURCES: dict[str, SourceAdapter] = _build()


def source_adapter(key: str) -> SourceAdapter:
    try:
        return SOURCES[key]
    except KeyError:
        raise HarnessError(f"no test set '{key}' to prepare; choose one of {', '.join(SOURCES)}") from None
