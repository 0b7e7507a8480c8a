"""``python -m stunet`` runs the container entry point."""

import sys

from .predict import main

sys.exit(main())
