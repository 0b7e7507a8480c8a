"""Protocol adapters: how inputs are laid out for a container and where its outputs are found.

They know file layouts and nothing about scoring or Docker settings.
"""
