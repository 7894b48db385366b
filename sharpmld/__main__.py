"""``python -m sharpmld``."""

import sys

from sharpmld.cli import main

sys.exit(main())
