"""Import published Mask2Former weights into streamseg checkpoints (``streamseg weights import``)."""
