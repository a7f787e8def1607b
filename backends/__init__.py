"""Device backends: export a model to a runtime (eager PyTorch, ONNX Runtime, TensorRT) and time it."""
