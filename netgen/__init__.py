"""Generators for every network of the paper, as Caffe NetParameter messages."""
