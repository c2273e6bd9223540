import sys

from cosearch.cli import main

sys.exit(main())
