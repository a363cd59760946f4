"""`python src/main.py ...`: the command line of the original project's usage, the same as `face-analysis ...`."""
import sys

from face_analysis.cli import main

if __name__ == "__main__":
    sys.exit(main())
