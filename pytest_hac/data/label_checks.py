"""The engine's label checks: a data set's labels must be classes the model predicts; each error names the fix."""
from __future__ import annotations

from ..errors import HacError
from ..models import Classifier
from . import Dataset


def check_labels(model: Classifier, dataset: Dataset) -> None:
    """The data set's labels are classes ``model`` predicts (same label space, classes in range)."""
    labels = dataset.labels
    if model.label_space != "index" and dataset.label_space not in ("index", model.label_space):
        raise HacError(_label_mismatch(model, dataset))
    if dataset.label_space == "folder-order" and len(dataset.class_labels) != model.num_classes:
        raise HacError(_label_mismatch(model, dataset))
    if int(labels.max()) >= model.num_classes:
        raise HacError(f"data set {dataset.name!r} has label {int(labels.max())} but model {model.name!r} "
                       f"has only {model.num_classes} classes; pick a model whose logits cover the data's classes, "
                       f"or a data set labelled for this model (see --hac-list)")


def _label_mismatch(model: Classifier, dataset: Dataset) -> str:
    if dataset.label_space == "folder-order":
        return (f"data set {dataset.name!r} has {len(dataset.class_labels)} class folders named by word, labelled "
                f"0..{len(dataset.class_labels) - 1} in sorted order (torchvision's ImageFolder convention), but model "
                f"{model.name!r} has {model.num_classes} classes"
                + (" (ImageNet's)" if model.label_space == "imagenet" else "")
                + ": give --hac-labels=FILE mapping each folder name to the model's class index (a model trained "
                  "with another class order is yours to map)")
    return (f"model {model.name!r} predicts {model.label_space} classes but data set {dataset.name!r} is labelled "
            f"with {dataset.label_space} classes; pick matching --hac-model and --hac-data (see --hac-list), or map "
            f"folders to the model's classes with --hac-labels=FILE")
