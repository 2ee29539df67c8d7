"""Copy (from the mirror) or download one P3 file, sha256-checked."""

import sys

from selfteach.logs import to_file
from selfteach.p3 import fetch

to_file(snakemake.log[0])
print(fetch(snakemake.wildcards.file, snakemake.output[0], snakemake.params.mirror), file=sys.stderr)
