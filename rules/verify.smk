# Step 4: run f(g()) for every sampled solution inside the bubblewrap sandbox. One rule serves the
# generated data (results/data/...) and the evaluations (results/eval/..., and results/humaneval/...,
# whose records are whole programs); the generated solutions and their verdicts are also written as a
# Hugging Face dataset folder.


rule verify_solutions:
    input:
        "{folder}/shards/solutions.s{shard}.jsonl",
    output:
        "{folder}/shards/verdicts.s{shard}.jsonl",
    log:
        "logs/verify_solutions/{folder}/s{shard}.log",
    wildcard_constraints:
        folder=r"results/(data|eval|humaneval)/.+",
    conda:
        "../envs/verify.yaml"
    threads: config["verify"]["workers"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        verify=config["verify"],
    script:
        "../scripts/verify.py"


rule solutions_dataset:
    input:
        solutions="results/data/{gen}/r{round}/solutions.jsonl",
        verdicts="results/data/{gen}/r{round}/solutions.verdicts.jsonl",
    output:
        directory("results/data/{gen}/r{round}/hf/solutions"),
    log:
        "logs/solutions_dataset/{gen}/r{round}.log",
    conda:
        "../envs/verify.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        model=generator_model,
        verify=config["verify"],
    script:
        "../scripts/solutions_dataset.py"
