"""--distribute: the tf.distribute strategies, and the training loop MultiWorkerMirroredStrategy needs.

  none         TensorFlow's default strategy (one device)
  mirrored     MirroredStrategy over every visible GPU, or the CPU split in SIGNWRITE_CPU_REPLICAS
  multiworker  MultiWorkerMirroredStrategy over the machines TF_CONFIG names; Keras 3's fit and
               predict do not run under it (keras-team/keras#20585), so this module has its own
"""

from __future__ import annotations

import json
import logging
import os

import numpy as np

from signwrite.errors import SignwriteError

log = logging.getLogger(__name__)


def make_strategy(s):
    """The tf.distribute strategy of --distribute, made before TensorFlow does anything else,
    and whether this process writes the run (the chief, worker 0, under multiworker)."""
    import tensorflow as tf

    if s.distribute == "none":
        return tf.distribute.get_strategy(), True
    if s.distribute == "mirrored":
        replicas = os.environ.get("SIGNWRITE_CPU_REPLICAS")
        if replicas:  # a CPU-only machine split into logical devices: to try mirrored without GPUs
            if not replicas.isdigit() or int(replicas) < 1:
                raise SignwriteError(f"SIGNWRITE_CPU_REPLICAS must be a whole number of at least 1; "
                                     f"received {replicas!r}")
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * int(replicas))
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
            strategy = tf.distribute.MirroredStrategy(devices)
        else:
            strategy = tf.distribute.MirroredStrategy()
        log.info("distribute: MirroredStrategy over %d replica(s): %s", strategy.num_replicas_in_sync,
                 ", ".join(strategy.extended.worker_devices))
        return strategy, True
    tf_config = os.environ.get("TF_CONFIG")
    try:
        cluster = json.loads(tf_config or "")
        workers, index = cluster["cluster"]["worker"], int(cluster["task"]["index"])
    except (ValueError, KeyError, TypeError):
        raise SignwriteError(
            "--distribute multiworker needs TF_CONFIG, the same cluster on every machine and each its own "
            'index, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": '
            '{"type": "worker", "index": 0}}\'. Received: TF_CONFIG=' + repr(tf_config)) from None
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    log.info("distribute: MultiWorkerMirroredStrategy, worker %d of %d (%s), %d replica(s) in all",
             index, len(workers), workers[index], strategy.num_replicas_in_sync)
    return strategy, index == 0


def predict_locally(model, dataset) -> np.ndarray:
    """Probabilities for every batch of ``dataset`` on this worker alone: Keras' predict does not
    run under MultiWorkerMirroredStrategy (keras-team/keras#20585)."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    return np.concatenate([forward(x).numpy() for x, _ in dataset])


def fit_multiworker(model, train_data, callbacks, first_epoch: int, epochs: int, global_batch: int) -> int:
    """model.fit's job under MultiWorkerMirroredStrategy, where Keras 3's own fit fails
    (keras-team/keras#20585): each worker takes its share of every global batch, gradients
    are summed across workers by TensorFlow's collectives, every worker applies the same
    update. The callbacks run as under fit. Returns the next epoch."""
    import keras
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    loss_fn = keras.losses.SparseCategoricalCrossentropy(reduction="sum")
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    batches = strategy.experimental_distribute_dataset(train_data)

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = loss_fn(y, probs) / global_batch  # this replica's share of the global mean
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        right = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32),
                                               tf.cast(y, tf.int32)), tf.float32))
        return loss, right, tf.cast(tf.shape(y)[0], tf.float32)

    @tf.function
    def step(batch):
        per_replica = strategy.run(replica_step, args=batch)
        return [strategy.reduce("SUM", v, axis=None) for v in per_replica]

    run = keras.callbacks.CallbackList(callbacks, model=model, epochs=first_epoch + epochs, verbose=0)
    model.stop_training = False
    run.on_train_begin()
    epoch = first_epoch
    for epoch in range(first_epoch, first_epoch + epochs):
        run.on_epoch_begin(epoch)
        loss_sum = right = seen = steps = 0.0
        for batch in batches:
            loss, r, n = step(batch)
            loss_sum, right, seen, steps = loss_sum + float(loss), right + float(r), seen + float(n), steps + 1
        logs = {"accuracy": right / max(seen, 1), "loss": loss_sum / max(steps, 1),
                "learning_rate": float(optimizer.learning_rate)}
        run.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    run.on_train_end()
    return epoch + 1
