import sys

from vcompile.cli import main

sys.exit(main())
