"""Settings for every test process (the pytest process and each xdist worker).

jsonschema's optional `iri` format check imports rfc3987_syntax when it is installed, which
compiles some thirty Lark grammars at import (~3.4 s of CPU in each test process that imports
nbformat). No schema the tests validate has an `iri` format, so the test processes mark it
absent, as nbops's command line does for its own process (cli/common.py); processes the tests
start (CLI subprocesses, kernels, lab servers) are left as they are.
"""

import sys

sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
