#!/bin/sh
# FLARE protocol entry point: every /workspace/inputs/*_0000.nii.gz -> /workspace/outputs/<case>.nii.gz
exec python3 /opt/app/segment.py flare
