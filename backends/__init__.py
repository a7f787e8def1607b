"""Device backends: export a model to a runtime (eager PyTorch, ONNX Runtime, TensorRT, plugins) and time it.

The interface a backend implements is `lpm_zoo.backends.base.Backend`; `lpm_zoo.backends.registry` finds them by name
(`get_backend`, `list_backends`); `lpm_zoo.backends.testing.check_backend` is the conformance kit a plugin's tests run.
"""
