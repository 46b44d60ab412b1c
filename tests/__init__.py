"""fusedopt's test suite: a package, so that its shared modules (``table``,
``helpers``, ``hypothesis_settings``) are imported the standard way, relatively."""
