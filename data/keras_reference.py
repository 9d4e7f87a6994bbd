"""The Keras side of dropship's training benchmarks, for a side-by-side run on your machine.

Not part of dropship, its build or its tests (nothing runs Python). In a throwaway virtualenv
(`pip install tensorflow-cpu`; measured with Keras 3.15 on TensorFlow 2.21):

    python data/keras_reference.py digits data/digits.csv   # the course's three models, timed
    python data/keras_reference.py large  mnist-shaped.csv  # numpy.loadtxt, then two epochs
    python data/keras_reference.py parity data/digits.csv keras-digits.json
                                   # seeds 0, 1, 2 of the three models, written as JSON with the
                                   # date, machine and versions, for `dropship bench --keras FILE`
    python data/keras_reference.py task binary data/breast_cancer.csv split.csv 16 100
    python data/keras_reference.py task regress data/diabetes.csv split.csv 32 200
                                   # a binary or regression model on the rows a split file gives
                                   # (its `part` column: train, val, test; `dropship train
                                   # --split-column part` takes the same file), seeds 0, 1, 2
    python data/keras_reference.py anomaly-onnx ad.onnx
                                   # MLPerf Tiny's anomaly-detection autoencoder (random weights)
                                   # through tf2onnx, for `dropship import`

and beside it `dropship bench` (or `dropship bench --large`, which writes the same MNIST-shaped
CSV). The digits setup is data/README.md's: stratified 60/20/20 split, features standardized with
the train rows' statistics, Dense(128)-ReLU-Dense(10) from logits, Adam defaults, batch 32,
100 epochs, validation every epoch.
"""
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402


def load(path):
    start = time.perf_counter()
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    return data[:, :-1], data[:, -1].astype(np.int64), time.perf_counter() - start


def split(y, seed, stratified):
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    groups = [np.where(y == c)[0] for c in np.unique(y)] if stratified else [np.arange(len(y))]
    for idx in groups:
        idx = rng.permutation(idx)
        a = int(round(len(idx) * 0.6))
        b = a + int(round(len(idx) * 0.2))
        for part, rows in zip(parts, (idx[:a], idx[a:b], idx[b:])):
            part.extend(rows)
    return [np.array(p) for p in parts]


def model(inputs, kind, seed):
    import keras
    from keras import layers, regularizers

    keras.utils.set_random_seed(seed)
    reg = regularizers.l2(0.001) if kind == "l2" else None
    stack = [keras.Input((inputs,)), layers.Dense(128, activation="relu", kernel_regularizer=reg)]
    stack += [layers.Dropout(0.5)] if kind == "dropout" else []
    stack += [layers.Dense(10, kernel_regularizer=reg)]
    m = keras.Sequential(stack)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    m.compile(optimizer=keras.optimizers.Adam(), loss=loss, metrics=["accuracy"])
    return m


def main(mode, path, seed=0):
    x, y, load_seconds = load(path)
    train, val, test = split(y, seed, stratified=(mode == "digits"))
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1
    xs = (x - mean) / std
    if mode == "large":
        import keras

        print(f"numpy.loadtxt: {load_seconds:.2f} s")

        class EpochTimes(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                print(f"epoch {epoch + 1}: {time.perf_counter() - self.start:.2f} s", flush=True)

        m = model(x.shape[1], "base", seed)
        m.fit(xs[train], y[train], batch_size=32, epochs=2, validation_data=(xs[val], y[val]),
              verbose=0, callbacks=[EpochTimes()])
        return
    start = time.perf_counter()
    for kind in ["base", "l2", "dropout"]:
        t = time.perf_counter()
        m = model(x.shape[1], kind, seed)
        m.fit(xs[train], y[train], batch_size=32, epochs=100, validation_data=(xs[val], y[val]), verbose=0)
        accuracy = m.evaluate(xs[test], y[test], verbose=0)[1]
        print(f"{kind}: {time.perf_counter() - t:.1f} s, test accuracy {accuracy:.4f}", flush=True)
    print(f"the three models: {time.perf_counter() - start:.1f} s")


def parity(path, out):
    """Test accuracy and seconds per model over seeds 0, 1, 2, written to `out` as JSON."""
    import datetime
    import json
    import platform

    import keras
    import tensorflow as tf

    x, y, _ = load(path)
    models = {kind: {"test_accuracy": [], "seconds": []} for kind in ["base", "l2", "dropout"]}
    for seed in range(3):
        train, val, test = split(y, seed, stratified=True)
        mean, std = x[train].mean(0), x[train].std(0)
        std[std == 0] = 1
        xs = (x - mean) / std
        for kind, record in models.items():
            t = time.perf_counter()
            m = model(x.shape[1], kind, seed)
            m.fit(xs[train], y[train], batch_size=32, epochs=100, validation_data=(xs[val], y[val]), verbose=0)
            record["seconds"].append(round(time.perf_counter() - t, 2))
            record["test_accuracy"].append(round(float(m.evaluate(xs[test], y[test], verbose=0)[1]), 6))
            print(f"seed {seed} {kind}: {record}", flush=True)
    info = {
        "measured": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or platform.system()}",
        "versions": f"Keras {keras.__version__}, TensorFlow {tf.__version__}",
        "data": path,
        "models": models,
    }
    with open(out, "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")


def task(kind, path, split_path, hidden, epochs):
    """Binary (sigmoid, binary cross-entropy) or regression (MSE on the train rows' standardized
    targets) with one hidden ReLU layer, on the split file's rows, seeds 0, 1, 2."""
    import keras
    from keras import layers

    data = np.loadtxt(split_path, delimiter=",", skiprows=1, dtype=str)
    header = open(split_path).readline().strip().split(",")
    part = data[:, header.index("part")]
    values = np.delete(data, header.index("part"), axis=1).astype(np.float32)
    x, y = values[:, :-1], values[:, -1]
    train, val, test = (np.where(part == p)[0] for p in ("train", "val", "test"))
    mean, std = x[train].mean(0), x[train].std(0)
    std[std == 0] = 1
    xs = (x - mean) / std
    t_mean, t_std = y[train].mean(), y[train].std()
    for seed in range(3):
        keras.utils.set_random_seed(seed)
        out = layers.Dense(1, activation="sigmoid") if kind == "binary" else layers.Dense(1)
        m = keras.Sequential([keras.Input((x.shape[1],)), layers.Dense(hidden, activation="relu"), out])
        if kind == "binary":
            m.compile(optimizer=keras.optimizers.Adam(), loss="binary_crossentropy", metrics=["accuracy"])
            m.fit(xs[train], y[train], batch_size=32, epochs=epochs, validation_data=(xs[val], y[val]), verbose=0)
            p = m.predict(xs[test], verbose=0)[:, 0]
            accuracy = float(((p > 0.5) == (y[test] > 0.5)).mean())
            pos, neg = p[y[test] > 0.5], p[y[test] <= 0.5]
            auc = float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean())
            print(f"seed {seed}: test accuracy {accuracy:.4f}, ROC AUC {auc:.4f}", flush=True)
        else:
            ys = (y - t_mean) / t_std
            m.compile(optimizer=keras.optimizers.Adam(), loss="mse")
            m.fit(xs[train], ys[train], batch_size=32, epochs=epochs, validation_data=(xs[val], ys[val]), verbose=0)
            p = m.predict(xs[test], verbose=0)[:, 0] * t_std + t_mean
            mae = float(np.abs(p - y[test]).mean())
            r2 = float(1 - ((p - y[test]) ** 2).sum() / ((y[test] - y[test].mean()) ** 2).sum())
            print(f"seed {seed}: test MAE {mae:.3f}, R² {r2:.4f}", flush=True)


def anomaly_onnx(out):
    """MLPerf Tiny's anomaly-detection autoencoder (benchmark/training/anomaly_detection/
    keras_model.py): 640 -> 4 x [Dense 128, BatchNorm, ReLU] -> [Dense 8, BatchNorm, ReLU] ->
    4 x [Dense 128, BatchNorm, ReLU] -> Dense 640, random weights and statistics, through tf2onnx."""
    import keras
    import tensorflow as tf
    import tf2onnx
    from keras import layers

    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((640,))
    for units in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        x = layers.Activation("relu")(layers.BatchNormalization()(layers.Dense(units)(x)))
    m = keras.Model(inputs, layers.Dense(640)(x))
    rng = np.random.default_rng(0)
    for layer in m.layers:
        if isinstance(layer, layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n), rng.normal(0, 0.2, n),
                               rng.uniform(0.5, 2.0, n)])
    spec = (tf.TensorSpec((None, 640), tf.float32, name="input"),)
    tf2onnx.convert.from_keras(m, input_signature=spec, opset=13, output_path=out)
    print(f"wrote {out}")


if __name__ == "__main__":
    if sys.argv[1] == "parity":
        parity(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "task":
        task(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    elif sys.argv[1] == "anomaly-onnx":
        anomaly_onnx(sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
