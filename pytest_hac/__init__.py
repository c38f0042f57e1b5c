"""pytest-hac: adversarial robustness of image classifiers behind compression defenses, as pytest gates."""
__version__ = "0.1.0"
