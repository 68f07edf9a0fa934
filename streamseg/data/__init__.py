"""Dataset I/O shared by training and evaluation: YouTube-VIS JSON, frames, the synthetic scene."""
