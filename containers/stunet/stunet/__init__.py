"""STU-Net reference container of the A-Eval harness: network, checkpoint loading, inference, entry point."""

__version__ = "0.1.0"
