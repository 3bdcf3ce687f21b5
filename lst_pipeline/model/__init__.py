"""DLSTFM: network (dlstfm.py, blocks.py), checkpoints (checkpoint.py), training (train.py).

Importing this package does not import torch; its modules do.
"""
