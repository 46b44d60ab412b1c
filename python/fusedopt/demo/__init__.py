"""The demo: scikit-learn's handwritten digits and a small NumPy MLP trained by fusedopt.

It uses the library and is used by the ``fusedopt`` command line; the library never
imports it. Its optional dependencies (scikit-learn, matplotlib, tqdm) install with
``pip install "fusedopt[demo]"``.
"""
