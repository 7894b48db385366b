"""``python -m sharpmld``."""

import sys

from sharpmld.cli.main import main

sys.exit(main())
