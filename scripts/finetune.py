"""Step 6: fine-tune one student on the data of one generator (all rounds so far), every epoch saved.

One device trains in this process; several GPUs go through `accelerate launch` with a shipped config.
"""

import os
import subprocess
import sys
from pathlib import Path

from selfteach.cli import launch_command
from selfteach.finetune import FinetuneConfig, train
from selfteach.io import atomic_path
from selfteach.logs import to_file

to_file(snakemake.log[0], snakemake.threads)
checkpoints = Path(snakemake.params.checkpoints)
texts = list(snakemake.input.texts)
train_text = texts[0]
if len(texts) > 1:  # later rounds train on the data of every round so far
    train_text = checkpoints / "train.txt"
    with atomic_path(train_text) as tmp:
        tmp.write_text("".join(Path(text).read_text() for text in texts))

config = FinetuneConfig.from_dict(snakemake.params.settings)
out_root = Path(snakemake.output.models[0]).parent
if snakemake.params.accelerate is None:
    train(config, snakemake.input.model, train_text, snakemake.output.models, checkpoints, snakemake.output.log_csv)
else:
    repo = Path(snakemake.scriptdir).parent
    command = launch_command(
        repo / "accelerate" / f"{snakemake.params.accelerate}.yaml",
        snakemake.resources.gpu,
        snakemake.input.model,
        train_text,
        out_root,
        checkpoints,
        snakemake.output.log_csv,
        snakemake.params.settings,
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    subprocess.run(command, check=True, env=environment, stdout=sys.stderr, stderr=sys.stderr)
