"""Float .tflite models converted here with TensorFlow's own converter (TFLiteConverter.from_keras_model): Keras's
MobileNetV3-Small, MobileNetV2 (alpha 0.35) and EfficientNet-B0 at 96x96 with random weights and random batch-norm
statistics, to check `neoncc import tflite` on what the converter writes for common architectures (Keras's
Rescaling, hard-swish, squeeze-excitation with run-time Reshape targets, Flatten).

TensorFlow is not one of the project's packages (a 270 MB wheel whose dependencies would have to agree with the
project's pinned protobuf and numpy): run this in a separate virtual environment,

    python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu
    /tmp/tfvenv/bin/python examples/tflite/convert_keras.py OUT_DIR

then import each OUT_DIR/*.tflite and compare it with LiteRT as docs/zoo.md says.
"""
import sys, numpy as np, tensorflow as tf
out = sys.argv[1]
tf.keras.utils.set_random_seed(0)
models = {
    "keras_mobilenet_v3_small": lambda: tf.keras.applications.MobileNetV3Small(input_shape=(96, 96, 3), weights=None, classes=100),
    "keras_mobilenet_v2_035": lambda: tf.keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None, classes=100),
    "keras_efficientnet_b0": lambda: tf.keras.applications.EfficientNetB0(input_shape=(96, 96, 3), weights=None, classes=100),
}
for name, make in models.items():
    model = make()
    # random batch-norm statistics, so that the folded scales are not all one
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            rng = np.random.default_rng(len(layer.name))
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape), rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 1.5, v.shape)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    open(f"{out}/{name}.tflite", "wb").write(converter.convert())
    print(name, "ok")
