# Step 7 on HumanEval (evaluate.benchmarks: [..., humaneval]): every model evaluated on the P3 puzzles is
# also sampled on HumanEval's 164 problems with the same settings; the programs run in the same sandbox
# (rule verify_solutions), and rule evaluate tabulates them (results/humaneval/<student>/<tag>/).


rule humaneval_problems:
    output:
        humaneval_problems(),
    log:
        "logs/humaneval_problems.log",
    conda:
        "../envs/humaneval.yaml"
    resources:
        mem_mb=500,
        runtime=5,
    script:
        "../scripts/humaneval_problems.py"


rule sample_humaneval:
    input:
        problems=humaneval_problems(),
        model=evaluated_folder,
    output:
        "results/humaneval/{student}/{tag}/shards/solutions.s{shard}.jsonl",
    log:
        "logs/sample_humaneval/{student}/{tag}/s{shard}.log",
    conda:
        "../envs/model.yaml"
    threads: MODEL_THREADS
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=config["sampling"]["gpus"],
    params:
        model=evaluated_folder,
        sampling=config["sampling"],
        settings=eval_settings(),
        shards=config["evaluate"]["shards"],
        seed=config["seed"],
    script:
        "../scripts/sample_humaneval.py"
