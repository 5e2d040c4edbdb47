"""Reporting: the paper's Tables 1-3 (``paper_tables``, from ``paper_results.csv``), ours beside
them (``compare``), Caffe logs (``caffe_log``) and training curves (``plots``)."""
