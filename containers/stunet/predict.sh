#!/bin/sh
# FLARE convention: docker run ... -v IN:/workspace/inputs/ -v OUT:/workspace/outputs/ IMAGE /bin/bash -c "sh predict.sh"
# Reads every /workspace/inputs/*_0000.nii.gz, writes /workspace/outputs/<case>.nii.gz (uint8, same geometry).
set -e
export AEVAL_PROTOCOL=flare
exec python -m stunet.predict "$@"
