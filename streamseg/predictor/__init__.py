"""The online predictor: OnlineSegmenter (model + tracker), its post-processing, checkpoints."""
