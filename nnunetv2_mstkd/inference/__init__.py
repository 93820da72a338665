"""Prediction with absent modalities, on top of nnU-Net's predictor.

* :mod:`~nnunetv2_mstkd.inference.masked_predictor`: :class:`MaskedPredictor`, the core
  (preprocess a case with absent channels, sliding-window logits, segmentation).
* :mod:`~nnunetv2_mstkd.inference.predict`: ``mstkd_predict`` and :func:`predict_missing`.
* :mod:`~nnunetv2_mstkd.inference.case_files`: a folder's cases and their absent channel files.
* :mod:`~nnunetv2_mstkd.inference.channel_reader`: reading present channels, checking their geometry.
* :mod:`~nnunetv2_mstkd.inference.preprocessing`: nnU-Net preprocessing of a case with absent channels.
* :mod:`~nnunetv2_mstkd.inference.runner`: preprocessing/export worker processes around the network.
* :mod:`~nnunetv2_mstkd.inference.atomic_export`: outputs that appear only when complete.

Nothing is imported here, so worker processes load only the modules they need.
"""
