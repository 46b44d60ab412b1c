"""fusedopt.sklearn at default threads against one fusedopt thread, inside scikit-learn's loop.

The issue's first adapter fitted 2x slower at default threads (spinning OpenMP threads
slowed the BLAS); fusedopt's pool sleeps between steps. (512, 512) on load_digits, batch
64, 8 epochs, 5 fits per setting, interleaved; prints the medians and their ratio::

    python benchmarks/sklearn_threads.py
"""

import statistics
import time
import warnings

from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

import fusedopt as fo
from fusedopt.sklearn import MLPClassifier

warnings.simplefilter("ignore", ConvergenceWarning)
X, y = load_digits(return_X_y=True)
X = X / 16.0
default = fo.get_num_threads()
times: dict[int, list[float]] = {1: [], default: []}
for _ in range(5):
    for n in (1, default):
        fo.set_num_threads(n)
        t = time.perf_counter()
        MLPClassifier((512, 512), batch_size=64, max_iter=8, tol=0, random_state=0).fit(X, y)
        times[n].append(time.perf_counter() - t)
fo.set_num_threads(default)
m = {n: statistics.median(v) for n, v in times.items()}
print(f"fusedopt threads=1: {m[1]:.2f} s; default ({default}): {m[default]:.2f} s")
print(f"default / 1 thread: {m[default] / m[1]:.3f}")
