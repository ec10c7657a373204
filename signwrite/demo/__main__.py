"""python -m signwrite.demo: the same as ``signwrite demo``."""

import sys

from signwrite.demo import main

sys.exit(main())
