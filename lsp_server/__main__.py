"""`python -m lsp_server` is `inkling`."""

import sys

from lsp_server.cli import main

sys.exit(main())
