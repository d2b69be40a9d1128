"""Export (ONNX + scaler + routing + manifest) and conversion (TensorRT engines, RKNN models)."""
