"""``python -m lst_pipeline.cli``: the same as the ``lst-pipeline`` console script."""

import sys

from lst_pipeline.cli import main

sys.exit(main())
