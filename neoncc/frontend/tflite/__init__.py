"""TFLite frontend: .tflite flatbuffers (read with the `tflite` schema package) -> model description + weights."""
