"""The experiment around the nets: training, weight surgery, evaluation and reporting.

Layout (as py-faster-rcnn's lib/): the experiment pipeline at the top, the parts it drives in
subpackages by concern.

- ``experiment`` (what one experiment is), ``stages`` (which variant trains after which),
  ``pipeline`` (nets -> training stages -> evaluation -> tables), ``demo`` and ``claims`` (the
  synthetic demo and the miniature claims), ``safe_io`` (locks, atomic writes, settings).
- ``training``: ``train``, ``solver_worker``, ``multigpu``, ``runs``, ``board``.
- ``weights``: ``net_surgery`` (ImageNet initialisation; needs pycaffe only to read or write
  Caffe files), ``stage_weights``, ``weight_fit``.
- ``evaluation``: ``evaluate``, ``predict``, ``scores`` (HDF5 score files), ``fusion`` (period
  and model score fusion), ``classification`` (top-1, top-5, mean class accuracy, confusion
  matrix, per-class table on scikit-learn), ``evaluate_scores`` (score files -> results row,
  confusion matrix, per-class tables); docs/EVALUATION.md.
- ``reporting``: ``paper_tables`` (the paper's Tables 1-3 from ``paper_results.csv``),
  ``compare`` (ours beside the paper), ``caffe_log`` and ``plots`` (training curves).
"""
