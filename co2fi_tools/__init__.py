"""Evaluation, comparison with the paper, training curves and net surgery (docs/EVALUATION.md).

Modules: ``classification`` (top-1, top-5, mean class accuracy, confusion matrix, per-class
table on scikit-learn), ``fusion`` (period and model score fusion), ``scores`` (HDF5 score
files), ``evaluate_scores`` (score files -> results row, confusion matrix, per-class tables),
``paper_tables`` (the paper's Tables 1-3 from ``paper_results.csv``), ``compare`` (ours beside
the paper), ``caffe_log`` and ``plots`` (training curves), ``net_surgery`` (ImageNet
initialisation; needs pycaffe only to read or write Caffe files).
"""
