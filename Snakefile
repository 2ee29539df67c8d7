# selfteach: a language model teaches itself to program (Haluptzok, Bowers, Kalai; ICLR 2023).
# generate puzzles -> filter -> sample solutions -> verify in a sandbox -> fine-tune -> pass@k.


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/resources.smk"
include: "rules/generate.smk"
include: "rules/solve.smk"
include: "rules/verify.smk"
include: "rules/human_data.smk"
include: "rules/dataset.smk"
include: "rules/finetune.smk"
include: "rules/evaluate.smk"
include: "rules/humaneval.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        study_outputs(),
