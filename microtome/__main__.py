import sys

from microtome.cli import main

sys.exit(main())
