"""Runs inside the rknn-toolkit2 venv (``make rknn-env``), never imported by heqis itself.

rknn-toolkit2 pins old numpy/onnx/torch, so it cannot share the main environment; ``heqis convert
--to rknn`` starts this file with that venv's python. Input: a JSON job file; output: the .rknn
model, the simulator's outputs on the given windows (.npy) and a JSON result file.
Only the standard library, numpy and rknn.api are imported here.

The job names the model's input (name and its batch-1 shape) and its outputs, in the ONNX graph's
output order (the order ``rknn.inference`` returns them in), each with the .npy path its [N, k]
simulator results go to: one worker serves the generators (``input`` → ``output_reg``,
``output_cls``) and the gateway's watchdog (``window`` → ``score``) alike. With ``quantize`` and
``float_from`` (the watchdog) the model is INT8 but its tail from that tensor on stays float16 (``hybrid``).
"""

import json
import sys
import time

# this file's folder (heqis/export) must not shadow the toolkit's own packages
sys.path[:] = [p for p in sys.path if not p.endswith("export")]


def main(job_path):
    import numpy as np
    from rknn.api import RKNN

    with open(job_path, encoding="utf-8") as fh:
        job = json.load(fh)
    outputs = job["outputs"]                # [{"name": ..., "path": ...}, ...] in graph order
    t0 = time.time()
    rknn = RKNN(verbose=False)
    steps, result = {}, {}
    steps["config"] = rknn.config(target_platform=job["target"], optimization_level=job.get("optimization_level", 3))
    steps["load_onnx"] = rknn.load_onnx(model=job["onnx"], inputs=[job["input"]], input_size_list=[job["input_shape"]])
    if steps["load_onnx"] == 0 and job["quantize"] and job.get("float_from"):
        rknn = hybrid(rknn, job, steps, result)
    elif steps["load_onnx"] == 0:
        steps["build"] = rknn.build(do_quantization=bool(job["quantize"]),
                                    dataset=job["dataset"] if job["quantize"] else None)
    if steps.get("build", steps.get("hybrid_step2")) == 0:
        steps["export"] = rknn.export_rknn(job["out"])
    if steps.get("export") == 0:
        steps["init_runtime"] = rknn.init_runtime()   # no target: the x86 simulator
    result.update(steps=steps, ok=all(v == 0 for v in steps.values()) and "init_runtime" in steps)
    if result["ok"]:
        windows = np.load(job["windows"])
        got = [[] for _ in outputs]
        for i in range(len(windows)):
            values = rknn.inference(inputs=[windows[i:i + 1]])
            if values is None or len(values) != len(outputs):
                result.update(ok=False, error=f"the simulator returned {0 if values is None else len(values)} "
                                              f"outputs, the job names {len(outputs)}")
                break
            for acc, value in zip(got, values, strict=True):
                acc.append(np.asarray(value, dtype=np.float32).reshape(1, -1))
        if result["ok"]:
            for spec, acc in zip(outputs, got, strict=True):
                np.save(spec["path"], np.concatenate(acc))
    rknn.release()
    result["seconds"] = round(time.time() - t0, 2)
    with open(job["result"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0 if result["ok"] else 1


def hybrid(rknn, job, steps, result):
    """INT8 with a float16 tail: the layers from the one whose output is the ONNX tensor ``float_from`` up to
    the model's outputs stay float16 (rknn's hybrid quantization, step 1 → edited .cfg → step 2); the RKNN
    object that comes back is the one holding the built model.

    The toolkit renames tensors when it fuses layers (``/Sub_output_0`` becomes ``/Sub_output_0-rs``), so
    the tail is found in step 1's .cfg, which lists the layers in graph order, by that prefix."""
    import glob
    import os

    from rknn.api import RKNN

    cwd = os.getcwd()
    os.chdir(job["workdir"])          # step 1 writes <model>.model/.data/.quantization.cfg into the cwd
    try:
        steps["hybrid_step1"] = rknn.hybrid_quantization_step1(dataset=job["dataset"])
        rknn.release()
        rknn = RKNN(verbose=False)
        if steps["hybrid_step1"] != 0:
            return rknn
        cfg_path = glob.glob("*.quantization.cfg")[0]
        stem = cfg_path[:-len(".quantization.cfg")]
        with open(cfg_path, encoding="utf-8") as fh:
            cfg = fh.read()
        layers, inside = [], False
        for line in cfg.splitlines():
            if line.startswith("quantize_parameters:"):
                inside = True
            elif inside and line.startswith("    ") and not line.startswith("     ") and line.rstrip().endswith(":"):
                layers.append(line.strip()[:-1])
        start = next((i for i, name in enumerate(layers) if name.startswith(job["float_from"])), None)
        ends = [i for i, name in enumerate(layers) if name in {o["name"] for o in job["outputs"]}]
        if start is None or not ends or max(ends) < start or "custom_quantize_layers: {}" not in cfg:
            result["error"] = f"no layer {job['float_from']}… before the outputs in {cfg_path}"
            steps["hybrid_cfg"] = -1
            return rknn
        result["float_layers"] = layers[start:max(ends) + 1]
        custom = "custom_quantize_layers:\n" + "".join(f"    {name}: float16\n" for name in result["float_layers"])
        with open("hybrid.quantization.cfg", "w", encoding="utf-8") as fh:
            fh.write(cfg.replace("custom_quantize_layers: {}\n", custom, 1))
        steps["config_step2"] = rknn.config(target_platform=job["target"],
                                            optimization_level=job.get("optimization_level", 3))
        steps["hybrid_step2"] = rknn.hybrid_quantization_step2(
            model_input=f"{stem}.model", data_input=f"{stem}.data", model_quantization_cfg="hybrid.quantization.cfg")
        return rknn
    finally:
        os.chdir(cwd)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
