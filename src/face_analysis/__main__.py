"""`python -m face_analysis ...`: the same as the `face-analysis` command."""
import sys

from face_analysis.cli import main

sys.exit(main())
