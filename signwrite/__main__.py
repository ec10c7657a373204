import sys

from signwrite.cli import main

sys.exit(main())
