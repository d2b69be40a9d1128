"""Runs inside the rknn-toolkit2 venv (``make rknn-env``), never imported by heqis itself.

rknn-toolkit2 pins old numpy/onnx/torch, so it cannot share the main environment; ``heqis convert
--to rknn`` starts this file with that venv's python. Input: a JSON job file; output: the .rknn
model, the simulator's outputs on the given windows (.npy) and a JSON result file.
Only the standard library, numpy and rknn.api are imported here.

The job names the model's input (name and its batch-1 shape) and its outputs, in the ONNX graph's
output order (the order ``rknn.inference`` returns them in), each with the .npy path its [N, k]
simulator results go to: one worker serves the generators (``input`` → ``output_reg``,
``output_cls``) and the gateway's watchdog (``window`` → ``score``) alike.
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
    steps = {}
    steps["config"] = rknn.config(target_platform=job["target"], optimization_level=job.get("optimization_level", 3))
    steps["load_onnx"] = rknn.load_onnx(model=job["onnx"], inputs=[job["input"]], input_size_list=[job["input_shape"]])
    if steps["load_onnx"] == 0:
        steps["build"] = rknn.build(do_quantization=bool(job["quantize"]),
                                    dataset=job["dataset"] if job["quantize"] else None)
    if steps.get("build") == 0:
        steps["export"] = rknn.export_rknn(job["out"])
    if steps.get("export") == 0:
        steps["init_runtime"] = rknn.init_runtime()   # no target: the x86 simulator
    result = {"steps": steps, "ok": all(v == 0 for v in steps.values()) and "init_runtime" in steps}
    result["convert_seconds"] = round(time.time() - t0, 2)
    if result["ok"]:
        windows = np.load(job["windows"])
        got = [[] for _ in outputs]
        for i in range(len(windows)):
            values = rknn.inference(inputs=[windows[i:i + 1]])
            if values is None or len(values) != len(outputs):
                result.update(ok=False, error=f"the simulator returned {0 if values is None else len(values)} "
                                              f"outputs, the job names {len(outputs)}")
                break
            for acc, value in zip(got, values):
                acc.append(np.asarray(value, dtype=np.float32).reshape(1, -1))
        if result["ok"]:
            for spec, acc in zip(outputs, got):
                np.save(spec["path"], np.concatenate(acc))
    rknn.release()
    result["seconds"] = round(time.time() - t0, 2)
    with open(job["result"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
