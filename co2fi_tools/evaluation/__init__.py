"""Evaluation (Sec. 6.1): deploy nets scoring the test periods (``evaluate``, ``predict`` for one
video), score files (``scores``), score fusion (``fusion``), metrics (``classification``) and
results rows, confusion matrices and per-class tables (``evaluate_scores``)."""
