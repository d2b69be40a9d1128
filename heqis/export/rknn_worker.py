"""Runs inside the rknn-toolkit2 venv (``make rknn-env``), never imported by heqis itself.

rknn-toolkit2 pins old numpy/onnx/torch, so it cannot share the main environment; ``heqis convert
--to rknn`` starts this file with that venv's python. Input: a JSON job file; output: the .rknn
model, the simulator's outputs on the given windows (.npy) and a JSON result file.
Only the standard library, numpy and rknn.api are imported here.
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
    t0 = time.time()
    rknn = RKNN(verbose=False)
    steps = {}
    steps["config"] = rknn.config(target_platform=job["target"], optimization_level=job.get("optimization_level", 3))
    steps["load_onnx"] = rknn.load_onnx(model=job["onnx"], inputs=["input"], input_size_list=[job["input_shape"]])
    if steps["load_onnx"] == 0:
        steps["build"] = rknn.build(do_quantization=bool(job["quantize"]),
                                    dataset=job["dataset"] if job["quantize"] else None)
    if steps.get("build") == 0:
        steps["export"] = rknn.export_rknn(job["out"])
    if steps.get("export") == 0:
        steps["init_runtime"] = rknn.init_runtime()   # no target: the x86 simulator
    result = {"steps": steps, "ok": all(v == 0 for v in steps.values()) and "init_runtime" in steps}
    if result["ok"]:
        windows = np.load(job["windows"])
        regs, clss = [], []
        for i in range(len(windows)):
            reg, cls = rknn.inference(inputs=[windows[i:i + 1]])
            regs.append(np.asarray(reg, dtype=np.float32).reshape(1, -1))
            clss.append(np.asarray(cls, dtype=np.float32).reshape(1, -1))
        np.save(job["reg_out"], np.concatenate(regs))
        np.save(job["cls_out"], np.concatenate(clss))
    rknn.release()
    result["seconds"] = round(time.time() - t0, 2)
    with open(job["result"], "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
