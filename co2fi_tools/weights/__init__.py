"""Weight surgery: ImageNet and stage-to-stage initialisation (``net_surgery``,
``stage_weights``) and the check that weights fit a net before Caffe loads them
(``weight_fit``)."""
