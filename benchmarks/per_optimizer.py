"""Fused vs NumPy reference time per step of every optimizer at n float32 elements, one run."""

import sys
import time

import numpy as np

import fusedopt as fo

n = int(float(sys.argv[1])) if len(sys.argv) > 1 else 10**7
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 1
fo.set_num_threads(threads)
rows = [
    ("SGD", {}),
    ("SGD", dict(momentum=0.9)),
    ("Adam", {}),
    ("Adam", dict(amsgrad=True)),
    ("AdamW", {}),
    ("Adagrad", {}),
    ("RMSprop", {}),
    ("RMSprop", dict(momentum=0.9, centered=True)),
    ("Adadelta", {}),
    ("Adamax", {}),
    ("NAdam", {}),
    ("RAdam", {}),
    ("Lion", {}),
    ("LAMB", {}),
    ("LARS", {}),
    ("ASGD", {}),
    ("ASGD", dict(t0=0.0)),
    ("Rprop", {}),
    ("Adam", dict(max_grad_norm=1.0)),
]
rng = np.random.default_rng(0)
g = rng.standard_normal(n).astype(np.float32)
print(f"n={n:.0e} float32, {threads} thread(s); median of 7 (fused) / 3 (numpy) steps")
print(f"{'optimizer':34s} {'fused ms':>9s} {'numpy ms':>9s} {'speed-up':>8s}")
for name, kw in rows:
    t = {}
    for backend, reps in (("fused", 7), ("numpy", 3)):
        p = rng.standard_normal(n).astype(np.float32)
        opt = getattr(fo, name)([p], backend=backend, **kw)
        opt.step([g])
        ts = []
        for _ in range(reps):
            s = time.perf_counter()
            opt.step([g])
            ts.append(time.perf_counter() - s)
        t[backend] = float(np.median(ts))
        del opt, p
    label = name + ("(" + ", ".join(f"{k}={v}" for k, v in kw.items()) + ")" if kw else "")
    print(
        f"{label:34s} {t['fused'] * 1e3:9.2f} {t['numpy'] * 1e3:9.1f}"
        f" {t['numpy'] / t['fused']:7.1f}x"
    )
