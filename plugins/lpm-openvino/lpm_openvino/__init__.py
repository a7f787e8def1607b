"""OpenVINO as an lpm-zoo device backend (registered through the `lpm_zoo.backends` entry point)."""

__version__ = "0.1.0"
