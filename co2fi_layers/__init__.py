"""Caffe Python layers of co2fi, one concern a file (py-faster-rcnn style)."""
