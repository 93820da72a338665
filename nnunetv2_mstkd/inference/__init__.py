"""Prediction with absent modalities, on nnU-Net's own predictor.

* :mod:`~nnunetv2_mstkd.inference.predictor`: :class:`MissingModalityPredictor`, an ``nnUNetPredictor``
  subclass (its data iterator reads the present channels and zeroes the absent ones).
* :mod:`~nnunetv2_mstkd.inference.predict`: the ``mstkd_predict`` command and :func:`predict_missing`.
* :mod:`~nnunetv2_mstkd.inference.case_files`: a folder's cases and their absent channel files.
* :mod:`~nnunetv2_mstkd.inference.channel_reader`: reading present channels, checking geometry and NaN/Inf.
* :mod:`~nnunetv2_mstkd.inference.preprocessing`: nnU-Net preprocessing of a case with absent channels.
* :mod:`~nnunetv2_mstkd.inference.data_iterator`: the iterator nnU-Net's prediction loop consumes.
* :mod:`~nnunetv2_mstkd.inference.atomic_export`: nnU-Net's export, made atomic.
* :mod:`~nnunetv2_mstkd.inference.model_folder`: checking a trained model's folder.

Nothing is imported here, so worker processes load only the modules they need.
"""
