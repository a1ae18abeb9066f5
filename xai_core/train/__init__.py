"""Training and evaluation of the classifier and the spectrogram GAN; the demo build.

Modules, pure to impure:

* :mod:`~xai_core.train.augment` - ``AugmentConfig``, ``augment_batch``: pitch shift / time stretch
  (+-30 %) and random frequency filters (+-10 dB) on batches of log-mel excerpts, on the device.
* :mod:`~xai_core.train.evaluate` - ``binary_metrics``, ``roc_auc``, ``median_smooth``,
  ``tune_threshold``; ``frame_logits`` (exact per-frame predictions of a whole file in one dense
  pass); ``evaluate_classifier`` -> ``EvalReport`` (threshold tuned on validation, test metrics,
  per-file table).
* :mod:`~xai_core.train.data` - ``Track``, ``load_split`` (Jamendo layout through
  :mod:`xai_core.data.sources`), ``ExcerptPool`` (random wide excerpts on the device).
* :mod:`~xai_core.train.classifier` - ``ClassifierTrainConfig``, ``train_classifier`` (paper
  recipe, optional backing-mix augmentation, resumable per epoch) -> ``ClassifierRun``.
* :mod:`~xai_core.train.gan` - ``GanTrainConfig``, ``train_gan`` (hinge + spectral norm or
  WGAN-GP, weight averaging, resumable) -> ``GanRun``; ``gan_quality_report`` (FID on the
  classifier's hidden layer and logit against a real-vs-real floor, p(vocal) histograms).
* :mod:`~xai_core.train.reference` - ``select_reference``: the demo's reference excerpts.
* :mod:`~xai_core.train.cli` - ``python -m xai_core train classifier|gan|reference|export|report``
  and ``python -m xai_core eval classifier``; ``scripts/build_demo_assets.sh`` chains them.
"""
