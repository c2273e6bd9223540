import sys

from nasrec.cli import main

sys.exit(main())
