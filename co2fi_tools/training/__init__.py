"""Training: one Caffe solver run in its own folder (``train``, through pycaffe or the `caffe`
tool; ``solver_worker`` steps the solver in a child process), data-parallel GPUs
(``multigpu``), run folders and snapshots (``runs``), live curves (``board``)."""
