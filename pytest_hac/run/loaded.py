"""A run's model, data and engine: loaded once, on first use; a failure is one error, said once."""
from __future__ import annotations

from dataclasses import replace

import torch

from ..core.cells.cases import Case
from ..core.engine.engine import Engine
from ..data import Dataset, load_dataset
from ..errors import HacError
from ..io.cache import DiskCache, Store
from ..models import Classifier, describe_normalization, get_model, restrict
from ..report.provenance import default_data
from ..settings import Settings

#: Label mappings up to this many classes are written into the report in full.
MAPPING_SHOWN = 50


class Loaded:
    """The model, the data and the engine of one run (``settings``), each built when first asked for."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: tuple[Classifier, Dataset] | None = None
        self._error: str | None = None
        self._engine: Engine | None = None
        self._plan: list[Case] | None = None

    def load(self) -> tuple[Classifier, Dataset]:
        """The model and the data; a failure raises :class:`HacError`, and later calls say it failed."""
        if self._loaded is not None:
            return self._loaded
        if self._error is not None:
            raise HacError(f"not evaluated: loading the model or data failed ({self._error.splitlines()[0]})")
        s = self.settings
        try:
            model = get_model(s.model, device=s.device, trust_files=s.trust_model_file, offline=s.offline,
                              input_size=s.input_size.crop, resize_size=s.input_size.resize)
            data = load_dataset(default_data(s), resize=model.resize_size, crop=model.input_size, samples=s.samples,
                                seed=s.seed, strict=s.strictness == "strict", workers=s.decode_workers, labels=s.labels)
        except HacError as exc:
            self._error = str(exc)
            raise
        if s.restrict_classes:
            classes = list(data.class_labels)  # every class of the data set, not only the subset's
            model = restrict(model, classes).to(s.device)
            remap = {c: i for i, c in enumerate(classes)}
            data = replace(data, labels=torch.tensor([remap[int(y)] for y in data.labels]), label_space="index")
        self._loaded = (model, data)
        return self._loaded

    @property
    def done(self) -> bool:
        """Whether the model and data are loaded (an xdist controller never loads them)."""
        return self._loaded is not None

    @property
    def model(self) -> Classifier:
        return self.load()[0]

    @property
    def dataset(self) -> Dataset:
        return self.load()[1]

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            s = self.settings
            disk = None if s.cache is None else DiskCache(s.cache)
            self._engine = Engine(self.model, self.dataset, device=s.device, batch_size=s.batch_size, seed=s.seed,
                                  amp=s.amp, weights_dir=s.weights_dir, store=Store((s.cache_mb << 20) // 2, disk=disk),
                                  soundness=s.soundness, offline=s.offline, memory_mb=s.cache_mb, gallery=s.gallery)
            if self._plan is not None:
                self._engine.plan(self._plan)
        return self._engine

    def plan(self, cases: list[Case]) -> None:
        """The cells the engine will evaluate: it keeps what they share, and drops the rest."""
        self._plan = list(cases)
        if self._engine is not None:
            self._engine.plan(self._plan)

    def prepare(self) -> None:
        """Load the model and the data, check they fit, and build the planned cells' codecs (their weights):
        what would stop every cell is found once, before the first one runs."""
        engine = self.engine
        for case in self._plan or []:
            if case.codec != "identity":
                engine.codec(case.codec, case.quality)

    def attack_images(self) -> int:
        """Images attacked so far by this process's cells (soundness probes apart)."""
        return 0 if self._engine is None else self._engine.counters.attack_images

    def probe_seconds(self) -> float:
        return 0.0 if self._engine is None else self._engine.seconds.get("probe", 0.0)

    def data_info(self) -> dict:
        """What the report says about the images and how the model sees them (xdist workers send it along)."""
        model, data = self.model, self.dataset
        labels = {"rule": data.labels_rule}
        if data.label_map and len(data.label_map) <= MAPPING_SHOWN:
            labels["map"] = data.label_map
        return {"image_size": list(data.images.shape[-2:]), "skipped": list(data.skipped),
                "preprocessing": {"resize": model.resize_size, "crop": model.input_size,
                                  "normalization": describe_normalization(model)},
                "labels": labels, "upscaled": data.upscaled, "source_size": data.source_size,
                "image_hashes": list(data.content_hashes)}

    def close(self) -> None:
        """Free what the engine holds on disk (its scratch folder)."""
        if self._engine is not None:
            self._engine.close()
